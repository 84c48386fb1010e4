import Datasets
import Engine
import Foundation
import Synchronization

/// What one round did; keys are the `metrics.jsonl` names.
public struct RoundMetrics: Sendable, Codable, Equatable {
    public var round: Int
    /// nil in rounds without evaluation (`eval_every`).
    public var testAccuracy: Double?
    public var testLoss: Double?
    public var trainLoss: Double?
    /// Clients whose updates were aggregated.
    public var clients: Int
    /// Sampled clients that dropped out.
    public var failures: Int
    /// Updates the server rejected (non-finite, or a message that failed its checks).
    public var rejected: Int
    public var bytesUp: Int
    public var bytesDown: Int
    public var seconds: Double
    /// Local training images per second over the round's training phase.
    public var imagesPerSecond: Double
    public var clientAccuracyMean: Double?
    public var clientAccuracyWorstDecile: Double?
    /// Bytes the same messages would take uncompressed (fp32), up and down.
    public var denseBytesUp: Int
    public var denseBytesDown: Int

    /// Uncompressed over actual bytes (1 without compression).
    public var compressionUp: Double { bytesUp == 0 ? 1 : Double(denseBytesUp) / Double(bytesUp) }
    public var compressionDown: Double { bytesDown == 0 ? 1 : Double(denseBytesDown) / Double(bytesDown) }

    enum CodingKeys: String, CodingKey {
        case round, clients, failures, rejected, seconds
        case testAccuracy = "test_accuracy", testLoss = "test_loss", trainLoss = "train_loss"
        case bytesUp = "bytes_up", bytesDown = "bytes_down", imagesPerSecond = "images_per_second"
        case clientAccuracyMean = "client_accuracy_mean", clientAccuracyWorstDecile = "client_accuracy_worst_decile"
        case denseBytesUp = "dense_bytes_up", denseBytesDown = "dense_bytes_down"
        case compressionUp = "compression_up", compressionDown = "compression_down"
    }

    public init(round: Int, clients: Int, failures: Int, rejected: Int, bytesUp: Int, bytesDown: Int, denseBytesUp: Int,
                denseBytesDown: Int, seconds: Double, imagesPerSecond: Double) {
        (self.round, self.clients, self.failures, self.rejected) = (round, clients, failures, rejected)
        (self.bytesUp, self.bytesDown, self.denseBytesUp, self.denseBytesDown) = (bytesUp, bytesDown, denseBytesUp, denseBytesDown)
        (self.seconds, self.imagesPerSecond) = (seconds, imagesPerSecond)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        round = try c.decode(Int.self, forKey: .round)
        testAccuracy = try c.decodeIfPresent(Double.self, forKey: .testAccuracy)
        testLoss = try c.decodeIfPresent(Double.self, forKey: .testLoss)
        trainLoss = try c.decodeIfPresent(Double.self, forKey: .trainLoss)
        clients = try c.decode(Int.self, forKey: .clients)
        failures = try c.decode(Int.self, forKey: .failures)
        // Checkpoints from before compression lack the last three: nothing was rejected or compressed.
        bytesUp = try c.decode(Int.self, forKey: .bytesUp)
        bytesDown = try c.decode(Int.self, forKey: .bytesDown)
        rejected = try c.decodeIfPresent(Int.self, forKey: .rejected) ?? 0
        denseBytesUp = try c.decodeIfPresent(Int.self, forKey: .denseBytesUp) ?? bytesUp
        denseBytesDown = try c.decodeIfPresent(Int.self, forKey: .denseBytesDown) ?? bytesDown
        seconds = try c.decode(Double.self, forKey: .seconds)
        imagesPerSecond = try c.decode(Double.self, forKey: .imagesPerSecond)
        clientAccuracyMean = try c.decodeIfPresent(Double.self, forKey: .clientAccuracyMean)
        clientAccuracyWorstDecile = try c.decodeIfPresent(Double.self, forKey: .clientAccuracyWorstDecile)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(round, forKey: .round)
        try c.encodeIfPresent(testAccuracy, forKey: .testAccuracy)
        try c.encodeIfPresent(testLoss, forKey: .testLoss)
        try c.encodeIfPresent(trainLoss, forKey: .trainLoss)
        try c.encode(clients, forKey: .clients)
        try c.encode(failures, forKey: .failures)
        try c.encode(rejected, forKey: .rejected)
        try c.encode(bytesUp, forKey: .bytesUp)
        try c.encode(bytesDown, forKey: .bytesDown)
        try c.encode(denseBytesUp, forKey: .denseBytesUp)
        try c.encode(denseBytesDown, forKey: .denseBytesDown)
        try c.encode(compressionUp, forKey: .compressionUp)
        try c.encode(compressionDown, forKey: .compressionDown)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(imagesPerSecond, forKey: .imagesPerSecond)
        try c.encodeIfPresent(clientAccuracyMean, forKey: .clientAccuracyMean)
        try c.encodeIfPresent(clientAccuracyWorstDecile, forKey: .clientAccuracyWorstDecile)
    }
}

/// A federated simulation on one machine: partitions the training set across clients, and per
/// round samples clients, trains them in parallel from the global model, and aggregates.
///
/// Reproducibility: every random choice comes from a generator derived from
/// (seed, round, client, purpose), each client trains single-threaded, and updates are
/// aggregated in sampled order; so a run is bit-identical for any `threads`, and a round depends
/// only on the global model, the strategy state and the round number, which is what the
/// per-round checkpoint stores.
/// Memory: one trainer per worker thread and one update per sampled client; nothing per
/// unsampled client (SCAFFOLD keeps the control variates of clients that have trained).
public final class Simulation {
    public let configuration: SimulationConfiguration
    public let network: Sequential
    public let train: LabeledImages
    public let test: LabeledImages
    public let partitions: [[Int]]
    public private(set) var global: [Float]
    public private(set) var strategy: any Strategy
    public private(set) var metrics: [RoundMetrics] = []
    public let uplinkCodec: any UpdateCodec
    public let downlinkCodec: any UpdateCodec
    /// Compression state per client that has taken part (error-feedback residuals, codec state,
    /// model copies); empty when nothing needs it (fp32 both ways, no error feedback).
    public private(set) var channels: [Int: ClientChannel] = [:]
    private let workers: [SupervisedTraining]
    private let evaluator: SupervisedTraining

    /// Purposes of derived generators.
    enum Stream: UInt64 { case initialization = 1, partition, sampling, dropout, client, uplink, downlink, codecState, downlinkState }

    public init(configuration: SimulationConfiguration, train: LabeledImages, test: LabeledImages) throws(JobError) {
        try configuration.validate()
        self.configuration = configuration
        let network = configuration.model.network
        self.network = network
        self.train = train
        self.test = test
        var partitionGenerator = SeededGenerator.derived(seed: configuration.seed, Stream.partition.rawValue)
        do {
            let scheme = try PartitionScheme(parsing: configuration.partition)
            partitions = try Partitioner(scheme: scheme, clients: configuration.clients, minimumSize: configuration.minPartitionSize)
                .split(labels: train.labels, classes: train.classes, generator: &partitionGenerator)
        } catch {
            throw .invalid("partition \(configuration.partition): \(error.description)")
        }
        var initGenerator = SeededGenerator.derived(seed: configuration.seed, Stream.initialization.rawValue)
        global = network.initialParameters(using: &initGenerator)
        strategy = try makeStrategy(configuration.strategy, parameterCount: network.parameterCount)
        uplinkCodec = try CodecRegistry.codec(parsing: configuration.codec)
        downlinkCodec = try CodecRegistry.codec(parsing: configuration.downCodec)
        if var scaffold = strategy as? Scaffold {
            scaffold.totalClients = configuration.clients
            strategy = scaffold
        }
        if var nova = strategy as? FedNova {
            nova.localMomentum = Double(configuration.momentum)
            strategy = nova
        }
        let optimizer = SGDConfiguration(learningRate: configuration.lr, momentum: configuration.momentum,
                                         weightDecay: configuration.weightDecay)
        let parallel = min(configuration.threads, configuration.sampledPerRound)
        workers = (0..<parallel).map { _ in
            SupervisedTraining(network: network, optimizer: optimizer, batchSize: configuration.batchSize, chunks: 1, threads: 1)
        }
        // Evaluation splits batches into a fixed number of chunks, so its sums do not depend on threads.
        evaluator = SupervisedTraining(network: network, optimizer: optimizer, batchSize: 500, chunks: 8, threads: configuration.threads)
    }

    public var completedRounds: Int { metrics.count }

    /// Per-client label histograms, for the partition report.
    public var histograms: [[Int]] { partitions.map { train.classHistogram($0) } }

    /// Clients sampled in `round` (1-based), in sampled order.
    public func sampledClients(round: Int) -> [Int] {
        var generator = SeededGenerator.derived(seed: configuration.seed, Stream.sampling.rawValue, UInt64(round))
        var clients = Array(0..<configuration.clients)
        let count = configuration.sampledPerRound
        for i in 0..<count {
            let j = i + Int(generator.next(upperBound: UInt64(clients.count - i)))
            clients.swapAt(i, j)
        }
        return Array(clients[..<count])
    }

    /// Whether clients keep compression state across rounds.
    var needsChannels: Bool { configuration.errorFeedback || !downlinkCodec.isDense || uplinkCodec.isStateful }

    /// A client's channel, created on first contact with fresh codec state.
    private func channel(for client: Int) -> ClientChannel {
        if let existing = channels[client] { return existing }
        var channel = ClientChannel()
        var generator = SeededGenerator.derived(seed: configuration.seed, Stream.codecState.rawValue, UInt64(client))
        channel.uplinkState = uplinkCodec.initialState(layout: network.layout, generator: &generator)
        // The server's downlink encoder has its own stream: one end's state never depends on the other's.
        var serverGenerator = SeededGenerator.derived(seed: configuration.seed, Stream.downlinkState.rawValue, UInt64(client))
        channel.downlinkState = downlinkCodec.initialState(layout: network.layout, generator: &serverGenerator)
        return channel
    }

    /// What one sampled client produced in a round.
    private struct ClientResult {
        var bytesDown = 0
        /// nil for a client that dropped out.
        var update: ClientUpdate?
        /// nil when the update was not finite.
        var message: [UInt8]?
        var controlMessage: [UInt8]?
    }

    /// Runs the next round. `clientDone(done, total)` reports progress; it is called on the
    /// calling thread only (by worker 0, after each client it finishes), so it needs no locking.
    ///
    /// Every model and update crosses the wire as an `UpdateMessage`: clients encode (and, with
    /// compression, decode the downlink) in parallel, each with generators derived from
    /// (seed, round, client); the server decodes and checks each update in sampled order.
    @discardableResult
    public func runRound(clientDone: ((Int, Int) -> Void)? = nil) -> RoundMetrics {
        let round = completedRounds + 1, configuration = self.configuration
        let clock = ContinuousClock(), start = clock.now
        let sampled = sampledClients(round: round)
        let survives = sampled.map { client in
            var generator = SeededGenerator.derived(seed: configuration.seed, Stream.dropout.rawValue, UInt64(round), UInt64(client))
            return configuration.dropout == 0 || generator.nextUnitDouble() >= configuration.dropout
        }
        let layout = network.layout, P = network.parameterCount
        let denseModelBytes = UpdateMessage.denseSize(count: P)
        let extrasBytes = strategy.downlinkExtras * denseModelBytes

        let useChannels = needsChannels
        var roundChannels = useChannels ? sampled.map { channel(for: $0) } : []
        let rule = strategy.clientRule()
        let local = LocalTrainingConfiguration(epochs: configuration.localEpochs, batchSize: configuration.batchSize,
                                               optimizer: workers[0].trainer.optimizer.configuration)
        let results = UnsafeMutableBufferPointer<ClientResult>.allocate(capacity: sampled.count)
        results.initialize(repeating: ClientResult())
        defer {
            results.deinitialize()
            results.deallocate()
        }
        let next = Atomic<Int>(0), done = Atomic<Int>(0)
        let global = self.global, partitions = self.partitions, train = self.train
        let uplinkCodec = self.uplinkCodec, downlinkCodec = self.downlinkCodec, workers = self.workers
        roundChannels.withUnsafeMutableBufferPointer { channelSlots in
            Parallelism.run(workers: min(workers.count, sampled.count)) { worker in
                while true {
                    let slot = next.add(1, ordering: .relaxed).oldValue
                    if slot >= sampled.count { break }
                    let client = sampled[slot]
                    var result = ClientResult()
                    var start = global
                    if useChannels, !downlinkCodec.isDense {
                        var generator = SeededGenerator.derived(seed: configuration.seed, Stream.downlink.rawValue, UInt64(round), UInt64(client))
                        result.bytesDown = channelSlots[slot].receive(global: global, round: round, layout: layout,
                                                                      codec: downlinkCodec, generator: &generator)
                        start = channelSlots[slot].copy!
                    } else {
                        result.bytesDown = denseModelBytes
                    }
                    result.bytesDown += extrasBytes
                    if survives[slot] {
                        var generator = SeededGenerator.derived(seed: configuration.seed, Stream.client.rawValue, UInt64(round), UInt64(client))
                        let update = trainClient(client, indices: partitions[client], data: train, global: start, configuration: local,
                                                 rule: rule, training: workers[worker], generator: &generator)
                        var codecGenerator = SeededGenerator.derived(seed: configuration.seed, Stream.uplink.rawValue, UInt64(round), UInt64(client))
                        if useChannels {
                            result.message = channelSlots[slot].send(update.delta, round: round, layout: layout, codec: uplinkCodec,
                                                                     errorFeedback: configuration.errorFeedback, generator: &codecGenerator)
                        } else if update.delta.allSatisfy(\.isFinite) {
                            var state: [Float] = []
                            result.message = update.delta.withUnsafeBufferPointer {
                                UpdateMessage.encode($0, kind: .update, round: round, layout: layout, codec: uplinkCodec,
                                                     state: &state, generator: &codecGenerator)
                            }
                        }
                        result.controlMessage = update.controlDelta.map { UpdateMessage.encodeDense($0, kind: .control, round: round, layout: layout) }
                        result.update = update
                    }
                    results[slot] = result
                    let finished = done.add(1, ordering: .relaxed).newValue
                    if worker == 0 { clientDone?(finished, sampled.count) }
                }
            }
        }
        for (slot, client) in sampled.enumerated() where useChannels { channels[client] = roundChannels[slot] }
        let trainingSeconds = (clock.now - start).seconds

        // The server decodes and checks every message before anything reaches the model.
        var updates: [ClientUpdate] = []
        var bytesUp = 0, denseBytesUp = 0, bytesDown = 0, rejected = 0
        for result in results {
            bytesDown += result.bytesDown
            guard var update = result.update else { continue }
            update.controlDelta = nil
            var valid = false
            if let message = result.message {
                bytesUp += message.count
                denseBytesUp += UpdateMessage.denseSize(count: P)
                if let decoded = try? UpdateMessage.decode(message, layout: layout), decoded.kind == .update {
                    update.delta = decoded.values
                    valid = true
                }
            }
            if let controlMessage = result.controlMessage {
                bytesUp += controlMessage.count
                denseBytesUp += controlMessage.count
                if let decoded = try? UpdateMessage.decode(controlMessage, layout: layout), decoded.kind == .control {
                    update.controlDelta = decoded.values
                } else {
                    valid = false
                }
            }
            if valid { updates.append(update) } else { rejected += 1 }
        }
        if updates.count >= configuration.minSurvivors, let next = strategy.aggregate(global: global, updates: updates),
           next.allSatisfy(\.isFinite) {
            self.global = next
        }
        let samples = updates.reduce(0) { $0 + $1.samples * configuration.localEpochs }
        var result = RoundMetrics(
            round: round, clients: updates.count, failures: survives.count(where: { !$0 }), rejected: rejected,
            bytesUp: bytesUp, bytesDown: bytesDown, denseBytesUp: denseBytesUp,
            denseBytesDown: sampled.count * (denseModelBytes + extrasBytes),
            seconds: 0, imagesPerSecond: Double(samples) / max(trainingSeconds, 1e-9))
        if !updates.isEmpty {
            result.trainLoss = updates.reduce(0.0) { $0 + $1.trainLoss * Double($1.samples) } / Double(updates.reduce(0) { $0 + $1.samples })
        }
        if round % configuration.evalEvery == 0 || round == configuration.rounds {
            let evaluation = evaluator.evaluate(parameters: self.global, data: test)
            result.testAccuracy = evaluation.accuracy
            result.testLoss = evaluation.loss
            if configuration.clientEvaluation {
                let accuracies = partitions.map { evaluator.evaluate(parameters: self.global, data: train, indices: $0).accuracy }.sorted()
                result.clientAccuracyMean = accuracies.reduce(0, +) / Double(accuracies.count)
                let decile = max(1, accuracies.count / 10)
                result.clientAccuracyWorstDecile = accuracies[..<decile].reduce(0, +) / Double(decile)
            }
        }
        result.seconds = (clock.now - start).seconds
        metrics.append(result)
        return result
    }

    // MARK: Checkpoints

    /// Writes the state after the last completed round into `directory` atomically: the model
    /// and strategy state under round-numbered names, then `checkpoint.json` naming them (the
    /// commit point), then removes older files.
    public func saveCheckpoint(to directory: String) throws(JobError) {
        let round = completedRounds
        let modelName = "model-\(round).safetensors", stateName = "strategy-\(round).safetensors"
        let channelsName = "clients-\(round).safetensors"
        let state: [(String, [Float])] = strategy.state.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let channelState: [(String, [Float])] = channels.sorted { $0.key < $1.key }.flatMap { client, channel in
            channel.vectors.sorted { $0.key < $1.key }.map { ("\(client).\($0.key)", $0.value) }
        }
        do {
            try Safetensors.save(global, layout: network.layout, to: "\(directory)/\(modelName)")
            for (vectors, name) in [(state, stateName), (channelState, channelsName)] where !vectors.isEmpty {
                var layout = ParameterLayout()
                for (name, vector) in vectors { layout.append(name: name, shape: [vector.count]) }
                try Safetensors.save(vectors.flatMap { $0.1 }, layout: layout, to: "\(directory)/\(name)")
            }
        } catch { throw .checkpoint(error) }
        let record = CheckpointRecord(round: round, model: modelName, strategy: state.isEmpty ? nil : stateName,
                                      clients: channelState.isEmpty ? nil : channelsName, strategySpec: strategy.spec, metrics: metrics)
        do { try AtomicFile.writeJSON(record, to: "\(directory)/checkpoint.json") } catch { throw .invalid(error.description) }
        let keep: Set = [modelName, stateName, channelsName, "checkpoint.json"]
        if let files = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            for file in files where ["model-", "strategy-", "clients-"].contains(where: file.hasPrefix) && !keep.contains(file) {
                try? FileManager.default.removeItem(atPath: "\(directory)/\(file)")
            }
        }
    }

    /// Restores the state saved by `saveCheckpoint` in `directory`.
    public func restoreCheckpoint(from directory: String) throws(JobError) {
        let record: CheckpointRecord
        do {
            let bytes = try AtomicFile.read("\(directory)/checkpoint.json")
            record = try JSONDecoder().decode(CheckpointRecord.self, from: Data(bytes))
        } catch {
            throw .invalid("cannot resume from \(directory): \(error)")
        }
        guard record.round == record.metrics.count, record.round <= configuration.rounds else {
            throw .invalid("cannot resume from \(directory): checkpoint round \(record.round) does not fit the run")
        }
        do {
            global = try Safetensors.load("\(directory)/\(record.model)", layout: network.layout)
            if let stateFile = record.strategy {
                let tensors = try Safetensors.tensors(try AtomicFile.read("\(directory)/\(stateFile)"), path: stateFile)
                try strategy.restore(tensors.mapValues(\.values))
            }
            if let channelsFile = record.clients {
                let tensors = try Safetensors.tensors(try AtomicFile.read("\(directory)/\(channelsFile)"), path: channelsFile)
                channels = try restoreChannels(tensors.mapValues(\.values))
            }
        } catch let error as SafetensorsError {
            throw .checkpoint(error)
        } catch let error as JobError {
            throw error
        } catch {
            throw .invalid("cannot resume from \(directory): \(error)")
        }
        metrics = record.metrics
    }

    /// Rebuilds per-client channels from checkpoint vectors named `CLIENT.VECTOR`, checking lengths.
    private func restoreChannels(_ tensors: [String: [Float]]) throws(JobError) -> [Int: ClientChannel] {
        var grouped: [Int: [String: [Float]]] = [:]
        for (name, vector) in tensors {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2, let client = Int(parts[0]), (0..<configuration.clients).contains(client) else {
                throw .invalid("checkpoint: unexpected client state \(name)")
            }
            grouped[client, default: [:]][parts[1]] = vector
        }
        var restored: [Int: ClientChannel] = [:]
        for (client, vectors) in grouped {
            guard let channel = ClientChannel(vectors: vectors) else { throw .invalid("checkpoint: unknown state for client \(client)") }
            let fresh = self.channel(for: client)
            let P = network.parameterCount
            guard (channel.residual?.count ?? P) == P, (channel.copy?.count ?? P) == P,
                  channel.uplinkState.count == fresh.uplinkState.count, channel.downlinkState.count == fresh.downlinkState.count else {
                throw .invalid("checkpoint: state of client \(client) does not fit the model and codecs")
            }
            restored[client] = channel
        }
        return restored
    }

    struct CheckpointRecord: Codable {
        var round: Int
        var model: String
        var strategy: String?
        var clients: String?
        var strategySpec: String
        var metrics: [RoundMetrics]
    }
}
