import Foundation

/// The analytic Gaussian mechanism (Balle and Wang 2018, Theorem 8): the exact condition under
/// which adding N(0, σ²) to a query of L2 sensitivity Δ is (ε, δ)-DP, for any ε > 0 (the classical
/// σ = Δ·√(2 ln(1.25/δ))/ε holds only for ε < 1 and is loose there).
public enum AnalyticGaussian {
    /// The smallest δ for which N(0, σ²) noise is (ε, δ)-DP:
    /// `Φ(Δ/2σ − εσ/Δ) − e^ε Φ(−Δ/2σ − εσ/Δ)`, the second term in log space.
    public static func delta(noise sigma: Double, epsilon: Double, sensitivity: Double = 1) -> Double {
        precondition(sigma > 0 && epsilon >= 0 && sensitivity > 0)
        let a = sensitivity / (2 * sigma), b = epsilon * sigma / sensitivity
        let first = 0.5 * erfc(-(a - b) / 2.0.squareRoot())
        let second = exp(epsilon + log(0.5) + RDP.logErfc((a + b) / 2.0.squareRoot()))
        return max(0, first - second)
    }

    /// The smallest σ (within a relative 1e-12) with `delta(σ) ≤ δ`, by bisection: δ(σ) falls
    /// as σ grows.
    public static func noise(epsilon: Double, delta target: Double, sensitivity: Double = 1) -> Double {
        precondition(epsilon > 0 && target > 0 && target < 1 && sensitivity > 0)
        var high = sensitivity
        while delta(noise: high, epsilon: epsilon, sensitivity: sensitivity) > target { high *= 2 }
        var low = high / 2
        while delta(noise: low, epsilon: epsilon, sensitivity: sensitivity) <= target && low > 1e-300 { low /= 2 }
        while high - low > 1e-12 * high {
            let middle = (low + high) / 2
            if delta(noise: middle, epsilon: epsilon, sensitivity: sensitivity) <= target { high = middle } else { low = middle }
        }
        return high
    }
}
