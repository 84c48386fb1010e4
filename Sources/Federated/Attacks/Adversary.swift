import Datasets
import Engine

/// The attackers' side of a simulated job: who they are, the data they train on, and, for the
/// omniscient attacks, the step that rewrites their replies from the round's honest ones.
public struct Adversary: Sendable {
    public let spec: AttackSpec
    public let attackers: Set<Int>

    public init(spec: AttackSpec, attackers: Set<Int>) { (self.spec, self.attackers) = (spec, attackers) }

    /// The job's attack, nil without one.
    public init?(configuration: SimulationConfiguration) throws(ConfigurationError) {
        guard let spec = try configuration.robustness.attackSpec() else { return nil }
        self.init(spec: spec, attackers: Attackers.choose(fraction: configuration.robustness.attackers,
                                                          clients: configuration.federation.clients, seed: configuration.federation.seed))
    }

    /// The stage an update attack adds to every client's pipeline (it acts on attackers only).
    public var stage: UpdateAttack? {
        switch spec.kind {
        case .signFlip, .gaussian, .scaling, .backdoor: return UpdateAttack(kind: spec.kind, attackers: attackers)
        default: return nil
        }
    }

    /// The training set as the attackers see it (their own samples poisoned), nil for attacks
    /// that leave the data alone. The backdoor's poisoned samples are drawn from (seed, attack).
    public func poisonedData(_ train: LabeledImages, partitions: [[Int]], seed: UInt64) -> LabeledImages? {
        let indices = attackers.sorted().flatMap { partitions[$0] }
        switch spec.kind {
        case .labelFlip: return DataPoisoning.labelFlipped(train, at: indices)
        case .backdoor(let target, _, let fraction):
            var generator = SeededGenerator.derived(seed: seed, RandomStream.attack.rawValue)
            return DataPoisoning.backdoored(train, at: indices, target: target, fraction: fraction, generator: &generator)
        default: return nil
        }
    }

    /// With an omniscient attack, every attacker's reply in `replies` carries instead the update
    /// the attack crafts from the honest replies' decoded updates (its header kept, encoded with
    /// the job's codec from a fresh codec state). Replies that do not decode are left alone, and
    /// so is a round without honest updates.
    public func forge(_ replies: [ClientMessage], runtime: ClientRuntime) -> [ClientMessage] {
        guard spec.isOmniscient else { return replies }
        var honest: [[Float]] = [], hostile = 0
        for reply in replies {
            if attackers.contains(reply.client) {
                hostile += 1
            } else if let update = try? Self.update(in: reply.bytes, layout: runtime.layout) {
                honest.append(update)
            }
        }
        guard !honest.isEmpty, hostile > 0 else { return replies }
        let crafted: [Float]
        switch spec.kind {
        case .alie(let z): crafted = OmniscientAttacks.alie(honest, z: z ?? OmniscientAttacks.alieZ(updates: replies.count, hostile: hostile))
        case .ipm(let epsilon): crafted = OmniscientAttacks.ipm(honest, epsilon: epsilon)
        case .minMax(let deviation): crafted = OmniscientAttacks.minMax(honest, deviation: deviation)
        case .minSum(let deviation): crafted = OmniscientAttacks.minSum(honest, deviation: deviation)
        default: preconditionFailure("not an omniscient attack")
        }
        return replies.map { reply in
            guard attackers.contains(reply.client), var envelope = try? Envelope(decoding: reply.bytes), envelope.payloads[.update] != nil else {
                return reply
            }
            var scratch = runtime.initialState(client: reply.client)
            guard let message = runtime.encode(crafted, round: envelope.round, client: reply.client, state: &scratch) else { return reply }
            envelope.payloads[.update] = message
            return ClientMessage(client: reply.client, bytes: envelope.bytes)
        }
    }

    static func update(in bytes: [UInt8], layout: ParameterLayout) throws(MessageError) -> [Float] {
        let envelope = try Envelope(decoding: bytes)
        guard let payload = envelope.payloads[.update] else { throw MessageError.badField("no update") }
        return try UpdateMessage.decode(payload, layout: layout).values
    }
}
