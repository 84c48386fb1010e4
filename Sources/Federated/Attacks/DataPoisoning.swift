import Datasets
import Engine

/// Data attacks: copies of a data set in which the attackers' samples are changed, keeping the
/// original's normalization (mean and standard deviation), so the poisoned client trains
/// through the very same pipeline.
public enum DataPoisoning {
    /// Labels `y ↦ classes − 1 − y` at `indices`.
    public static func labelFlipped(_ data: LabeledImages, at indices: [Int]) -> LabeledImages {
        var labels = data.labels
        for i in indices { labels[i] = UInt16(data.classes - 1) - labels[i] }
        return LabeledImages(channels: data.channels, height: data.height, width: data.width, classes: data.classes,
                             pixels: data.pixels, labels: labels, mean: data.mean, std: data.std)
    }

    /// The backdoor trigger: a white 4×4 checkerboard (on: 255, off: 0) with its corner one
    /// pixel in from the bottom-right, in every channel.
    public static func stamp(_ pixels: inout [UInt8], sample: Int, channels: Int, height: Int, width: Int) {
        let size = channels * height * width
        for c in 0..<channels {
            for y in 0..<4 {
                for x in 0..<4 {
                    let row = height - 5 + y, column = width - 5 + x
                    pixels[sample * size + c * height * width + row * width + column] = (x + y) % 2 == 0 ? 255 : 0
                }
            }
        }
    }

    /// `fraction` of each attacker's `indices` (drawn from `generator`), stamped with the trigger
    /// and relabelled `target`.
    public static func backdoored(_ data: LabeledImages, at indices: [Int], target: Int, fraction: Double,
                                  generator: inout SeededGenerator) -> LabeledImages {
        var pixels = data.pixels, labels = data.labels
        for i in indices where generator.nextUnitDouble() < fraction {
            stamp(&pixels, sample: i, channels: data.channels, height: data.height, width: data.width)
            labels[i] = UInt16(target)
        }
        return LabeledImages(channels: data.channels, height: data.height, width: data.width, classes: data.classes,
                             pixels: pixels, labels: labels, mean: data.mean, std: data.std)
    }

    /// The backdoor's test set: every test image whose label is not `target`, stamped and
    /// labelled `target`, so its accuracy is the attack's success rate.
    public static func triggeredTest(_ test: LabeledImages, target: Int) -> LabeledImages {
        let keep = test.labels.indices.filter { Int(test.labels[$0]) != target }
        let size = test.sampleSize
        var pixels = [UInt8]()
        pixels.reserveCapacity(keep.count * size)
        for i in keep { pixels += test.pixels[(i * size)..<((i + 1) * size)] }
        for sample in keep.indices { stamp(&pixels, sample: sample, channels: test.channels, height: test.height, width: test.width) }
        let labels = [UInt16](repeating: UInt16(target), count: keep.count)
        return LabeledImages(channels: test.channels, height: test.height, width: test.width, classes: test.classes,
                             pixels: pixels, labels: labels, mean: test.mean, std: test.std)
    }
}
