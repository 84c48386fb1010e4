import Engine

/// bfloat16 (`2·n` bytes): the upper half of the fp32 bits, rounded to nearest even; fp32's
/// range with relative error at most 2⁻⁸.
public struct BFloat16Codec: ValueCodec {
    public init() {}
    public var spec: String { "bf16" }

    public func writeDescriptor(to writer: inout ByteWriter) { writer.append(CodecTag.bf16.rawValue) }

    public func encode(_ values: UnsafeBufferPointer<Float>, generator: inout SeededGenerator, into writer: inout ByteWriter) {
        writer.appendBytes(count: 2 * values.count) { raw in
            for i in 0..<values.count {
                let bits = values[i].bitPattern
                let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
                raw.storeBytes(of: UInt16(truncatingIfNeeded: rounded >> 16).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        }
    }

    public func decode(from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError) {
        try reader.readBytes(count: 2 * output.count) { raw in
            for i in 0..<output.count {
                let half = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                output[i] = Float(bitPattern: UInt32(half) << 16)
            }
        }
    }
}
