import Engine

/// Squared Euclidean distances between a round's updates, from one Gram matrix in Double.
///
/// The rows are first centered on their coordinate-wise mean (distances do not change, but the
/// cancellation in `‖x‖² + ‖y‖² − 2x·y` does: updates that share a large common part lose their
/// differences in Float, which is how Flower's Krum picks the wrong client for updates of 1e-4
/// per coordinate), converted to Double a block of columns at a time, and multiplied by
/// `dsyrk`, so memory stays `n² + n·block` Doubles whatever the model size.
public struct PairwiseDistances: Sendable {
    public let count: Int
    /// Row-major `count × count`, symmetric, zero diagonal, never negative.
    public private(set) var squared: [Double]

    static let block = 4096

    public init(_ rows: [[Float]]) {
        let n = rows.count
        precondition(n > 0)
        let d = rows[0].count
        precondition(rows.allSatisfy { $0.count == d }, "updates differ in length")
        count = n
        var mean = [Double](repeating: 0, count: d)
        for row in rows { for k in 0..<d { mean[k] += Double(row[k]) } }
        for k in 0..<d { mean[k] /= Double(n) }
        var gram = [Double](repeating: 0, count: n * n)
        var centered = [Double](repeating: 0, count: n * Self.block)
        for start in stride(from: 0, to: d, by: Self.block) {
            let width = min(Self.block, d - start)
            for (i, row) in rows.enumerated() {
                for k in 0..<width { centered[i * width + k] = Double(row[start + k]) - mean[start + k] }
            }
            centered.withUnsafeBufferPointer { a in
                gram.withUnsafeMutableBufferPointer { BLAS.gramUpper(n: n, k: width, a.baseAddress!, $0.baseAddress!) }
            }
        }
        squared = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in (i + 1)..<n {
                let value = max(0, gram[i * n + i] + gram[j * n + j] - 2 * gram[i * n + j])
                squared[i * n + j] = value
                squared[j * n + i] = value
            }
        }
    }

    public subscript(i: Int, j: Int) -> Double { squared[i * count + j] }
}
