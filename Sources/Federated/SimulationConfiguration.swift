import Datasets
import Engine

/// Everything that defines a federated simulation run. Equal configurations give bit-identical
/// runs, whatever `threads` is.
public struct SimulationConfiguration: Sendable, Equatable {
    public var model: ModelKind = .lenet5
    public var data: String?
    public var clients = 10
    public var rounds = 20
    /// Fraction of clients sampled per round (at least `minClients`).
    public var fraction = 1.0
    public var minClients = 2
    public var partition = "dirichlet:0.5"
    public var minPartitionSize = 10
    public var strategy = "fedavg"
    public var localEpochs = 1
    public var batchSize = 32
    public var lr: Float = 0.05
    public var momentum: Float = 0
    public var weightDecay: Float = 0
    /// Probability that a sampled client drops out of a round (simulated failure).
    public var dropout = 0.0
    /// Rounds with fewer surviving clients keep the global model.
    public var minSurvivors = 1
    public var evalEvery = 1
    /// Also evaluate the global model on every client's own data (mean, worst decile).
    public var clientEvaluation = false
    /// Uplink codec spec (`CodecRegistry`), fp32 for none.
    public var codec = "fp32"
    /// Downlink codec spec: compresses the change of the global model since each client's copy.
    public var downCodec = "fp32"
    /// Clients keep the residual of what the uplink codec dropped and add it to their next update.
    public var errorFeedback = false
    public var seed: UInt64 = 0
    public var threads = Parallelism.availableCores

    public init() {}

    /// Keys accepted in a YAML config (the flag names with underscores).
    public static let keys = ["model", "data", "clients", "rounds", "fraction", "min_clients", "partition", "min_partition_size",
                              "strategy", "local_epochs", "batch_size", "lr", "momentum", "weight_decay", "dropout",
                              "min_survivors", "eval_every", "client_evaluation", "codec", "down_codec", "error_feedback",
                              "seed", "threads"]

    public func validate() throws(JobError) {
        guard clients >= 1 else { throw .invalid("clients must be at least 1 (got \(clients))") }
        guard rounds >= 1 else { throw .invalid("rounds must be at least 1 (got \(rounds))") }
        guard fraction > 0, fraction <= 1 else { throw .invalid("fraction must be in (0, 1] (got \(fraction))") }
        guard minClients >= 1, minClients <= clients else { throw .invalid("min_clients must be in 1...clients (got \(minClients))") }
        guard minPartitionSize >= 0 else { throw .invalid("min_partition_size must be >= 0 (got \(minPartitionSize))") }
        guard localEpochs >= 1 else { throw .invalid("local_epochs must be at least 1 (got \(localEpochs))") }
        guard batchSize >= 1 else { throw .invalid("batch_size must be at least 1 (got \(batchSize))") }
        guard lr > 0, lr.isFinite else { throw .invalid("lr must be a positive number (got \(lr))") }
        guard momentum >= 0, momentum < 1 else { throw .invalid("momentum must be in [0, 1) (got \(momentum))") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw .invalid("weight_decay must be >= 0 (got \(weightDecay))") }
        guard dropout >= 0, dropout < 1 else { throw .invalid("dropout must be in [0, 1) (got \(dropout))") }
        guard minSurvivors >= 1 else { throw .invalid("min_survivors must be at least 1 (got \(minSurvivors))") }
        guard evalEvery >= 1 else { throw .invalid("eval_every must be at least 1 (got \(evalEvery))") }
        guard threads >= 1 else { throw .invalid("threads must be at least 1 (got \(threads))") }
        do { _ = try PartitionScheme(parsing: partition) } catch { throw .invalid("partition: \(error.description)") }
        _ = try makeStrategy(strategy, parameterCount: 1)
        _ = try CodecRegistry.codec(parsing: codec)
        _ = try CodecRegistry.codec(parsing: downCodec)
        guard data != nil || model.defaultDataDirectory != nil else {
            throw .invalid("data is required for \(model.rawValue) (a cifar-10-batches-bin directory)")
        }
    }

    /// Clients sampled per round: `⌊fraction · clients⌋`, at least `minClients` (Flower's rule).
    public var sampledPerRound: Int { min(clients, max(minClients, Int(fraction * Double(clients)))) }

    /// Sets one key from a config file's value, rejecting unknown keys and wrong types.
    public mutating func set(_ key: String, _ value: Any) throws(JobError) {
        func int() throws(JobError) -> Int {
            if let v = value as? Int { return v }
            throw .invalid("config key \(key): expected an integer, got \(value)")
        }
        func double() throws(JobError) -> Double {
            if let v = value as? Double { return v }
            if let v = value as? Int { return Double(v) }
            throw .invalid("config key \(key): expected a number, got \(value)")
        }
        func string() throws(JobError) -> String {
            if let v = value as? String { return v }
            throw .invalid("config key \(key): expected a string, got \(value)")
        }
        func bool() throws(JobError) -> Bool {
            if let v = value as? Bool { return v }
            throw .invalid("config key \(key): expected true or false, got \(value)")
        }
        switch key {
        case "model":
            guard let kind = ModelKind(rawValue: try string()) else {
                throw .invalid("config key model: \(value) is not one of \(ModelKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            model = kind
        case "data": data = try string()
        case "clients": clients = try int()
        case "rounds": rounds = try int()
        case "fraction": fraction = try double()
        case "min_clients": minClients = try int()
        case "partition": partition = try string()
        case "min_partition_size": minPartitionSize = try int()
        case "strategy": strategy = try string()
        case "local_epochs": localEpochs = try int()
        case "batch_size": batchSize = try int()
        case "lr": lr = Float(try double())
        case "momentum": momentum = Float(try double())
        case "weight_decay": weightDecay = Float(try double())
        case "dropout": dropout = try double()
        case "min_survivors": minSurvivors = try int()
        case "eval_every": evalEvery = try int()
        case "client_evaluation": clientEvaluation = try bool()
        case "codec": codec = try string()
        case "down_codec": downCodec = try string()
        case "error_feedback": errorFeedback = try bool()
        case "seed":
            let v = try int()
            guard v >= 0 else { throw .invalid("config key seed: must be >= 0") }
            seed = UInt64(v)
        case "threads": threads = try int()
        default:
            throw .invalid("unknown config key \(key); known keys: \(Self.keys.joined(separator: ", "))")
        }
    }

    /// The fully resolved configuration as YAML (every key, one per line), readable by `set`.
    public var yaml: String {
        var lines = ["model: \(model.rawValue)"]
        if let data { lines.append("data: \"\(data)\"") }
        lines += ["clients: \(clients)", "rounds: \(rounds)", "fraction: \(fraction)", "min_clients: \(minClients)",
                  "partition: \"\(partition)\"", "min_partition_size: \(minPartitionSize)", "strategy: \"\(strategy)\"",
                  "local_epochs: \(localEpochs)", "batch_size: \(batchSize)", "lr: \(lr)", "momentum: \(momentum)",
                  "weight_decay: \(weightDecay)", "dropout: \(dropout)", "min_survivors: \(minSurvivors)",
                  "eval_every: \(evalEvery)", "client_evaluation: \(clientEvaluation)", "codec: \"\(codec)\"",
                  "down_codec: \"\(downCodec)\"", "error_feedback: \(errorFeedback)", "seed: \(seed)", "threads: \(threads)"]
        return lines.joined(separator: "\n") + "\n"
    }
}
