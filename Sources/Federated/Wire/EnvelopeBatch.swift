/// Several envelopes in one message: the tasks a client process receives for the clients it
/// hosts in one poll. Each envelope keeps its own checksum; the batch adds none.
///
/// Layout (little-endian): magic "FTEB", format version (2), count n (4), then n times: length
/// (4) and that many bytes.
public enum EnvelopeBatch {
    public static let magic: [UInt8] = Array("FTEB".utf8)
    public static let version: UInt16 = 1

    public static func encode(_ envelopes: [[UInt8]]) -> [UInt8] {
        parts(envelopes.map { [$0[...]] }).joinedBytes()
    }

    /// The batch of `envelopes` (each given as consecutive parts) as consecutive parts: the
    /// envelopes' own (not copied) between the small parts the batch adds, for a sender that
    /// streams it.
    public static func parts(_ envelopes: [[ArraySlice<UInt8>]]) -> [ArraySlice<UInt8>] {
        var writer = ByteWriter(capacity: 10)
        writer.append(contentsOf: magic)
        writer.append(version)
        writer.append(UInt32(envelopes.count))
        var parts: [ArraySlice<UInt8>] = []
        for envelope in envelopes {
            let count = envelope.reduce(0) { $0 + $1.count }
            precondition(count <= Int(UInt32.max))
            writer.append(UInt32(count))
            parts += [writer.bytes[...]] + envelope
            writer = ByteWriter(capacity: 4)
        }
        return parts + (writer.bytes.isEmpty ? [] : [writer.bytes[...]])
    }

    /// Splits a batch, checking every declared length against the bytes present before
    /// allocating for it.
    public static func decode(_ bytes: [UInt8]) throws(MessageError) -> [[UInt8]] {
        guard bytes.count >= 10 else { throw .truncated(bytes.count) }
        guard Array(bytes[0..<4]) == magic else { throw .badMagic }
        var reader = ByteReader(bytes, from: 4)
        let version: UInt16 = try reader.read()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let count = Int(try reader.read(UInt32.self))
        guard count <= reader.remaining / 4 else { throw .badField("batch declares \(count) envelopes in \(reader.remaining) bytes") }
        var envelopes: [[UInt8]] = []
        envelopes.reserveCapacity(count)
        for _ in 0..<count {
            let length = Int(try reader.read(UInt32.self))
            guard length <= reader.remaining else { throw .badField("batch envelope declares \(length) bytes, \(reader.remaining) remain") }
            envelopes.append(try reader.readBytes(count: length) { Array($0) })
        }
        guard reader.remaining == 0 else { throw .badField("batch has \(reader.remaining) trailing bytes") }
        return envelopes
    }
}
