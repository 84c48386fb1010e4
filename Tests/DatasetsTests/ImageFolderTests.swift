import CZlib
import Datasets
import Engine
import Foundation
import Testing

/// A PNG written byte by byte (signature, IHDR, optional PLTE and tRNS, one zlib IDAT of
/// filter-0 rows, IEND), independent of libpng: `rows` are the raw scanlines, packed as the
/// PNG specification lays them out for `bitDepth` and `colorType`.
func rawPNG(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]],
            palette: [UInt8]? = nil, transparency: [UInt8]? = nil, interlaced: Bool = false) -> [UInt8] {
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typed = Array(type.utf8) + data
        let crc = typed.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
        return be32(data.count) + typed + be32(Int(crc))
    }
    func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
    precondition(!interlaced)
    var raw: [UInt8] = []
    for row in rows { raw += [0] + row }
    var compressed = [UInt8](repeating: 0, count: raw.count + 1024)
    var length = UInt(compressed.count)
    precondition(compress2(&compressed, &length, raw, UInt(raw.count), 6) == Z_OK)
    var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    png += chunk("IHDR", be32(width) + be32(height) + [bitDepth, colorType, 0, 0, 0])
    if let palette { png += chunk("PLTE", palette) }
    if let transparency { png += chunk("tRNS", transparency) }
    png += chunk("IDAT", Array(compressed[..<Int(length)]))
    return png + chunk("IEND", [])
}

@Suite struct ImageDecodingTests {
    func decode(_ bytes: [UInt8]) throws -> ImageFolder.Decoded {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        write(bytes, to: "\(directory)/image")
        return try ImageFolder.decode(path: "\(directory)/image")
    }

    @Test func pngEncodingsDecodeToTheStoredSamples() throws {
        // 8-bit gray, 3×2.
        #expect(try decode(rawPNG(width: 3, height: 2, bitDepth: 8, colorType: 0, rows: [[0, 128, 255], [1, 2, 3]]))
                == .init(pixels: [0, 128, 255, 1, 2, 3], height: 2, width: 3, channels: 1))
        // 16-bit gray: round(v·255/65535): 0 → 0, 257 → 1, 1000 → 4 (3.89), 65535 → 255, 32896 → 128 (127.999...).
        let wide: [Int] = [0, 257, 1000, 65535, 32896, 128]
        #expect(try decode(rawPNG(width: 3, height: 2, bitDepth: 16, colorType: 0,
                                  rows: [wide[0..<3].flatMap { [UInt8($0 >> 8), UInt8($0 & 255)] },
                                         wide[3..<6].flatMap { [UInt8($0 >> 8), UInt8($0 & 255)] }])).pixels
                == [0, 1, 4, 255, 128, 0])
        // 1-, 2- and 4-bit gray scale to 8 bits by repeating the bits (1 → 255, 2-bit 1 → 85, 4-bit 3 → 51).
        #expect(try decode(rawPNG(width: 8, height: 1, bitDepth: 1, colorType: 0, rows: [[0b1010_0001]])).pixels
                == [255, 0, 255, 0, 0, 0, 0, 255])
        #expect(try decode(rawPNG(width: 4, height: 1, bitDepth: 2, colorType: 0, rows: [[0b00_01_10_11]])).pixels == [0, 85, 170, 255])
        #expect(try decode(rawPNG(width: 2, height: 1, bitDepth: 4, colorType: 0, rows: [[0x3F]])).pixels == [51, 255])
        // Gray + alpha, RGB, RGBA (8-bit), RGB 16-bit.
        #expect(try decode(rawPNG(width: 2, height: 1, bitDepth: 8, colorType: 4, rows: [[10, 200, 20, 0]]))
                == .init(pixels: [10, 200, 20, 0], height: 1, width: 2, channels: 2))
        #expect(try decode(rawPNG(width: 2, height: 1, bitDepth: 8, colorType: 2, rows: [[1, 2, 3, 4, 5, 6]]))
                == .init(pixels: [1, 2, 3, 4, 5, 6], height: 1, width: 2, channels: 3))
        #expect(try decode(rawPNG(width: 1, height: 2, bitDepth: 8, colorType: 6, rows: [[9, 8, 7, 6], [5, 4, 3, 0]]))
                == .init(pixels: [9, 8, 7, 6, 5, 4, 3, 0], height: 2, width: 1, channels: 4))
        #expect(try decode(rawPNG(width: 1, height: 1, bitDepth: 16, colorType: 2, rows: [[0xFF, 0xFF, 0x01, 0x01, 0x80, 0x00]])).pixels
                == [255, 1, 128])
        // Palette: entries expand to RGB; with tRNS, to RGBA (entries past tRNS opaque).
        let palette: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255]
        #expect(try decode(rawPNG(width: 3, height: 1, bitDepth: 8, colorType: 3, rows: [[2, 0, 1]], palette: palette))
                == .init(pixels: [0, 0, 255, 255, 0, 0, 0, 255, 0], height: 1, width: 3, channels: 3))
        #expect(try decode(rawPNG(width: 3, height: 1, bitDepth: 4, colorType: 3, rows: [[0x21, 0x00]], palette: palette, transparency: [128]))
                == .init(pixels: [0, 0, 255, 255, 0, 255, 0, 255, 255, 0, 0, 128], height: 1, width: 3, channels: 4))
    }

    /// Every libpng-written form (8 and 16 bits, palette) reads back exactly.
    @Test(arguments: [1, 2, 3, 4])
    func pngRoundTripsThroughTheEncoder(channels: Int) throws {
        let pixels = (0..<(5 * 7 * channels)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let image = ImageFolder.Decoded(pixels: pixels, height: 5, width: 7, channels: channels)
        #expect(try decode(ImageFolder.encodePNG(image)) == image)
        if channels == 1 || channels == 3 { #expect(try decode(ImageFolder.encodePNG(image, bitDepth: 16)) == image) }
        let few = ImageFolder.Decoded(pixels: pixels.map { $0 & 0xC0 }, height: 5, width: 7, channels: channels)
        if channels == 1 || channels == 3 {
            // A palette holds RGB entries: a gray image comes back with R = G = B.
            let decoded = try decode(ImageFolder.encodePNG(few, palette: true))
            let expected = channels == 3 ? few.pixels : few.pixels.flatMap { [$0, $0, $0] }
            #expect(decoded.pixels == expected && decoded.channels == 3, "palette PNG")
        }
    }

    /// JPEG is lossy: a smooth image comes back within a few levels, in both encodings.
    @Test(arguments: [(1, false), (1, true), (3, false), (3, true)])
    func jpegDecodesWithinTolerance(channels: Int, progressive: Bool) throws {
        let (height, width) = (24, 32)
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels { pixels.append(UInt8(20 + 3 * x + 2 * y + 20 * c)) }
            }
        }
        let image = ImageFolder.Decoded(pixels: pixels, height: height, width: width, channels: channels)
        let decoded = try decode(ImageFolder.encodeJPEG(image, quality: 95, progressive: progressive))
        #expect(decoded.height == height && decoded.width == width && decoded.channels == channels)
        let worst = zip(decoded.pixels, pixels).map { abs(Int($0) - Int($1)) }.max()!
        #expect(worst <= 6, "largest error \(worst)")
    }

    @Test func hostileFilesAreRefusedNamingTheFile() throws {
        let png = try ImageFolder.encodePNG(.init(pixels: Array(repeating: 7, count: 64), height: 8, width: 8, channels: 1))
        let jpeg = try ImageFolder.encodeJPEG(.init(pixels: (0..<(16 * 16 * 3)).map { UInt8($0 % 251) }, height: 16, width: 16, channels: 3))
        var badCRC = png
        badCRC[30] ^= 0xFF  // inside IHDR: a critical chunk's CRC fails
        var hugeHeader = rawPNG(width: 1, height: 1, bitDepth: 8, colorType: 0, rows: [[0]])
        hugeHeader.replaceSubrange(16..<24, with: [0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF])
        let cases: [(String, [UInt8], String)] = [
            ("empty", [], "an empty file"),
            ("text", Array("hello, world\n".utf8), "not a PNG or JPEG"),
            ("truncated PNG", Array(png.prefix(png.count - 20)), "PNG"),
            ("PNG header only", Array(png.prefix(8)), "PNG"),
            ("bad CRC", badCRC, "PNG"),
            ("huge dimensions", hugeHeader, "PNG"),
            ("truncated JPEG", Array(jpeg.prefix(jpeg.count / 2)), "JPEG"),
            ("JPEG markers only", [0xFF, 0xD8, 0xFF, 0xD9], "JPEG"),
        ]
        for (name, bytes, message) in cases {
            let directory = temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            write(bytes, to: "\(directory)/bad.png")
            do {
                let image = try ImageFolder.decode(path: "\(directory)/bad.png")
                Issue.record("\(name): accepted as \(image.width)×\(image.height)")
            } catch {
                #expect(error.description.hasPrefix("\(directory)/bad.png: "), "\(name): \(error.description)")
                #expect(error.description.contains(message), "\(name): \(error.description)")
            }
        }
    }
}

@Suite struct ImageResizeTests {
    func resample(_ plane: [UInt8], _ h: Int, _ w: Int, to th: Int, _ tw: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: th * tw)
        plane.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { ImageResize.resample(p.baseAddress!, height: h, width: w, toHeight: th, toWidth: tw, into: $0.baseAddress!) } }
        return out
    }

    @Test func shrinkingAveragesAreas() {
        // 4×4 → 2×2: means of the 2×2 blocks.
        let plane: [UInt8] = [0, 2, 10, 20,
                              4, 6, 30, 40,
                              100, 100, 1, 2,
                              100, 101, 3, 4]
        #expect(resample(plane, 4, 4, to: 2, 2) == [3, 25, 100, 3])  // 100.25 → 100, 2.5 → 3
        // 3 → 2 along one axis: outputs cover [0, 1.5) and [1.5, 3): (a + b/2)/1.5 and (b/2 + c)/1.5.
        #expect(resample([30, 60, 90], 1, 3, to: 1, 2) == [40, 80])
    }

    @Test func growingInterpolatesBilinearly() {
        // 2 → 4 with align_corners=False: centers at −0.25, 0.25, 0.75, 1.25 → clamped 0, 0.25, 0.75, 1.
        #expect(resample([0, 100], 1, 2, to: 1, 4) == [0, 25, 75, 100])
        #expect(resample([0, 100], 2, 1, to: 4, 1) == [0, 25, 75, 100])
        // Both axes: 2×2 → 3×3, centers at 0 (clamped), 0.5, 1 (clamped).
        #expect(resample([0, 100, 200, 40], 2, 2, to: 3, 3) == [0, 50, 100, 100, 85, 70, 200, 120, 40])
    }

    /// Against a direct evaluation of the definition (per output pixel, both axes at once), on
    /// a non-integer ratio each way.
    @Test(arguments: [(7, 5, 3, 2), (5, 7, 9, 11), (6, 6, 4, 9)])
    func matchesTheDirectDefinition(h: Int, w: Int, th: Int, tw: Int) {
        let plane = (0..<(h * w)).map { UInt8(truncatingIfNeeded: $0 &* 53 &+ 7) }
        func taps(_ from: Int, _ to: Int, _ i: Int) -> [(Int, Double)] {
            let s = Double(from) / Double(to)
            if to < from {
                return (0..<from).compactMap { k in
                    let covered = min(Double(i + 1) * s, Double(k + 1)) - max(Double(i) * s, Double(k))
                    return covered > 1e-12 ? (k, covered / s) : nil
                }
            }
            let c = max(0, (Double(i) + 0.5) * s - 0.5), l = min(Int(c), from - 1), r = min(l + 1, from - 1)
            return l == r ? [(l, 1)] : [(l, 1 - (c - Double(l))), (r, c - Double(l))]
        }
        var expected: [UInt8] = []
        for y in 0..<th {
            for x in 0..<tw {
                var sum = 0.0
                for (sy, wy) in taps(h, th, y) { for (sx, wx) in taps(w, tw, x) { sum += wy * wx * Double(plane[sy * w + sx]) } }
                expected.append(UInt8((sum + 0.5).rounded(.down)))
            }
        }
        let actual = resample(plane, h, w, to: th, tw)
        // The separable pass sums in another order: a value on a rounding boundary may differ by one.
        #expect(zip(actual, expected).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
        #expect(zip(actual, expected).filter { $0 != $1 }.count <= 1)
    }

    @Test func channelsConvertAsPILDoes() {
        func convert(_ pixels: [UInt8], _ channels: Int, to: Int) -> [UInt8] {
            let count = pixels.count / channels
            var out = [UInt8](repeating: 0, count: count * to)
            pixels.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { ImageResize.planes(p.baseAddress!, count: count, channels: channels, toChannels: to, into: $0.baseAddress!) } }
            return out
        }
        // RGB → L: (19595 R + 38470 G + 7471 B + 32768) >> 16; (255, 0, 0) → 76, (0, 255, 0) → 150, (0, 0, 255) → 29.
        #expect(convert([255, 0, 0, 0, 255, 0, 0, 0, 255], 3, to: 1) == [76, 150, 29])
        // RGBA drops alpha into planes; gray repeats; gray+alpha drops alpha.
        #expect(convert([1, 2, 3, 99, 4, 5, 6, 0], 4, to: 3) == [1, 4, 2, 5, 3, 6])
        #expect(convert([7, 8], 1, to: 3) == [7, 8, 7, 8, 7, 8])
        #expect(convert([7, 0, 8, 255], 2, to: 1) == [7, 8])
    }
}

@Suite struct ImageFolderTests {
    /// A folder of `classes` × `perClass` 4×4 gray PNGs; image value `16·class + index`.
    func folder(classes: [String], perClass: Int, in root: String) {
        for (label, name) in classes.enumerated() {
            try! FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)
            for i in 0..<perClass {
                let value = UInt8(16 * label + i)
                write(try! ImageFolder.encodePNG(.init(pixels: Array(repeating: value, count: 16), height: 4, width: 4, channels: 1)),
                      to: "\(root)/\(name)/img\(i).png")
            }
        }
    }

    @Test func classesSortByNameAndTheSplitIsSeededAndStratified() throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        folder(classes: ["zebra", "Apple", "mango"], perClass: 10, in: root)
        var options = ImageFolder.Options()
        options.testFraction = 0.3
        let loaded = try ImageFolder.load(root, options: options)
        #expect(loaded.classNames == ["Apple", "mango", "zebra"])
        #expect(loaded.train.count == 21 && loaded.test.count == 9)
        #expect(loaded.test.classHistogram(0..<9) == [3, 3, 3])
        // Every image is back with its own class: value 16·(directory order) + index, label by sorted name.
        let directoryOrder = ["zebra": 0, "Apple": 1, "mango": 2]
        for split in [loaded.train, loaded.test] {
            for i in 0..<split.count {
                let value = Int(split.pixels[i * 16]), name = loaded.classNames[Int(split.labels[i])]
                #expect(value / 16 == directoryOrder[name])
            }
        }
        // Order: by file name across classes (img0 of each class, then img1...), ties by label.
        let names = (0..<loaded.train.count).map { "img\(loaded.train.pixels[$0 * 16] % 16)-\(loaded.train.labels[$0])" }
        #expect(names == names.sorted())
        let again = try ImageFolder.load(root, options: options)
        #expect(again.train.pixels == loaded.train.pixels && again.test.labels == loaded.test.labels)
        options.seed = 1
        #expect(try ImageFolder.load(root, options: options).test.pixels != loaded.test.pixels)
    }

    /// Labels are 16-bit: 300 classes keep their own labels.
    @Test func moreThan256ClassesKeepTheirLabels() throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let names = (0..<300).map { String(format: "c%03d", $0) }
        for (label, name) in names.enumerated() {
            try FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)
            for copy in 0..<2 {
                let pixels = [UInt8(label % 256), UInt8(label / 256), UInt8(copy), 0]
                write(try ImageFolder.encodePNG(.init(pixels: pixels, height: 2, width: 2, channels: 1)), to: "\(root)/\(name)/\(copy).png")
            }
        }
        var options = ImageFolder.Options()
        options.testFraction = 0.5
        let loaded = try ImageFolder.load(root, options: options)
        #expect(loaded.train.classes == 300 && loaded.train.count == 300 && loaded.test.count == 300)
        for split in [loaded.train, loaded.test] {
            for i in 0..<split.count {
                #expect(Int(split.labels[i]) == Int(split.pixels[4 * i]) + 256 * Int(split.pixels[4 * i + 1]))
            }
        }
    }

    @Test func writtenDataReadsBackExactlyWithItsNormalization() throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let count = 30
        let pixels = (0..<(count * 3 * 5 * 6)).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 17) }
        let labels = (0..<count).map { UInt16(($0 * 7) % 12) }
        let data = LabeledImages(channels: 3, height: 5, width: 6, classes: 12, pixels: pixels, labels: labels,
                                 mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3])
        let names = (0..<12).map { String(format: "%02d", $0) }
        try ImageFolder.write(data, classNames: names, to: "\(root)/train", threads: 2)
        try ImageFolder.write(data, classNames: names, to: "\(root)/test", threads: 2)
        try ImageFolder.writeNormalization(mean: data.mean, std: data.std, to: root)
        let loaded = try ImageFolder.load(root)
        #expect(loaded.train.pixels == pixels && loaded.train.labels == labels)
        #expect(loaded.test.pixels == pixels && loaded.train.mean == data.mean && loaded.train.std == data.std)
        // Without the file: the training split's own statistics.
        try FileManager.default.removeItem(atPath: "\(root)/\(ImageFolder.normalizationFile)")
        let computed = try ImageFolder.load(root).train
        let red = stride(from: 0, to: pixels.count, by: 90).flatMap { pixels[$0..<($0 + 30)] }.map { Double($0) / 255 }
        let mean = red.reduce(0, +) / Double(red.count)
        let std = (red.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(red.count)).squareRoot()
        #expect(abs(Double(computed.mean[0]) - mean) < 1e-6 && abs(Double(computed.std[0]) - std) < 1e-6)
    }

    @Test func imagesAreConvertedToTheRequestedShape() throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["a", "b"] { try FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true) }
        for copy in ["1", "2"] {
            write(try ImageFolder.encodePNG(.init(pixels: Array(repeating: 200, count: 8 * 8 * 4), height: 8, width: 8, channels: 4)), to: "\(root)/a/x\(copy).png")
            write(try ImageFolder.encodeJPEG(.init(pixels: Array(repeating: 90, count: 3 * 5), height: 3, width: 5, channels: 1)), to: "\(root)/b/y\(copy).jpg")
        }
        var options = ImageFolder.Options()
        options.testFraction = 0.5
        options.size = (4, 4)
        let loaded = try ImageFolder.load(root, options: options)
        // Two images per class, one of each in each split: a color image makes the set 3-channel.
        let all = [loaded.train, loaded.test]
        #expect(all.allSatisfy { $0.channels == 3 && $0.height == 4 && $0.width == 4 })
        for split in all {
            #expect(split.classHistogram(0..<split.count) == [1, 1])
            for i in 0..<split.count {
                let image = split.pixels[(i * 48)..<(i * 48 + 48)]
                // Class a: RGBA 200 without its alpha; class b: gray JPEG 90, grown 3×5 → 4×4 and repeated into RGB.
                #expect(split.labels[i] == 0 ? image.allSatisfy { $0 == 200 } : image.allSatisfy { abs(Int($0) - 90) <= 1 })
            }
        }
        options.channels = 1
        #expect(try ImageFolder.load(root, options: options).train.channels == 1)
    }

    @Test func hostileFoldersAreRefusedNamingTheFile() throws {
        func expectFailure(_ setup: (String) -> Void, options: ImageFolder.Options = .init(), _ message: String) {
            let root = temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: root) }
            setup(root)
            do {
                _ = try ImageFolder.load(root, options: options)
                Issue.record("accepted: expected \(message)")
            } catch {
                #expect(error.description.contains(message.replacingOccurrences(of: "ROOT", with: root)), "\(error.description)")
            }
        }
        expectFailure({ _ in }, "no class folders")
        expectFailure({ folder(classes: ["only"], perClass: 3, in: $0) }, "one class folder (only)")
        expectFailure({ root in
            folder(classes: ["a", "b"], perClass: 3, in: root)
            try! FileManager.default.createDirectory(atPath: "\(root)/c", withIntermediateDirectories: true)
        }, "ROOT/c: an empty class folder")
        expectFailure({ root in
            folder(classes: ["a", "b"], perClass: 3, in: root)
            write(Array("notes".utf8), to: "\(root)/b/readme.txt")
        }, "ROOT/b/readme.txt: not a PNG or JPEG image")
        expectFailure({ root in
            folder(classes: ["a", "b"], perClass: 3, in: root)
            let png = try! ImageFolder.encodePNG(.init(pixels: Array(repeating: 1, count: 36), height: 6, width: 6, channels: 1))
            write(Array(png.prefix(40)), to: "\(root)/a/img1.png")
        }, "ROOT/a/img1.png: corrupt: PNG")
        expectFailure({ root in
            folder(classes: ["a", "b"], perClass: 3, in: root)
            write(try! ImageFolder.encodePNG(.init(pixels: Array(repeating: 1, count: 36), height: 6, width: 6, channels: 1)), to: "\(root)/b/big.png")
        }, "ROOT/a/img0.png is 4×4 but ROOT/b/big.png is 6×6")
        expectFailure({ root in
            for split in ["train", "test"] { folder(classes: ["a", "b"], perClass: 2, in: "\(root)/\(split)") }
            folder(classes: ["zzz"], perClass: 1, in: "\(root)/test")
        }, "ROOT/test/zzz: a test class that")
        expectFailure({ root in
            folder(classes: ["a", "b"], perClass: 3, in: root)
            write(Array("{\"mean\": [0.5]}".utf8), to: "\(root)/normalization.json")
        }, "ROOT/normalization.json: expected")
        expectFailure({ root in
            folder(classes: ["a", "b"], perClass: 3, in: root)
            write(Array("{\"mean\": [0.5, 0.5], \"std\": [1, 1]}".utf8), to: "\(root)/normalization.json")
        }, "needs 1 finite means")
        // Skipping: bad files are counted, not fatal, unless a class is left with nothing.
        var skipping = ImageFolder.Options()
        skipping.skipBadImages = true
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        folder(classes: ["a", "b"], perClass: 5, in: root)
        write([], to: "\(root)/a/empty.png")
        write(Array("x".utf8), to: "\(root)/b/x.jpg")
        let loaded = try ImageFolder.load(root, options: skipping)
        #expect(loaded.skipped.count == 2 && loaded.train.count + loaded.test.count == 10)
        expectFailure({ root in
            folder(classes: ["a", "b"], perClass: 2, in: root)
            try! FileManager.default.createDirectory(atPath: "\(root)/c", withIntermediateDirectories: true)
            write([], to: "\(root)/c/empty.png")
        }, options: skipping, "ROOT/c: no readable image left")
    }
}
