import Engine

/// The attacks an attacker mounts on its own update, as the last client stage (after any clip):
/// sign flip, Gaussian noise, scaling, and the backdoor's boost. Applies to `attackers` only;
/// everyone else's update passes unchanged. Noise comes from the stage generator, derived from
/// (seed, round, client).
public struct UpdateAttack: UpdateStage {
    public let kind: AttackSpec.Kind
    public let attackers: Set<Int>

    public init(kind: AttackSpec.Kind, attackers: Set<Int>) { (self.kind, self.attackers) = (kind, attackers) }

    public func apply(to update: inout [Float], round: Int, client: Int, generator: inout SeededGenerator) {
        guard attackers.contains(client) else { return }
        switch kind {
        case .signFlip: for i in update.indices { update[i] = -update[i] }
        case .gaussian(let std): for i in update.indices { update[i] = Float(std * generator.nextGaussian()) }
        case .scaling(let gamma), .backdoor(_, let gamma, _): for i in update.indices { update[i] *= Float(gamma) }
        case .labelFlip, .alie, .ipm, .minMax, .minSum: break
        }
    }
}
