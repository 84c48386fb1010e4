import Engine

/// The order in which one epoch visits a set of samples, cut into minibatches.
///
/// Shuffled orders are a Fisher-Yates permutation drawn from the injected generator, so the same
/// generator state gives the same order. The last partial batch is kept (PyTorch's
/// `drop_last=False`).
public struct EpochOrder: Sendable {
    public private(set) var indices: [Int]
    public let batchSize: Int

    public init(indices: [Int], batchSize: Int, shuffle: Bool, generator: inout SeededGenerator) {
        precondition(batchSize >= 1)
        var order = indices
        if shuffle {
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                let j = Int(generator.next(upperBound: UInt64(i + 1)))
                order.swapAt(i, j)
            }
        }
        self.indices = order
        self.batchSize = batchSize
    }

    public var batchCount: Int { (indices.count + batchSize - 1) / batchSize }

    /// Positions in `indices` of minibatch `batch`.
    public func batchRange(_ batch: Int) -> Range<Int> {
        let start = batch * batchSize
        return start..<min(indices.count, start + batchSize)
    }
}
