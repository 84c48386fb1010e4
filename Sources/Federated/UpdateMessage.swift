import CZlib
import Engine

/// The one wire format for vectors between server and clients (models down, updates up),
/// versioned. All byte counts in metrics are this format's real length.
///
/// Layout (little-endian):
///
///     offset  size  field
///     0       4     magic "FTUM"
///     4       2     format version (1)
///     6       2     codec tag (0 = dense fp32)
///     8       4     kind (0 = model, 1 = update, 2 = control variate)
///     12      8     parameter-layout fingerprint
///     20      8     element count
///     28      8     round
///     36      8     payload length in bytes
///     44      n     codec payload (dense fp32: element count × 4 bytes)
///     44+n    4     CRC-32 (zlib) of bytes 0..<44+n
///
/// Decoding checks every field and rejects anything else with a typed error, so a bad message
/// never reaches the model.
public struct UpdateMessage: Sendable, Equatable {
    public enum Kind: UInt32, Sendable { case model = 0, update = 1, control = 2 }

    public static let magic: [UInt8] = Array("FTUM".utf8)
    public static let version: UInt16 = 1
    public static let headerSize = 44
    public static let denseCodec: UInt16 = 0

    public var kind: Kind
    public var layoutFingerprint: UInt64
    public var round: Int
    public var values: [Float]

    public init(kind: Kind, layoutFingerprint: UInt64, round: Int, values: [Float]) {
        self.kind = kind
        self.layoutFingerprint = layoutFingerprint
        self.round = round
        self.values = values
    }

    /// Size of the encoded message for `count` dense elements.
    public static func encodedSize(count: Int) -> Int { headerSize + 4 * count + 4 }

    public func encoded() -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.encodedSize(count: values.count))
        bytes += Self.magic
        append(&bytes, Self.version)
        append(&bytes, Self.denseCodec)
        append(&bytes, kind.rawValue)
        append(&bytes, layoutFingerprint)
        append(&bytes, UInt64(values.count))
        append(&bytes, UInt64(round))
        append(&bytes, UInt64(4 * values.count))
        for value in values { append(&bytes, value.bitPattern) }
        append(&bytes, Self.checksum(bytes[...]))
        return bytes
    }

    /// Parses and validates `bytes` for a model whose layout has `fingerprint` and `count` elements.
    public static func decode(_ bytes: [UInt8], fingerprint: UInt64, count: Int) throws(MessageError) -> UpdateMessage {
        guard bytes.count >= headerSize + 4 else { throw .truncated(bytes.count) }
        guard Array(bytes[0..<4]) == magic else { throw .badMagic }
        let version: UInt16 = read(bytes, 4)
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let codec: UInt16 = read(bytes, 6)
        guard codec == denseCodec else { throw .unsupportedCodec(codec) }
        let stored: UInt32 = read(bytes, bytes.count - 4)
        guard stored == checksum(bytes[..<(bytes.count - 4)]) else { throw .badChecksum }
        guard let kind = Kind(rawValue: read(bytes, 8)) else { throw .badField("kind") }
        let layout: UInt64 = read(bytes, 12)
        guard layout == fingerprint else { throw .wrongLayout }
        let elements: UInt64 = read(bytes, 20), round: UInt64 = read(bytes, 28), payload: UInt64 = read(bytes, 36)
        guard elements == UInt64(count) else { throw .badField("element count \(elements), expected \(count)") }
        guard round <= UInt64(Int.max) else { throw .badField("round") }
        guard payload == 4 * elements, bytes.count == headerSize + Int(payload) + 4 else {
            throw .badField("payload length \(payload) for \(bytes.count) bytes")
        }
        var values = [Float](repeating: 0, count: count)
        for index in 0..<count {
            let bits: UInt32 = read(bytes, headerSize + 4 * index)
            values[index] = Float(bitPattern: bits)
        }
        guard values.allSatisfy(\.isFinite) else { throw .nonFinite }
        return UpdateMessage(kind: kind, layoutFingerprint: layout, round: Int(round), values: values)
    }

    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        bytes.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
    }

    private func append<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    private static func read<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int) -> T {
        var value: T = 0
        for k in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + k]) << (8 * k) }
        return value
    }
}

/// Why a message was rejected.
public enum MessageError: Error, Equatable, CustomStringConvertible, Sendable {
    case truncated(Int)
    case badMagic
    case unsupportedVersion(UInt16)
    case unsupportedCodec(UInt16)
    case badChecksum
    case wrongLayout
    case badField(String)
    case nonFinite

    public var description: String {
        switch self {
        case .truncated(let count): return "message truncated (\(count) bytes)"
        case .badMagic: return "not an fedtrain message (bad magic)"
        case .unsupportedVersion(let version): return "unsupported message format version \(version)"
        case .unsupportedCodec(let codec): return "unsupported codec \(codec)"
        case .badChecksum: return "message checksum mismatch"
        case .wrongLayout: return "message is for another model (parameter layout differs)"
        case .badField(let field): return "invalid message field: \(field)"
        case .nonFinite: return "message holds NaN or infinite values"
        }
    }
}
