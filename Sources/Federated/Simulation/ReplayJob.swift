import Datasets
import Engine
import Foundation

/// `fedtrain replay STATE_DIR`: re-runs a networked asynchronous run from its state directory
/// (`config.yaml`, `events.jsonl`) in this process, every client trained here by the same
/// `ClientRuntime` on its partition, and compares the final model with the run's
/// `model.safetensors`.
public struct ReplayJob: Sendable {
    public var state: String
    /// Worker threads (results do not depend on them).
    public var threads: Int?

    public init(state: String, threads: Int? = nil) { (self.state, self.threads) = (state, threads) }

    public struct Result: Sendable {
        public var steps: Int
        public var global: [Float]
        public var layout: ParameterLayout
        public var metrics: [RoundMetrics]
        /// Whether the replayed model equals the run's, bit for bit (nil: the run has no final model yet).
        public var matchesRun: Bool?
    }

    public func run(step: ((RoundMetrics) -> Void)? = nil) throws(JobError) -> Result {
        var configuration: SimulationConfiguration
        do {
            configuration = try ConfigurationFile.read("\(state)/config.yaml")
            if let threads { configuration.run.threads = threads }
            try configuration.validate()
        } catch { throw .configuration(error) }
        guard configuration.asynchrony.isAsynchronous else {
            throw .configuration(ConfigurationError("\(state) holds a synchronous run (mode sync): only asynchronous runs have an event log to replay"))
        }
        let events: [AsyncEvent]
        do { events = try AsyncEventLog.read("\(state)/\(SimulationJob.eventLogName)") } catch { throw .output(error.description) }
        let data: DataSource.Loaded
        do { data = try configuration.data.load(seed: configuration.federation.seed) } catch { throw .data(error) }
        let simulation: Simulation
        do { simulation = try Simulation(configuration: configuration, train: data.train, test: data.test, replaying: true) } catch { throw .configuration(error) }
        var replay = ReplaySchedule(events: events)
        while !replay.isFinished {
            do { step?(try simulation.replayStep(&replay)) } catch { throw .configuration(ConfigurationError("\(state)/\(SimulationJob.eventLogName): \(error.description)")) }
        }
        let layout = simulation.network.layout
        let run = try? Safetensors.load("\(state)/model.safetensors", layout: layout)
        return Result(steps: simulation.completedRounds, global: simulation.global, layout: layout, metrics: simulation.metrics,
                      matchesRun: run.map { $0 == simulation.global })
    }
}
