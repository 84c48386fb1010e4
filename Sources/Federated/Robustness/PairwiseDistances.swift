import Engine

/// Squared Euclidean distances between a round's updates, from one Gram matrix in Double.
///
/// The rows are first centered on their coordinate-wise mean (distances do not change, but the
/// cancellation in `‖x‖² + ‖y‖² − 2x·y` does: updates that share a large common part lose their
/// differences in Float, which is how Flower's Krum picks the wrong client for updates of 1e-4
/// per coordinate), converted to Double a block of columns at a time, and multiplied by
/// `GramKernel`, so memory stays `n² + n·block` Doubles whatever the model size.
public struct PairwiseDistances: Sendable {
    public let count: Int
    /// Row-major `count × count`, symmetric, zero diagonal, never negative.
    public private(set) var squared: [Double]

    static let block = 2048

    public init(_ rows: [[Float]]) {
        let n = rows.count
        precondition(n > 0)
        count = n
        let gram = Self.gram(rows, centeredOn: Aggregation.mean(inDouble: rows))
        squared = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in (i + 1)..<n {
                let value = max(0, gram[i * n + i] + gram[j * n + j] - 2 * gram[i * n + j])
                squared[i * n + j] = value
                squared[j * n + i] = value
            }
        }
    }

    /// The Gram matrix `(rowᵢ − center)·(rowⱼ − center)` in Double, row-major `n × n` (only the
    /// diagonal and upper triangle are filled), with `center` zero when nil.
    public static func gram(_ rows: [[Float]], centeredOn center: [Double]?) -> [Double] {
        let n = rows.count
        precondition(n > 0)
        let d = rows[0].count
        precondition(rows.allSatisfy { $0.count == d } && (center?.count ?? d) == d, "updates differ in length")
        let center = center ?? [Double](repeating: 0, count: d)
        // Zero rows and columns pad the kernel's input to whole 4-row, 8-column tiles.
        let padded = (n + 3) / 4 * 4
        var gram = [Double](repeating: 0, count: padded * padded)
        var centered = [Double](repeating: 0, count: padded * Self.block)
        for start in stride(from: 0, to: d, by: Self.block) {
            let width = min(Self.block, d - start), paddedWidth = (width + 7) / 8 * 8
            centered.withUnsafeMutableBufferPointer { centered in
                center.withUnsafeBufferPointer { mean in
                    for (i, row) in rows.enumerated() {
                        row.withUnsafeBufferPointer { row in
                            for k in 0..<width { centered[i * paddedWidth + k] = Double(row[start + k]) - mean[start + k] }
                            for k in width..<paddedWidth { centered[i * paddedWidth + k] = 0 }
                        }
                    }
                    for k in (n * paddedWidth)..<(padded * paddedWidth) { centered[k] = 0 }
                }
                gram.withUnsafeMutableBufferPointer {
                    GramKernel.accumulateUpper(rows: padded, width: paddedWidth, UnsafePointer(centered.baseAddress!), $0.baseAddress!)
                }
            }
        }
        return (0..<n).flatMap { i in gram[(i * padded)..<(i * padded + n)] }
    }

    public subscript(i: Int, j: Int) -> Double { squared[i * count + j] }
}
