import CImageCodecs
import Engine
import Foundation
import Synchronization

/// A folder of class subfolders of images (torchvision's `ImageFolder`): classes are the
/// subfolders sorted by name (byte order, as Python sorts them). Files are PNG or JPEG,
/// recognized by their bytes, not their names; hidden files (`.name`) are ignored.
///
/// Sample order (which seeded shuffles and partitions index): by file name across the classes,
/// ties by class, so a folder written from an indexed data set (`write`) reads back in the
/// data set's own order.
///
/// Split: `train/` and `test/` subfolders when both exist (the test classes must be training
/// classes), else `testFraction` of each class, drawn from `seed`. Images are converted to the
/// chosen channels and size (`ImageResize`); with no size given, all images must share one.
/// Normalization: the folder's `normalization.json` (`{"mean": [...], "std": [...]}`, one value
/// per channel, of pixel/255) when it has one, else the per-channel mean and standard
/// deviation over the training split. Decoding runs in parallel across `threads`.
public enum ImageFolder {
    public struct Options: Sendable {
        /// `(height, width)` every image is resized to; nil: the images' own (all equal).
        public var size: (height: Int, width: Int)?
        /// 1 or 3; nil: 3 when any image has color, else 1.
        public var channels: Int?
        public var testFraction = 0.2
        public var seed: UInt64 = 0
        /// Skip (and count) unreadable, truncated and non-image files instead of failing.
        public var skipBadImages = false
        public var threads = Parallelism.availableCores
        /// Called with (files decoded, files) as loading goes.
        public var progress: (@Sendable (Int, Int) -> Void)?

        public init() {}
    }

    public struct Loaded: Sendable {
        public var train: LabeledImages
        public var test: LabeledImages
        /// Class names, in label order.
        public var classNames: [String]
        /// Files skipped with `skipBadImages`, each with why.
        public var skipped: [String]
    }

    /// One file to decode and its label.
    struct Entry {
        var path: String
        var label: Int
        var test: Bool
    }

    public static func load(_ directory: String, options: Options = Options()) throws(DatasetError) -> Loaded {
        if let size = options.size { precondition(size.height >= 1 && size.width >= 1) }
        precondition(options.channels == nil || options.channels == 1 || options.channels == 3)
        let (entries, classNames) = try listing(directory, options: options)
        // With the channels and size known, each image is converted as soon as it is decoded, so
        // a folder of large photos never holds more than its samples at the model's size.
        let target = options.channels.flatMap { c in options.size.map { (channels: c, height: $0.height, width: $0.width) } }
        let decoded = decodeAll(entries.map(\.path), options: options, target: target)

        var skipped: [String] = [], kept: [(entry: Entry, image: Decoded)] = []
        for (entry, result) in zip(entries, decoded) {
            switch result {
            case .success(let image): kept.append((entry, image))
            case .failure(let error):
                guard options.skipBadImages else { throw error }
                skipped.append(error.description)
            }
        }
        for (label, name) in classNames.enumerated() where !kept.contains(where: { $0.entry.label == label }) {
            throw .invalidFormat(path: "\(directory)/\(name)", detail: "no readable image left in this class (\(skipped.count) skipped)")
        }
        let channels = options.channels ?? (kept.contains { $0.image.channels >= 3 } ? 3 : 1)
        let first = kept[0]
        let (height, width) = options.size ?? (first.image.height, first.image.width)
        if options.size == nil, let other = kept.first(where: { $0.image.height != height || $0.image.width != width }) {
            throw .mismatch(detail: "\(other.entry.path) is \(other.image.height)×\(other.image.width) but \(first.entry.path) is \(height)×\(width): "
                + "images of mixed sizes need the model's input size to resize them to")
        }
        func split(_ test: Bool) -> (pixels: [UInt8], labels: [UInt16]) {
            let part = kept.filter { $0.entry.test == test }
            let sampleSize = channels * height * width
            var pixels = [UInt8](repeating: 0, count: part.count * sampleSize)
            pixels.withUnsafeMutableBufferPointer { out in
                Parallelism.forEach(count: part.count, workers: options.threads) { i, _ in
                    if target != nil {
                        (out.baseAddress! + i * sampleSize).update(from: part[i].image.pixels, count: sampleSize)
                    } else {
                        convert(part[i].image, channels: channels, height: height, width: width, into: out.baseAddress! + i * sampleSize)
                    }
                }
            }
            return (pixels, part.map { UInt16($0.entry.label) })
        }
        let train = split(false), test = split(true)
        guard !train.labels.isEmpty else { throw .mismatch(detail: "\(directory): the training split is empty") }
        guard !test.labels.isEmpty else { throw .mismatch(detail: "\(directory): the test split is empty (raise --test-fraction or add test/)") }
        let (mean, std) = try declaredNormalization(directory, channels: channels)
            ?? statistics(train.pixels, channels: channels, planeSize: height * width)
        func images(_ part: (pixels: [UInt8], labels: [UInt16])) -> LabeledImages {
            LabeledImages(channels: channels, height: height, width: width, classes: classNames.count,
                          pixels: part.pixels, labels: part.labels, mean: mean, std: std)
        }
        return Loaded(train: images(train), test: images(test), classNames: classNames, skipped: skipped)
    }

    /// The files to read, with labels and split, and the class names.
    static func listing(_ directory: String, options: Options) throws(DatasetError) -> ([Entry], [String]) {
        let top = try subfolders(directory)
        if top.contains("train"), top.contains("test") {
            let classNames = try subfolders("\(directory)/train")
            try checkClasses(classNames, in: "\(directory)/train")
            var entries = try files(of: classNames, in: "\(directory)/train", classNames: classNames).map { Entry(path: $0.0, label: $0.1, test: false) }
            let testClasses = try subfolders("\(directory)/test")
            if let stray = testClasses.first(where: { !classNames.contains($0) }) {
                throw .invalidFormat(path: "\(directory)/test/\(stray)", detail: "a test class that \(directory)/train does not have")
            }
            entries += try files(of: testClasses, in: "\(directory)/test", classNames: classNames).map { Entry(path: $0.0, label: $0.1, test: true) }
            return (ordered(entries), classNames)
        }
        try checkClasses(top, in: directory)
        guard options.testFraction > 0, options.testFraction < 1 else {
            throw .mismatch(detail: "\(directory) has no train/ and test/ folders: --test-fraction must be in (0, 1) to split it (got \(options.testFraction))")
        }
        var generator = SeededGenerator(seed: options.seed)
        var entries: [Entry] = []
        for (label, name) in top.enumerated() {
            let paths = try files(of: [name], in: directory, classNames: top).map(\.0)
            var order = Array(paths.indices)
            order.shuffle(using: &generator)
            // Every class keeps at least one training image.
            let testCount = min(Int((Double(paths.count) * options.testFraction).rounded()), paths.count - 1)
            let inTest = Set(order.prefix(testCount))
            entries += paths.indices.map { Entry(path: paths[$0], label: label, test: inTest.contains($0)) }
        }
        return (ordered(entries), top)
    }

    /// `entries` by file name (bytes), ties by label.
    static func ordered(_ entries: [Entry]) -> [Entry] {
        let keyed = entries.map { (name: Array($0.path.utf8.split(separator: UInt8(ascii: "/")).last ?? []), entry: $0) }
        return keyed.sorted { a, b in
            a.name == b.name ? a.entry.label < b.entry.label : a.name.lexicographicallyPrecedes(b.name)
        }.map(\.entry)
    }

    /// The name of the file in which a folder declares its normalization.
    public static let normalizationFile = "normalization.json"

    struct Normalization: Codable {
        var mean: [Float]
        var std: [Float]
    }

    /// The folder's declared normalization, if it has a `normalizationFile`.
    static func declaredNormalization(_ directory: String, channels: Int) throws(DatasetError) -> (mean: [Float], std: [Float])? {
        let path = "\(directory)/\(normalizationFile)"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let bytes = try DatasetError.reading(path)
        guard let declared = try? JSONDecoder().decode(Normalization.self, from: Data(bytes)) else {
            throw .invalidFormat(path: path, detail: #"expected {"mean": [...], "std": [...]}"#)
        }
        guard declared.mean.count == channels, declared.std.count == channels,
              declared.mean.allSatisfy(\.isFinite), declared.std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw .invalidFormat(path: path, detail: "needs \(channels) finite means and \(channels) positive standard deviations (the images' channels)")
        }
        return (declared.mean, declared.std)
    }

    /// Writes `directory/normalization.json`.
    public static func writeNormalization(mean: [Float], std: [Float], to directory: String) throws(DatasetError) {
        let path = "\(directory)/\(normalizationFile)"
        do { try AtomicFile.writeJSON(Normalization(mean: mean, std: std), to: path) } catch {
            throw .unreadable(path: path, reason: error.problem)
        }
    }

    static func checkClasses(_ classNames: [String], in directory: String) throws(DatasetError) {
        guard classNames.count >= 2 else {
            throw .invalidFormat(path: directory, detail: classNames.isEmpty
                ? "no class folders (expected one subfolder of images per class)"
                : "one class folder (\(classNames[0])); classification needs at least 2")
        }
        guard classNames.count <= Int(UInt16.max) + 1 else {
            throw .invalidFormat(path: directory, detail: "\(classNames.count) classes; at most 65536 are supported")
        }
    }

    /// The non-hidden entries of `directory` sorted by their bytes, split into folders and files.
    static func contents(_ directory: String) throws(DatasetError) -> (folders: [String], files: [String]) {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) { throw .missingFile(path: directory) }
            throw .unreadable(path: directory, reason: isDirectory.boolValue ? "cannot list it" : "not a directory")
        }
        var folders: [String] = [], files: [String] = []
        for name in names where !name.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: "\(directory)/\(name)", isDirectory: &isDirectory)
            if isDirectory.boolValue { folders.append(name) } else { files.append(name) }
        }
        let byBytes: (String, String) -> Bool = { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return (folders.sorted(by: byBytes), files.sorted(by: byBytes))
    }

    static func subfolders(_ directory: String) throws(DatasetError) -> [String] { try contents(directory).folders }

    /// Every file of each class folder in `names` under `directory`, labelled by its index in
    /// `classNames`; an empty class folder is an error.
    static func files(of names: [String], in directory: String, classNames: [String]) throws(DatasetError) -> [(String, Int)] {
        var result: [(String, Int)] = []
        for name in names {
            let folder = "\(directory)/\(name)"
            let files = try contents(folder).files
            guard !files.isEmpty else { throw .invalidFormat(path: folder, detail: "an empty class folder (no image files)") }
            let label = classNames.firstIndex(of: name)!
            result += files.map { ("\(folder)/\($0)", label) }
        }
        return result
    }

    /// A decoded file: interleaved 8-bit pixels, row-major, `channels` per pixel (1 gray, 2 gray
    /// and alpha, 3 RGB, 4 RGBA).
    public struct Decoded: Sendable, Equatable {
        public var pixels: [UInt8]
        public var height: Int
        public var width: Int
        public var channels: Int

        public init(pixels: [UInt8], height: Int, width: Int, channels: Int) {
            (self.pixels, self.height, self.width, self.channels) = (pixels, height, width, channels)
        }
    }

    /// Reads and decodes every path, in parallel; one result per path, in order. With a
    /// `target`, each result is already the converted CHW sample of that shape.
    static func decodeAll(_ paths: [String], options: Options,
                          target: (channels: Int, height: Int, width: Int)?) -> [Result<Decoded, DatasetError>] {
        let results = UnsafeMutableBufferPointer<Result<Decoded, DatasetError>?>.allocate(capacity: paths.count)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        let done = Atomic<Int>(0)
        let step = max(1, paths.count / 100)
        Parallelism.forEach(count: paths.count, workers: options.threads) { i, _ in
            results[i] = Result { () throws(DatasetError) -> Decoded in
                let image = try decode(path: paths[i])
                guard let target else { return image }
                var sample = [UInt8](repeating: 0, count: target.channels * target.height * target.width)
                sample.withUnsafeMutableBufferPointer {
                    convert(image, channels: target.channels, height: target.height, width: target.width, into: $0.baseAddress!)
                }
                return Decoded(pixels: sample, height: target.height, width: target.width, channels: target.channels)
            }
            let count = done.add(1, ordering: .relaxed).newValue
            if count % step == 0 || count == paths.count { options.progress?(count, paths.count) }
        }
        return results.map { $0! }
    }

    /// The file at `path`, decoded by its signature (PNG or JPEG).
    public static func decode(path: String) throws(DatasetError) -> Decoded {
        let bytes = try DatasetError.reading(path)
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let isPNG = bytes.starts(with: png), isJPEG = bytes.starts(with: [0xFF, 0xD8, 0xFF])
        guard isPNG || isJPEG else {
            throw .invalidFormat(path: path, detail: bytes.isEmpty ? "an empty file, not an image" : "not a PNG or JPEG image")
        }
        var image = fedtrain_image()
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { data in
            isPNG ? fedtrain_png_decode(data.baseAddress, data.count, &image, &message, message.count)
                  : fedtrain_jpeg_decode(data.baseAddress, data.count, &image, &message, message.count)
        }
        guard status == 0 else {
            let reason = codecMessage(message)
            throw .corrupt(path: path, detail: "\(isPNG ? "PNG" : "JPEG"): \(reason)")
        }
        defer { fedtrain_image_free(&image) }
        let count = Int(image.width) * Int(image.height) * Int(image.channels)
        return Decoded(pixels: Array(UnsafeBufferPointer(start: image.pixels, count: count)),
                       height: Int(image.height), width: Int(image.width), channels: Int(image.channels))
    }

    /// The NUL-terminated message a codec call wrote into `message`.
    static func codecMessage(_ message: [CChar]) -> String {
        String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `image` as one CHW sample of `channels × height × width` bytes at `output`.
    static func convert(_ image: Decoded, channels: Int, height: Int, width: Int, into output: UnsafeMutablePointer<UInt8>) {
        let planeSize = image.height * image.width
        var planes = [UInt8](repeating: 0, count: channels * planeSize)
        image.pixels.withUnsafeBufferPointer { pixels in
            planes.withUnsafeMutableBufferPointer { out in
                ImageResize.planes(pixels.baseAddress!, count: planeSize, channels: image.channels, toChannels: channels, into: out.baseAddress!)
            }
        }
        planes.withUnsafeBufferPointer { source in
            for c in 0..<channels {
                ImageResize.resample(source.baseAddress! + c * planeSize, height: image.height, width: image.width,
                                     toHeight: height, toWidth: width, into: output + c * height * width)
            }
        }
    }

    /// Per-channel mean and (population) standard deviation of pixel/255; a constant channel
    /// gets standard deviation 1 (nothing to scale).
    static func statistics(_ pixels: [UInt8], channels: Int, planeSize: Int) -> (mean: [Float], std: [Float]) {
        var sums = [Double](repeating: 0, count: channels), squares = [Double](repeating: 0, count: channels)
        let sampleSize = channels * planeSize
        for start in stride(from: 0, to: pixels.count, by: sampleSize) {
            for c in 0..<channels {
                var sum = 0, square = 0
                for value in pixels[(start + c * planeSize)..<(start + (c + 1) * planeSize)] {
                    sum += Int(value)
                    square += Int(value) * Int(value)
                }
                sums[c] += Double(sum)
                squares[c] += Double(square)
            }
        }
        let n = Double(pixels.count / channels)
        let mean = sums.map { $0 / n / 255 }
        let std = zip(squares, mean).map { square, mean -> Double in
            let variance = max(0, square / n / (255 * 255) - mean * mean)
            return variance > 0 ? variance.squareRoot() : 1
        }
        return (mean.map(Float.init), std.map(Float.init))
    }
}

extension ImageFolder {
    /// Encodes one image (interleaved 8-bit, 1 to 4 channels) as PNG: 8-bit, 16-bit (each sample
    /// v stored as 257·v, which decodes back to v), or palette (at most 256 distinct pixels).
    public static func encodePNG(_ image: Decoded, bitDepth: Int = 8, palette: Bool = false) throws(DatasetError) -> [UInt8] {
        try encode(image, what: "PNG") { image, out, size, message in
            fedtrain_png_encode(image, Int32(bitDepth), palette ? 1 : 0, out, size, message, 256)
        }
    }

    /// Encodes one image (1 or 3 channels) as JPEG of `quality`, baseline or progressive.
    public static func encodeJPEG(_ image: Decoded, quality: Int = 90, progressive: Bool = false) throws(DatasetError) -> [UInt8] {
        try encode(image, what: "JPEG") { image, out, size, message in
            fedtrain_jpeg_encode(image, Int32(quality), progressive ? 1 : 0, out, size, message, 256)
        }
    }

    private static func encode(_ image: Decoded, what: String,
                               _ body: (UnsafePointer<fedtrain_image>, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>,
                                        UnsafeMutablePointer<Int>, UnsafeMutablePointer<CChar>) -> Int32) throws(DatasetError) -> [UInt8] {
        precondition(image.pixels.count == image.height * image.width * image.channels)
        var pixels = image.pixels
        var message = [CChar](repeating: 0, count: 256)
        var out: UnsafeMutablePointer<UInt8>?
        var size = 0
        let status = pixels.withUnsafeMutableBufferPointer { buffer in
            var header = fedtrain_image(pixels: buffer.baseAddress, width: Int32(image.width), height: Int32(image.height),
                                        channels: Int32(image.channels))
            return body(&header, &out, &size, &message)
        }
        defer { fedtrain_image_free_bytes(out) }
        guard status == 0, let out else {
            let reason = codecMessage(message)
            throw .invalidFormat(path: "(\(what) encoder)", detail: reason)
        }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }

    /// Writes `data` as PNG files `directory/<class name>/<index>.png` (index zero-padded, in
    /// sample order), lossless: loading the folder gives back the same pixels. Runs across
    /// `threads`.
    public static func write(_ data: LabeledImages, classNames: [String], to directory: String,
                             threads: Int = Parallelism.availableCores) throws(DatasetError) {
        precondition(classNames.count == data.classes)
        for name in classNames {
            do {
                try FileManager.default.createDirectory(atPath: "\(directory)/\(name)", withIntermediateDirectories: true)
            } catch { throw .unreadable(path: "\(directory)/\(name)", reason: "cannot create it: \(error.localizedDescription)") }
        }
        let digits = String(max(0, data.count - 1)).count
        let failure = Mutex<DatasetError?>(nil)
        let planeSize = data.height * data.width
        Parallelism.forEach(count: data.count, workers: threads) { i, _ in
            var pixels = [UInt8](repeating: 0, count: data.sampleSize)
            let start = i * data.sampleSize
            for p in 0..<planeSize {
                for c in 0..<data.channels { pixels[p * data.channels + c] = data.pixels[start + c * planeSize + p] }
            }
            let index = String(i), name = String(repeating: "0", count: digits - index.count) + index
            let path = "\(directory)/\(classNames[Int(data.labels[i])])/\(name).png"
            // Plain writes, not `AtomicFile`'s fsync per file: an interrupted export is rerun, not resumed.
            do throws(DatasetError) {
                let bytes = try encodePNG(Decoded(pixels: pixels, height: data.height, width: data.width, channels: data.channels))
                guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
                    throw .unreadable(path: path, reason: "cannot write it")
                }
            } catch {
                failure.withLock { $0 = $0 ?? error }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }
}
