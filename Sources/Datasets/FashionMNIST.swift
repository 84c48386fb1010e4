/// Fashion-MNIST (Xiao et al. 2017) as Debian's `dataset-fashion-mnist` installs it.
public enum FashionMNIST {
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    /// Mean and standard deviation of the training pixels scaled to [0, 1].
    public static let mean: Float = 0.2860
    public static let std: Float = 0.3530

    /// Loads `train` and `t10k` from `directory` (`*-images-idx3-ubyte[.gz]`,
    /// `*-labels-idx1-ubyte[.gz]`; the gzip file is preferred when both exist).
    public static func load(directory: String = defaultDirectory) throws(DatasetError) -> (train: LabeledImages, test: LabeledImages) {
        (try split("train", in: directory), try split("t10k", in: directory))
    }

    /// One split of an MNIST-family directory.
    public static func split(_ name: String, in directory: String) throws(DatasetError) -> LabeledImages {
        let images = try IDXFile.read(locate("\(directory)/\(name)-images-idx3-ubyte"))
        let labelsPath = locate("\(directory)/\(name)-labels-idx1-ubyte")
        let labels = try IDXFile.read(labelsPath)
        let imagesPath = locate("\(directory)/\(name)-images-idx3-ubyte")
        guard images.dimensions.count == 3, images.dimensions[1] > 0, images.dimensions[2] > 0 else {
            throw .invalidFormat(path: imagesPath, detail: "expected 3 dimensions (count, rows, columns), found \(images.dimensions)")
        }
        guard labels.dimensions.count == 1 else {
            throw .invalidFormat(path: labelsPath, detail: "expected 1 dimension (count), found \(labels.dimensions)")
        }
        guard images.dimensions[0] == labels.dimensions[0] else {
            throw .mismatch(detail: "\(imagesPath) holds \(images.dimensions[0]) images but \(labelsPath) holds \(labels.dimensions[0]) labels")
        }
        if let bad = labels.data.firstIndex(where: { $0 >= 10 }) {
            throw .invalidFormat(path: labelsPath, detail: "label \(labels.data[bad]) at index \(bad) is out of range 0...9")
        }
        return LabeledImages(channels: 1, height: images.dimensions[1], width: images.dimensions[2], classes: 10,
                             pixels: images.data, labels: labels.data.map(UInt16.init), mean: [mean], std: [std])
    }

    /// `base.gz` when it exists, else `base`; the error then names the gzip path.
    static func locate(_ base: String) -> String {
        if fileExists(base + ".gz") { return base + ".gz" }
        return fileExists(base) ? base : base + ".gz"
    }
}

import Foundation

func fileExists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }
