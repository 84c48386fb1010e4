import Engine

/// Top-k sparsification: keeps the `round(fraction·n)` (at least one) values of largest magnitude,
/// exactly (ties to the lower position), and drops the rest; with error feedback the dropped
/// part is sent later (Deep Gradient Compression, Lin et al. 2018).
///
/// Payload: the kept positions (`IndexCoding`: bitmap, varint or Rice gaps, whichever is
/// smallest), then the kept values in position order, coded by `values` (fp32 by default).
public struct TopKCodec: ValueCodec {
    public let fraction: Float
    public let values: any ValueCodec

    public init(fraction: Float, values: any ValueCodec = DenseCodec()) {
        precondition(fraction > 0 && fraction <= 1)
        self.fraction = fraction
        self.values = values
    }

    public var spec: String { "topk:\(fraction)" + (values.isDense ? "" : "+\(values.spec)") }

    /// Values kept out of `n`: `round(fraction·n)`, at least one. (Rounding, not ceiling, so a
    /// fraction such as 0.1, which fp32 stores slightly above 0.1, keeps 100 of 1000.)
    public func keptCount(_ n: Int) -> Int {
        n == 0 ? 0 : min(n, max(1, Int((Double(fraction) * Double(n)).rounded())))
    }

    public func writeDescriptor(to writer: inout ByteWriter) {
        writer.append(CodecTag.topk.rawValue)
        writer.append(fraction)
        values.writeDescriptor(to: &writer)
    }

    public func encode(_ input: UnsafeBufferPointer<Float>, generator: inout SeededGenerator, into writer: inout ByteWriter) {
        let positions = TopKSelection.largestMagnitudes(input, k: keptCount(input.count))
        IndexCoding.encode(positions, count: input.count, into: &writer)
        let kept = positions.map { input[Int($0)] }
        kept.withUnsafeBufferPointer { values.encode($0, generator: &generator, into: &writer) }
    }

    public func decode(from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError) {
        let positions = try IndexCoding.decode(from: &reader, count: output.count)
        guard positions.count == keptCount(output.count) else {
            throw .badField("top-k holds \(positions.count) values, expected \(keptCount(output.count))")
        }
        var kept = [Float](repeating: 0, count: positions.count)
        try kept.withUnsafeMutableBufferPointer { buffer throws(MessageError) in try values.decode(from: &reader, into: buffer) }
        output.update(repeating: 0)
        for (position, value) in zip(positions, kept) { output[Int(position)] = value }
    }
}
