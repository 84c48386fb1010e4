/// Resizing and channel conversion of 8-bit images, as an image folder's files are brought to a
/// model's input.
public enum ImageResize {
    /// Resamples one plane of `height × width` bytes to `toHeight × toWidth`, each axis on its
    /// own: area averaging (each output pixel the mean of the input area it covers, partial pixels
    /// weighted by coverage) when the axis shrinks, bilinear interpolation at pixel centers
    /// (PyTorch's `align_corners=False`, edges clamped) when it grows, a copy when it keeps its
    /// size. Results are rounded to the nearest integer (halves up). Works in Double.
    public static func resample(_ plane: UnsafePointer<UInt8>, height: Int, width: Int,
                                toHeight: Int, toWidth: Int, into output: UnsafeMutablePointer<UInt8>) {
        precondition(height >= 1 && width >= 1 && toHeight >= 1 && toWidth >= 1)
        let rows = weights(from: height, to: toHeight), columns = weights(from: width, to: toWidth)
        var horizontal = [Double](repeating: 0, count: height * toWidth)
        for y in 0..<height {
            for (x, taps) in columns.enumerated() {
                var sum = 0.0
                for (source, weight) in taps { sum += Double(plane[y * width + source]) * weight }
                horizontal[y * toWidth + x] = sum
            }
        }
        for (y, taps) in rows.enumerated() {
            for x in 0..<toWidth {
                var sum = 0.0
                for (source, weight) in taps { sum += horizontal[source * toWidth + x] * weight }
                output[y * toWidth + x] = UInt8(min(255, max(0, (sum + 0.5).rounded(.down))))
            }
        }
    }

    /// For each output position along an axis of `from` inputs resized to `to`: the inputs it reads and their weights (summing to 1).
    static func weights(from: Int, to: Int) -> [[(Int, Double)]] {
        if to == from { return (0..<to).map { [($0, 1.0)] } }
        let scale = Double(from) / Double(to)
        if to < from {
            return (0..<to).map { i in
                let start = Double(i) * scale, end = Double(i + 1) * scale
                var taps: [(Int, Double)] = []
                var k = Int(start.rounded(.down))
                while Double(k) < end, k < from {
                    let covered = min(end, Double(k + 1)) - max(start, Double(k))
                    if covered > 0 { taps.append((k, covered / scale)) }
                    k += 1
                }
                return taps
            }
        }
        return (0..<to).map { i in
            let center = max(0, (Double(i) + 0.5) * scale - 0.5)
            let left = min(Int(center.rounded(.down)), from - 1), right = min(left + 1, from - 1)
            let fraction = center - Double(left)
            return right == left ? [(left, 1.0)] : [(left, 1 - fraction), (right, fraction)]
        }
    }

    /// Converts interleaved pixels of `channels` (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) to
    /// planar `toChannels` (1 or 3) planes, the CHW layout of a sample: alpha is dropped (as
    /// PIL's `convert` does), gray is repeated into RGB, and RGB becomes gray by ITU-R 601-2 luma
    /// `(19595 R + 38470 G + 7471 B + 2^15) >> 16` (PIL's `convert("L")`).
    public static func planes(_ pixels: UnsafePointer<UInt8>, count: Int, channels: Int, toChannels: Int,
                              into output: UnsafeMutablePointer<UInt8>) {
        precondition((1...4).contains(channels) && (toChannels == 1 || toChannels == 3))
        let color = channels >= 3
        for p in 0..<count {
            let pixel = pixels + p * channels
            if toChannels == 1 {
                if color {
                    let luma = (19595 * Int(pixel[0]) + 38470 * Int(pixel[1]) + 7471 * Int(pixel[2]) + 32768) >> 16
                    output[p] = UInt8(luma)
                } else {
                    output[p] = pixel[0]
                }
            } else {
                for c in 0..<3 { output[c * count + p] = color ? pixel[c] : pixel[0] }
            }
        }
    }
}
