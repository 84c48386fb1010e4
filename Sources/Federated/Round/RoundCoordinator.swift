import Engine

/// The server side of synchronous rounds, the same in `simulate` and in a server process, and
/// pure: no threads, files, sockets or clocks. A round is `begin` (sample clients, build each
/// one's task), `accept` for every reply that arrives (checked, decoded, or rejected with a
/// reason), `finish` (aggregate the accepted updates in sampled order, whatever the arrival
/// order). Aggregation is transactional: the strategy aggregates into a copy of itself, and the
/// new model and state are kept only when the model is finite.
public struct RoundCoordinator: Sendable {
    public struct Settings: Sendable {
        public var clients: Int
        public var sampledPerRound: Int
        public var minSurvivors: Int
        public var maxSamples: Int
        /// Local epochs and batch size: an honest client takes `epochs · ⌈samples / batch⌉` steps,
        /// the most a reply may claim (FedNova weighs by steps).
        public var localEpochs: Int
        public var batchSize: Int
        public var seed: UInt64
        public var layout: ParameterLayout
        /// The spec of the uplink codec every update must use.
        public var uplinkCodec: String
        /// Poisson sampling: each available client takes part with this probability (what DP
        /// accounting assumes); nil: `sampledPerRound` clients drawn without replacement.
        public var poissonRate: Double?

        public init(clients: Int, sampledPerRound: Int, minSurvivors: Int, maxSamples: Int, localEpochs: Int, batchSize: Int, seed: UInt64,
                    layout: ParameterLayout, uplinkCodec: String, poissonRate: Double? = nil) {
            self.poissonRate = poissonRate
            (self.clients, self.sampledPerRound, self.minSurvivors, self.maxSamples) = (clients, sampledPerRound, minSurvivors, maxSamples)
            (self.localEpochs, self.batchSize) = (localEpochs, batchSize)
            (self.seed, self.layout, self.uplinkCodec) = (seed, layout, uplinkCodec)
        }
    }

    /// What a finished round did, for metrics.
    public struct Outcome: Sendable {
        public var round: Int
        /// Accepted updates, in sampled order.
        public var accepted: Int
        /// Sampled clients that sent no reply.
        public var failures: Int
        public var rejections: [RejectionReason: Int]
        public var committed: Bool
        public var bytesUp: Int
        public var bytesDown: Int
        public var denseBytesUp: Int
        public var denseBytesDown: Int
        /// Sample-weighted mean of the accepted clients' training losses.
        public var trainLoss: Double?
        /// Training samples of the accepted clients (each counted once per local epoch by the caller).
        public var samples: Int
        /// The accepted updates, in sampled order, and what the strategy's aggregator made of
        /// them (nil when the round was not aggregated): for robustness metrics.
        public var updates: [ClientUpdate]
        public var aggregate: Aggregate?
    }

    public enum Verdict: Sendable, Equatable {
        case accepted
        case rejected(RejectionReason)
    }

    public let settings: Settings
    public private(set) var global: [Float]
    public private(set) var strategy: any Strategy
    public private(set) var downlink: Downlink
    /// Rounds finished so far (committed or not): the model version the next round's tasks carry
    /// and replies must name.
    public private(set) var completedRounds = 0
    private var open: OpenRound?

    private struct OpenRound {
        var round: Int
        var sampled: [Int]
        var check: ReplyCheck
        var accepted: [Int: ClientUpdate] = [:]
        var rejected: [Int: RejectionReason] = [:]
        var rejectedUnattributed: [RejectionReason: Int] = [:]
        var bytesUp = 0, bytesDown = 0, denseBytesUp = 0, denseBytesDown = 0
    }

    public init(settings: Settings, global: [Float], strategy: any Strategy, downlink: Downlink) {
        precondition(global.count == settings.layout.count)
        (self.settings, self.global, self.strategy, self.downlink) = (settings, global, strategy, downlink)
    }

    /// Clients sampled in `round` from `available` (sorted ids), in sampled order: a partial
    /// Fisher-Yates shuffle from (seed, sampling, round), or with `poissonRate` one draw per
    /// available client, in id order.
    public func sample(round: Int, available: [Int]) -> [Int] {
        var generator = SeededGenerator.derived(seed: settings.seed, RandomStream.sampling.rawValue, UInt64(round))
        if let rate = settings.poissonRate { return available.filter { _ in generator.nextUnitDouble() < rate } }
        return Self.draw(min(settings.sampledPerRound, available.count), from: available, generator: &generator)
    }

    /// `count` of `clients` without replacement, in drawn order: a partial Fisher-Yates shuffle.
    static func draw(_ count: Int, from clients: [Int], generator: inout SeededGenerator) -> [Int] {
        precondition(count <= clients.count)
        var clients = clients
        for i in 0..<count {
            let j = i + Int(generator.next(upperBound: UInt64(clients.count - i)))
            clients.swapAt(i, j)
        }
        return Array(clients[..<count])
    }

    /// Runs `body(index)` for every index in `0..<count`, possibly concurrently (bodies touch
    /// disjoint state). The coordinator starts no threads: the caller decides.
    public typealias ParallelFor = @Sendable (_ count: Int, _ body: (Int) -> Void) -> Void

    /// One index after the other.
    public static let serially: ParallelFor = { count, body in for index in 0..<count { body(index) } }

    /// Opens the next round over the `available` clients: samples them and returns each sampled
    /// client's task, in sampled order. The tasks (downlink encoding included) are built through
    /// `parallelFor`; the result does not depend on how.
    public mutating func begin(available: [Int], parallelFor: ParallelFor = serially) -> [ClientMessage] {
        precondition(open == nil, "a round is already open")
        let sampled = sample(round: completedRounds + 1, available: available)
        let built = tasks(for: sampled, parallelFor: parallelFor)
        var state = OpenRound(round: completedRounds + 1, sampled: sampled, check: replyCheck(version: completedRounds, instructions: built.instructions))
        (state.bytesDown, state.denseBytesDown) = (built.bytes, built.denseBytes)
        open = state
        return built.messages
    }

    /// The training tasks of `clients` (in that order) from the current model, as round
    /// `completedRounds + 1`; updates their downlink mirrors. `bytes` and `denseBytes` count the
    /// envelopes as sent and as they would be uncompressed.
    mutating func tasks(for clients: [Int], parallelFor: ParallelFor) -> (messages: [ClientMessage], bytes: Int, denseBytes: Int,
                                                                          instructions: RoundInstructions) {
        let round = completedRounds + 1, layout = settings.layout, version = completedRounds
        let instructions = strategy.configure(round: round)
        let fullModel = UpdateMessage.encodeDense(global, kind: .model, round: round, layout: layout)
        let control = instructions.serverControl.map { UpdateMessage.encodeDense($0, kind: .control, round: round, layout: layout) }
        func task(for client: Int, model: [UInt8]) -> Envelope {
            var task = Envelope(kind: .train, client: client, round: round, modelVersion: version)
            task.proximalMu = instructions.proximalMu
            task.payloads[.model] = model
            task.payloads[.serverControl] = control
            return task
        }
        if !downlink.compresses {
            // Every client gets the same model: one envelope, readdressed to each.
            let task = task(for: 0, model: fullModel)
            let messages = Self.readdressed(task.bytes, to: clients)
            let denseLength = task.denseLength(encodedLength: messages.first?.count ?? 0, parameterCount: layout.count)
            return (messages, messages.reduce(0) { $0 + $1.count }, clients.count * denseLength, instructions)
        }
        let mirrors = downlink.mirrors(for: clients)
        var slots = clients.indices.map { TaskSlot(mirror: mirrors[$0]) }
        let downlink = self.downlink, global = self.global
        slots.withUnsafeMutableBufferPointer { slots in
            parallelFor(clients.count) { index in
                let model = downlink.message(for: clients[index], mirror: &slots[index].mirror, global: global, round: round,
                                             fullModel: fullModel)
                let task = task(for: clients[index], model: model)
                slots[index].bytes = task.bytes
                slots[index].denseLength = task.denseLength(encodedLength: slots[index].bytes.count, parameterCount: layout.count)
            }
        }
        self.downlink.store(slots.map(\.mirror), for: clients)
        return (zip(clients, slots).map { ClientMessage(client: $0, bytes: $1.bytes) }, slots.reduce(0) { $0 + $1.bytes.count },
                slots.reduce(0) { $0 + $1.denseLength }, instructions)
    }

    /// What a reply to a task sent at model `version` (as round `version + 1`) with
    /// `instructions` must satisfy.
    func replyCheck(version: Int, instructions: RoundInstructions) -> ReplyCheck {
        ReplyCheck(round: version + 1, modelVersion: version, layout: settings.layout, codecSpec: settings.uplinkCodec,
                   maxSamples: settings.maxSamples, localEpochs: settings.localEpochs, batchSize: settings.batchSize,
                   needsControlChange: instructions.serverControl != nil)
    }

    /// One task being built over a compressed downlink: the client's downlink mirror going in,
    /// the envelope bytes coming out.
    private struct TaskSlot {
        var mirror: DownlinkMirror
        var bytes: [UInt8] = []
        var denseLength = 0
    }

    /// Checks a reply from `client` (the sender the transport vouches for) and keeps its update
    /// for `finish`, or says why not. Never traps on hostile bytes.
    public mutating func accept(_ bytes: [UInt8], from client: Int) -> Verdict {
        guard var state = open else { return .rejected(.unexpected) }
        defer { open = state }
        state.bytesUp += bytes.count
        let isExpected = state.sampled.contains(client) && state.accepted[client] == nil && state.rejected[client] == nil
        guard isExpected else {
            state.denseBytesUp += bytes.count
            state.rejectedUnattributed[.unexpected, default: 0] += 1
            return .rejected(.unexpected)
        }
        switch state.check.check(bytes, from: client) {
        case .success(let (update, envelope)):
            state.accepted[client] = update
            state.denseBytesUp += envelope.denseLength(encodedLength: bytes.count, parameterCount: settings.layout.count)
            return .accepted
        case .failure(let reason):
            state.rejected[client] = reason
            state.denseBytesUp += bytes.count
            return .rejected(reason)
        }
    }

    /// Closes the round: the accepted updates, in sampled order, become the new model when
    /// there are at least `minSurvivors` and the strategy's result is finite.
    public mutating func finish() -> Outcome {
        guard let state = open else { preconditionFailure("no open round") }
        open = nil
        let results = state.sampled.compactMap { state.accepted[$0] }
        let failures = state.sampled.filter { state.accepted[$0] == nil }
        let (committed, aggregate) = commit(round: state.round, results: results, failures: failures)
        var rejections = state.rejectedUnattributed
        for reason in state.rejected.values { rejections[reason, default: 0] += 1 }
        let samples = results.reduce(0) { $0 + $1.samples }
        return Outcome(
            round: state.round, accepted: results.count, failures: state.sampled.count - results.count - state.rejected.count,
            rejections: rejections, committed: committed, bytesUp: state.bytesUp, bytesDown: state.bytesDown,
            denseBytesUp: state.denseBytesUp, denseBytesDown: state.denseBytesDown,
            trainLoss: results.isEmpty ? nil : results.reduce(0.0) { $0 + $1.trainLoss * Double($1.samples) } / Double(samples),
            samples: samples, updates: results, aggregate: aggregate)
    }

    /// Ends round `round` (the next one): the strategy aggregates `results` into a copy of itself,
    /// kept with the new model when there are at least `minSurvivors` results (and the strategy's
    /// minimum) and the model is finite. Returns whether it was kept, and the strategy's aggregate.
    mutating func commit(round: Int, results: [ClientUpdate], failures: [Int]) -> (committed: Bool, aggregate: Aggregate?) {
        precondition(round == completedRounds + 1)
        completedRounds = round
        guard results.count >= max(settings.minSurvivors, strategy.minimumUpdates) || strategy.aggregatesEmptyRounds else { return (false, nil) }
        var candidate = strategy
        let next = candidate.aggregate(round: round, global: global, results: results, failures: failures)
        guard let next, VectorKernels.allFinite(next) else { return (false, candidate.lastAggregate) }
        precondition(next.count == global.count)
        strategy = candidate
        global = next
        return (true, candidate.lastAggregate)
    }

    /// Tasks asking each of `clients` to evaluate the current model on its own data.
    public func evaluationTasks(clients: [Int]) -> [ClientMessage] {
        var task = Envelope(kind: .evaluate, client: 0, round: completedRounds, modelVersion: completedRounds)
        task.payloads[.model] = UpdateMessage.encodeDense(global, kind: .model, round: completedRounds, layout: settings.layout)
        return Self.readdressed(task.bytes, to: clients)
    }

    /// The envelope `template` for each of `clients`, all sharing its body (one copy of the model
    /// for the whole round, however many clients it goes to).
    static func readdressed(_ template: [UInt8], to clients: [Int]) -> [ClientMessage] {
        let bodyChecksum = UpdateMessage.checksum(Envelope.body(of: template))
        return clients.map { ClientMessage(client: $0, parts: Envelope.readdressed(template, to: $0, bodyChecksum: bodyChecksum)) }
    }

    /// The accuracy an evaluation reply reports, nil when the reply is not a valid evaluation
    /// of the current model by `client`.
    public func evaluationAccuracy(_ bytes: [UInt8], from client: Int) -> Double? {
        guard let envelope = try? Envelope(decoding: bytes), envelope.kind == .evaluation, envelope.client == client,
              envelope.modelVersion == completedRounds, let accuracy = envelope.metrics["accuracy"], (0...1).contains(accuracy) else {
            return nil
        }
        return accuracy
    }

    // MARK: Checkpoint state

    /// Restores what a checkpoint saved after `round`: the model, the strategy state and the
    /// downlink mirrors.
    public mutating func restore(round: Int, global: [Float], strategyState: [String: [Float]], mirrors: [Int: DownlinkMirror]) throws(CheckpointError) {
        precondition(open == nil)
        guard global.count == settings.layout.count else { throw CheckpointError("checkpoint: model has \(global.count) parameters, expected \(settings.layout.count)") }
        var restored = strategy
        try restored.restore(strategyState)
        try downlink.restore(mirrors, clients: settings.clients)
        strategy = restored
        self.global = global
        completedRounds = round
    }

    /// Forgets which downlink mirrors changed (they have been saved).
    public mutating func markMirrorsSaved() { downlink.markSaved() }
}
