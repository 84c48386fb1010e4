import Datasets
import Engine
import Foundation

/// A simulation run with its output directory: resolved `config.yaml`, `metrics.jsonl`,
/// `metrics.csv`, `summary.json`, `model.safetensors`, and a checkpoint after every round
/// (`checkpoint/`), from which `resume` continues bit-identically.
///
/// Everything is validated before anything is written: the configuration, the data, the output
/// directory (not a file, not another run's unless `overwrite`, not in use: the run holds an
/// exclusive lock on it) and, when resuming, the checkpoint's configuration, which must equal the
/// one to run except for keys that do not change results and a number of rounds that may grow.
public struct SimulationJob: Sendable {
    public var configuration: SimulationConfiguration
    public var outputDirectory: String?
    public var saveModel: String?
    /// Replace a finished or interrupted run in `outputDirectory`.
    public var overwrite = false
    /// The config file the configuration was read from, never to be overwritten.
    public var inputConfig: String?
    /// The clients run in other processes and this transport reaches them (a networked server).
    public var remote: (any ClientTransport & Sendable)?

    public init(configuration: SimulationConfiguration, outputDirectory: String?, saveModel: String?) {
        self.configuration = configuration
        self.outputDirectory = outputDirectory
        self.saveModel = saveModel
    }

    /// `summary.json`.
    public struct Summary: Sendable, Codable {
        public var finalAccuracy: Double?
        public var bestAccuracy: Double?
        public var clientAccuracyMean: Double?
        public var clientAccuracyWorstDecile: Double?
        public var rounds: Int
        public var bytesUp: Int
        public var bytesDown: Int
        /// Uncompressed (fp32) over actual envelope bytes.
        public var compressionUp: Double
        public var compressionDown: Double
        public var codec: String
        public var downCodec: String
        public var errorFeedback: Bool
        public var secondsPerRound: Double
        public var imagesPerSecond: Double
        public var strategy: String
        public var partition: String
        public var rejected: Int
        /// OpenBLAS's kernel set: results are bit-reproducible within one.
        public var openBLASKernels: String
        /// With DP: the ε spent by the whole run at `delta` (local DP: by a client in every round).
        public var epsilon: Double?
        public var delta: Double?
        /// Central DP or DP-SGD: the noise multiplier used (given, or calibrated to `target_epsilon`).
        public var noiseMultiplier: Double?
        /// The model's parameter and buffer count (what every dense upload carries).
        public var parameters: Int?
        /// With the simulated clock: the run's simulated seconds.
        public var simulatedTime: Double?
        /// The data: classes, sizes, normalization, skipped files.
        public var data: DataSource.Description?

        enum CodingKeys: String, CodingKey {
            case rounds, strategy, partition, rejected
            case finalAccuracy = "final_accuracy", bestAccuracy = "best_accuracy", bytesUp = "bytes_up", bytesDown = "bytes_down"
            case clientAccuracyMean = "client_accuracy_mean", clientAccuracyWorstDecile = "client_accuracy_worst_decile"
            case secondsPerRound = "seconds_per_round", imagesPerSecond = "images_per_second"
            case compressionUp = "compression_up", compressionDown = "compression_down", codec, downCodec = "down_codec"
            case errorFeedback = "error_feedback", openBLASKernels = "openblas_kernels", epsilon, delta, simulatedTime = "simulated_time", data
            case noiseMultiplier = "noise_multiplier", parameters
        }
    }

    /// A networked asynchronous run's `AsyncEventLog`, in its state directory.
    public static let eventLogName = "events.jsonl"

    /// Events for progress output.
    public enum Event {
        case started(Simulation)
        case clientDone(round: Int, done: Int, total: Int, seconds: Double)
        /// The round's checkpoint is on disk (before its metrics files are rewritten): from now
        /// on the run can be resumed after it.
        case checkpointed(round: Int)
        case roundDone(RoundMetrics)
    }

    /// Runs (or, with `resume`, continues) the simulation to `configuration.federation.rounds`.
    public func run(resume: Bool = false, events: ((Event) -> Void)? = nil) throws(JobError) -> Summary {
        do { try configuration.validate() } catch { throw .configuration(error) }
        if let saveModel {
            do { try AtomicFile.checkWritable(saveModel) } catch { throw .output("--save \(error.description)") }
        }
        let output = try outputDirectory.map { directory throws(JobError) in try OutputDirectory(directory, inputConfig: inputConfig) }
        let data: DataSource.Loaded
        do { data = try configuration.data.load(seed: configuration.federation.seed) } catch { throw .data(error) }
        let network: Sequential
        do { network = try configuration.data.model.network(for: data.train) } catch { throw .configuration(error) }
        var store = output.map { CheckpointStore(directory: $0.checkpoints, layout: network.layout) }
        var record: CheckpointStore.Record?
        if resume {
            guard let output, let store else { throw .configuration(ConfigurationError("resuming needs the run's output directory")) }
            try output.lock()
            do { record = try store.record() } catch { throw .checkpoint(error) }
            do {
                try configuration.checkResumable(from: record!.configuration, finishedRounds: record!.round, directory: output.path)
            } catch { throw .checkpoint(error) }
        } else if let output {
            try output.checkNewRun(overwrite: overwrite)
        }
        // A networked asynchronous run logs its events beside its checkpoints, for `fedtrain replay`.
        let eventLog = remote is any AsyncClientTransport && configuration.asynchrony.isAsynchronous
            ? output.map { AsyncEventLog(path: "\($0.path)/\(Self.eventLogName)") } : nil
        let simulation: Simulation
        do {
            simulation = try Simulation(configuration: configuration, train: data.train, test: data.test, remote: remote, eventLog: eventLog)
        } catch { throw .configuration(error) }
        var loaded: CheckpointStore.Loaded?
        if let record, var loader = store {
            do { loaded = try loader.load(record) } catch { throw .checkpoint(error) }
            store = loader
        }
        if let output {
            if record == nil { try output.prepareNewRun(overwrite: overwrite) }
            try output.write(Array((OutputDirectory.configHeader + " (OpenBLAS kernels: \(BLAS.kernelSet))\n"
                + ConfigurationFile.encode(configuration)).utf8), "config.yaml")
        }
        do { try eventLog?.start(keeping: loaded?.asynchrony?.events ?? 0) } catch { throw .output(error.description) }
        if let record, let loaded {
            do {
                try simulation.restore(round: record.round, global: loaded.global, strategyState: loaded.strategyState,
                                       clients: loaded.clients, mirrors: loaded.mirrors, metrics: record.metrics, asynchrony: loaded.asynchrony)
            } catch { throw .checkpoint(error) }
        }
        events?(.started(simulation))
        let clock = ContinuousClock()
        while simulation.completedRounds < configuration.federation.rounds && !simulation.transport.stopRequested {
            // A networked server waits here for its clients; if they do not come, its transport stops the job.
            _ = simulation.transport.available(from: simulation.allClients)
            if simulation.transport.stopRequested { break }
            let round = simulation.completedRounds + 1, start = clock.now
            let metrics = simulation.runRound { done, total in
                events?(.clientDone(round: round, done: done, total: total, seconds: (clock.now - start).seconds))
            }
            if let error = simulation.networkSchedule?.writeError { throw .output(error.description) }
            if let output, store != nil {
                do { try store!.save(simulation.snapshot()) } catch { throw .checkpoint(error) }
                simulation.markSaved()
                events?(.checkpointed(round: simulation.completedRounds))
                try writeMetrics(simulation.metrics, to: output)
            }
            events?(.roundDone(metrics))
        }
        var summary = summarize(simulation.metrics)
        summary.data = data.description
        summary.noiseMultiplier = simulation.noiseMultiplier ?? simulation.resolvedPrivacy.exampleDPSGD(secure: false)?.noiseMultiplier
        summary.parameters = simulation.network.parameterCount
        // A server stopped before its first round leaves no run behind: the same command starts it.
        if let output, simulation.completedRounds > 0 {
            try saveParameters(simulation, to: "\(output.path)/model.safetensors")
            try output.writeJSON(summary, "summary.json")
        }
        if let saveModel { try saveParameters(simulation, to: saveModel) }
        return summary
    }

    func summarize(_ metrics: [RoundMetrics]) -> Summary {
        let evaluated = metrics.compactMap(\.testAccuracy)
        let seconds = metrics.reduce(0.0) { $0 + $1.seconds }
        // Asynchronous steps that trained nothing report 0 and are left out of the median.
        let rates = metrics.map(\.imagesPerSecond).filter { $0 > 0 }.sorted()
        let imagesPerSecond = rates.isEmpty ? 0 : rates[rates.count / 2]
        let bytesUp = metrics.reduce(0) { $0 + $1.bytesUp }, bytesDown = metrics.reduce(0) { $0 + $1.bytesDown }
        let denseUp = metrics.reduce(0) { $0 + $1.denseBytesUp }, denseDown = metrics.reduce(0) { $0 + $1.denseBytesDown }
        let lastClientEvaluation = metrics.last { $0.clientAccuracyMean != nil }
        return Summary(finalAccuracy: metrics.last?.testAccuracy ?? evaluated.last, bestAccuracy: evaluated.max(),
                       clientAccuracyMean: lastClientEvaluation?.clientAccuracyMean,
                       clientAccuracyWorstDecile: lastClientEvaluation?.clientAccuracyWorstDecile,
                       rounds: metrics.count, bytesUp: bytesUp, bytesDown: bytesDown,
                       compressionUp: bytesUp == 0 ? 1 : Double(denseUp) / Double(bytesUp),
                       compressionDown: bytesDown == 0 ? 1 : Double(denseDown) / Double(bytesDown),
                       codec: configuration.compression.codec, downCodec: configuration.compression.downCodec,
                       errorFeedback: configuration.compression.errorFeedback,
                       secondsPerRound: metrics.isEmpty ? 0 : seconds / Double(metrics.count), imagesPerSecond: imagesPerSecond,
                       strategy: configuration.federation.strategy, partition: configuration.federation.partition,
                       rejected: metrics.reduce(0) { $0 + $1.rejected }, openBLASKernels: BLAS.kernelSet,
                       epsilon: metrics.last?.epsilon, delta: configuration.privacy.dp == "off" ? nil : configuration.privacy.delta,
                       simulatedTime: metrics.last?.simulatedTime)
    }

    private func saveParameters(_ simulation: Simulation, to path: String) throws(JobError) {
        do {
            try Safetensors.save(simulation.global, layout: simulation.network.layout, to: path,
                                 metadata: ["format": "pt", "model": configuration.data.model.description, "producer": "fedtrain simulate"])
        } catch { throw .output(error.description) }
    }

    /// Rewrites `metrics.jsonl` and `metrics.csv` from all rounds so far (so a resumed run's files
    /// equal an uninterrupted run's).
    private func writeMetrics(_ metrics: [RoundMetrics], to output: OutputDirectory) throws(JobError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var jsonl = ""
        for row in metrics {
            guard let data = try? encoder.encode(row) else { preconditionFailure("metrics do not encode") }
            jsonl += String(decoding: data, as: UTF8.self) + "\n"
        }
        try output.write(Array(jsonl.utf8), "metrics.jsonl")
        func cell(_ value: Double?) -> String { value.map { String($0) } ?? "" }
        var csv = "round,test_accuracy,test_loss,train_loss,clients,failures,rejected,bytes_up,bytes_down,compression_up,"
            + "compression_down,seconds,images_per_second,client_accuracy_mean,client_accuracy_worst_decile\n"
        for m in metrics {
            csv += "\(m.round),\(cell(m.testAccuracy)),\(cell(m.testLoss)),\(cell(m.trainLoss)),\(m.clients),\(m.failures),\(m.rejected),"
                + "\(m.bytesUp),\(m.bytesDown),\(m.compressionUp),\(m.compressionDown),\(m.seconds),\(m.imagesPerSecond),"
                + "\(cell(m.clientAccuracyMean)),\(cell(m.clientAccuracyWorstDecile))\n"
        }
        try output.write(Array(csv.utf8), "metrics.csv")
    }
}
