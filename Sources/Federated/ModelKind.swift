import Datasets
import Engine

/// The models fedtrain can train, with the data each one reads.
public enum ModelKind: String, CaseIterable, Sendable, Codable {
    /// LeNet-5 on 1×28×28 images from an MNIST-family IDX directory (default: Fashion-MNIST).
    case lenet5
    /// LeNet-5 on 3×32×32 images from a CIFAR-10 binary directory (`cifar-10-batches-bin`).
    case lenet5RGB = "lenet5-rgb"

    public var network: Sequential {
        switch self {
        case .lenet5: return LeNet5.grayscale
        case .lenet5RGB: return LeNet5.rgb
        }
    }

    /// Classes the network tells apart (its output width).
    public var classes: Int { 10 }

    /// The data directory used when none is given, if there is one.
    public var defaultDataDirectory: String? {
        switch self {
        case .lenet5: return FashionMNIST.defaultDirectory
        case .lenet5RGB: return nil
        }
    }

    /// Loads the training and test sets from `directory`.
    public func loadData(directory: String) throws(DatasetError) -> (train: LabeledImages, test: LabeledImages) {
        let data: (train: LabeledImages, test: LabeledImages)
        switch self {
        case .lenet5: data = try FashionMNIST.load(directory: directory)
        case .lenet5RGB: data = try CIFAR10.load(directory: directory)
        }
        let shape = network.inputShape
        for split in [data.train, data.test] where [split.channels, split.height, split.width] != shape {
            throw .mismatch(detail: "\(directory) holds \(split.channels)×\(split.height)×\(split.width) images; \(rawValue) needs \(shape.map(String.init).joined(separator: "×"))")
        }
        return data
    }
}
