/// Softmax cross-entropy on logits, computed stably as `logsumexp(z) − z[label]`.
public enum SoftmaxCrossEntropy {
    /// Loss and gradient for `batch` rows of `classes` logits.
    ///
    /// Returns the **sum** of the per-sample losses (in double precision). Overwrites
    /// `logitGradient` with `gradientScale · (softmax(z) − onehot(label))`; with
    /// `gradientScale = 1 / totalBatch` that is the gradient of the batch-mean loss, also when a
    /// batch is split into chunks. Labels must be in `0..<classes`.
    @discardableResult
    public static func lossAndGradient(
        batch: Int, classes: Int, logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>,
        gradientScale: Float, logitGradient: UnsafeMutablePointer<Float>
    ) -> Double {
        var total = 0.0
        for row in 0..<batch {
            let z = logits + row * classes, dz = logitGradient + row * classes
            let label = Int(labels[row])
            precondition(label >= 0 && label < classes, "label \(label) out of range 0..<\(classes)")
            var maximum = z[0]
            for c in 1..<classes { maximum = max(maximum, z[c]) }
            var sum: Float = 0
            for c in 0..<classes {
                let e = expf(z[c] - maximum)
                dz[c] = e
                sum += e
            }
            let inverse = gradientScale / sum
            for c in 0..<classes { dz[c] *= inverse }
            dz[label] -= gradientScale
            total += Double(logf(sum) + maximum - z[label])
        }
        return total
    }

    /// Sum of per-sample losses and number of rows whose first arg-max equals the label.
    public static func lossAndCorrect(
        batch: Int, classes: Int, logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>
    ) -> (loss: Double, correct: Int) {
        var total = 0.0, correct = 0
        for row in 0..<batch {
            let z = logits + row * classes
            let label = Int(labels[row])
            precondition(label >= 0 && label < classes, "label \(label) out of range 0..<\(classes)")
            var best = 0
            for c in 1..<classes where z[c] > z[best] { best = c }
            let maximum = z[best]
            var sum: Float = 0
            for c in 0..<classes { sum += expf(z[c] - maximum) }
            total += Double(logf(sum) + maximum - z[label])
            if best == label { correct += 1 }
        }
        return (total, correct)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
