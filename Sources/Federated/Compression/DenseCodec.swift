import Engine

/// No compression: every value as little-endian fp32 (`4·n` bytes). Exact.
public struct DenseCodec: ValueCodec {
    public init() {}
    public var spec: String { "fp32" }

    public func writeDescriptor(to writer: inout ByteWriter) { writer.append(CodecTag.fp32.rawValue) }

    public func encode(_ values: UnsafeBufferPointer<Float>, generator: inout SeededGenerator, into writer: inout ByteWriter) {
        writer.appendBytes(count: 4 * values.count) { raw in
            for i in 0..<values.count { raw.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
    }

    public func decode(from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError) {
        try reader.readBytes(count: 4 * output.count) { raw in
            for i in 0..<output.count {
                output[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        }
    }
}
