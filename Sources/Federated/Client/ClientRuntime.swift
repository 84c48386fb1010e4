import Datasets
import Engine

/// A client's own data: a data set and the indices of its samples in it.
public struct ClientData: Sendable {
    public var data: LabeledImages
    public var indices: [Int]
    public init(data: LabeledImages, indices: [Int]) { (self.data, self.indices) = (data, indices) }
}

/// A decoded task, its model ready to train from.
public struct ReceivedTask: Sendable {
    /// The task's header fields (its payloads are decoded into the fields below).
    public var envelope: Envelope
    /// The model to start from (the client's updated copy with a compressing downlink).
    public var model: [Float]
    public var serverControl: [Float]?
}

/// The client side of a round, the same in `simulate` and in a client process: receive the task
/// (decoding the downlink into the client's state), train on the client's own data, form the
/// delta, run the `UpdateStage`s, encode (with error feedback), and reply. A value with no
/// per-client fields: each client's `ClientState` and data are passed in, so one runtime serves
/// every client of a process.
///
/// Randomness: training shuffles from (seed, client stream, round, client), the codec draws from
/// (seed, uplink, round, client), stages from (seed, updateStage, round, client), and a fresh
/// codec state from (seed, codecState, client); so a client's reply depends only on the task,
/// its state and its data.
public struct ClientRuntime: Sendable {
    public let layout: ParameterLayout
    public let training: LocalTrainingConfiguration
    public let uplinkCodec: any UpdateCodec
    public let errorFeedback: Bool
    /// Whether the server compresses the downlink: clients then keep a copy of the model.
    public let keepsModelCopy: Bool
    public let stages: [any UpdateStage]
    public let seed: UInt64
    /// β of the momentum the client sends instead of its delta (`client_momentum`), nil: off.
    public let momentum: Float?
    /// Entries each client keeps to itself (FedBN's BatchNorm layers, `local_batchnorm`): it
    /// trains and evaluates with its own values there (the global model's until its first
    /// round), keeps them in `ClientState.local`, and sends a zero change for them.
    public let localRanges: [Range<Int>]
    /// Floats of `ClientState.local`.
    public var localCount: Int { localRanges.reduce(0) { $0 + $1.count } }

    public init(layout: ParameterLayout, training: LocalTrainingConfiguration, uplinkCodec: any UpdateCodec, errorFeedback: Bool,
                keepsModelCopy: Bool, stages: [any UpdateStage] = [], seed: UInt64, momentum: Float? = nil, localRanges: [Range<Int>] = []) {
        (self.layout, self.training, self.uplinkCodec, self.errorFeedback) = (layout, training, uplinkCodec, errorFeedback)
        (self.keepsModelCopy, self.stages, self.seed, self.momentum) = (keepsModelCopy, stages, seed, momentum)
        self.localRanges = localRanges
    }

    /// `model` with the client's own local entries, if it has them.
    func withLocalEntries(_ model: [Float], state: ClientState) -> [Float] {
        guard let local = state.local else { return model }
        var model = model, offset = 0
        for range in localRanges {
            model.replaceSubrange(range, with: local[offset..<(offset + range.count)])
            offset += range.count
        }
        return model
    }

    /// The state of a client that has not taken part yet (its codec's initial state).
    public func initialState(client: Int) -> ClientState {
        var state = ClientState()
        var generator = SeededGenerator.derived(seed: seed, RandomStream.codecState.rawValue, UInt64(client))
        state.uplinkState = uplinkCodec.initialState(layout: layout, generator: &generator)
        return state
    }

    /// Decodes a task addressed to `client`; a training task's model updates `state`'s copy.
    /// Throws for bytes that are not a valid task for this client and model; `state` is then
    /// unchanged.
    public func receive(_ bytes: [UInt8], client: Int, state: inout ClientState) throws(MessageError) -> ReceivedTask {
        var envelope = try Envelope(decoding: bytes)
        guard envelope.kind.isTask else { throw .badField("envelope kind \(envelope.kind) is not a task") }
        guard envelope.client == client else { throw .badField("task for client \(envelope.client), this is client \(client)") }
        guard let modelBytes = envelope.payloads[.model] else { throw .badField("task without a model") }
        let message = try UpdateMessage.decode(modelBytes, layout: layout)
        var serverControl: [Float]?
        if let controlBytes = envelope.payloads[.serverControl] {
            let control = try UpdateMessage.decode(controlBytes, layout: layout)
            guard control.kind == .control else { throw .badField("server control payload of kind \(control.kind)") }
            serverControl = control.values
        }
        envelope.payloads = [:]
        let model: [Float]
        switch message.kind {
        case .model:
            model = message.values
            if envelope.kind == .train, keepsModelCopy { state.copy = model }
        case .modelChange:
            guard envelope.kind == .train, let copy = state.copy else { throw .badField("model change without a model copy to apply it to") }
            model = zip(copy, message.values).map { $0 + $1 }
            state.copy = model
        case .update, .control:
            throw .badField("model payload of kind \(message.kind)")
        }
        return ReceivedTask(envelope: envelope, model: model, serverControl: serverControl)
    }

    /// Runs `task` on the client's `data` with the worker's trainer; returns the reply's bytes.
    /// Training updates `state` (residual, codec state, control variate) only when the update
    /// is finite: a diverged client replies `diverged` and keeps its state.
    public func run(_ task: ReceivedTask, data: ClientData, state: inout ClientState, worker: SupervisedTraining) -> [UInt8] {
        let request = task.envelope, client = request.client, round = request.round
        var reply = Envelope(kind: .update, client: client, round: round, modelVersion: request.modelVersion)
        reply.samples = data.indices.count
        if request.kind == .evaluate {
            let evaluation = worker.evaluate(parameters: withLocalEntries(task.model, state: state), data: data.data, indices: data.indices)
            reply.kind = .evaluation
            reply.metrics = ["accuracy": evaluation.accuracy, "loss": evaluation.loss]
            return reply.bytes
        }
        var generator = SeededGenerator.derived(seed: seed, RandomStream.client.rawValue, UInt64(round), UInt64(client))
        let instructions = RoundInstructions(proximalMu: request.proximalMu, serverControl: task.serverControl)
        let start = withLocalEntries(task.model, state: state)
        var update = training.exampleDP.map {
            $0.train(client: client, round: round, seed: seed, indices: data.indices, data: data.data, global: start, configuration: training,
                     training: worker)
        } ?? trainClient(client, indices: data.indices, data: data.data, global: start, configuration: training,
                         instructions: instructions, clientControl: state.control, training: worker, generator: &generator)
        reply.steps = update.steps
        reply.trainLoss = update.trainLoss
        // Local entries: the trained values stay here; the server sees no change for them.
        var local: [Float] = []
        for range in localRanges {
            local += range.map { start[$0] + update.delta[$0] }
            update.delta.replaceSubrange(range, with: repeatElement(0, count: range.count))
            update.controlDelta?.replaceSubrange(range, with: repeatElement(0, count: range.count))
        }
        guard VectorKernels.allFinite(local), let message = encode(update.delta, round: round, client: client, state: &state) else {
            reply.kind = .diverged
            return reply.bytes
        }
        if !localRanges.isEmpty { state.local = local }
        reply.payloads[.update] = message
        if let controlDelta = update.controlDelta {
            // cᵢ⁺ = cᵢ + Δcᵢ, kept by the client as in the paper; the server only sees Δcᵢ.
            state.control = Aggregation.adding(state.control ?? [Float](repeating: 0, count: controlDelta.count), controlDelta)
            reply.payloads[.controlChange] = UpdateMessage.encodeDense(controlDelta, kind: .control, round: round, layout: layout)
        }
        return reply.bytes
    }

    /// The reply of a client that returns the model unchanged (a zero update through the one
    /// encode path), claiming the steps `epochs` would take over its `samples`: for measuring
    /// what a federation costs beyond training (`fedtrain client --echo`). Not a training mode.
    public func echo(_ task: ReceivedTask, samples: Int, state: inout ClientState) -> [UInt8] {
        let request = task.envelope
        var reply = Envelope(kind: .update, client: request.client, round: request.round, modelVersion: request.modelVersion)
        reply.samples = samples
        reply.steps = max(1, training.epochs * ((samples + training.batchSize - 1) / training.batchSize))
        reply.trainLoss = 0
        reply.payloads[.update] = encode([Float](repeating: 0, count: layout.count), round: request.round, client: request.client, state: &state)
        return reply.bytes
    }

    /// The one encode path: the delta (or with `momentum` β, `m = β·m + (1 − β)·Δ`, m starting
    /// at the first Δ) plus residual (error feedback), the stages, the codec; keeps the new
    /// momentum, residual and codec state. Nil, with `state` untouched, for a non-finite update.
    public func encode(_ delta: [Float], round: Int, client: Int, state: inout ClientState) -> [UInt8]? {
        var corrected = delta
        if let beta = momentum, let previous = state.momentum {
            for i in corrected.indices { corrected[i] = beta * previous[i] + (1 - beta) * corrected[i] }
        }
        let newMomentum = momentum == nil ? nil : corrected
        if errorFeedback, let residual = state.residual {
            for i in corrected.indices { corrected[i] += residual[i] }
        }
        guard VectorKernels.allFinite(corrected) else { return nil }
        if !stages.isEmpty {
            var generator = SeededGenerator.derived(seed: seed, RandomStream.updateStage.rawValue, UInt64(round), UInt64(client))
            for stage in stages { stage.apply(to: &corrected, round: round, client: client, generator: &generator) }
            guard VectorKernels.allFinite(corrected) else { return nil }
        }
        var codecState = state.uplinkState
        var generator = SeededGenerator.derived(seed: seed, RandomStream.uplink.rawValue, UInt64(round), UInt64(client))
        let message = corrected.withUnsafeBufferPointer {
            UpdateMessage.encode($0, kind: .update, round: round, layout: layout, codec: uplinkCodec, state: &codecState, generator: &generator)
        }
        if errorFeedback {
            guard let sent = try? UpdateMessage.decode(message, layout: layout) else { return nil }
            state.residual = zip(corrected, sent.values).map { $0 - $1 }
        }
        state.uplinkState = codecState
        if let newMomentum { state.momentum = newMomentum }
        return message
    }
}
