import Datasets
import Engine
import Foundation

/// A simulation run with its output directory: resolved `config.yaml`, `metrics.jsonl`,
/// `metrics.csv`, `summary.json`, `model.safetensors`, and a checkpoint after every round
/// (`checkpoint/`), from which `resume` continues bit-identically.
public struct SimulationJob: Sendable {
    public var configuration: SimulationConfiguration
    public var outputDirectory: String?
    public var saveModel: String?

    public init(configuration: SimulationConfiguration, outputDirectory: String?, saveModel: String?) {
        self.configuration = configuration
        self.outputDirectory = outputDirectory
        self.saveModel = saveModel
    }

    /// `summary.json`.
    public struct Summary: Sendable, Codable {
        public var finalAccuracy: Double?
        public var bestAccuracy: Double?
        public var rounds: Int
        public var bytesUp: Int
        public var bytesDown: Int
        /// Uncompressed (fp32) over actual message bytes.
        public var compressionUp: Double
        public var compressionDown: Double
        public var codec: String
        public var downCodec: String
        public var errorFeedback: Bool
        public var secondsPerRound: Double
        public var imagesPerSecond: Double
        public var strategy: String
        public var partition: String

        enum CodingKeys: String, CodingKey {
            case rounds, strategy, partition
            case finalAccuracy = "final_accuracy", bestAccuracy = "best_accuracy", bytesUp = "bytes_up", bytesDown = "bytes_down"
            case secondsPerRound = "seconds_per_round", imagesPerSecond = "images_per_second"
            case compressionUp = "compression_up", compressionDown = "compression_down", codec, downCodec = "down_codec"
            case errorFeedback = "error_feedback"
        }
    }

    /// Events for progress output.
    public enum Event {
        case started(Simulation)
        case clientDone(round: Int, done: Int, total: Int, seconds: Double)
        case roundDone(RoundMetrics)
    }

    /// Runs (or, with `resume`, continues) the simulation to `configuration.rounds`.
    public func run(resume: Bool = false, events: ((Event) -> Void)? = nil) throws(JobError) -> Summary {
        try configuration.validate()
        if let saveModel {
            do { try AtomicFile.checkWritable(saveModel) } catch { throw .invalid("--save \(error.description)") }
        }
        let data: (train: LabeledImages, test: LabeledImages)
        do {
            data = try configuration.model.loadData(directory: configuration.data ?? configuration.model.defaultDataDirectory!)
        } catch { throw .data(error) }
        let simulation = try Simulation(configuration: configuration, train: data.train, test: data.test)
        let checkpoints = outputDirectory.map { "\($0)/checkpoint" }
        if let outputDirectory, let checkpoints {
            do {
                try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true)
            } catch { throw .invalid("cannot create \(outputDirectory): \(error.localizedDescription)") }
            try write(Array(configuration.yaml.utf8), to: "\(outputDirectory)/config.yaml")
        }
        if resume {
            guard let checkpoints else { throw .invalid("resuming needs the run's output directory") }
            try simulation.restoreCheckpoint(from: checkpoints)
        }
        events?(.started(simulation))
        let clock = ContinuousClock()
        while simulation.completedRounds < configuration.rounds {
            let round = simulation.completedRounds + 1, start = clock.now
            let metrics = simulation.runRound { done, total in
                events?(.clientDone(round: round, done: done, total: total, seconds: (clock.now - start).seconds))
            }
            if let outputDirectory, let checkpoints {
                try simulation.saveCheckpoint(to: checkpoints)
                try writeMetrics(simulation.metrics, to: outputDirectory)
            }
            events?(.roundDone(metrics))
        }
        let summary = summarize(simulation.metrics)
        if let outputDirectory {
            try saveParameters(simulation, to: "\(outputDirectory)/model.safetensors")
            do { try AtomicFile.writeJSON(summary, to: "\(outputDirectory)/summary.json") } catch { throw .invalid(error.description) }
        }
        if let saveModel { try saveParameters(simulation, to: saveModel) }
        return summary
    }

    func summarize(_ metrics: [RoundMetrics]) -> Summary {
        let evaluated = metrics.compactMap(\.testAccuracy)
        let seconds = metrics.reduce(0.0) { $0 + $1.seconds }
        let imagesPerSecond = metrics.isEmpty ? 0 : metrics.map(\.imagesPerSecond).sorted()[metrics.count / 2]
        let bytesUp = metrics.reduce(0) { $0 + $1.bytesUp }, bytesDown = metrics.reduce(0) { $0 + $1.bytesDown }
        let denseUp = metrics.reduce(0) { $0 + $1.denseBytesUp }, denseDown = metrics.reduce(0) { $0 + $1.denseBytesDown }
        return Summary(finalAccuracy: metrics.last?.testAccuracy ?? evaluated.last, bestAccuracy: evaluated.max(),
                       rounds: metrics.count, bytesUp: bytesUp, bytesDown: bytesDown,
                       compressionUp: bytesUp == 0 ? 1 : Double(denseUp) / Double(bytesUp),
                       compressionDown: bytesDown == 0 ? 1 : Double(denseDown) / Double(bytesDown),
                       codec: configuration.codec, downCodec: configuration.downCodec, errorFeedback: configuration.errorFeedback,
                       secondsPerRound: metrics.isEmpty ? 0 : seconds / Double(metrics.count), imagesPerSecond: imagesPerSecond,
                       strategy: configuration.strategy, partition: configuration.partition)
    }

    private func saveParameters(_ simulation: Simulation, to path: String) throws(JobError) {
        do {
            try Safetensors.save(simulation.global, layout: simulation.network.layout, to: path,
                                 metadata: ["format": "pt", "model": configuration.model.rawValue, "producer": "fedtrain simulate"])
        } catch { throw .checkpoint(error) }
    }

    private func write(_ bytes: [UInt8], to path: String) throws(JobError) {
        do { try AtomicFile.write(bytes, to: path) } catch { throw .invalid(error.description) }
    }

    /// Rewrites `metrics.jsonl` and `metrics.csv` from all rounds so far (so a resumed run's files
    /// equal an uninterrupted run's).
    private func writeMetrics(_ metrics: [RoundMetrics], to directory: String) throws(JobError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var jsonl = ""
        for row in metrics {
            guard let data = try? encoder.encode(row) else { throw .invalid("cannot encode metrics") }
            jsonl += String(decoding: data, as: UTF8.self) + "\n"
        }
        try write(Array(jsonl.utf8), to: "\(directory)/metrics.jsonl")
        func cell(_ value: Double?) -> String { value.map { String($0) } ?? "" }
        var csv = "round,test_accuracy,test_loss,train_loss,clients,failures,rejected,bytes_up,bytes_down,compression_up,"
            + "compression_down,seconds,images_per_second\n"
        for m in metrics {
            csv += "\(m.round),\(cell(m.testAccuracy)),\(cell(m.testLoss)),\(cell(m.trainLoss)),\(m.clients),\(m.failures),\(m.rejected),"
                + "\(m.bytesUp),\(m.bytesDown),\(m.compressionUp),\(m.compressionDown),\(m.seconds),\(m.imagesPerSecond)\n"
        }
        try write(Array(csv.utf8), to: "\(directory)/metrics.csv")
    }
}
