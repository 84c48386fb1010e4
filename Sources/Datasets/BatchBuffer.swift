/// Contiguous normalized images and labels for one minibatch, allocated once for a capacity and
/// refilled by `LabeledImages.gather` for every batch.
public final class BatchBuffer {
    public let capacity: Int
    public let sampleSize: Int
    public let images: UnsafeMutablePointer<Float>
    public let labels: UnsafeMutablePointer<Int32>
    public private(set) var count = 0

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

    /// Fills the buffer with samples `indices` of `data`.
    public func fill(from data: LabeledImages, _ indices: some Collection<Int>) {
        precondition(indices.count <= capacity && data.sampleSize == sampleSize)
        data.gather(indices, images: images, labels: labels)
        count = indices.count
    }
}
