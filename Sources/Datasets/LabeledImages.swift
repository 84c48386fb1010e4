/// An in-memory image classification data set: raw 8-bit pixels (NCHW, one byte each) and
/// labels, with the per-channel normalization applied when a batch is gathered.
///
/// Pixels stay bytes (a quarter of the float size); `gather` turns them into normalized floats
/// `(pixel/255 − mean[c]) / std[c]` for exactly the samples of one batch. Value type,
/// copy-on-write: clients share one copy of the data.
public struct LabeledImages: Sendable {
    public let channels: Int
    public let height: Int
    public let width: Int
    public let classes: Int
    public let pixels: [UInt8]
    /// Class indices, below `classes` (16 bits: data sets of more than 256 classes).
    public let labels: [UInt16]
    /// Per-channel mean and standard deviation of pixel/255.
    public let mean: [Float]
    public let std: [Float]

    /// `pixels` must hold `labels.count · channels · height · width` bytes and every label must
    /// be below `classes` (loaders check this and throw; here it is a programmer error).
    public init(channels: Int, height: Int, width: Int, classes: Int, pixels: [UInt8], labels: [UInt16], mean: [Float], std: [Float]) {
        precondition(pixels.count == labels.count * channels * height * width, "pixel count does not match labels")
        precondition(mean.count == channels && std.count == channels && std.allSatisfy { $0 > 0 })
        precondition(labels.allSatisfy { Int($0) < classes }, "label out of range")
        self.channels = channels
        self.height = height
        self.width = width
        self.classes = classes
        self.pixels = pixels
        self.labels = labels
        self.mean = mean
        self.std = std
    }

    public var count: Int { labels.count }
    public var sampleSize: Int { channels * height * width }

    /// The first `limit` samples.
    public func prefix(_ limit: Int) -> LabeledImages {
        let n = min(limit, count)
        return LabeledImages(channels: channels, height: height, width: width, classes: classes,
                             pixels: Array(pixels[..<(n * sampleSize)]), labels: Array(labels[..<n]), mean: mean, std: std)
    }

    /// Number of samples of each class.
    public func classHistogram(_ indices: some Sequence<Int>) -> [Int] {
        var histogram = [Int](repeating: 0, count: classes)
        for index in indices { histogram[Int(labels[index])] += 1 }
        return histogram
    }

    /// Writes samples `indices` normalized into `images` (`indices.count × sampleSize` floats)
    /// and their labels into `labelsOut`. Overwrites both. A concrete slice type, not a generic
    /// collection: unspecialized generic iteration allocated per sample when called across packages.
    public func gather(_ indices: ArraySlice<Int>, images: UnsafeMutablePointer<Float>, labels labelsOut: UnsafeMutablePointer<Int32>) {
        let planeSize = height * width
        pixels.withUnsafeBufferPointer { source in
            var row = 0
            for index in indices {
                precondition(index >= 0 && index < count, "sample \(index) out of range")
                let from = source.baseAddress! + index * sampleSize, to = images + row * sampleSize
                for c in 0..<channels {
                    let a = 1 / (255 * std[c]), b = -mean[c] / std[c], offset = c * planeSize
                    for k in offset..<(offset + planeSize) { to[k] = Float(from[k]) * a + b }
                }
                labelsOut[row] = Int32(self.labels[index])
                row += 1
            }
        }
    }
}
