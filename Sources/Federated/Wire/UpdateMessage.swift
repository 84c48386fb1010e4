import CChecksum
import Engine

/// The one wire format for vectors between server and clients (models and their changes down,
/// updates up), versioned. All byte counts in metrics are this format's real length.
///
/// Layout (little-endian):
///
///     offset  size  field
///     0       4     magic "FTUM"
///     4       2     format version (2)
///     6       1     kind (0 model, 1 update, 2 control variate, 3 model change)
///     7       1     descriptor length d
///     8       8     parameter-layout fingerprint
///     16      4     element count
///     20      4     round
///     24      4     payload length p
///     28      d     codec descriptor: tag and parameters (`UpdateCodec.writeDescriptor`)
///     28+d    p     codec payload
///     28+d+p  4     CRC-32 (zlib) of every byte before it
///
/// Decoding checks every field (and the codec its payload: positions, counts, lengths, finite
/// values) and rejects anything else with a typed error, so a bad message never reaches a model.
public struct UpdateMessage: Sendable {
    public enum Kind: UInt8, Sendable { case model = 0, update = 1, control = 2, modelChange = 3 }

    public static let magic: [UInt8] = Array("FTUM".utf8)
    public static let version: UInt16 = 2
    public static let headerSize = 28
    public static let checksumSize = 4

    public var kind: Kind
    public var round: Int
    /// The decoded vector.
    public var values: [Float]
    /// The codec the sender used.
    public var codec: any UpdateCodec

    /// Encodes `values` (laid out as `layout`) with `codec`, whose sender `state` it updates.
    public static func encode(
        _ values: UnsafeBufferPointer<Float>, kind: Kind, round: Int, layout: ParameterLayout,
        codec: any UpdateCodec, state: inout [Float], generator: inout SeededGenerator
    ) -> [UInt8] {
        precondition(values.count == layout.count && values.count <= Int(UInt32.max) && round <= Int(UInt32.max))
        var descriptor = ByteWriter()
        codec.writeDescriptor(to: &descriptor)
        var writer = ByteWriter(capacity: headerSize + descriptor.count + 4 * values.count + checksumSize)
        writer.append(contentsOf: magic)
        writer.append(version)
        writer.append(kind.rawValue)
        writer.append(UInt8(descriptor.count))
        writer.append(layout.fingerprint)
        writer.append(UInt32(values.count))
        writer.append(UInt32(round))
        writer.append(UInt32(0))
        writer.append(contentsOf: descriptor.bytes)
        let payloadStart = writer.count
        codec.encode(values, layout: layout, state: &state, generator: &generator, into: &writer)
        writer.patch(UInt32(writer.count - payloadStart), at: 24)
        writer.append(checksum(writer.bytes[...]))
        return writer.bytes
    }

    /// Encodes `values` uncompressed (fp32).
    public static func encodeDense(_ values: [Float], kind: Kind, round: Int, layout: ParameterLayout) -> [UInt8] {
        var state: [Float] = [], generator = SeededGenerator(seed: 0)
        return values.withUnsafeBufferPointer {
            encode($0, kind: kind, round: round, layout: layout, codec: DenseCodec(), state: &state, generator: &generator)
        }
    }

    /// Size of a dense (fp32) message of `count` elements.
    public static func denseSize(count: Int) -> Int { headerSize + 1 + 4 * count + checksumSize }

    /// Parses and validates `bytes` for a model laid out as `layout`.
    public static func decode(_ bytes: [UInt8], layout: ParameterLayout) throws(MessageError) -> UpdateMessage {
        guard bytes.count >= headerSize + checksumSize else { throw .truncated(bytes.count) }
        guard Array(bytes[0..<4]) == magic else { throw .badMagic }
        var header = ByteReader(bytes, from: 4)
        let version: UInt16 = try header.read()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        var trailer = ByteReader(bytes, from: bytes.count - checksumSize)
        let storedChecksum = try trailer.read(UInt32.self)
        guard storedChecksum == checksum(bytes[..<(bytes.count - checksumSize)]) else { throw .badChecksum }
        guard let kind = Kind(rawValue: try header.read()) else { throw .badField("kind") }
        let descriptorLength = Int(try header.read(UInt8.self))
        guard try header.read(UInt64.self) == layout.fingerprint else { throw .wrongLayout }
        let count = Int(try header.read(UInt32.self)), round = Int(try header.read(UInt32.self))
        let payloadLength = Int(try header.read(UInt32.self))
        guard count == layout.count else { throw .wrongElementCount(count, expected: layout.count) }
        let payloadStart = headerSize + descriptorLength
        guard payloadStart + payloadLength + checksumSize == bytes.count else {
            throw .badField("lengths (descriptor \(descriptorLength), payload \(payloadLength)) do not add up to \(bytes.count) bytes")
        }
        var descriptor = ByteReader(bytes, from: headerSize, to: payloadStart)
        let codec = try CodecRegistry.codec(from: &descriptor)
        guard descriptor.remaining == 0 else { throw .badField("descriptor has \(descriptor.remaining) trailing bytes") }
        var payload = ByteReader(bytes, from: payloadStart, to: payloadStart + payloadLength)
        var values = [Float](repeating: 0, count: count)
        try values.withUnsafeMutableBufferPointer { buffer throws(MessageError) in try codec.decode(from: &payload, layout: layout, into: buffer) }
        guard payload.remaining == 0 else { throw .badField("payload has \(payload.remaining) trailing bytes") }
        guard VectorKernels.allFinite(values) else { throw .nonFinite }
        return UpdateMessage(kind: kind, round: round, values: values, codec: codec)
    }

    /// CRC-32 (zlib's) of `bytes`; with `continuing`, of the bytes before them followed by these.
    public static func checksum(_ bytes: ArraySlice<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        fedtrain_crc32(crc, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// The checksum of A followed by B, from A's checksum, B's and B's length (no byte read).
    public static func checksum(combining first: UInt32, _ second: UInt32, secondLength: Int) -> UInt32 {
        fedtrain_crc32_combine(first, second, secondLength)
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
    case wrongElementCount(Int, expected: Int)
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
        case .wrongElementCount(let count, let expected): return "message holds \(count) values, the model \(expected)"
        case .badField(let field): return "invalid message field: \(field)"
        case .nonFinite: return "message holds NaN or infinite values"
        }
    }
}
