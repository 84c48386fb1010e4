/// A seeded, splittable pseudo-random generator: xoshiro256** (Blackman and Vigna) whose state is
/// filled by SplitMix64 from a 64-bit seed.
///
/// Every random choice in fedtrain takes one of these by `inout`, so a run is reproducible bit for
/// bit from its seed. `derived(_:)` gives independent streams for (seed, round, client) without
/// sharing state between tasks. The state is a value; copying it forks the stream.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Hashable, Codable {
    // Four scalars rather than an array: `next()` runs per element in stochastic quantization.
    @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// The 256-bit state, for checkpoints (`init(state:)` restores it).
    public var state: [UInt64] { [s0, s1, s2, s3] }

    /// Generator whose stream is fully determined by `seed`.
    public init(seed: UInt64) {
        var mixer = seed
        s0 = Self.splitMix64(&mixer)
        s1 = Self.splitMix64(&mixer)
        s2 = Self.splitMix64(&mixer)
        s3 = Self.splitMix64(&mixer)
    }

    /// A generator continuing from a saved `state` (four words, not all zero).
    public init(state: [UInt64]) {
        precondition(state.count == 4 && state.contains { $0 != 0 }, "xoshiro256** needs four words, not all zero")
        (s0, s1, s2, s3) = (state[0], state[1], state[2], state[3])
    }

    enum CodingKeys: String, CodingKey { case state }

    public init(from decoder: any Decoder) throws {
        let words = try decoder.container(keyedBy: CodingKeys.self).decode([UInt64].self, forKey: .state)
        guard words.count == 4, words.contains(where: { $0 != 0 }) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad generator state"))
        }
        self.init(state: words)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(state, forKey: .state)
    }

    /// A generator for the stream named by `path` under `seed`, for example (seed, round, client).
    /// Distinct paths give statistically independent streams; the same path gives the same stream.
    public static func derived(seed: UInt64, _ path: UInt64...) -> SeededGenerator {
        var key = seed
        for component in path { key = mix(key, component) }
        return SeededGenerator(seed: key)
    }

    /// `derived(seed: seed, first, second)` without the variadic array: the same stream, for
    /// per-row calls in a training step (Dropout), which must not allocate.
    public static func derived(seed: UInt64, _ first: UInt64, then second: UInt64) -> SeededGenerator {
        SeededGenerator(seed: mix(mix(seed, first), second))
    }

    @inline(__always)
    private static func mix(_ key: UInt64, _ component: UInt64) -> UInt64 {
        var mixer = key ^ (component &* 0x9E37_79B9_7F4A_7C15)
        return splitMix64(&mixer)
    }

    @inlinable @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let shifted = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= shifted
        s3 = rotateLeft(s3, 45)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits (every representable step of a Float in [0.5, 1)).
    public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// Uniform in [low, high).
    public mutating func nextUniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * nextUnitFloat()
    }

    /// A standard normal sample (Box-Muller in double precision).
    public mutating func nextGaussian() -> Double {
        let u1 = 1.0 - nextUnitDouble()  // in (0, 1], so the log is finite
        let u2 = nextUnitDouble()
        return BoxMuller.normal(u1, u2)
    }

    private static func splitMix64(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inlinable @inline(__always)
    func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The Box-Muller transform, shared by every Gaussian source so they agree on the formula.
public enum BoxMuller {
    /// A standard normal sample from `u1` in (0, 1] and `u2` in [0, 1).
    @inline(__always)
    public static func normal(_ u1: Double, _ u2: Double) -> Double {
        (-2.0 * log(u1)).squareRoot() * cos(2.0 * Double.pi * u2)
    }
}
