import Datasets
import Engine
import Foundation
import Testing

@Suite struct GzipTests {
    @Test func roundTripsThroughZlib() throws {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }
        #expect(try Gzip.decompress(gzip(data), path: "x.gz") == data)
    }

    @Test func concatenatedMembersAreOneStream() throws {
        #expect(try Gzip.decompress(gzip([1, 2, 3]) + gzip([4, 5]), path: "x.gz") == [1, 2, 3, 4, 5])
    }

    @Test func rejectsHostileInput() {
        let valid = gzip((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        var flipped = valid
        flipped[20] ^= 0xFF
        var badCRC = valid
        badCRC[valid.count - 6] ^= 0x01
        let cases: [(String, [UInt8], (DatasetError) -> Bool)] = [
            ("not gzip", [0x50, 0x4B, 3, 4], { if case .notGzip = $0 { true } else { false } }),
            ("empty", [], { if case .notGzip = $0 { true } else { false } }),
            ("truncated", Array(valid.prefix(valid.count / 2)), { if case .truncated = $0 { true } else { false } }),
            ("truncated trailer", Array(valid.dropLast(3)), { if case .truncated = $0 { true } else { false } }),
            ("corrupt deflate data", flipped, { if case .corrupt = $0 { true } else if case .truncated = $0 { true } else { false } }),
            ("bad checksum", badCRC, { if case .corrupt = $0 { true } else { false } }),
            ("trailing garbage", valid + [1, 2, 3], { if case .corrupt = $0 { true } else { false } }),
        ]
        for (name, bytes, expected) in cases {
            do {
                _ = try Gzip.decompress(bytes, path: "data.gz")
                Issue.record("\(name): accepted")
            } catch {
                #expect(expected(error), "\(name): \(error)")
                #expect(error.description.contains("data.gz"), "\(name): error must name the file")
            }
        }
    }
}

@Suite struct IDXTests {
    @Test func parsesDimensionsAndData() throws {
        let file = try IDXFile.parse(idx(dimensions: [2, 3, 2], data: Array(0..<12)), path: "f")
        #expect(file.dimensions == [2, 3, 2])
        #expect(file.data == Array(0..<12))
    }

    @Test func rejectsHostileHeaders() {
        let cases: [(String, [UInt8], String)] = [
            ("too short", [0, 0], "shorter"),
            ("wrong magic", [1, 0, 8, 1, 0, 0, 0, 1, 5], "magic"),
            ("wrong dtype", idx(dimensions: [1], data: [0, 0, 0, 0], type: 0x0D), "element type 0x0d (float32)"),
            ("no dimensions", [0, 0, 8, 0], "0 dimensions"),
            ("truncated header", [0, 0, 8, 3, 0, 0, 0, 1], "header needs"),
            ("overflowing dimensions", idx(dimensions: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], data: []), "overflow"),
            ("too few bytes", idx(dimensions: [2, 2], data: [1, 2, 3]), "need 4 data bytes, file has 3"),
            ("too many bytes", idx(dimensions: [2, 2], data: [1, 2, 3, 4, 5]), "need 4 data bytes, file has 5"),
        ]
        for (name, bytes, message) in cases {
            do {
                _ = try IDXFile.parse(bytes, path: "images.idx")
                Issue.record("\(name): accepted")
            } catch {
                #expect(error.description.contains(message), "\(name): \(error.description)")
                #expect(error.description.hasPrefix("images.idx"), "\(name): error must name the file")
            }
        }
    }
}

@Suite struct MNISTFamilyTests {
    /// Writes a tiny MNIST-family directory (`split`-images/labels, gzip) and returns its path.
    func directory(images: [UInt8], imageDimensions: [Int], labels: [UInt8], labelCount: Int? = nil) -> String {
        let path = temporaryDirectory()
        write(gzip(idx(dimensions: imageDimensions, data: images)), to: "\(path)/train-images-idx3-ubyte.gz")
        write(gzip(idx(dimensions: [labelCount ?? labels.count], data: labels)), to: "\(path)/train-labels-idx1-ubyte.gz")
        return path
    }

    @Test func loadsAndNormalizes() throws {
        let path = directory(images: [0, 255, 51, 102, 0, 0, 0, 255], imageDimensions: [2, 2, 2], labels: [3, 9])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let data = try FashionMNIST.split("train", in: path)
        #expect(data.count == 2 && data.height == 2 && data.width == 2 && data.labels == [3, 9])
        var images = [Float](repeating: .nan, count: 8), labels = [Int32](repeating: -1, count: 2)
        images.withUnsafeMutableBufferPointer { x in labels.withUnsafeMutableBufferPointer { y in
            data.gather([1, 0], images: x.baseAddress!, labels: y.baseAddress!) } }
        #expect(labels == [9, 3])
        #expect(abs(images[4] - (0 - 0.2860) / 0.3530) < 1e-6)
        #expect(abs(images[5] - (1 - 0.2860) / 0.3530) < 1e-6)
        #expect(abs(images[6] - (0.2 - 0.2860) / 0.3530) < 1e-6)
    }

    @Test func readsPlainFilesToo() throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        write(idx(dimensions: [1, 1, 1], data: [7]), to: "\(path)/t10k-images-idx3-ubyte")
        write(idx(dimensions: [1], data: [4]), to: "\(path)/t10k-labels-idx1-ubyte")
        #expect(try FashionMNIST.split("t10k", in: path).labels == [4])
    }

    @Test func rejectsInconsistentFiles() {
        let cases: [(String, String, String)] = [
            ("count mismatch", directory(images: [1, 2, 3, 4], imageDimensions: [4, 1, 1], labels: [1, 2, 3]), "holds 4 images but"),
            ("label out of range", directory(images: [1, 2], imageDimensions: [2, 1, 1], labels: [1, 10]), "label 10 at index 1 is out of range"),
            ("wrong image rank", directory(images: [1, 2], imageDimensions: [2, 1], labels: [1, 2]), "expected 3 dimensions"),
        ]
        for (name, path, message) in cases {
            defer { try? FileManager.default.removeItem(atPath: path) }
            do {
                _ = try FashionMNIST.split("train", in: path)
                Issue.record("\(name): accepted")
            } catch {
                #expect(error.description.contains(message), "\(name): \(error.description)")
            }
        }
    }

    @Test func missingAndNonGzipFilesNameThePath() {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: DatasetError.missingFile(path: "\(path)/train-images-idx3-ubyte.gz")) { try FashionMNIST.split("train", in: path) }
        write([1, 2, 3, 4], to: "\(path)/train-images-idx3-ubyte.gz")
        #expect(throws: DatasetError.notGzip(path: "\(path)/train-images-idx3-ubyte.gz")) { try FashionMNIST.split("train", in: path) }
    }

    @Test func installedFashionMNISTHasTheStandardShape() throws {
        let data = try FashionMNIST.load()
        #expect(data.train.count == 60_000 && data.test.count == 10_000)
        #expect(data.train.classHistogram(0..<data.train.count) == Array(repeating: 6000, count: 10))
    }
}

@Suite struct CIFAR10Tests {
    func record(label: UInt8, seed: Int) -> [UInt8] {
        [label] + (0..<3072).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ seed) }
    }

    @Test func readsRecordsAsCHW() throws {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        write(record(label: 3, seed: 1) + record(label: 7, seed: 2), to: "\(path)/data_batch_1.bin")
        write(record(label: 9, seed: 3), to: "\(path)/data_batch_2.bin")
        let data = try CIFAR10.load(["\(path)/data_batch_1.bin", "\(path)/data_batch_2.bin"])
        #expect(data.count == 3 && data.channels == 3 && data.height == 32 && data.labels == [3, 7, 9])
        #expect(Array(data.pixels[3072..<(3072 + 3072)]) == Array(record(label: 7, seed: 2).dropFirst()))
        var images = [Float](repeating: .nan, count: 3072), labels = [Int32](repeating: -1, count: 1)
        images.withUnsafeMutableBufferPointer { x in labels.withUnsafeMutableBufferPointer { y in
            data.gather([2], images: x.baseAddress!, labels: y.baseAddress!) } }
        // Green plane starts at 1024 and uses the green mean and std.
        let green = Float(data.pixels[2 * 3072 + 1024]) / 255
        #expect(abs(images[1024] - (green - 0.4822) / 0.2435) < 1e-5)
    }

    @Test func rejectsPartialRecordsAndBadLabels() {
        let path = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        write(Array(record(label: 1, seed: 0).dropLast()), to: "\(path)/short.bin")
        write(record(label: 10, seed: 0), to: "\(path)/label.bin")
        #expect(throws: DatasetError.self) { try CIFAR10.load(["\(path)/short.bin"]) }
        #expect(throws: DatasetError.self) { try CIFAR10.load(["\(path)/label.bin"]) }
        #expect(throws: DatasetError.missingFile(path: "\(path)/none.bin")) { try CIFAR10.load(["\(path)/none.bin"]) }
    }
}

@Suite struct EpochOrderTests {
    @Test func shuffleIsASeededPermutationWithPartialLastBatch() {
        var a = SeededGenerator(seed: 1), b = SeededGenerator(seed: 1)
        let first = EpochOrder(indices: Array(0..<10), batchSize: 4, shuffle: true, generator: &a)
        let second = EpochOrder(indices: Array(0..<10), batchSize: 4, shuffle: true, generator: &b)
        #expect(first.indices == second.indices)
        #expect(first.indices.sorted() == Array(0..<10))
        #expect(first.indices != Array(0..<10))
        #expect(first.batchCount == 3 && first.batchRange(2) == 8..<10)
        var c = SeededGenerator(seed: 1)
        #expect(EpochOrder(indices: [5, 6, 7], batchSize: 2, shuffle: false, generator: &c).indices == [5, 6, 7])
    }
}
