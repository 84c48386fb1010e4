/// Appends little-endian fields to a growing byte array: the one writer behind every message.
extension Array where Element == ArraySlice<UInt8> {
    /// The parts one after another in one array: one allocation of the total, one copy of each.
    public func joinedBytes() -> [UInt8] {
        var joined: [UInt8] = []
        joined.reserveCapacity(reduce(0) { $0 + $1.count })
        for part in self { joined += part }
        return joined
    }
}

public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public var count: Int { bytes.count }

    public mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func append(_ value: Float) { append(value.bitPattern) }

    public mutating func append(contentsOf other: [UInt8]) { bytes.append(contentsOf: other) }

    /// Appends `count` bytes that `body` fills (they start zeroed); for bulk kernels.
    public mutating func appendBytes(count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Void) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count))
        bytes.withUnsafeMutableBytes { body(UnsafeMutableRawBufferPointer(rebasing: $0[start..<(start + count)])) }
    }

    /// Overwrites the 4 bytes at `offset` (a length written before its contents were known).
    public mutating func patch(_ value: UInt32, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for k in 0..<4 { bytes[offset + k] = raw[k] }
        }
    }

    /// Appends `value` as a LEB128 varint (7 bits per byte, low groups first).
    public mutating func appendVarint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }
}

/// Reads little-endian fields from a byte range, throwing `MessageError.truncated` instead of
/// reading past its end; hostile input can make it throw, never crash.
public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var offset: Int
    public let end: Int

    public init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.offset = start
        self.end = end ?? bytes.count
        precondition(start >= 0 && start <= self.end && self.end <= bytes.count)
    }

    public var remaining: Int { end - offset }

    public mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws(MessageError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(bytes.count) }
        var value: T = 0
        for k in 0..<size { value |= T(bytes[offset + k]) << (8 * k) }
        offset += size
        return value
    }

    public mutating func readFloat() throws(MessageError) -> Float { Float(bitPattern: try read(UInt32.self)) }

    /// Reads a LEB128 varint of at most 10 bytes that fits in 64 bits.
    public mutating func readVarint() throws(MessageError) -> UInt64 {
        var value: UInt64 = 0
        for group in 0..<10 {
            let byte: UInt8 = try read()
            let bits = UInt64(byte & 0x7F)
            guard group < 9 || bits <= 1 else { throw .badField("varint overflows 64 bits") }
            value |= bits << (7 * group)
            if byte & 0x80 == 0 { return value }
        }
        throw .badField("varint longer than 10 bytes")
    }

    /// Hands `count` bytes to `body` and moves past them.
    public mutating func readBytes<R>(count: Int, _ body: (UnsafeRawBufferPointer) throws(MessageError) -> R) throws(MessageError) -> R {
        guard count >= 0, remaining >= count else { throw .truncated(bytes.count) }
        let start = offset
        offset += count
        // withUnsafeBytes rethrows untyped errors; carry the typed one out in a Result.
        let result: Result<R, MessageError> = bytes.withUnsafeBytes { raw in
            do throws(MessageError) { return .success(try body(UnsafeRawBufferPointer(rebasing: raw[start..<(start + count)]))) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Hands every remaining byte to `body`, which returns how many it used (a self-delimiting
    /// code such as Rice's), and moves past those.
    public mutating func readPrefix(_ body: (UnsafeRawBufferPointer) throws(MessageError) -> Int) throws(MessageError) {
        let start = offset
        let result: Result<Int, MessageError> = bytes.withUnsafeBytes { raw in
            do throws(MessageError) { return .success(try body(UnsafeRawBufferPointer(rebasing: raw[start..<end]))) } catch { return .failure(error) }
        }
        let used = try result.get()
        precondition(used >= 0 && used <= end - start)
        offset += used
    }
}
