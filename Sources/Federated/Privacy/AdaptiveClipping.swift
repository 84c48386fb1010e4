import Engine
import Foundation

/// Adaptive clipping (Andrew et al. 2021, "Differentially private learning with adaptive
/// clipping"): the clip norm follows a target quantile γ of the clients' update norms. Each round
/// the server counts the updates that were **not** clipped (norm ≤ C_t), adds N(0, σ_b²) to the
/// count, divides by the expected number of clients m, and moves the clip geometrically:
/// `C_{t+1} = C_t · exp(−η (b̃ − γ))`. (Flower's new adaptive wrappers count the *clipped*
/// updates with this sign, so their clip shrinks when it should grow.)
///
/// The count is a second release: its noise and the updates' share one privacy budget, the
/// updates getting the noise multiplier `z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2)` so the pair is as private
/// as one Gaussian release with multiplier z, which the accountant composes (Andrew et al.,
/// Theorem 1). The noise of round t is sized to the clip C_t used in round t.
///
/// The clip is kept as a Float so that a checkpoint stores it exactly.
public struct AdaptiveClipping: Sendable, Equatable {
    public static let stateName = "aggregator.clip"
    /// γ: the fraction of updates meant to pass unclipped.
    public let quantile: Double
    /// η: the step of the geometric update.
    public let learningRate: Double
    /// σ_b: the standard deviation of the noise on the unclipped count.
    public let countNoise: Double
    /// C_t, the clip of the next round.
    public private(set) var clip: Float

    public init(initialClip: Double, quantile: Double, learningRate: Double, countNoise: Double) {
        precondition(initialClip > 0 && (0...1).contains(quantile) && learningRate > 0 && countNoise >= 0)
        (self.quantile, self.learningRate, self.countNoise) = (quantile, learningRate, countNoise)
        clip = Float(initialClip)
    }

    /// The noise multiplier left for the updates when the count takes its share of `total`;
    /// nil when the count's noise is too small to leave any (2σ_b ≤ z).
    public static func updateNoiseMultiplier(total z: Double, countNoise: Double) -> Double? {
        let remaining = 1 / (z * z) - 1 / (4 * countNoise * countNoise)
        return z == 0 ? 0 : (remaining > 0 ? 1 / remaining.squareRoot() : nil)
    }

    /// `C · exp(−η (b̃ − γ))` for the noised unclipped fraction b̃.
    public static func nextClip(_ clip: Double, unclippedFraction: Double, quantile: Double, learningRate: Double) -> Double {
        clip * exp(-learningRate * (unclippedFraction - quantile))
    }

    /// Moves the clip after a round in which `unclipped` of the updates were within it, over
    /// `expectedClients` (m); the count's noise comes from `noise` (seeded: (seed, clipCount, round)).
    public mutating func update(unclipped: Int, expectedClients: Double, round: Int, noise: NoiseSource) {
        var generator = noise.generator(.clipCount, round: round)
        let noised = Double(unclipped) + countNoise * generator.nextGaussian()
        clip = Float(Self.nextClip(Double(clip), unclippedFraction: noised / expectedClients, quantile: quantile, learningRate: learningRate))
    }

    public var state: [String: [Float]] { [Self.stateName: [clip]] }

    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {
        let restored = try restoredVector(state, Self.stateName, count: 1)[0]
        guard restored.isFinite, restored > 0 else { throw CheckpointError("checkpoint: adaptive clip \(restored) is not a positive number") }
        clip = restored
    }
}
