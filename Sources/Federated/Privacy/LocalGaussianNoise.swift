import Engine

/// Local DP's noise (`--dp local`): after the client's clip to C, N(0, σ²) on every coordinate of
/// its update, before encoding, so what leaves the client is (ε, δ)-DP for its whole data set in
/// each round it takes part in. σ is the analytic Gaussian mechanism's (Balle and Wang 2018) for
/// the per-round (ε, δ) at L2 sensitivity 2C: two data sets of one client can give any two updates
/// in the ball of radius C. (Flower's `LocalDpMod` takes C, which covers only the change from a
/// zero update, and the classical formula, valid for ε < 1.)
///
/// Randomness: the stage generator, derived from (seed, updateStage, round, client), in
/// simulation; the system's secure generator in a client process (`noise: .secure`).
public struct LocalGaussianNoise: UpdateStage {
    public let standardDeviation: Double
    public let secure: Bool

    public init(standardDeviation: Double, secure: Bool) {
        precondition(standardDeviation > 0 && standardDeviation.isFinite)
        (self.standardDeviation, self.secure) = (standardDeviation, secure)
    }

    /// σ for a per-round (ε, δ) with clip C.
    public static func standardDeviation(epsilon: Double, delta: Double, clip: Double) -> Double {
        AnalyticGaussian.noise(epsilon: epsilon, delta: delta, sensitivity: 2 * clip)
    }

    public func apply(to update: inout [Float], round: Int, client: Int, generator: inout SeededGenerator) {
        var source = secure ? NoiseGenerator.secure(SystemRandomNumberGenerator()) : .seeded(generator)
        for i in update.indices { update[i] += Float(standardDeviation * source.nextGaussian()) }
        if case .seeded(let advanced) = source { generator = advanced }
    }
}
