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
        let d = rows[0].count
        precondition(rows.allSatisfy { $0.count == d }, "updates differ in length")
        count = n
        let mean = Aggregation.mean(inDouble: rows)
        // Zero rows and columns pad the kernel's input to whole 4-row, 8-column tiles.
        let padded = (n + 3) / 4 * 4
        var gram = [Double](repeating: 0, count: padded * padded)
        var centered = [Double](repeating: 0, count: padded * Self.block)
        for start in stride(from: 0, to: d, by: Self.block) {
            let width = min(Self.block, d - start), paddedWidth = (width + 7) / 8 * 8
            centered.withUnsafeMutableBufferPointer { centered in
                mean.withUnsafeBufferPointer { mean in
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
        squared = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in (i + 1)..<n {
                let value = max(0, gram[i * padded + i] + gram[j * padded + j] - 2 * gram[i * padded + j])
                squared[i * n + j] = value
                squared[j * n + i] = value
            }
        }
    }

    public subscript(i: Int, j: Int) -> Double { squared[i * count + j] }
}
