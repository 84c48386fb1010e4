import Engine

/// PowerSGD (Vogels et al. 2019): each weight matrix, and each conv kernel reshaped to
/// `outputs × (inputs·kh·kw)`, is sent as rank-r factors from one step of power iteration with a
/// warm start; vectors (biases) and tensors too small to gain go dense.
///
/// For a tensor `M` (`m×n`, `r = min(rank, m, n)`, factored when `(m+n)·r < m·n`): `P = M·Q`
/// with the sender's `Q` (`n×r`) from its previous message, `P ← orthonormal basis of P`
/// (LAPACKE QR), `Q ← Mᵀ·P`; the receiver rebuilds `M ≈ P·Qᵀ`, which is exact when
/// rank(M) ≤ r. The new `Q` stays in the sender's state (initially Gaussian).
///
/// Payload: all factors (per factored tensor in layout order, P then Q, row-major) coded by
/// `values`, then the dense tensors as fp32.
public struct PowerSGDCodec: UpdateCodec {
    public let rank: Int
    public let values: any ValueCodec

    public init(rank: Int, values: any ValueCodec = DenseCodec()) {
        precondition((1...255).contains(rank))
        self.rank = rank
        self.values = values
    }

    public var spec: String { "powersgd:\(rank)" + (values.isDense ? "" : "+\(values.spec)") }

    public func writeDescriptor(to writer: inout ByteWriter) {
        writer.append(CodecTag.powersgd.rawValue)
        writer.append(UInt8(rank))
        values.writeDescriptor(to: &writer)
    }

    /// A tensor sent as factors: rows × columns, rank `r`, where its Q lives in the state and
    /// its P and Q in the factor stream.
    struct Factored {
        var range: Range<Int>
        var rows: Int, columns: Int, r: Int
        var stateOffset: Int, factorOffset: Int
    }

    struct Plan {
        var factored: [Factored] = []
        var dense: [Range<Int>] = []
        var stateCount = 0, factorCount = 0, denseCount = 0
    }

    func plan(_ layout: ParameterLayout) -> Plan {
        var plan = Plan()
        for entry in layout.entries {
            let rows = entry.shape.first ?? 1, columns = rows == 0 ? 0 : entry.count / rows
            let r = min(rank, rows, columns)
            if entry.shape.count >= 2, r > 0, (rows + columns) * r < rows * columns {
                plan.factored.append(Factored(range: entry.range, rows: rows, columns: columns, r: r,
                                              stateOffset: plan.stateCount, factorOffset: plan.factorCount))
                plan.stateCount += columns * r
                plan.factorCount += (rows + columns) * r
            } else {
                plan.dense.append(entry.range)
                plan.denseCount += entry.count
            }
        }
        return plan
    }

    public var isStateful: Bool { true }

    public func initialState(layout: ParameterLayout, generator: inout SeededGenerator) -> [Float] {
        (0..<plan(layout).stateCount).map { _ in Float(generator.nextGaussian()) }
    }

    public func encode(_ input: UnsafeBufferPointer<Float>, layout: ParameterLayout, state: inout [Float],
                       generator: inout SeededGenerator, into writer: inout ByteWriter) {
        precondition(input.count == layout.count)
        let plan = plan(layout)
        precondition(state.count == plan.stateCount, "PowerSGD state does not fit the layout")
        var factors = [Float](repeating: 0, count: plan.factorCount)
        var tau = [Float](repeating: 0, count: rank)
        factors.withUnsafeMutableBufferPointer { f in
            state.withUnsafeMutableBufferPointer { q in
                for t in plan.factored {
                    let m = input.baseAddress! + t.range.lowerBound
                    let p = f.baseAddress! + t.factorOffset, newQ = p + t.rows * t.r
                    let oldQ = q.baseAddress! + t.stateOffset
                    BLAS.gemm(m: t.rows, n: t.r, k: t.columns, m, oldQ, p)
                    LAPACK.orthonormalizeColumns(rows: t.rows, columns: t.r, p, tau: &tau)
                    BLAS.gemm(transposeA: true, m: t.columns, n: t.r, k: t.rows, m, p, newQ)
                    // A zero tensor gives a zero Q; keep the old one so the next round can still find a subspace.
                    if UnsafeBufferPointer(start: newQ, count: t.columns * t.r).contains(where: { $0 != 0 }) {
                        oldQ.update(from: newQ, count: t.columns * t.r)
                    }
                }
            }
        }
        factors.withUnsafeBufferPointer { values.encode($0, generator: &generator, into: &writer) }
        for range in plan.dense { DenseCodec().encode(UnsafeBufferPointer(rebasing: input[range]), generator: &generator, into: &writer) }
    }

    public func decode(from reader: inout ByteReader, layout: ParameterLayout, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError) {
        precondition(output.count == layout.count)
        let plan = plan(layout)
        var factors = [Float](repeating: 0, count: plan.factorCount)
        try factors.withUnsafeMutableBufferPointer { buffer throws(MessageError) in try values.decode(from: &reader, into: buffer) }
        guard factors.allSatisfy(\.isFinite) else { throw .nonFinite }
        factors.withUnsafeBufferPointer { f in
            for t in plan.factored {
                let p = f.baseAddress! + t.factorOffset
                BLAS.gemm(transposeB: true, m: t.rows, n: t.columns, k: t.r, p, p + t.rows * t.r, output.baseAddress! + t.range.lowerBound)
            }
        }
        for range in plan.dense { try DenseCodec().decode(from: &reader, into: UnsafeMutableBufferPointer(rebasing: output[range])) }
    }
}
