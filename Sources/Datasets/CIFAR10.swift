import Foundation

/// CIFAR-10's binary format: each record is 1 label byte then 3072 pixel bytes (1024 red, 1024
/// green, 1024 blue, row-major 32×32), so a record is already CHW.
public enum CIFAR10 {
    public static let recordSize = 1 + 3 * 32 * 32
    /// Per-channel mean and standard deviation of the training set (pixel/255).
    public static let mean: [Float] = [0.4914, 0.4822, 0.4465]
    public static let std: [Float] = [0.2470, 0.2435, 0.2616]

    /// Reads and concatenates `paths` (for example `data_batch_1.bin` … `data_batch_5.bin`).
    public static func load(_ paths: [String]) throws(DatasetError) -> LabeledImages {
        var pixels: [UInt8] = [], labels: [UInt16] = []
        for path in paths {
            let bytes = try DatasetError.reading(path)
            guard !bytes.isEmpty, bytes.count % recordSize == 0 else {
                throw .invalidFormat(path: path, detail: "\(bytes.count) bytes is not a whole number of \(recordSize)-byte CIFAR-10 records")
            }
            for start in stride(from: 0, to: bytes.count, by: recordSize) {
                guard bytes[start] < 10 else {
                    throw .invalidFormat(path: path, detail: "label \(bytes[start]) of record \(start / recordSize) is out of range 0...9")
                }
                labels.append(UInt16(bytes[start]))
                pixels.append(contentsOf: bytes[(start + 1)..<(start + recordSize)])
            }
        }
        return LabeledImages(channels: 3, height: 32, width: 32, classes: 10, pixels: pixels, labels: labels, mean: mean, std: std)
    }

    /// The training and test sets of a `cifar-10-batches-bin` directory.
    public static func load(directory: String) throws(DatasetError) -> (train: LabeledImages, test: LabeledImages) {
        let train = (1...5).map { "\(directory)/data_batch_\($0).bin" }
        return (try load(train), try load(["\(directory)/test_batch.bin"]))
    }
}
