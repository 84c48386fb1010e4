import Engine
import Foundation
@testable import Federated
import Testing

@Suite struct PrivacyAccountantTests {
    /// Without subsampling the mechanism is the Gaussian mechanism: RDP(α) = α / 2z².
    @Test func fullSamplingIsTheGaussianMechanism() {
        for (z, alpha) in [(1.0, 2.0), (0.7, 3.5), (4.0, 64.0)] {
            #expect(abs(RDP.subsampledGaussian(samplingRate: 1, noiseMultiplier: z, order: alpha) - alpha / (2 * z * z)) < 1e-12)
        }
    }

    /// At order 2, A₂ = 1 + q²(e^(1/z²) − 1), so RDP(2) = log(1 + q²(e^(1/z²) − 1)).
    @Test func orderTwoClosedForm() {
        for (q, z) in [(0.01, 1.1), (0.1, 0.5), (0.256, 1.3), (0.5, 2.0)] {
            let expected = log1p(q * q * expm1(1 / (z * z)))
            let value = RDP.subsampledGaussian(samplingRate: q, noiseMultiplier: z, order: 2)
            #expect(abs(value - expected) <= 1e-12 * expected, "q \(q) z \(z)")
        }
    }

    /// The fractional series is exact, so at an integer order it equals the binomial sum, and it
    /// is continuous between orders.
    @Test func fractionalSeriesMatchesTheIntegerFormula() {
        for (q, z) in [(0.01, 1.1), (0.1, 0.5), (0.256, 1.3), (0.05, 2.0)] {
            for alpha in [2, 3, 5, 8] {
                let integer = RDP.logAInteger(q: q, z: z, alpha: alpha), fractional = RDP.logAFractional(q: q, z: z, alpha: Double(alpha))
                #expect(abs(integer - fractional) <= 1e-9 * max(1, abs(integer)), "q \(q) z \(z) order \(alpha)")
            }
            let below = RDP.subsampledGaussian(samplingRate: q, noiseMultiplier: z, order: 3 - 1e-7)
            let at = RDP.subsampledGaussian(samplingRate: q, noiseMultiplier: z, order: 3)
            #expect(abs(below - at) <= 1e-5 * at)
        }
    }

    /// ε on dp-accounting's 156-order grid equals Opacus's `analysis/rdp.py` (the same exact
    /// formulas), from `scripts/privacy_reference.py` with Opacus 1.5.4 and dp-accounting 0.6.0.
    /// dp-accounting's RDP accountant (last column) is larger where the best order is fractional:
    /// 236.45 against 136.05 at z 0.5, q 0.1, T 1000.
    @Test(arguments: [
        (1.1, 0.01, 1000, 1e-5, 1.7117700912203435, 9.6, 1.7117701662429012),
        (0.5, 0.1, 1000, 1e-5, 136.0536968281832, 1.3, 236.4514167809057),
        (1.0, 0.1, 100, 1e-5, 7.899255002434629, 3.2, 7.903850223578231),
        (2.0, 0.05, 500, 1e-6, 3.1018682543968032, 8.2, 3.1018682574376335),
        (0.8, 0.001, 10000, 1e-5, 1.3838217954377952, 8.2, 1.3838218010196532),
        (4.0, 1.0, 10, 1e-5, 3.617099772983339, 6.6, 3.617099772983339),
        (1.3, 0.256, 60, 1e-5, 10.27507620241857, 2.9, 10.27847268971361),
        (0.7, 0.02, 3000, 1e-5, 17.63890492097524, 2.2, 17.694428272537387),
    ])
    func epsilonEqualsOpacus(z: Double, q: Double, steps: Int, delta: Double, opacus: Double, order: Double, dpAccounting: Double) {
        let (epsilon, best) = RDPAccountant.epsilon(samplingRate: q, noiseMultiplier: z, steps: steps, delta: delta)
        #expect(abs(epsilon - opacus) <= 1e-9 * opacus, "z \(z) q \(q) T \(steps): \(epsilon) against Opacus \(opacus)")
        #expect(best == order)
        #expect(epsilon <= dpAccounting * (1 + 1e-9))
    }

    @Test func monotone() {
        let base = RDPAccountant.epsilon(samplingRate: 0.05, noiseMultiplier: 1.0, steps: 200, delta: 1e-5).epsilon
        #expect(RDPAccountant.epsilon(samplingRate: 0.05, noiseMultiplier: 1.2, steps: 200, delta: 1e-5).epsilon < base)
        #expect(RDPAccountant.epsilon(samplingRate: 0.06, noiseMultiplier: 1.0, steps: 200, delta: 1e-5).epsilon > base)
        #expect(RDPAccountant.epsilon(samplingRate: 0.05, noiseMultiplier: 1.0, steps: 201, delta: 1e-5).epsilon > base)
        #expect(RDPAccountant.epsilon(samplingRate: 0.05, noiseMultiplier: 1.0, steps: 200, delta: 1e-6).epsilon > base)
        #expect(RDPAccountant.epsilon(samplingRate: 0.05, noiseMultiplier: 0, steps: 1, delta: 1e-5).epsilon == .infinity)
    }

    /// Composition over changing (q, z) adds RDP order by order.
    @Test func compositionAddsOrderByOrder() {
        var accountant = RDPAccountant()
        accountant.compose(samplingRate: 0.1, noiseMultiplier: 1.0, steps: 30)
        accountant.compose(samplingRate: 0.02, noiseMultiplier: 0.8, steps: 70)
        for (index, alpha) in accountant.orders.enumerated() {
            let expected = 30 * RDP.subsampledGaussian(samplingRate: 0.1, noiseMultiplier: 1.0, order: alpha)
                + 70 * RDP.subsampledGaussian(samplingRate: 0.02, noiseMultiplier: 0.8, order: alpha)
            #expect(abs(accountant.rdp[index] - expected) <= 1e-12 * expected)
        }
    }

    /// Calibration returns the smallest z within 1e-6 that meets the target.
    @Test func calibrationRoundTrip() throws {
        for (target, q, steps) in [(8.0, 0.1, 100), (1.0, 0.01, 1000), (3.0, 0.004, 15_000)] {
            let z = try #require(RDPAccountant.calibrate(targetEpsilon: target, samplingRate: q, steps: steps, delta: 1e-5))
            #expect(RDPAccountant.epsilon(samplingRate: q, noiseMultiplier: z, steps: steps, delta: 1e-5).epsilon <= target)
            #expect(RDPAccountant.epsilon(samplingRate: q, noiseMultiplier: z * (1 - 1e-5), steps: steps, delta: 1e-5).epsilon > target)
        }
        #expect(RDPAccountant.calibrate(targetEpsilon: 1e-9, samplingRate: 1, steps: 1_000_000, delta: 1e-5) == nil)
    }
}

@Suite struct ClippingTests {
    /// 10⁴ random vectors with norms from 1e-30·C to 1e6·C: the clipped norm, recomputed in
    /// Double, never exceeds C; the direction is kept; vectors within C are unchanged.
    @Test func clippedNormNeverExceedsTheBound() {
        var generator = SeededGenerator(seed: 13)
        var clipped = 0, unchanged = 0
        for trial in 0..<10_000 {
            let bound = pow(10, Double(generator.next(upperBound: UInt64(9))) - 4)  // 1e-4 ... 1e4
            let count = 1 + Int(generator.next(upperBound: UInt64(300)))
            var values = (0..<count).map { _ in Float(generator.nextGaussian()) }
            // Half the trials within the bound (1e-30·C ... C), half above it (C ... 1e6·C).
            let target = bound * pow(10, trial % 2 == 0 ? -30 * generator.nextUnitDouble() : 6 * generator.nextUnitDouble())
            let scale = Float(target / L2Clip.norm(values))
            guard scale.isNormal else { continue }
            values = values.map { $0 * scale }
            guard values.allSatisfy({ $0.isFinite }), L2Clip.norm(values) > 0 else { continue }
            let before = values
            let original = L2Clip.clip(&values, to: bound)
            let after = L2Clip.norm(values)
            #expect(after <= bound, "trial \(trial): norm \(after) above \(bound)")
            if original <= bound {
                #expect(values == before)
                unchanged += 1
            } else {
                clipped += 1
                #expect(after >= bound * (1 - 1e-5), "trial \(trial): clipped too far, \(after) for \(bound)")
                let cosine = zip(values, before).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } / (after * original)
                #expect(cosine > 1 - 1e-6)
            }
        }
        #expect(clipped > 4000 && unchanged > 4000, "\(clipped) clipped, \(unchanged) within the bound")
    }

    @Test func zeroUpdatePassesThrough() {
        var zero = [Float](repeating: 0, count: 10)
        #expect(L2Clip.clip(&zero, to: 1) == 0 && zero == [Float](repeating: 0, count: 10))
    }

    /// Clipping runs as a client stage on the error-feedback-corrected update; a NaN update is
    /// refused before the stages, leaving the client's state alone.
    @Test func clippingStageInTheClientPipeline() throws {
        let shapes = layout([[50]])
        let runtime = ClientRuntime(layout: shapes, training: LocalTrainingConfiguration(epochs: 1, batchSize: 1, optimizer: SGDConfiguration(learningRate: 0.1)),
                                    uplinkCodec: try CodecRegistry.codec(parsing: "topk:0.2"), errorFeedback: true, keepsModelCopy: false,
                                    stages: [L2Clip(bound: 0.5)], seed: 3)
        var state = runtime.initialState(client: 0)
        for round in 1...5 {
            let message = try #require(runtime.encode(gaussian(50, seed: UInt64(round)), round: round, client: 0, state: &state))
            #expect(L2Clip.norm(try UpdateMessage.decode(message, layout: shapes).values) <= 0.5)
        }
        let before = state
        var nan = gaussian(50, seed: 9)
        nan[3] = .nan
        #expect(runtime.encode(nan, round: 6, client: 0, state: &state) == nil && state == before)
    }
}
