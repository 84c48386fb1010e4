/// An IDX file (the MNIST family's format): bytes 0-1 zero, byte 2 the element type, byte 3 the
/// number of dimensions, then each dimension as a big-endian UInt32, then the data row-major.
/// fedtrain reads unsigned-byte (type 0x08) files, which is what the data sets ship.
public struct IDXFile: Sendable {
    public var dimensions: [Int]
    public var data: [UInt8]

    static let typeNames: [UInt8: String] = [0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16",
                                             0x0C: "int32", 0x0D: "float32", 0x0E: "float64"]

    /// Reads `path`, decompressing it when it is gzip.
    public static func read(_ path: String) throws(DatasetError) -> IDXFile {
        let raw = try DatasetError.reading(path)
        let bytes = Gzip.hasMagic(raw) ? try Gzip.decompress(raw, path: path) : raw
        if path.hasSuffix(".gz") && !Gzip.hasMagic(raw) { throw .notGzip(path: path) }
        return try parse(bytes, path: path)
    }

    /// Parses IDX bytes; `path` names the source in errors.
    public static func parse(_ bytes: [UInt8], path: String) throws(DatasetError) -> IDXFile {
        guard bytes.count >= 4 else { throw .truncated(path: path, detail: "\(bytes.count) bytes, shorter than the 4-byte IDX magic") }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw .invalidFormat(path: path, detail: "wrong IDX magic \(bytes[0...3].map { String(format2: $0) }.joined(separator: " ")) (expected 00 00 08 NN)")
        }
        guard bytes[2] == 0x08 else {
            let name = typeNames[bytes[2]].map { " (\($0))" } ?? ""
            throw .invalidFormat(path: path, detail: "unsupported IDX element type 0x\(String(format2: bytes[2]))\(name); expected 0x08 (unsigned byte)")
        }
        let rank = Int(bytes[3])
        guard rank >= 1 else { throw .invalidFormat(path: path, detail: "IDX file declares 0 dimensions") }
        let headerSize = 4 + 4 * rank
        guard bytes.count >= headerSize else {
            throw .truncated(path: path, detail: "header needs \(headerSize) bytes for \(rank) dimensions, file has \(bytes.count)")
        }
        var dimensions: [Int] = []
        var total = 1
        for d in 0..<rank {
            let at = 4 + 4 * d
            let size = Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            guard !overflow, product <= Int(UInt32.max) * 16 else {
                throw .invalidFormat(path: path, detail: "dimensions \(dimensions + [size]) overflow")
            }
            total = product
            dimensions.append(size)
        }
        guard bytes.count - headerSize == total else {
            throw .invalidFormat(path: path, detail: "dimensions \(dimensions) need \(total) data bytes, file has \(bytes.count - headerSize)")
        }
        return IDXFile(dimensions: dimensions, data: Array(bytes[headerSize...]))
    }
}

extension String {
    /// Two-digit lowercase hex of a byte.
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}
