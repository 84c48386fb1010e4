import Engine
import Foundation

/// Where a job's images come from, by the form of its `data` setting:
/// - `folder:DIR`: a folder of class subfolders of PNG and JPEG images (`ImageFolder`);
/// - a directory holding `data_batch_1.bin`: CIFAR-10's binary batches (`CIFAR10`);
/// - any other directory: an MNIST-family IDX directory (`FashionMNIST`).
public enum DataSource {
    /// A loaded data set and what loading it found.
    public struct Loaded: Sendable {
        public var train: LabeledImages
        public var test: LabeledImages
        /// Class names in label order (image folders; nil for the fixed-format sets).
        public var classNames: [String]?
        /// Image-folder files skipped with `skipBadImages`, each with its reason.
        public var skipped: [String] = []

        /// What a run's summary records of its data.
        public var description: Description {
            Description(classes: classNames, trainImages: train.count, testImages: test.count,
                        shape: [train.channels, train.height, train.width], mean: train.mean, std: train.std,
                        skippedImages: classNames == nil ? nil : skipped.count)
        }
    }

    /// The data as a run's `summary.json` records it (`data`).
    public struct Description: Sendable, Codable, Equatable {
        public var classes: [String]?
        public var trainImages: Int
        public var testImages: Int
        /// Per-sample `[channels, height, width]`.
        public var shape: [Int]
        /// The normalization applied: per channel, of pixel/255.
        public var mean: [Float]
        public var std: [Float]
        public var skippedImages: Int?

        enum CodingKeys: String, CodingKey {
            case classes, shape, mean, std
            case trainImages = "train_images", testImages = "test_images", skippedImages = "skipped_images"
        }
    }

    public static let folderPrefix = "folder:"

    /// The training and test sets of `source`. `folder` settings apply to image folders only.
    public static func load(_ source: String, folder: ImageFolder.Options = ImageFolder.Options()) throws(DatasetError) -> Loaded {
        if source.hasPrefix(folderPrefix) {
            let directory = String(source.dropFirst(folderPrefix.count))
            var options = folder
            if options.progress == nil { options.progress = progressPrinter(directory) }
            let clock = ContinuousClock(), start = clock.now
            let loaded = try ImageFolder.load(directory, options: options)
            let count = loaded.train.count + loaded.test.count
            if count >= 5_000 || !loaded.skipped.isEmpty {
                let seconds = (clock.now - start).seconds
                let skipped = loaded.skipped.isEmpty ? "" : "; skipped \(loaded.skipped.count) bad files, first: \(loaded.skipped[0])"
                FileHandle.standardError.write(Data("loaded \(directory): \(loaded.train.count) training and \(loaded.test.count) test images, \(loaded.classNames.count) classes, in \(String(format: "%.2f", seconds)) s\(skipped)\n".utf8))
            }
            return Loaded(train: loaded.train, test: loaded.test, classNames: loaded.classNames, skipped: loaded.skipped)
        }
        if FileManager.default.fileExists(atPath: "\(source)/data_batch_1.bin") {
            let (train, test) = try CIFAR10.load(directory: source)
            return Loaded(train: train, test: test)
        }
        let (train, test) = try FashionMNIST.load(directory: source)
        return Loaded(train: train, test: test)
    }

    /// Progress of a large folder on standard error, one line rewritten in place.
    static func progressPrinter(_ directory: String) -> @Sendable (Int, Int) -> Void {
        { done, total in
            guard total >= 5_000 else { return }
            FileHandle.standardError.write(Data("\rloading \(directory): \(done)/\(total) images\(done == total ? "\n" : "")".utf8))
        }
    }
}
