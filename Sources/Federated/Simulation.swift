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
    public var bytesUp: Int
    public var bytesDown: Int
    public var seconds: Double
    /// Local training images per second over the round's training phase.
    public var imagesPerSecond: Double
    public var clientAccuracyMean: Double?
    public var clientAccuracyWorstDecile: Double?

    enum CodingKeys: String, CodingKey {
        case round, clients, failures, seconds
        case testAccuracy = "test_accuracy", testLoss = "test_loss", trainLoss = "train_loss"
        case bytesUp = "bytes_up", bytesDown = "bytes_down", imagesPerSecond = "images_per_second"
        case clientAccuracyMean = "client_accuracy_mean", clientAccuracyWorstDecile = "client_accuracy_worst_decile"
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
    private let workers: [SupervisedTraining]
    private let evaluator: SupervisedTraining

    /// Purposes of derived generators.
    enum Stream: UInt64 { case initialization = 1, partition, sampling, dropout, client }

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

    /// Runs the next round. `clientDone(done, total)` reports progress; it is called on the
    /// calling thread only (by worker 0, after each client it finishes), so it needs no locking.
    @discardableResult
    public func runRound(clientDone: ((Int, Int) -> Void)? = nil) -> RoundMetrics {
        let round = completedRounds + 1
        let clock = ContinuousClock(), start = clock.now
        let sampled = sampledClients(round: round)
        let survivors = sampled.filter { client in
            var generator = SeededGenerator.derived(seed: configuration.seed, Stream.dropout.rawValue, UInt64(round), UInt64(client))
            return configuration.dropout == 0 || generator.nextUnitDouble() >= configuration.dropout
        }
        let fingerprint = network.layout.fingerprint, P = network.parameterCount
        let modelMessage = UpdateMessage(kind: .model, layoutFingerprint: fingerprint, round: round, values: global).encoded()
        let bytesDown = sampled.count * modelMessage.count * (1 + strategy.downlinkExtras)

        let rule = strategy.clientRule()
        let local = LocalTrainingConfiguration(epochs: configuration.localEpochs, batchSize: configuration.batchSize,
                                               optimizer: workers[0].trainer.optimizer.configuration)
        let results = UnsafeMutableBufferPointer<ClientUpdate?>.allocate(capacity: survivors.count)
        results.initialize(repeating: nil)
        defer {
            results.deinitialize()
            results.deallocate()
        }
        let next = Atomic<Int>(0), done = Atomic<Int>(0)
        let global = self.global
        Parallelism.run(workers: min(workers.count, max(1, survivors.count))) { worker in
            while true {
                let slot = next.add(1, ordering: .relaxed).oldValue
                if slot >= survivors.count { break }
                let client = survivors[slot]
                var generator = SeededGenerator.derived(seed: configuration.seed, Stream.client.rawValue, UInt64(round), UInt64(client))
                results[slot] = trainClient(client, indices: partitions[client], data: train, global: global,
                                            configuration: local, rule: rule, training: workers[worker], generator: &generator)
                let finished = done.add(1, ordering: .relaxed).newValue
                if worker == 0 { clientDone?(finished, survivors.count) }
            }
        }
        let trainingSeconds = (clock.now - start).seconds

        // Every update crosses the wire as a message and is decoded (and checked) by the server.
        var updates: [ClientUpdate] = []
        var bytesUp = 0
        for slot in 0..<survivors.count {
            guard var update = results[slot] else { continue }
            let message = UpdateMessage(kind: .update, layoutFingerprint: fingerprint, round: round, values: update.delta).encoded()
            bytesUp += message.count
            guard let decoded = try? UpdateMessage.decode(message, fingerprint: fingerprint, count: P) else { continue }
            update.delta = decoded.values
            if let control = update.controlDelta {
                let controlMessage = UpdateMessage(kind: .control, layoutFingerprint: fingerprint, round: round, values: control).encoded()
                bytesUp += controlMessage.count
                guard let decodedControl = try? UpdateMessage.decode(controlMessage, fingerprint: fingerprint, count: P) else { continue }
                update.controlDelta = decodedControl.values
            }
            updates.append(update)
        }
        if updates.count >= configuration.minSurvivors, let next = strategy.aggregate(global: global, updates: updates),
           next.allSatisfy(\.isFinite) {
            self.global = next
        }
        let samples = updates.reduce(0) { $0 + $1.samples * configuration.localEpochs }
        var result = RoundMetrics(
            round: round, clients: updates.count, failures: sampled.count - survivors.count, bytesUp: bytesUp, bytesDown: bytesDown,
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
        let state = strategy.state.sorted { $0.key < $1.key }
        do {
            try Safetensors.save(global, layout: network.layout, to: "\(directory)/\(modelName)")
            var layout = ParameterLayout()
            for (name, vector) in state { layout.append(name: name, shape: [vector.count]) }
            if !state.isEmpty {
                try Safetensors.save(state.flatMap(\.value), layout: layout, to: "\(directory)/\(stateName)")
            }
        } catch { throw .checkpoint(error) }
        let record = CheckpointRecord(round: round, model: modelName, strategy: state.isEmpty ? nil : stateName,
                                      strategySpec: strategy.spec, metrics: metrics)
        do { try AtomicFile.writeJSON(record, to: "\(directory)/checkpoint.json") } catch { throw .invalid(error.description) }
        let keep: Set = [modelName, stateName, "checkpoint.json"]
        if let files = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            for file in files where (file.hasPrefix("model-") || file.hasPrefix("strategy-")) && !keep.contains(file) {
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
        } catch let error as SafetensorsError {
            throw .checkpoint(error)
        } catch let error as JobError {
            throw error
        } catch {
            throw .invalid("cannot resume from \(directory): \(error)")
        }
        metrics = record.metrics
    }

    struct CheckpointRecord: Codable {
        var round: Int
        var model: String
        var strategy: String?
        var strategySpec: String
        var metrics: [RoundMetrics]
    }
}
