import Engine

/// One client's decoded, accepted contribution to a round.
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

    public init(client: Int, samples: Int, steps: Int, delta: [Float], controlDelta: [Float]? = nil, trainLoss: Double) {
        (self.client, self.samples, self.steps, self.delta, self.controlDelta, self.trainLoss) = (client, samples, steps, delta, controlDelta, trainLoss)
    }
}

/// What clients must do in a round besides plain local SGD, as the strategy decides it; it
/// travels in the task envelope.
public struct RoundInstructions: Sendable, Equatable {
    /// FedProx: add `mu · (w − w_global)` to every gradient.
    public var proximalMu: Float = 0
    /// SCAFFOLD: the server control variate `c` (clients correct every step by `c − cᵢ` and
    /// return the change of their own `cᵢ`, which they keep).
    public var serverControl: [Float]?

    public init(proximalMu: Float = 0, serverControl: [Float]? = nil) {
        (self.proximalMu, self.serverControl) = (proximalMu, serverControl)
    }
}

/// A federated strategy: what clients do in a round, and how their updates become the next
/// global model. A value type: the coordinator aggregates into a copy and keeps it only when
/// the new model is finite, so a bad round never leaves half-updated state.
public protocol Strategy: Sendable {
    /// The spec this strategy was built from (`fedadam:0.01:0.001`, `fedprox:0.01+adam`).
    var spec: String { get }
    /// The instructions of `round` (1-based).
    func configure(round: Int) -> RoundInstructions
    /// The next global model from `global` and the accepted `results` of `round` (in sampled
    /// order; at least one unless `aggregatesEmptyRounds`), given the clients that `failures`
    /// lists (sampled, no accepted reply); nil keeps `global`. Updates the strategy's state.
    mutating func aggregate(round: Int, global: [Float], results: [ClientUpdate], failures: [Int]) -> [Float]?
    /// Whether a round with no accepted update is still aggregated (central DP releases noise
    /// every round).
    var aggregatesEmptyRounds: Bool { get }
    /// Named state vectors, for checkpoints.
    var state: [String: [Float]] { get }
    /// Restores what `state` returned.
    mutating func restore(_ state: [String: [Float]]) throws(CheckpointError)
    /// The fewest accepted updates a round needs to be aggregated (a robust rule's minimum).
    var minimumUpdates: Int { get }
    /// The pseudo-gradient of the last `aggregate`, for metrics; nil when not kept.
    var lastAggregate: Aggregate? { get }
}

extension Strategy {
    public var minimumUpdates: Int { 1 }
    public var lastAggregate: Aggregate? { nil }
}

/// The strategies fedtrain ships: an `Aggregator` (the round's pseudo-gradient from the client
/// updates) feeding a `ServerOptimizer` (the step it takes), plus the client-side instructions
/// (FedProx's mu) and, for SCAFFOLD, the server control variate.
public struct ComposedStrategy: Strategy {
    public let spec: String
    public private(set) var aggregator: any Aggregator
    public private(set) var optimizer: any ServerOptimizer
    public let proximalMu: Float
    public private(set) var controlVariate: ServerControlVariate?
    /// Central DP: noise between the aggregator and the optimizer; every round is then
    /// aggregated, an empty one too (its release is noise only).
    public let centralNoise: CentralGaussianNoise?
    public private(set) var lastAggregate: Aggregate?

    public init(spec: String, aggregator: any Aggregator, optimizer: any ServerOptimizer, proximalMu: Float = 0,
                controlVariate: ServerControlVariate? = nil, centralNoise: CentralGaussianNoise? = nil) {
        (self.spec, self.aggregator, self.optimizer, self.proximalMu, self.controlVariate) = (spec, aggregator, optimizer, proximalMu, controlVariate)
        self.centralNoise = centralNoise
    }

    public func configure(round: Int) -> RoundInstructions {
        RoundInstructions(proximalMu: proximalMu, serverControl: controlVariate?.control)
    }

    public var aggregatesEmptyRounds: Bool { centralNoise != nil }
    public var minimumUpdates: Int { aggregator.minimumUpdates }

    public mutating func aggregate(round: Int, global: [Float], results: [ClientUpdate], failures: [Int]) -> [Float]? {
        precondition(!results.isEmpty || centralNoise != nil)
        controlVariate?.update(with: results)
        var aggregate = aggregator.aggregate(results, round: round)
        centralNoise?.addNoise(to: &aggregate, round: round)
        lastAggregate = aggregate
        return optimizer.step(global: global, aggregate: aggregate)
    }

    public var state: [String: [Float]] {
        var named = optimizer.state.merging(aggregator.state) { optimizer, _ in optimizer }
        if let controlVariate { named[ServerControlVariate.stateName] = controlVariate.control }
        return named
    }

    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {
        let expected = Set(self.state.keys)
        guard Set(state.keys) == expected else {
            throw CheckpointError("checkpoint: strategy state holds \(state.keys.sorted()), \(spec) needs \(expected.sorted())")
        }
        let optimizerKeys = Set(optimizer.state.keys), aggregatorKeys = Set(aggregator.state.keys)
        try optimizer.restore(state.filter { optimizerKeys.contains($0.key) })
        try aggregator.restore(state.filter { aggregatorKeys.contains($0.key) })
        if controlVariate != nil {
            controlVariate!.control = try restoredVector(state, ServerControlVariate.stateName, count: controlVariate!.control.count)
        }
    }
}

/// SCAFFOLD's server control variate (Karimireddy et al. 2020, option II):
/// `c += (|S| / N) · mean(Δcᵢ)` over the round's clients S of N.
public struct ServerControlVariate: Sendable {
    static let stateName = "server.control"
    public var control: [Float]
    public let totalClients: Int

    public init(parameterCount: Int, totalClients: Int) {
        control = [Float](repeating: 0, count: parameterCount)
        self.totalClients = totalClients
    }

    /// Every result must carry its control change (the coordinator's acceptance checks it).
    mutating func update(with results: [ClientUpdate]) {
        let changes = results.map { $0.controlDelta! }
        control = Aggregation.adding(control, Aggregation.weightedMean(changes, weights: [Double](repeating: 1, count: changes.count)),
                                     scale: Float(results.count) / Float(max(totalClients, results.count)))
    }
}

/// Checks a restored state vector's presence and length.
func restoredVector(_ state: [String: [Float]], _ name: String, count: Int) throws(CheckpointError) -> [Float] {
    guard let vector = state[name], vector.count == count else {
        throw CheckpointError("checkpoint: strategy state \(name) is missing or has the wrong length")
    }
    return vector
}
