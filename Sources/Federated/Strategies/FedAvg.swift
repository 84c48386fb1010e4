/// FedAvg (McMahan et al. 2017): the sample-weighted mean of the client models.
public struct FedAvg: Strategy {
    public init() {}
    public var spec: String { "fedavg" }
    public mutating func aggregate(global: [Float], updates: [ClientUpdate]) -> [Float]? {
        Aggregation.adding(global, meanDelta(updates))
    }
}

/// FedProx (Li et al. 2020): FedAvg aggregation; clients add the proximal term
/// `mu/2 · ‖w − w_global‖²` to their loss.
public struct FedProx: Strategy {
    public let mu: Float
    public init(mu: Float) { self.mu = mu }
    public var spec: String { "fedprox:\(mu)" }
    public func clientRule() -> ClientRule { ClientRule(proximalMu: mu) }
    public mutating func aggregate(global: [Float], updates: [ClientUpdate]) -> [Float]? {
        Aggregation.adding(global, meanDelta(updates))
    }
}

/// FedNova (Wang et al. 2020): each client's update is normalized by its effective number of
/// local steps `aᵢ`, and the average is rescaled by `τ_eff = Σ pᵢ aᵢ`, which removes the bias
/// toward clients that take more steps.
public struct FedNova: Strategy {
    /// Local SGD momentum, which enters `aᵢ`.
    public var localMomentum: Double = 0
    public init() {}
    public var spec: String { "fednova" }
    public mutating func aggregate(global: [Float], updates: [ClientUpdate]) -> [Float]? {
        let total = Double(updates.reduce(0) { $0 + $1.samples })
        let weights = updates.map { Double($0.samples) / total }
        let norms = updates.map { Aggregation.fedNovaNorm(steps: max(1, $0.steps), momentum: localMomentum) }
        let tauEffective = zip(weights, norms).reduce(0.0) { $0 + $1.0 * $1.1 }
        // x + τ_eff · Σ pᵢ (Δᵢ / aᵢ)
        let normalized = Aggregation.weightedSum(updates.map(\.delta), weights: zip(weights, norms).map { $0 / $1 })
        return Aggregation.adding(global, normalized, scale: Float(tauEffective))
    }
}
