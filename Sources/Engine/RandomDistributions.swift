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
