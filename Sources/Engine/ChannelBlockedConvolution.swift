/// Direct forward and weight-gradient kernels for stride-1 convolutions with a multiple of 16
/// output channels and more than one input channel (LeNet's conv2: 6 → 16, 5×5 on 14×14).
///
/// Why: the column matrix of such a layer is 150 × 100 floats per image; building it (im2col),
/// OpenBLAS packing it again, and the GEMM call overheads cost about a third of the GEMM time.
/// These kernels read the (padded) image in place instead. Tap `t = (c, ky, kx)` at output
/// position `p = (oy, ox)` reads `padded[base(t) + q(p)]` with `base(t) = (c·Hp + ky)·Wp + kx` and
/// `q(p) = oy·Wp + ox`, so the column matrix is never built.
///
/// Both kernels vectorize over 16 output channels (one AVX-512 register or two AVX2 ones, every
/// lane useful whatever the image width): per step, one weight (or `dY`) vector load and one
/// scalar broadcast per position (or tap) feed one 16-lane FMA each, with all sums in registers.
/// - Forward: 6 output positions at a time (8 with AVX-512), summed over all taps; written
///   position-major to a tile and transposed into the CHW output. The weights come packed in
///   16-channel panels (`packWeightPanels`), so a block streams one contiguous panel: read from
///   `Wᵀ` (`patchSize × outputChannels`), each tap's 64 bytes sat 256 bytes apart for 64 output
///   channels, which folds a block's weights onto a quarter of L1's sets; with 4 positions a
///   block as well, the kernel ran about a third slower (32 → 64 channels on 14×14, one core).
/// - Weight gradient: 6 taps at a time (12 with AVX-512), summed over all positions, from `dY`
///   transposed to position-major; accumulated into `dWᵀ` (`taps × outputChannels`).
/// A short last block repeats its last position or tap (so no read leaves the image) and stores
/// only the real ones.
public enum ChannelBlockedConvolution {
    static let channelBlock = 16
    /// Output positions per forward block, one 16-float sum each: 6 (12 of the 16 AVX2
    /// registers; with packed weights, measured faster than 4 on fedavg-cnn's conv2 in both
    /// directions, docs/models.md), or 8 with 32 wide registers.
    static func positionBlock(wide: Bool) -> Int { wide ? 8 : 6 }
    /// Taps per weight-gradient block: 6 sums (12 AVX2 registers), or 12 with wide registers.
    static func tapBlock(wide: Bool) -> Int { wide ? 12 : 6 }

    /// Whether these kernels handle this geometry with `outputChannels`.
    public static func applies(_ g: ConvolutionGeometry, outputChannels: Int) -> Bool {
        g.stride == 1 && g.channels > 1 && outputChannels % channelBlock == 0 && g.patchSize >= channelBlock
    }

    /// `W` (`outputChannels × patchSize`, row-major) packed into 16-channel panels:
    /// `panels[(o / 16)·patchSize·16 + t·16 + o % 16] = W[o, t]`, each panel the transpose of 16 rows.
    /// Overwrites `outputChannels × patchSize` floats of `panels`.
    public static func packWeightPanels(_ weight: UnsafePointer<Float>, outputChannels: Int, patchSize: Int,
                                        into panels: UnsafeMutablePointer<Float>) {
        precondition(outputChannels % channelBlock == 0)
        for first in stride(from: 0, to: outputChannels, by: channelBlock) {
            BLAS.transpose(rows: channelBlock, columns: patchSize, weight + first * patchSize, panels + first * patchSize)
        }
    }

    /// `y[o, p] = bias[o] + Σ_t W[o, t] · padded[base(t) + q(p)]`; overwrites `y`
    /// (`outputChannels × oH × oW`). `weightPanels` is `W` packed by `packWeightPanels`;
    /// `padded` is the zero-padded image (`channels × Hp × Wp`, or the image itself when the layer
    /// has no padding); `tile` is scratch of `outputPositions × 16` floats (overwritten).
    /// `wide` picks the register blocking (nil: `VectorKernels.wideRegisters`; tests check both);
    /// both give the same sums in the same order.
    public static func forward(_ g: ConvolutionGeometry, outputChannels: Int, padded: UnsafePointer<Float>,
                               weightPanels: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               y: UnsafeMutablePointer<Float>, tile: UnsafeMutablePointer<Float>,
                               wide: Bool? = nil) {
        precondition(applies(g, outputChannels: outputChannels))
        // One copy of the loop per blocking, each with its block size a constant.
        if wide ?? VectorKernels.wideRegisters {
            if outputChannels % (2 * channelBlock) == 0 {
                forwardPaired(g, outputChannels, padded, weightPanels, bias, y)
            } else {
                forward(g, outputChannels, padded, weightPanels, bias, y, tile, wide: true)
            }
        } else {
            forward(g, outputChannels, padded, weightPanels, bias, y, tile, wide: false)
        }
    }

    @inline(__always)
    private static func forward(_ g: ConvolutionGeometry, _ outputChannels: Int, _ padded: UnsafePointer<Float>,
                                _ weightPanels: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                                _ y: UnsafeMutablePointer<Float>, _ tile: UnsafeMutablePointer<Float>, wide: Bool) {
        let positionBlock = positionBlock(wide: wide)
        let k = g.kernelSize, Wp = g.paddedWidth, plane = g.paddedHeight * Wp
        let oW = g.outputWidth, P = g.outputPositions
        for firstChannel in stride(from: 0, to: outputChannels, by: channelBlock) {
            let weights = weightPanels + firstChannel * g.patchSize
            for p0 in stride(from: 0, to: P, by: positionBlock) {
                // Loaded per block, not hoisted: held across the tap loop it would push
                // sums out of the 16 AVX2 registers.
                let b = VectorKernels.load(bias + firstChannel, as: SIMD16<Float>.self)
                func q(_ j: Int) -> Int { let p = min(p0 + j, P - 1); return (p / oW) * Wp + p % oW }
                let q0 = q(0), q1 = q(1), q2 = q(2), q3 = q(3), q4 = q(4), q5 = q(5), q6 = q(6), q7 = q(7)
                var a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b
                // Pointers stepped tap by tap: indices multiplied in the loop cost an overflow-
                // checked multiply and two checked increments per tap, as many scalar
                // instructions as the tap's loads, on the 5-iteration inner loop.
                var tapWeights = weights, channelPlane = padded
                for _ in 0..<g.channels {
                    var row = channelPlane
                    for _ in 0..<k {
                        var x = row
                        for _ in 0..<k {
                            let w = VectorKernels.load(tapWeights, as: SIMD16<Float>.self)
                            a0 = a0.addingProduct(w, x[q0])
                            a1 = a1.addingProduct(w, x[q1])
                            a2 = a2.addingProduct(w, x[q2])
                            a3 = a3.addingProduct(w, x[q3])
                            a4 = a4.addingProduct(w, x[q4])
                            a5 = a5.addingProduct(w, x[q5])
                            if wide {
                                a6 = a6.addingProduct(w, x[q6])
                                a7 = a7.addingProduct(w, x[q7])
                            }
                            tapWeights += channelBlock
                            x += 1
                        }
                        row += Wp
                    }
                    channelPlane += plane
                }
                let count = min(positionBlock, P - p0), out = tile + p0 * channelBlock
                VectorKernels.store(a0, out)
                if count > 1 { VectorKernels.store(a1, out + channelBlock) }
                if count > 2 { VectorKernels.store(a2, out + 2 * channelBlock) }
                if count > 3 { VectorKernels.store(a3, out + 3 * channelBlock) }
                if count > 4 { VectorKernels.store(a4, out + 4 * channelBlock) }
                if count > 5 { VectorKernels.store(a5, out + 5 * channelBlock) }
                if count > 6 { VectorKernels.store(a6, out + 6 * channelBlock) }
                if count > 7 { VectorKernels.store(a7, out + 7 * channelBlock) }
            }
            BLAS.transpose(rows: P, columns: channelBlock, tile, y + firstChannel * P)
        }
    }

    /// The wide forward for a multiple of 32 output channels: two 16-channel blocks at once, so
    /// each broadcast input value feeds two FMAs (16 sums of 8 positions × 2 blocks in the 32
    /// registers). Every output's sum runs over the taps in the same order as `forward`'s, so the
    /// results are the same bit for bit.
    private static func forwardPaired(_ g: ConvolutionGeometry, _ outputChannels: Int, _ padded: UnsafePointer<Float>,
                                      _ weightPanels: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                                      _ y: UnsafeMutablePointer<Float>) {
        let positionBlock = 8, k = g.kernelSize, Wp = g.paddedWidth, plane = g.paddedHeight * Wp
        let oW = g.outputWidth, P = g.outputPositions, panel = g.patchSize * channelBlock
        for firstChannel in stride(from: 0, to: outputChannels, by: 2 * channelBlock) {
            let weights = weightPanels + firstChannel * g.patchSize
            for p0 in stride(from: 0, to: P, by: positionBlock) {
                let b = VectorKernels.load(bias + firstChannel, as: SIMD16<Float>.self)
                let c = VectorKernels.load(bias + firstChannel + channelBlock, as: SIMD16<Float>.self)
                func q(_ j: Int) -> Int { let p = min(p0 + j, P - 1); return (p / oW) * Wp + p % oW }
                let q0 = q(0), q1 = q(1), q2 = q(2), q3 = q(3), q4 = q(4), q5 = q(5), q6 = q(6), q7 = q(7)
                var a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b
                var d0 = c, d1 = c, d2 = c, d3 = c, d4 = c, d5 = c, d6 = c, d7 = c
                var tapWeights = weights, channelPlane = padded
                for _ in 0..<g.channels {
                    var row = channelPlane
                    for _ in 0..<k {
                        var x = row
                        for _ in 0..<k {
                            let w = VectorKernels.load(tapWeights, as: SIMD16<Float>.self)
                            let v = VectorKernels.load(tapWeights + panel, as: SIMD16<Float>.self)
                            let x0 = x[q0], x1 = x[q1], x2 = x[q2], x3 = x[q3], x4 = x[q4], x5 = x[q5], x6 = x[q6], x7 = x[q7]
                            a0 = a0.addingProduct(w, x0); d0 = d0.addingProduct(v, x0)
                            a1 = a1.addingProduct(w, x1); d1 = d1.addingProduct(v, x1)
                            a2 = a2.addingProduct(w, x2); d2 = d2.addingProduct(v, x2)
                            a3 = a3.addingProduct(w, x3); d3 = d3.addingProduct(v, x3)
                            a4 = a4.addingProduct(w, x4); d4 = d4.addingProduct(v, x4)
                            a5 = a5.addingProduct(w, x5); d5 = d5.addingProduct(v, x5)
                            a6 = a6.addingProduct(w, x6); d6 = d6.addingProduct(v, x6)
                            a7 = a7.addingProduct(w, x7); d7 = d7.addingProduct(v, x7)
                            tapWeights += channelBlock
                            x += 1
                        }
                        row += Wp
                    }
                    channelPlane += plane
                }
                // Straight into the CHW output through a 256-float stack block (no tile: a layer's
                // scratch holds one 16-channel tile, and the scatter costs little beside the FMAs).
                let count = min(positionBlock, P - p0)
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * positionBlock * channelBlock) { block in
                    let out = block.baseAddress!
                    VectorKernels.store(a0, out); VectorKernels.store(a1, out + 16); VectorKernels.store(a2, out + 32)
                    VectorKernels.store(a3, out + 48); VectorKernels.store(a4, out + 64); VectorKernels.store(a5, out + 80)
                    VectorKernels.store(a6, out + 96); VectorKernels.store(a7, out + 112); VectorKernels.store(d0, out + 128)
                    VectorKernels.store(d1, out + 144); VectorKernels.store(d2, out + 160); VectorKernels.store(d3, out + 176)
                    VectorKernels.store(d4, out + 192); VectorKernels.store(d5, out + 208); VectorKernels.store(d6, out + 224)
                    VectorKernels.store(d7, out + 240)
                    for half in 0..<2 {
                        for j in 0..<count {
                            let sums = out + (half * positionBlock + j) * channelBlock
                            let target = y + (firstChannel + half * channelBlock) * P + p0 + j
                            for lane in 0..<channelBlock { target[lane * P] = sums[lane] }
                        }
                    }
                }
            }
        }
    }

    /// **Adds** `weightGradientTransposed[t, o] += Σ_p padded[base(t) + q(p)] · dyTransposed[p, o]`
    /// for every tap `t` and output channel `o`. `dyTransposed` is `dYᵀ` (`outputPositions ×
    /// outputChannels`); `weightGradientTransposed` is `patchSize × outputChannels`; `padded` as in
    /// `forward`.
    /// `wide` as in `forward`.
    public static func accumulateWeightGradient(_ g: ConvolutionGeometry, outputChannels: Int, padded: UnsafePointer<Float>,
                                                dyTransposed: UnsafePointer<Float>,
                                                weightGradientTransposed: UnsafeMutablePointer<Float>,
                                                wide: Bool? = nil) {
        precondition(applies(g, outputChannels: outputChannels))
        if wide ?? VectorKernels.wideRegisters {
            accumulateWeightGradient(g, outputChannels, padded, dyTransposed, weightGradientTransposed, wide: true)
        } else {
            accumulateWeightGradient(g, outputChannels, padded, dyTransposed, weightGradientTransposed, wide: false)
        }
    }

    @inline(__always)
    private static func accumulateWeightGradient(_ g: ConvolutionGeometry, _ outputChannels: Int, _ padded: UnsafePointer<Float>,
                                                 _ dyTransposed: UnsafePointer<Float>,
                                                 _ weightGradientTransposed: UnsafeMutablePointer<Float>, wide: Bool) {
        let tapBlock = tapBlock(wide: wide)
        let k = g.kernelSize, Wp = g.paddedWidth
        let oH = g.outputHeight, oW = g.outputWidth, K = g.patchSize
        func base(_ t: Int) -> Int {
            let tap = min(t, K - 1), c = tap / (k * k), ky = tap / k % k, kx = tap % k
            return (c * g.paddedHeight + ky) * Wp + kx
        }
        for firstChannel in stride(from: 0, to: outputChannels, by: channelBlock) {
            let d = dyTransposed + firstChannel
            for t0 in stride(from: 0, to: K, by: tapBlock) {
                let x0 = padded + base(t0), x1 = padded + base(t0 + 1), x2 = padded + base(t0 + 2)
                let x3 = padded + base(t0 + 3), x4 = padded + base(t0 + 4), x5 = padded + base(t0 + 5)
                let x6 = padded + base(t0 + 6), x7 = padded + base(t0 + 7), x8 = padded + base(t0 + 8)
                let x9 = padded + base(t0 + 9), x10 = padded + base(t0 + 10), x11 = padded + base(t0 + 11)
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                var a4 = SIMD16<Float>(), a5 = SIMD16<Float>(), a6 = SIMD16<Float>(), a7 = SIMD16<Float>()
                var a8 = SIMD16<Float>(), a9 = SIMD16<Float>(), a10 = SIMD16<Float>(), a11 = SIMD16<Float>()
                var dRow = d, rowStart = 0
                for _ in 0..<oH {
                    for ox in 0..<oW {
                        let q = rowStart &+ ox
                        let dp = VectorKernels.load(dRow, as: SIMD16<Float>.self)
                        a0 = a0.addingProduct(dp, x0[q])
                        a1 = a1.addingProduct(dp, x1[q])
                        a2 = a2.addingProduct(dp, x2[q])
                        a3 = a3.addingProduct(dp, x3[q])
                        a4 = a4.addingProduct(dp, x4[q])
                        a5 = a5.addingProduct(dp, x5[q])
                        if wide {
                            a6 = a6.addingProduct(dp, x6[q])
                            a7 = a7.addingProduct(dp, x7[q])
                            a8 = a8.addingProduct(dp, x8[q])
                            a9 = a9.addingProduct(dp, x9[q])
                            a10 = a10.addingProduct(dp, x10[q])
                            a11 = a11.addingProduct(dp, x11[q])
                        }
                        dRow += outputChannels
                    }
                    rowStart &+= Wp
                }
                let count = min(tapBlock, K - t0), dW = weightGradientTransposed + t0 * outputChannels + firstChannel
                accumulate(a0, dW)
                if count > 1 { accumulate(a1, dW + outputChannels) }
                if count > 2 { accumulate(a2, dW + 2 * outputChannels) }
                if count > 3 { accumulate(a3, dW + 3 * outputChannels) }
                if count > 4 { accumulate(a4, dW + 4 * outputChannels) }
                if count > 5 { accumulate(a5, dW + 5 * outputChannels) }
                if count > 6 { accumulate(a6, dW + 6 * outputChannels) }
                if count > 7 { accumulate(a7, dW + 7 * outputChannels) }
                if count > 8 { accumulate(a8, dW + 8 * outputChannels) }
                if count > 9 { accumulate(a9, dW + 9 * outputChannels) }
                if count > 10 { accumulate(a10, dW + 10 * outputChannels) }
                if count > 11 { accumulate(a11, dW + 11 * outputChannels) }
            }
        }
    }

    @inline(__always)
    private static func accumulate(_ sum: SIMD16<Float>, _ out: UnsafeMutablePointer<Float>) {
        VectorKernels.store(VectorKernels.load(out, as: SIMD16<Float>.self) + sum, out)
    }
}
