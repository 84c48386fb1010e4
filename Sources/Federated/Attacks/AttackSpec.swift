import Engine

/// A simulated attack (`--attack NAME[:PARAMS]`), mounted by the clients `Attackers` picks.
/// Update attacks change the attacker's own update before encoding; data attacks change its
/// training data; omniscient attacks (ALIE, IPM, min-max, min-sum) craft one update from the
/// honest updates of the round, as their papers assume. Every attacker's update goes through
/// the job's codec and envelope.
public struct AttackSpec: Sendable, Equatable {
    public static let help = "sign-flip, gaussian[:STD], scaling[:GAMMA], label-flip, alie[:Z], ipm[:EPS], min-max[:unit|sign|std], "
        + "min-sum[:unit|sign|std], backdoor[:TARGET[:BOOST[:FRACTION]]]"

    public enum Kind: Sendable, Equatable {
        /// `−Δ`: the attacker's own update, negated.
        case signFlip
        /// The update replaced by `N(0, std²)` noise per coordinate.
        case gaussian(std: Double)
        /// `γ·Δ` (model replacement, Bagdasaryan et al. 2020).
        case scaling(gamma: Double)
        /// Trains on labels `y ↦ classes − 1 − y`.
        case labelFlip
        /// `μ − z·σ` of the honest updates (Baruch et al. 2019); z nil: the paper's z for (n, f).
        case alie(z: Double?)
        /// `−ε·μ` (Xie et al. 2020).
        case ipm(epsilon: Double)
        /// `μ − γ·p` with the largest γ keeping the crafted update within the honest updates'
        /// largest pairwise distance (min-max) or sum of distances (min-sum) (Shejwalkar and
        /// Houmansadr 2021).
        case minMax(OmniscientAttacks.Deviation)
        case minSum(OmniscientAttacks.Deviation)
        /// Pixel-pattern trigger on `fraction` of the attacker's samples relabelled `target`;
        /// the update boosted by `boost`.
        case backdoor(target: Int, boost: Double, fraction: Double)
    }

    public var kind: Kind

    public init(parsing spec: String) throws(ConfigurationError) {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func number(_ index: Int, _ fallback: Double) throws(ConfigurationError) -> Double {
            guard index < parts.count else { return fallback }
            guard let value = Double(parts[index]), value.isFinite, value >= 0 else {
                throw ConfigurationError("attack \(spec): \(parts[index]) is not a non-negative number")
            }
            return value
        }
        func arity(_ most: Int) throws(ConfigurationError) {
            guard parts.count - 1 <= most else { throw ConfigurationError("attack \(spec): \(parts[0]) takes at most \(most) parameters; expected \(Self.help)") }
        }
        func deviation() throws(ConfigurationError) -> OmniscientAttacks.Deviation {
            guard parts.count > 1 else { return .unit }
            guard let deviation = OmniscientAttacks.Deviation(rawValue: parts[1]) else {
                throw ConfigurationError("attack \(spec): the deviation must be unit, sign or std")
            }
            return deviation
        }
        switch parts[0] {
        case "sign-flip": try arity(0); kind = .signFlip
        case "gaussian": try arity(1); kind = .gaussian(std: try number(1, 1))
        case "scaling": try arity(1); kind = .scaling(gamma: try number(1, 10))
        case "label-flip": try arity(0); kind = .labelFlip
        case "alie": try arity(1); kind = .alie(z: parts.count > 1 ? try number(1, 0) : nil)
        case "ipm": try arity(1); kind = .ipm(epsilon: try number(1, 0.1))
        case "min-max": try arity(1); kind = .minMax(try deviation())
        case "min-sum": try arity(1); kind = .minSum(try deviation())
        case "backdoor":
            try arity(3)
            let target = try number(1, 0)
            guard target == target.rounded(), target < 256 else { throw ConfigurationError("attack \(spec): the target must be a class number") }
            let fraction = try number(3, 0.5)
            guard fraction > 0, fraction <= 1 else { throw ConfigurationError("attack \(spec): the poisoned fraction must be in (0, 1]") }
            kind = .backdoor(target: Int(target), boost: try number(2, 5), fraction: fraction)
        default:
            throw ConfigurationError("unknown attack \(spec); expected \(Self.help)")
        }
    }

    /// Refuses a backdoor target that is not one of the data's `classes`.
    public func validate(classes: Int) throws(ConfigurationError) {
        if case .backdoor(let target, _, _) = kind, target >= classes {
            throw ConfigurationError("attack backdoor: target class \(target) is not below the model's \(classes) classes")
        }
    }

    /// Whether the attack needs the round's honest updates.
    public var isOmniscient: Bool {
        switch kind {
        case .alie, .ipm, .minMax, .minSum: return true
        default: return false
        }
    }

    /// The backdoor's target, nil for other attacks.
    public var backdoorTarget: Int? {
        if case .backdoor(let target, _, _) = kind { return target }
        return nil
    }
}

/// The attacking clients: `round(fraction · clients)` of them, drawn once from (seed, attackers)
/// by a partial Fisher-Yates shuffle, so a run's attackers depend only on its seed.
public enum Attackers {
    public static func count(fraction: Double, clients: Int) -> Int { Int((fraction * Double(clients)).rounded()) }

    public static func choose(fraction: Double, clients: Int, seed: UInt64) -> Set<Int> {
        var generator = SeededGenerator.derived(seed: seed, RandomStream.attackers.rawValue)
        var order = Array(0..<clients)
        let count = min(clients, count(fraction: fraction, clients: clients))
        for i in 0..<count { order.swapAt(i, i + Int(generator.next(upperBound: UInt64(clients - i)))) }
        return Set(order[..<count])
    }
}
