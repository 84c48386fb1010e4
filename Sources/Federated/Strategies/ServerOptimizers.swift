/// The server's step from the round's pseudo-gradient (Reddi et al. 2021's view of FedAvg and
/// its adaptive variants): plain, momentum, Adam, Yogi, Adagrad.
public protocol ServerOptimizer: Sendable {
    /// The next model; updates the optimizer's state (moments).
    mutating func step(global: [Float], aggregate: Aggregate) -> [Float]
    /// Named state vectors, for checkpoints.
    var state: [String: [Float]] { get }
    mutating func restore(_ state: [String: [Float]]) throws(CheckpointError)
}

extension ServerOptimizer {
    public var state: [String: [Float]] { [:] }
    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {}
}

/// `x + η · Δ` (FedAvg with η = 1).
public struct PlainServerStep: ServerOptimizer {
    public let learningRate: Float
    public init(learningRate: Float) { self.learningRate = learningRate }
    public mutating func step(global: [Float], aggregate: Aggregate) -> [Float] {
        Aggregation.adding(global, aggregate.direction, scale: learningRate * aggregate.scale)
    }
}

/// FedAvgM (Hsu et al. 2019): `v = β·v + Δ`, `x = x + η·v`.
public struct ServerMomentum: ServerOptimizer {
    public let momentum: Float
    public let learningRate: Float
    private var velocity: [Float]

    public init(momentum: Float, learningRate: Float, parameterCount: Int) {
        (self.momentum, self.learningRate) = (momentum, learningRate)
        velocity = [Float](repeating: 0, count: parameterCount)
    }

    public mutating func step(global: [Float], aggregate: Aggregate) -> [Float] {
        let delta = aggregate.scaled
        for i in velocity.indices { velocity[i] = momentum * velocity[i] + delta[i] }
        return Aggregation.adding(global, velocity, scale: learningRate)
    }

    public var state: [String: [Float]] { ["server.velocity": velocity] }
    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {
        velocity = try restoredVector(state, "server.velocity", count: velocity.count)
    }
}

/// FedAdam, FedYogi and FedAdagrad (Reddi et al. 2021) with β₁ = 0.9, β₂ = 0.99, server learning
/// rate η and adaptivity τ; `v` starts at τ² so the first steps are bounded by η.
public struct AdaptiveServerOptimizer: ServerOptimizer {
    public let kind: Aggregation.AdaptiveKind
    public let eta: Float
    public let tau: Float
    public let beta1: Float = 0.9
    public let beta2: Float = 0.99
    private var m: [Float]
    private var v: [Float]

    public init(kind: Aggregation.AdaptiveKind, eta: Float, tau: Float, parameterCount: Int) {
        (self.kind, self.eta, self.tau) = (kind, eta, tau)
        m = [Float](repeating: 0, count: parameterCount)
        v = [Float](repeating: tau * tau, count: parameterCount)
    }

    public mutating func step(global: [Float], aggregate: Aggregate) -> [Float] {
        var x = global
        Aggregation.adaptiveStep(kind: kind, x: &x, delta: aggregate.scaled, m: &m, v: &v, eta: eta, beta1: beta1, beta2: beta2, tau: tau)
        return x
    }

    public var state: [String: [Float]] { ["server.m": m, "server.v": v] }
    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {
        m = try restoredVector(state, "server.m", count: m.count)
        v = try restoredVector(state, "server.v", count: v.count)
    }
}
