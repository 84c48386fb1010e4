/// Writes fixed-width codes LSB-first into a byte buffer of exactly `⌈bits / 8⌉` bytes, the
/// packing of every sub-byte codec (QSGD levels, signs, Rice codes).
struct BitWriter {
    private let base: UnsafeMutableRawPointer
    private var accumulator: UInt64 = 0
    private var filled = 0
    private var position = 0

    init(_ buffer: UnsafeMutableRawBufferPointer) { base = buffer.baseAddress! }

    /// Appends the low `bits` bits of `value` (`bits` in 0...32, `value < 2^bits`).
    @inline(__always)
    mutating func write(_ value: UInt64, bits: Int) {
        accumulator |= value << UInt64(filled)
        filled += bits
        if filled >= 32 {
            base.storeBytes(of: UInt32(truncatingIfNeeded: accumulator).littleEndian, toByteOffset: position, as: UInt32.self)
            position += 4
            accumulator >>= 32
            filled -= 32
        }
    }

    /// Writes the last partial bytes; call once at the end.
    mutating func flush() {
        var rest = accumulator
        while filled > 0 {
            base.storeBytes(of: UInt8(truncatingIfNeeded: rest), toByteOffset: position, as: UInt8.self)
            position += 1
            rest >>= 8
            filled -= 8
        }
    }
}

/// Reads what `BitWriter` wrote. Reading past the end yields zero bits and sets `overran`, which
/// the caller checks once (hostile input must not crash, and per-read checks would be slow).
struct BitReader {
    private let base: UnsafeRawPointer
    private let byteCount: Int
    private var accumulator: UInt64 = 0
    private var available = 0
    private var position = 0
    private(set) var consumedBits = 0

    init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        byteCount = buffer.count
    }

    var overran: Bool { consumedBits > 8 * byteCount }

    /// Bytes holding the bits read so far.
    var consumedBytes: Int { (consumedBits + 7) / 8 }

    /// The next `bits` bits (0...32) as an integer.
    @inline(__always)
    mutating func read(bits: Int) -> UInt64 {
        if available < bits { refill() }
        let value = accumulator & ((1 << UInt64(bits)) &- 1)
        accumulator >>= UInt64(bits)
        available -= bits
        consumedBits += bits
        return value
    }

    private mutating func refill() {
        var word: UInt64 = 0
        if position + 4 <= byteCount {
            word = UInt64(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
        } else {
            for k in 0..<max(0, byteCount - position) {
                word |= UInt64(base.load(fromByteOffset: position + k, as: UInt8.self)) << UInt64(8 * k)
            }
        }
        position += 4
        accumulator |= word << UInt64(available)
        available += 32
    }
}
