import Engine
import Foundation
import Testing
import TestSupport

@Suite struct SoftmaxCrossEntropyTests {
    func run(_ logits: [Float], _ labels: [Int32], classes: Int, scale: Float) -> (Double, [Float]) {
        var gradient = [Float](repeating: .nan, count: logits.count)
        let loss = logits.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in
                gradient.withUnsafeMutableBufferPointer { g in
                    SoftmaxCrossEntropy.lossAndGradient(batch: labels.count, classes: classes, logits: z.baseAddress!,
                                                        labels: y.baseAddress!, gradientScale: scale, logitGradient: g.baseAddress!)
                }
            }
        }
        return (loss, gradient)
    }

    @Test func uniformLogitsGiveLogOfClassCount() {
        let (loss, gradient) = run([0, 0, 0, 0], [2], classes: 4, scale: 1)
        #expect(abs(loss - log(4.0)) < 1e-6)
        #expect(gradient == [0.25, 0.25, -0.75, 0.25])
    }

    @Test func stableForHugeLogits() {
        let (loss, gradient) = run([1000, 0, -1000], [0], classes: 3, scale: 1)
        #expect(loss.isFinite && loss >= 0 && loss < 1e-6)
        #expect(gradient.allSatisfy { $0.isFinite })
        let (large, _) = run([-1000, 1000], [0], classes: 2, scale: 1)
        #expect(abs(large - 2000) < 1e-3)
    }

    @Test func gradientOfMeanLossMatchesFiniteDifferences() {
        let classes = 5, batch = 3
        let logits = randomArray(batch * classes, seed: 20, range: -3...3)
        let labels: [Int32] = [4, 0, 2]
        let (_, analytic) = run(logits, labels, classes: classes, scale: 1 / Float(batch))
        let numeric = numericGradient(of: { self.run($0, labels, classes: classes, scale: 1).0 / Double(batch) }, at: logits, step: 1e-2)
        #expect(closeness(analytic, numeric, rtol: 1e-2, atol: 1e-3) <= 1)
    }
}
