/// Codes a strictly increasing set of `k` positions in `0..<n` in whichever of three forms is
/// smallest for its density, so sparse codecs pay close to the entropy of their positions:
///
///     mode u8 | k u32 | body
///     mode 0  bitmap: ⌈n/8⌉ bytes, bit i set for each position i (LSB first)
///     mode 1  varint: the gaps (first position, then position − previous − 1) as LEB128
///     mode 2  Rice:   parameter b u8, then per gap: ⌊gap / 2^b⌋ one-bits, a zero-bit, the low
///                     b bits (LSB first), padded to a byte
///
/// Decoding rejects positions out of range, a bitmap with the wrong population or bits past `n`,
/// and truncated bodies.
enum IndexCoding {
    static let headerSize = 5

    /// Exact size in bytes of the coding `encode` writes.
    static func encodedSize(_ positions: [UInt32], count n: Int) -> Int {
        headerSize + choose(positions, count: n).bytes
    }

    static func encode(_ positions: [UInt32], count n: Int, into writer: inout ByteWriter) {
        let choice = choose(positions, count: n)
        writer.append(choice.mode)
        writer.append(UInt32(positions.count))
        switch choice.mode {
        case 0:
            writer.appendBytes(count: (n + 7) / 8) { raw in
                for p in positions { raw[Int(p) >> 3] |= 1 << UInt8(p & 7) }
            }
        case 1:
            var previous: Int64 = -1
            for p in positions {
                writer.appendVarint(UInt64(Int64(p) - previous - 1))
                previous = Int64(p)
            }
        default:
            let b = choice.riceParameter
            writer.append(UInt8(b))
            writer.appendBytes(count: choice.bytes - 1) { raw in
                var bits = BitWriter(raw)
                var previous: Int64 = -1
                for p in positions {
                    let gap = UInt64(Int64(p) - previous - 1)
                    previous = Int64(p)
                    var quotient = gap >> UInt64(b)
                    while quotient >= 32 {
                        bits.write(0xFFFF_FFFF, bits: 32)
                        quotient -= 32
                    }
                    bits.write((1 << quotient) - 1, bits: Int(quotient))
                    bits.write(0, bits: 1)
                    bits.write(gap & ((1 << UInt64(b)) - 1), bits: b)
                }
                bits.flush()
            }
        }
    }

    /// Reads a coding of positions in `0..<n`; the positions come back strictly increasing.
    static func decode(from reader: inout ByteReader, count n: Int) throws(MessageError) -> [UInt32] {
        let mode: UInt8 = try reader.read()
        let k = Int(try reader.read(UInt32.self))
        guard k <= n else { throw .badField("\(k) positions for \(n) elements") }
        var positions = [UInt32]()
        positions.reserveCapacity(k)
        switch mode {
        case 0:
            try reader.readBytes(count: (n + 7) / 8) { raw throws(MessageError) in
                for byteIndex in 0..<raw.count {
                    var byte = raw[byteIndex]
                    while byte != 0 {
                        let position = byteIndex * 8 + byte.trailingZeroBitCount
                        guard position < n else { throw .badField("bitmap position \(position) >= \(n)") }
                        positions.append(UInt32(position))
                        byte &= byte - 1
                    }
                }
            }
            guard positions.count == k else { throw .badField("bitmap holds \(positions.count) positions, header says \(k)") }
        case 1:
            var next: UInt64 = 0
            for _ in 0..<k {
                let gap = try reader.readVarint()
                guard gap < UInt64(n), next + gap < UInt64(n) else { throw .badField("position out of range") }
                positions.append(UInt32(next + gap))
                next += gap + 1
            }
        case 2:
            let b = Int(try reader.read(UInt8.self))
            guard b <= 31 else { throw .badField("Rice parameter \(b)") }
            try reader.readPrefix { raw throws(MessageError) in
                var bits = BitReader(raw)
                var next: UInt64 = 0
                for _ in 0..<k {
                    var quotient: UInt64 = 0
                    while bits.read(bits: 1) == 1 {
                        quotient += 1
                        // Every gap is below n, so a longer run is corrupt (and would never end on zeros).
                        guard quotient << UInt64(b) < UInt64(n), !bits.overran else { throw .badField("Rice code out of range") }
                    }
                    let gap = quotient << UInt64(b) | bits.read(bits: b)
                    guard !bits.overran else { throw .truncated(raw.count) }
                    guard next + gap < UInt64(n) else { throw .badField("position out of range") }
                    positions.append(UInt32(next + gap))
                    next += gap + 1
                }
                return bits.consumedBytes
            }
        default:
            throw .badField("index coding mode \(mode)")
        }
        return positions
    }

    private struct Choice { var mode: UInt8; var bytes: Int; var riceParameter: Int }

    private static func choose(_ positions: [UInt32], count n: Int) -> Choice {
        let k = positions.count
        var best = Choice(mode: 0, bytes: (n + 7) / 8, riceParameter: 0)
        var varintBytes = 0
        var gapSum: UInt64 = 0
        var previous: Int64 = -1
        for p in positions {
            let gap = UInt64(Int64(p) - previous - 1)
            previous = Int64(p)
            gapSum += gap
            varintBytes += gap < 1 << 7 ? 1 : gap < 1 << 14 ? 2 : gap < 1 << 21 ? 3 : gap < 1 << 28 ? 4 : 5
        }
        if varintBytes < best.bytes { best = Choice(mode: 1, bytes: varintBytes, riceParameter: 0) }
        guard k > 0 else { return best }
        // The optimal Rice parameter is near log2 of the mean gap; try its neighbourhood exactly.
        let mean = Double(gapSum) / Double(k)
        let center = mean < 1 ? 0 : Int(log2(mean))
        for b in max(0, center - 2)...min(31, center + 2) {
            var bits = 0
            previous = -1
            for p in positions {
                let gap = UInt64(Int64(p) - previous - 1)
                previous = Int64(p)
                bits += Int(gap >> UInt64(b)) + 1 + b
            }
            let bytes = 1 + (bits + 7) / 8
            if bytes < best.bytes { best = Choice(mode: 2, bytes: bytes, riceParameter: b) }
        }
        return best
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
