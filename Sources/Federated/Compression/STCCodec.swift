import Engine

/// Sparse Ternary Compression (Sattler et al. 2019): top-k by magnitude as in `TopKCodec`, then
/// every kept value becomes `±μ`, with `μ` the mean magnitude of the kept values.
///
/// Payload: `μ` (fp32), the kept positions (`IndexCoding`), then one sign bit per kept value in
/// position order (1 = negative), `⌈k/8⌉` bytes.
public struct STCCodec: ValueCodec {
    public let fraction: Float

    public init(fraction: Float) {
        precondition(fraction > 0 && fraction <= 1)
        self.fraction = fraction
    }

    public var spec: String { "stc:\(fraction)" }

    public func writeDescriptor(to writer: inout ByteWriter) {
        writer.append(CodecTag.stc.rawValue)
        writer.append(fraction)
    }

    private var selection: TopKCodec { TopKCodec(fraction: fraction) }

    public func encode(_ input: UnsafeBufferPointer<Float>, generator: inout SeededGenerator, into writer: inout ByteWriter) {
        let positions = TopKSelection.largestMagnitudes(input, k: selection.keptCount(input.count))
        var sum = 0.0
        for p in positions { sum += Double(abs(input[Int(p)])) }
        writer.append(positions.isEmpty ? 0 : Float(sum / Double(positions.count)))
        IndexCoding.encode(positions, count: input.count, into: &writer)
        writer.appendBytes(count: (positions.count + 7) / 8) { raw in
            for (j, p) in positions.enumerated() where input[Int(p)] < 0 { raw[j >> 3] |= 1 << UInt8(j & 7) }
        }
    }

    public func decode(from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError) {
        let mu = try reader.readFloat()
        guard mu.isFinite, mu >= 0 else { throw .nonFinite }
        let positions = try IndexCoding.decode(from: &reader, count: output.count)
        guard positions.count == selection.keptCount(output.count) else {
            throw .badField("stc holds \(positions.count) values, expected \(selection.keptCount(output.count))")
        }
        output.update(repeating: 0)
        try reader.readBytes(count: (positions.count + 7) / 8) { raw in
            for (j, p) in positions.enumerated() { output[Int(p)] = raw[j >> 3] >> UInt8(j & 7) & 1 == 1 ? -mu : mu }
        }
    }
}
