import Engine

/// Where differential-privacy noise comes from. In simulation a generator derived from (seed,
/// purpose, round), so runs are reproducible and resumable bit for bit; in a deployed server the
/// operating system's cryptographically secure generator (`SystemRandomNumberGenerator`:
/// getrandom on Linux), because noise an observer can predict protects nothing.
public enum NoiseSource: Sendable, Equatable {
    case seeded(UInt64)
    case secure

    /// A generator for one release: `purpose` and `round` pick the seeded stream.
    func generator(_ purpose: RandomStream, round: Int, client: Int? = nil) -> NoiseGenerator {
        switch self {
        case .seeded(let seed):
            if let client { return .seeded(SeededGenerator.derived(seed: seed, purpose.rawValue, UInt64(round), UInt64(client))) }
            return .seeded(SeededGenerator.derived(seed: seed, purpose.rawValue, UInt64(round)))
        case .secure: return .secure(SystemRandomNumberGenerator())
        }
    }
}

enum NoiseGenerator {
    case seeded(SeededGenerator)
    case secure(SystemRandomNumberGenerator)

    /// A uniform sample in [0, 1).
    mutating func nextUnitDouble() -> Double {
        switch self {
        case .seeded(var generator):
            defer { self = .seeded(generator) }
            return generator.nextUnitDouble()
        case .secure(var generator):
            return Double(generator.next() >> 11) * 0x1p-53
        }
    }

    /// A standard normal sample.
    mutating func nextGaussian() -> Double {
        switch self {
        case .seeded(var generator):
            defer { self = .seeded(generator) }
            return generator.nextGaussian()
        case .secure:
            // The seeded generator's Box-Muller on 53-bit uniforms from the system generator.
            let u1 = 1 - nextUnitDouble(), u2 = nextUnitDouble()
            return BoxMuller.normal(u1, u2)
        }
    }
}
