/// FedAvgM (Hsu et al. 2019): server momentum on the mean update,
/// `v = β·v + Δ`, `x = x + η·v`.
public struct FedAvgM: Strategy {
    public let momentum: Float
    public let serverLearningRate: Float
    private var velocity: [Float]

    public init(momentum: Float, serverLearningRate: Float, parameterCount: Int) {
        self.momentum = momentum
        self.serverLearningRate = serverLearningRate
        velocity = [Float](repeating: 0, count: parameterCount)
    }

    public var spec: String { "fedavgm:\(momentum):\(serverLearningRate)" }

    public mutating func aggregate(global: [Float], updates: [ClientUpdate]) -> [Float]? {
        let delta = meanDelta(updates)
        for i in velocity.indices { velocity[i] = momentum * velocity[i] + delta[i] }
        return Aggregation.adding(global, velocity, scale: serverLearningRate)
    }

    public var state: [String: [Float]] { ["server.velocity": velocity] }
    public mutating func restore(_ state: [String: [Float]]) throws(JobError) {
        velocity = try restoredVector(state, "server.velocity", count: velocity.count)
    }
}

/// FedAdam, FedYogi and FedAdagrad (Reddi et al. 2021): an adaptive server optimizer on the
/// mean client update, with β₁ = 0.9, β₂ = 0.99 and the server learning rate η and adaptivity τ
/// from the spec.
public struct FedAdaptive: Strategy {
    public let kind: Aggregation.AdaptiveKind
    public let eta: Float
    public let tau: Float
    public let beta1: Float = 0.9
    public let beta2: Float = 0.99
    private var m: [Float]
    private var v: [Float]

    public init(kind: Aggregation.AdaptiveKind, eta: Float, tau: Float, parameterCount: Int) {
        self.kind = kind
        self.eta = eta
        self.tau = tau
        m = [Float](repeating: 0, count: parameterCount)
        // Reddi et al. start v at τ², so the first steps are bounded by η.
        v = [Float](repeating: tau * tau, count: parameterCount)
    }

    public var spec: String { "fed\(kind.rawValue):\(eta):\(tau)" }

    public mutating func aggregate(global: [Float], updates: [ClientUpdate]) -> [Float]? {
        var x = global
        Aggregation.adaptiveStep(kind: kind, x: &x, delta: meanDelta(updates), m: &m, v: &v,
                                 eta: eta, beta1: beta1, beta2: beta2, tau: tau)
        return x
    }

    public var state: [String: [Float]] { ["server.m": m, "server.v": v] }
    public mutating func restore(_ state: [String: [Float]]) throws(JobError) {
        m = try restoredVector(state, "server.m", count: m.count)
        v = try restoredVector(state, "server.v", count: v.count)
    }
}

/// SCAFFOLD (Karimireddy et al. 2020, option II): clients correct every step by `c − cᵢ` (after
/// the optimizer step, outside momentum, as NIID-Bench) and return `Δcᵢ = cᵢ⁺ − cᵢ` with
/// `cᵢ⁺ = cᵢ − c − Δyᵢ / (K·lr)`; the server moves
/// `x += η_g · mean(Δy)` and `c += (|S| / N) · mean(Δc)`. Control variates of clients that have
/// trained are kept (and checkpointed); the others are zero.
public struct Scaffold: Strategy {
    public let serverLearningRate: Float
    public var totalClients = 1
    private var control: [Float]
    private var clientControls: [Int: [Float]] = [:]

    public init(serverLearningRate: Float, parameterCount: Int) {
        self.serverLearningRate = serverLearningRate
        control = [Float](repeating: 0, count: parameterCount)
    }

    public var spec: String { "scaffold:\(serverLearningRate)" }
    public var downlinkExtras: Int { 1 }

    public func clientRule() -> ClientRule {
        let controls = clientControls
        return ClientRule(serverControl: control, clientControl: { controls[$0] })
    }

    public mutating func aggregate(global: [Float], updates: [ClientUpdate]) -> [Float]? {
        let deltas = updates.map(\.delta), equal = [Double](repeating: 1, count: updates.count)
        let controlDeltas = updates.map { $0.controlDelta ?? [Float](repeating: 0, count: control.count) }
        for (update, controlDelta) in zip(updates, controlDeltas) {
            let previous = clientControls[update.client] ?? [Float](repeating: 0, count: control.count)
            clientControls[update.client] = Aggregation.adding(previous, controlDelta)
        }
        control = Aggregation.adding(control, Aggregation.weightedMean(controlDeltas, weights: equal),
                                     scale: Float(updates.count) / Float(max(totalClients, updates.count)))
        return Aggregation.adding(global, Aggregation.weightedMean(deltas, weights: equal), scale: serverLearningRate)
    }

    public var state: [String: [Float]] {
        var result = ["server.control": control]
        for (client, vector) in clientControls { result["client.\(client).control"] = vector }
        return result
    }

    public mutating func restore(_ state: [String: [Float]]) throws(JobError) {
        control = try restoredVector(state, "server.control", count: control.count)
        clientControls = [:]
        for (name, vector) in state where name.hasPrefix("client.") && name.hasSuffix(".control") {
            guard let client = Int(name.dropFirst(7).dropLast(8)), vector.count == control.count else {
                throw .invalid("checkpoint: bad client control variate \(name)")
            }
            clientControls[client] = vector
        }
    }
}
