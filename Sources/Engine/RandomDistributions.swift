#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SeededGenerator {
    /// A Gamma(shape, 1) sample (Marsaglia and Tsang 2000; for shape < 1 the boost
    /// `Gamma(shape + 1) · U^(1/shape)`). `shape` must be positive.
    public mutating func nextGamma(shape: Double) -> Double {
        precondition(shape > 0, "gamma shape must be positive")
        if shape < 1 {
            let u = 1.0 - nextUnitDouble()
            return nextGamma(shape: shape + 1) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0, c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = nextGaussian()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = 1.0 - nextUnitDouble()
            if u < 1 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1 - v + log(v)) { return d * v }
        }
    }

    /// A sample from the symmetric Dirichlet distribution Dir(alpha, …, alpha) over `count`
    /// categories: normalized Gamma(alpha) draws.
    public mutating func nextDirichlet(alpha: Double, count: Int) -> [Double] {
        var draws = (0..<count).map { _ in nextGamma(shape: alpha) }
        var total = draws.reduce(0, +)
        if total == 0 {  // every draw underflowed (tiny alpha): put the mass on one category
            draws[Int(next(upperBound: UInt64(count)))] = 1
            total = 1
        }
        return draws.map { $0 / total }
    }
}

/// Gaussian noise in bulk: standard normals in pairs by Marsaglia's polar method, from 53-bit
/// uniforms in [−1, 1) of any generator. No trigonometry, and both values of a pair are used, so
/// a vector of noise costs about a third of per-value Box-Muller (`SeededGenerator.nextGaussian`,
/// whose streams stay as they are for the results they fix). DP-SGD adds one draw per parameter
/// per step, which made noise a third of its step.
public enum PolarGaussian {
    /// Adds `standardDeviation`·N(0, 1) to each of `values`, in Double, rounded once to Float.
    public static func addNoise<G: RandomNumberGenerator>(to values: UnsafeMutableBufferPointer<Float>, standardDeviation: Double,
                                                           using generator: inout G) {
        var i = 0
        while i < values.count {
            var x = 0.0, y = 0.0, s = 0.0
            repeat {
                x = Double(generator.next() >> 11) * 0x1p-52 - 1
                y = Double(generator.next() >> 11) * 0x1p-52 - 1
                s = x * x + y * y
            } while s >= 1 || s == 0
            let factor = standardDeviation * (-2 * log(s) / s).squareRoot()
            values[i] = Float(Double(values[i]) + factor * x)
            if i + 1 < values.count { values[i + 1] = Float(Double(values[i + 1]) + factor * y) }
            i += 2
        }
    }
}
