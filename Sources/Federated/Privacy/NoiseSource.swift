#if canImport(Glibc)
import Glibc
#endif
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

    /// Adds N(0, `standardDeviation`²) to every value (`PolarGaussian`; the secure generator is
    /// read in blocks, `BufferedSystemRandom`).
    mutating func addGaussian(standardDeviation: Double, to values: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .seeded(var generator):
            PolarGaussian.addNoise(to: values, standardDeviation: standardDeviation, using: &generator)
            self = .seeded(generator)
        case .secure:
            var generator = BufferedSystemRandom()
            PolarGaussian.addNoise(to: values, standardDeviation: standardDeviation, using: &generator)
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

/// The operating system's secure generator read 4 KiB at a time from /dev/urandom (the
/// kernel's CSPRNG, the source getrandom reads; Swift's `SystemRandomNumberGenerator` makes one
/// system call per word).
struct BufferedSystemRandom: RandomNumberGenerator {
    private var words = [UInt64](repeating: 0, count: 512)
    private var position = 512

    mutating func next() -> UInt64 {
        if position == words.count {
            refill()
            position = 0
        }
        defer { position += 1 }
        return words[position]
    }

    private mutating func refill() {
        let device = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        // As with SystemRandomNumberGenerator, a missing system generator is fatal: noise
        // without it would protect nothing.
        precondition(device >= 0, "cannot open /dev/urandom: errno \(errno)")
        defer { close(device) }
        words.withUnsafeMutableBytes { bytes in
            var filled = 0
            while filled < bytes.count {
                let count = read(device, bytes.baseAddress! + filled, bytes.count - filled)
                if count > 0 { filled += count } else { precondition(count < 0 && errno == EINTR, "cannot read /dev/urandom: errno \(errno)") }
            }
        }
    }
}
