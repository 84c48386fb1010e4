import Engine

/// What a client sends back after local training (before encoding).
public struct ClientUpdate: Sendable {
    public var client: Int
    /// Training samples the client holds (the FedAvg weight).
    public var samples: Int
    /// Local SGD steps taken (FedNova normalizes by them).
    public var steps: Int
    /// Local model minus the global model it started from.
    public var delta: [Float]
    /// SCAFFOLD: the change of the client's control variate.
    public var controlDelta: [Float]?
    /// Sample-weighted mean training loss over the local epochs.
    public var trainLoss: Double
}

/// How clients must train in a round, as decided by the strategy.
public struct ClientRule: Sendable {
    /// FedProx: add `mu · (w − w_global)` to every gradient.
    public var proximalMu: Float = 0
    /// SCAFFOLD: the server control variate `c`; clients subtract `lr·(c − c_i)` from the weights
    /// after every step (outside momentum, see `trainClient`).
    public var serverControl: [Float]?
    /// SCAFFOLD: each client's own control variate `c_i` (zero when absent).
    public var clientControl: (@Sendable (Int) -> [Float]?)?
}

/// A federated aggregation strategy: tells clients how to train, and turns their updates into
/// the next global model. Strategies are small types over the pure functions in `Aggregation`;
/// their state (server optimizer moments, control variates) is exposed as named vectors so a
/// checkpoint can save and restore it exactly.
public protocol Strategy: Sendable {
    /// The spec this strategy was parsed from, for example `fedavgm:0.9`.
    var spec: String { get }
    /// The rule clients follow this round.
    func clientRule() -> ClientRule
    /// Extra vectors the server sends every client with the model (SCAFFOLD's `c`), for byte counts.
    var downlinkExtras: Int { get }
    /// The next global model from `global` and this round's `updates` (in a fixed client order,
    /// at least one), or nil to keep `global`.
    mutating func aggregate(global: [Float], updates: [ClientUpdate]) -> [Float]?
    /// Named state vectors, for checkpoints.
    var state: [String: [Float]] { get }
    /// Restores what `state` returned.
    mutating func restore(_ state: [String: [Float]]) throws(JobError)
}

extension Strategy {
    public func clientRule() -> ClientRule { ClientRule() }
    public var downlinkExtras: Int { 0 }
    public var state: [String: [Float]] { [:] }
    public mutating func restore(_ state: [String: [Float]]) throws(JobError) {}

    /// The sample-weighted mean of the client deltas (FedAvg's step).
    func meanDelta(_ updates: [ClientUpdate]) -> [Float] {
        Aggregation.weightedMean(updates.map(\.delta), weights: updates.map { Double($0.samples) })
    }
}

/// Parses a strategy spec: `fedavg`, `fedprox:MU`, `fedavgm[:MOMENTUM[:SERVER_LR]]`,
/// `fedadam|fedyogi|fedadagrad[:SERVER_LR[:TAU]]`, `scaffold[:SERVER_LR]`, `fednova`.
public func makeStrategy(_ spec: String, parameterCount: Int) throws(JobError) -> any Strategy {
    let parts = spec.split(separator: ":").map(String.init)
    var numbers: [Float] = []
    for part in parts.dropFirst() {
        guard let value = Float(part), value.isFinite, value >= 0 else {
            throw .invalid("strategy \(spec): \(part) is not a non-negative number")
        }
        numbers.append(value)
    }
    func argument(_ index: Int, _ fallback: Float) -> Float { index < numbers.count ? numbers[index] : fallback }
    func limit(_ count: Int) throws(JobError) {
        if numbers.count > count { throw .invalid("strategy \(spec): \(parts[0]) takes at most \(count) parameters") }
    }
    switch parts[0] {
    case "fedavg":
        try limit(0)
        return FedAvg()
    case "fedprox":
        try limit(1)
        guard numbers.count == 1 else { throw .invalid("strategy \(spec): fedprox needs mu, as in fedprox:0.01") }
        return FedProx(mu: numbers[0])
    case "fedavgm":
        try limit(2)
        let momentum = argument(0, 0.9)
        guard momentum < 1 else { throw .invalid("strategy \(spec): server momentum must be below 1") }
        return FedAvgM(momentum: momentum, serverLearningRate: argument(1, 1), parameterCount: parameterCount)
    case "fedadam", "fedyogi", "fedadagrad":
        try limit(2)
        let kind = Aggregation.AdaptiveKind(rawValue: String(parts[0].dropFirst(3)))!
        return FedAdaptive(kind: kind, eta: argument(0, 0.01), tau: argument(1, 1e-3), parameterCount: parameterCount)
    case "scaffold":
        try limit(1)
        return Scaffold(serverLearningRate: argument(0, 1), parameterCount: parameterCount)
    case "fednova":
        try limit(0)
        return FedNova()
    default:
        throw .invalid("unknown strategy \(spec); expected fedavg, fedprox:MU, fedavgm, fedadam, fedyogi, fedadagrad, scaffold or fednova")
    }
}

/// Checks a restored state vector's presence and length.
func restoredVector(_ state: [String: [Float]], _ name: String, count: Int) throws(JobError) -> [Float] {
    guard let vector = state[name], vector.count == count else {
        throw .invalid("checkpoint: strategy state \(name) is missing or has the wrong length")
    }
    return vector
}
