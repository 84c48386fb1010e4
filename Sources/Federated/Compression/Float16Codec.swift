import Engine

/// IEEE half precision (`2·n` bytes): relative error at most 2⁻¹¹ for magnitudes in
/// [6.1e-5, 65504]; smaller ones lose relative precision (subnormals, then zero), larger ones
/// saturate to ±65504 rather than becoming infinite.
public struct Float16Codec: ValueCodec {
    public init() {}
    public var spec: String { "fp16" }

    public func writeDescriptor(to writer: inout ByteWriter) { writer.append(CodecTag.fp16.rawValue) }

    public func encode(_ values: UnsafeBufferPointer<Float>, generator: inout SeededGenerator, into writer: inout ByteWriter) {
        writer.appendBytes(count: 2 * values.count) { raw in
            for i in 0..<values.count {
                let clamped = min(max(values[i], -65504), 65504)
                raw.storeBytes(of: Float16(clamped).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            }
        }
    }

    public func decode(from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError) {
        try reader.readBytes(count: 2 * output.count) { raw in
            for i in 0..<output.count {
                output[i] = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
            }
        }
    }
}
