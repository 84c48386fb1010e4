import ArgumentParser
import Datasets
import Engine
import Foundation

/// `fedtrain export-images`: a data set written out as an image folder (`train/` and `test/`,
/// one PNG per image), which `--data folder:DIR` reads back pixel for pixel.
struct ExportImages: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-images",
        abstract: "Write a data set (IDX or CIFAR-10 directory) as a folder of class subfolders of PNG images.")

    @Option(help: "The data set (default: Fashion-MNIST from dataset-fashion-mnist).") var data = FashionMNIST.defaultDirectory
    @Option(help: "The folder to create (train/ and test/ inside it); must not exist.") var out: String
    @Option(parsing: .unconditional, help: "Worker threads (default: all cores).") var threads = Parallelism.availableCores

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1 (got \(threads))") }
        guard !FileManager.default.fileExists(atPath: out) else { throw ValidationError("--out \(out) exists; choose a new folder") }
    }

    func run() throws {
        let loaded = try DataSource.load(data)
        let width = String(loaded.train.classes - 1).count
        // Zero-padded class numbers: sorted by name, they keep the label order.
        let names = (0..<loaded.train.classes).map { String(repeating: "0", count: width - String($0).count) + String($0) }
        let clock = ContinuousClock(), start = clock.now
        for (split, images) in [("train", loaded.train), ("test", loaded.test)] {
            try ImageFolder.write(images, classNames: names, to: "\(out)/\(split)", threads: threads)
        }
        // The source's normalization goes with it, so the folder is the same data set.
        try ImageFolder.writeNormalization(mean: loaded.train.mean, std: loaded.train.std, to: out)
        print("wrote \(loaded.train.count) training and \(loaded.test.count) test images to \(out) in \(String(format: "%.1f", (clock.now - start).seconds)) s")
    }
}
