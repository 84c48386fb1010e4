import Foundation

/// The attacks that see the round's honest updates, as pure functions of them: each returns
/// the one update every attacker of the round sends. μ and σ are the coordinate-wise mean and
/// standard deviation (with Bessel's correction, n − 1, as epfml's and byzfl's code) of the
/// honest updates, in Double.
public enum OmniscientAttacks {
    /// Min-max and min-sum's perturbation direction `p`: `μ/‖μ‖`, `sign(μ)`, or `σ`.
    public enum Deviation: String, Sendable, Equatable { case unit, sign, std }

    /// Coordinate-wise mean and standard deviation (n − 1; zero for one update).
    public static func moments(_ honest: [[Float]]) -> (mean: [Double], std: [Double]) {
        precondition(!honest.isEmpty)
        let d = honest[0].count, n = Double(honest.count)
        let mean = Aggregation.mean(inDouble: honest)
        var squares = [Double](repeating: 0, count: d)
        for row in honest {
            for k in 0..<d {
                let difference = Double(row[k]) - mean[k]
                squares[k] += difference * difference
            }
        }
        return (mean, squares.map { honest.count > 1 ? ($0 / (n - 1)).squareRoot() : 0 })
    }

    /// ALIE's z for `n` updates of which `f` are hostile (Baruch et al. 2019): the attackers need
    /// `s = ⌊n/2 + 1⌋ − f` honest supporters, and `z = Φ⁻¹((n − s)/n)`. This is the paper's
    /// formula; the code most libraries copy, `Φ⁻¹((n − f − s)/(n − f))`, gives z = 0 (no attack)
    /// at n = 10, f = 2, where this gives 0.2533. With `s < 1` (a hostile majority) s is taken as 1.
    public static func alieZ(updates n: Int, hostile f: Int) -> Double {
        precondition(n >= 1 && f >= 0 && f <= n)
        let supporters = max(1, (n / 2 + 1) - f)
        return inverseNormal(Double(n - supporters) / Double(n))
    }

    /// `μ − z·σ`.
    public static func alie(_ honest: [[Float]], z: Double) -> [Float] {
        let (mean, std) = moments(honest)
        return zip(mean, std).map { Float($0 - z * $1) }
    }

    /// Inner product manipulation: `−ε·μ`.
    public static func ipm(_ honest: [[Float]], epsilon: Double) -> [Float] {
        moments(honest).mean.map { Float(-epsilon * $0) }
    }

    /// `μ − γ·p`, γ found by Shejwalkar and Houmansadr's search (start 50, halving steps, stop
    /// when a step is below 1e-5): the largest γ found whose crafted update stays within the
    /// honest updates' largest squared pairwise distance (min-max) or lowest sum of squared
    /// distances (min-sum).
    public static func minMax(_ honest: [[Float]], deviation: Deviation) -> [Float] {
        craft(honest, deviation: deviation, score: { $0.max()! }, threshold: { $0.squared.max()! })
    }

    public static func minSum(_ honest: [[Float]], deviation: Deviation) -> [Float] {
        craft(honest, deviation: deviation, score: { $0.reduce(0, +) }, threshold: { pairwise in
            (0..<pairwise.count).map { i in (0..<pairwise.count).reduce(0.0) { $0 + pairwise[i, $1] } }.min()!
        })
    }

    private static func craft(_ honest: [[Float]], deviation: Deviation, score: ([Double]) -> Double,
                              threshold: (PairwiseDistances) -> Double) -> [Float] {
        let (mean, std) = moments(honest)
        let direction: [Double]
        switch deviation {
        case .unit:
            let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
            direction = mean.map { norm > 0 ? $0 / norm : 0 }
        case .sign: direction = mean.map { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
        case .std: direction = std
        }
        let limit = threshold(PairwiseDistances(honest))
        func crafted(_ gamma: Double) -> [Double] { zip(mean, direction).map { $0 - gamma * $1 } }
        func fits(_ gamma: Double) -> Bool {
            let candidate = crafted(gamma)
            let distances = honest.map { row in
                var sum = 0.0
                for k in candidate.indices {
                    let difference = candidate[k] - Double(row[k])
                    sum += difference * difference
                }
                return sum
            }
            return score(distances) <= limit
        }
        var gamma = 50.0, step = gamma, succeeded = 0.0
        while abs(succeeded - gamma) > 1e-5 {
            if fits(gamma) {
                succeeded = gamma
                gamma += step / 2
            } else {
                gamma -= step / 2
            }
            step /= 2
        }
        return crafted(succeeded).map { Float($0) }
    }

    /// Φ⁻¹(p), the standard normal quantile, by bisection on `Φ(z) = erfc(−z/√2)/2` to double
    /// precision; p in (0, 1).
    public static func inverseNormal(_ p: Double) -> Double {
        precondition(p > 0 && p < 1)
        var low = -40.0, high = 40.0
        for _ in 0..<200 {
            let middle = (low + high) / 2
            if erfc(-middle / 2.0.squareRoot()) / 2 < p { low = middle } else { high = middle }
        }
        return (low + high) / 2
    }
}
