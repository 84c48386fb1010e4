import Foundation

/// Rényi differential privacy of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar and
/// Zhang 2019), the mechanism of DP-FedAvg with Poisson client sampling and of DP-SGD: each step
/// includes every record (client or example) with probability `q` and adds Gaussian noise of
/// standard deviation `z` times the sensitivity.
///
/// Exact at integer and fractional orders: integer orders use the binomial expansion of
/// `A_α = E[(μ₁/μ₀)^α]` (their Section 3.3), fractional orders the two convergent series of their
/// Section 3.4, summed in log space until the terms fall below e⁻³⁰ of the sum's scale. Both are
/// what Opacus's `analysis/rdp.py` computes; the fractional series is not an upper bound.
public enum RDP {
    /// RDP at `order` α > 1 of one step; `+∞` without noise, 0 without sampling.
    public static func subsampledGaussian(samplingRate q: Double, noiseMultiplier z: Double, order alpha: Double) -> Double {
        precondition((0...1).contains(q) && z >= 0 && alpha > 1, "RDP needs q in [0, 1], z >= 0, order > 1")
        if q == 0 { return 0 }
        if z == 0 { return .infinity }
        if q == 1 { return alpha / (2 * z * z) }
        let logA = alpha == alpha.rounded() && alpha <= 1e6 ? logAInteger(q: q, z: z, alpha: Int(alpha)) : logAFractional(q: q, z: z, alpha: alpha)
        return logA / (alpha - 1)
    }

    /// `log A_α` for integer α: `Σ_k C(α,k) (1−q)^(α−k) q^k exp((k² − k) / 2z²)`.
    static func logAInteger(q: Double, z: Double, alpha: Int) -> Double {
        var logA = -Double.infinity
        let logQ = log(q), log1mQ = log1p(-q), a = Double(alpha)
        for k in 0...alpha {
            let x = Double(k)
            let term = logBinomial(a, x) + x * logQ + (a - x) * log1mQ + (x * x - x) / (2 * z * z)
            logA = logAdd(logA, term)
        }
        return logA
    }

    /// `log A_α` for fractional α: the two series of Mironov et al. (2019), Section 3.4, split at
    /// `z₀ = z² log(1/q − 1) + 1/2`.
    static func logAFractional(q: Double, z: Double, alpha: Double) -> Double {
        var logA0 = -Double.infinity, logA1 = -Double.infinity
        let z0 = z * z * log(1 / q - 1) + 0.5
        let logQ = log(q), log1mQ = log1p(-q)
        var logCoefficient = 0.0, sign = 1.0  // C(α, 0) = 1
        var k = 0
        while true {
            let i = Double(k), j = alpha - i
            let logT0 = logCoefficient + i * logQ + j * log1mQ
            let logT1 = logCoefficient + j * logQ + i * log1mQ
            let logE0 = log(0.5) + logErfc((i - z0) / (2.0.squareRoot() * z))
            let logE1 = log(0.5) + logErfc((z0 - j) / (2.0.squareRoot() * z))
            let logS0 = logT0 + (i * i - i) / (2 * z * z) + logE0
            let logS1 = logT1 + (j * j - j) / (2 * z * z) + logE1
            if sign > 0 {
                logA0 = logAdd(logA0, logS0)
                logA1 = logAdd(logA1, logS1)
            } else {
                logA0 = logSubtract(logA0, logS0)
                logA1 = logSubtract(logA1, logS1)
            }
            if max(logS0, logS1) < -30 || k > 100_000 { break }
            // C(α, k+1) = C(α, k) · (α − k) / (k + 1)
            let factor = (alpha - i) / (i + 1)
            if factor < 0 { sign = -sign }
            logCoefficient += log(abs(factor))
            k += 1
        }
        return logAdd(logA0, logA1)
    }

    /// `log C(n, k)` for real n ≥ k ≥ 0.
    static func logBinomial(_ n: Double, _ k: Double) -> Double {
        lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)
    }

    static func logAdd(_ a: Double, _ b: Double) -> Double {
        let high = max(a, b), low = min(a, b)
        if low == -.infinity { return high }
        return high + log1p(exp(low - high))
    }

    /// `log(exp(a) − exp(b))` for a ≥ b (terms of a convergent alternating series).
    static func logSubtract(_ a: Double, _ b: Double) -> Double {
        if b == -.infinity { return a }
        guard a > b else { return -.infinity }
        return a + log1p(-exp(b - a))
    }

    /// `log(erfc(x))`, with the asymptotic expansion where `erfc` underflows.
    static func logErfc(_ x: Double) -> Double {
        let r = erfc(x)
        if r > 0 { return log(r) }
        let x2: Double = x * x
        let series: Double = -0.5 / x2 + 0.625 / (x2 * x2) - (37.0 / 24) / (x2 * x2 * x2) + (353.0 / 64) / (x2 * x2 * x2 * x2)
        return -log(Double.pi) / 2 - log(x) - x2 + series
    }
}

/// Composes RDP over steps (rounds of DP-FedAvg, steps of DP-SGD), possibly with changing
/// sampling rates and noise, and converts to (ε, δ). Pure: no randomness, no I/O.
public struct RDPAccountant: Sendable, Equatable {
    /// dp-accounting's default grid: 1.1 ... 10.9 by 0.1, 11 ... 63, 128, 256, 512, 1024 (156 orders).
    public static let defaultOrders: [Double] = {
        let fractional: [Double] = (1...99).map { 1 + Double($0) / 10 }
        let integer: [Double] = (11...63).map { Double($0) }
        return fractional + integer + [128, 256, 512, 1024]
    }()

    public let orders: [Double]
    /// Accumulated RDP at each order.
    public private(set) var rdp: [Double]

    public init(orders: [Double] = RDPAccountant.defaultOrders) {
        precondition(!orders.isEmpty && orders.allSatisfy { $0 > 1 })
        self.orders = orders
        rdp = [Double](repeating: 0, count: orders.count)
    }

    /// Adds `steps` steps at sampling rate `q` and noise multiplier `z`.
    public mutating func compose(samplingRate q: Double, noiseMultiplier z: Double, steps: Int) {
        precondition(steps >= 0)
        for index in orders.indices {
            rdp[index] += Double(steps) * RDP.subsampledGaussian(samplingRate: q, noiseMultiplier: z, order: orders[index])
        }
    }

    /// This composition `times` over: each order's RDP multiplied. For an accountant of one
    /// `compose` call from zero, bit for bit what composing `times` as many steps gives.
    public func repeated(_ times: Int) -> RDPAccountant {
        precondition(times >= 0)
        var result = self
        result.rdp = rdp.map { Double(times) * $0 }
        return result
    }

    /// The smallest ε over the orders for which the composition is (ε, δ)-DP, by the conversion of
    /// Balle et al. (2020, Theorem 21): `ε = RDP(α) + log((α−1)/α) − (log δ + log α)/(α − 1)`;
    /// with the order achieving it. `+∞` when every order's RDP is infinite.
    public func epsilon(delta: Double) -> (epsilon: Double, order: Double) {
        precondition(delta > 0 && delta < 1)
        var best = (epsilon: Double.infinity, order: Double.nan)
        for (alpha, value) in zip(orders, rdp) where value.isFinite {
            let epsilon = value + log1p(-1 / alpha) - (log(delta) + log(alpha)) / (alpha - 1)
            if epsilon < best.epsilon { best = (max(0, epsilon), alpha) }
        }
        return best
    }

    /// ε of `steps` steps at (q, z).
    public static func epsilon(samplingRate q: Double, noiseMultiplier z: Double, steps: Int, delta: Double,
                               orders: [Double] = defaultOrders) -> (epsilon: Double, order: Double) {
        var accountant = RDPAccountant(orders: orders)
        accountant.compose(samplingRate: q, noiseMultiplier: z, steps: steps)
        return accountant.epsilon(delta: delta)
    }

    /// The smallest noise multiplier (within a relative 1e-6) whose `steps` steps at rate `q` stay
    /// within `targetEpsilon` at `delta`, by bisection (ε falls as z grows); nil when even z = 10⁴
    /// does not.
    public static func calibrate(targetEpsilon: Double, samplingRate q: Double, steps: Int, delta: Double,
                                 orders: [Double] = defaultOrders) -> Double? {
        precondition(targetEpsilon > 0)
        func fits(_ z: Double) -> Bool { epsilon(samplingRate: q, noiseMultiplier: z, steps: steps, delta: delta, orders: orders).epsilon <= targetEpsilon }
        var high = 1.0
        while !fits(high) {
            high *= 2
            if high > 1e4 { return nil }
        }
        var low = 0.0
        while high - low > 1e-6 * high {
            let middle = (low + high) / 2
            if fits(middle) { high = middle } else { low = middle }
        }
        return high
    }
}
