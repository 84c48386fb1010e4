/// A round's pseudo-gradient: `scale · direction`. Kept apart so that a plain server step
/// applies both in one axpy (FedNova's `τ_eff` rescaling, bit-identical to a fused update).
public struct Aggregate: Sendable {
    public var direction: [Float]
    public var scale: Float = 1
    /// The clients whose updates a selecting rule (Krum, Multi-Krum, Bulyan) kept; nil for rules
    /// that use every update.
    public var selected: [Int]?
    /// The clip norm a central-DP aggregate was made with (it sizes the noise).
    public var clip: Double?

    public init(direction: [Float], scale: Float = 1, selected: [Int]? = nil, clip: Double? = nil) {
        (self.direction, self.scale, self.selected, self.clip) = (direction, scale, selected, clip)
    }

    /// `scale · direction` as one vector.
    public var scaled: [Float] { scale == 1 ? direction : direction.map { $0 * scale } }
}

/// Turns the round's accepted client updates into the pseudo-gradient: the same result for the
/// same updates in the same order, the same `round` and the same state. Most rules are pure;
/// centered clipping keeps the previous aggregate (checkpointed through `state`), and bucketing
/// draws its permutation from (seed, round).
public protocol Aggregator: Sendable {
    /// `results` holds at least `minimumUpdates` updates of one length.
    mutating func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate
    /// The fewest updates the rule is defined for (Krum needs n > 2f + 2); a round with fewer
    /// is not committed.
    var minimumUpdates: Int { get }
    /// Named state vectors, for checkpoints.
    var state: [String: [Float]] { get }
    /// Restores what `state` returned.
    mutating func restore(_ state: [String: [Float]]) throws(CheckpointError)
}

extension Aggregator {
    public var minimumUpdates: Int { 1 }
    public var state: [String: [Float]] { [:] }
    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {}
}

/// FedAvg (McMahan et al. 2017): the sample-weighted mean of the client deltas.
public struct WeightedMean: Aggregator {
    public init() {}
    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        Aggregate(direction: Aggregation.weightedMean(results.map(\.delta), weights: results.map { Double($0.samples) }))
    }
}

/// The unweighted mean of the client deltas (SCAFFOLD's server step).
public struct UniformMean: Aggregator {
    public init() {}
    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        Aggregate(direction: Aggregation.weightedMean(results.map(\.delta), weights: [Double](repeating: 1, count: results.count)))
    }
}

/// FedNova (Wang et al. 2020): each client's delta is normalized by its effective number of
/// local steps `aᵢ` and the average rescaled by `τ_eff = Σ pᵢ aᵢ` (`pᵢ` the sample weights),
/// which removes the bias toward clients that take more steps.
public struct FedNovaMean: Aggregator {
    /// Local SGD momentum, which enters `aᵢ`.
    public let localMomentum: Double

    public init(localMomentum: Double) { self.localMomentum = localMomentum }

    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        let total = Double(results.reduce(0) { $0 + $1.samples })
        let weights = results.map { Double($0.samples) / total }
        let norms = results.map { Aggregation.fedNovaNorm(steps: max(1, $0.steps), momentum: localMomentum) }
        let tauEffective = zip(weights, norms).reduce(0.0) { $0 + $1.0 * $1.1 }
        let normalized = Aggregation.weightedSum(results.map(\.delta), weights: zip(weights, norms).map { $0 / $1 })
        return Aggregate(direction: normalized, scale: Float(tauEffective))
    }
}
