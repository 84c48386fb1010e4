import Engine

/// Scaled sign (EF-signSGD, Karimireddy et al. 2019): one bit per value, and per tensor of the
/// layout one scale `‖v‖₁ / n`, so each value is sent as `±scale` (zero counts as positive).
/// Biased on its own; meant to run with error feedback.
///
/// Payload: one fp32 scale per layout entry, then `⌈n/8⌉` bytes of sign bits (1 = negative).
public struct SignCodec: UpdateCodec {
    public init() {}
    public var spec: String { "sign" }

    public func writeDescriptor(to writer: inout ByteWriter) { writer.append(CodecTag.sign.rawValue) }

    public func encode(_ values: UnsafeBufferPointer<Float>, layout: ParameterLayout, state: inout [Float],
                       generator: inout SeededGenerator, into writer: inout ByteWriter) {
        precondition(values.count == layout.count)
        for entry in layout.entries {
            let tensor = UnsafeBufferPointer(rebasing: values[entry.range])
            writer.append(entry.count == 0 ? 0 : BLAS.absoluteSum(tensor) / Float(entry.count))
        }
        writer.appendBytes(count: (values.count + 7) / 8) { raw in
            var bits = BitWriter(raw)
            for value in values { bits.write(value < 0 ? 1 : 0, bits: 1) }
            bits.flush()
        }
    }

    public func decode(from reader: inout ByteReader, layout: ParameterLayout, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError) {
        precondition(output.count == layout.count)
        var scales = [Float]()
        for _ in layout.entries {
            let scale = try reader.readFloat()
            guard scale.isFinite, scale >= 0 else { throw .nonFinite }
            scales.append(scale)
        }
        try reader.readBytes(count: (output.count + 7) / 8) { raw in
            var bits = BitReader(raw)
            for (entry, scale) in zip(layout.entries, scales) {
                for i in entry.range { output[i] = bits.read(bits: 1) == 1 ? -scale : scale }
            }
        }
    }
}
