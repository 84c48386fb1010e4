import Engine

/// Contiguous normalized images and labels for one minibatch, allocated once for a capacity and
/// refilled by `LabeledImages.gather` for every batch. As a `BatchSource` it fills the rows of
/// `pending` (samples of `data`) that a training chunk asks for, from the chunk's own thread.
public final class BatchBuffer: BatchSource {
    public let capacity: Int
    public let sampleSize: Int
    public let images: UnsafeMutablePointer<Float>
    public let labels: UnsafeMutablePointer<Int32>
    /// The data set and sample indices `load(rows:)` gathers from; set before each batch.
    public var data: LabeledImages?
    public var pending: ArraySlice<Int> = []

    public init(capacity: Int, sampleSize: Int) {
        precondition(capacity >= 1 && sampleSize >= 1)
        self.capacity = capacity
        self.sampleSize = sampleSize
        images = .allocate(capacity: capacity * sampleSize)
        images.initialize(repeating: 0, count: capacity * sampleSize)
        labels = .allocate(capacity: capacity)
        labels.initialize(repeating: 0, count: capacity)
    }

    deinit {
        images.deallocate()
        labels.deallocate()
    }

    public func load(rows: Range<Int>) {
        fill(from: data!, pending, rows: rows)
    }

    /// Fills rows `rows` of the buffer with the samples at those positions of `indices`
    /// (all rows when nil). Disjoint row ranges may be filled from different threads.
    public func fill(from data: LabeledImages, _ indices: ArraySlice<Int>, rows: Range<Int>? = nil) {
        let rows = rows ?? 0..<indices.count
        precondition(rows.upperBound <= min(indices.count, capacity) && data.sampleSize == sampleSize)
        let start = indices.startIndex
        data.gather(indices[(start + rows.lowerBound)..<(start + rows.upperBound)],
                    images: images + rows.lowerBound * sampleSize, labels: labels + rows.lowerBound)
    }
}
