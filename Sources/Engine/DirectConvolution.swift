/// Direct kernels for single-input-channel, stride-1 convolutions (LeNet's first layer), without
/// a column matrix.
///
/// Why: with one input channel the column matrix is `k²` shifted copies of the image (25× its
/// size for k = 5, 78 KB for a 28×28 image), so building it cost about as much as the GEMM that
/// reads it, forward and backward.
///
/// Forward: output `(r, x)` reads `padded[(r + i)·Wp + x + j]`: one contiguous vector per tap,
/// with the products accumulated in registers (6 channels × 16 columns: 12 AVX2 or 6 AVX-512 registers).
/// perf on a B=32 step: 7.7% of samples against about 11.5% for im2col + GEMM.
///
/// Weight gradient: `dW[c, i, j] = Σ_{r,x} dY[c, r, x] · padded[(r + i)·Wp + x + j]`. With `dY`
/// re-laid with row stride `Wp` (zeros in columns `oW..<Wp`), every tap is one dot product of two
/// contiguous runs, `dYp[c, p] · padded[p + i·Wp + j]`, which the kernel computes for 6 channels
/// × 2 taps at once (12 independent accumulators, so the FMAs pipeline instead of waiting on one
/// chain).
///
/// The kernels read `padded` (the zero-padded image, `Hp × Wp`, from `copyPadded`) up to 15
/// floats past its end; callers provide zeros there (`DirectConvolution.slack`).
public enum DirectConvolution {
    /// Floats of readable slack after the padded image.
    public static let slack = 32
    static let channelBlock = 6

    /// Whether the direct kernels handle this geometry.
    public static func applies(_ g: ConvolutionGeometry) -> Bool {
        g.channels == 1 && g.stride == 1 && g.kernelSize <= 7
    }

    /// `y[c, r, x] = bias[c] + Σ_{i,j} weight[c, i, j] · padded[r + i, x + j]` for every output
    /// channel; overwrites `y` (`outputChannels × oH × oW`). `padded` is `Hp × Wp` plus slack.
    public static func forward(_ g: ConvolutionGeometry, outputChannels: Int, padded: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        precondition(applies(g))
        let k = g.kernelSize, taps = k * k, Wp = g.paddedWidth, oH = g.outputHeight, oW = g.outputWidth, P = g.outputPositions
        // Weights of one block of channels, tap-major: blockWeights[tap · 6 + c] (zeros pad a short block).
        withUnsafeTemporaryAllocation(of: Float.self, capacity: taps * channelBlock) { blockWeights in
            for firstChannel in stride(from: 0, to: outputChannels, by: channelBlock) {
                let count = min(channelBlock, outputChannels - firstChannel)
                for tap in 0..<taps {
                    for c in 0..<channelBlock {
                        blockWeights[tap * channelBlock + c] = c < count ? weight[(firstChannel + c) * taps + tap] : 0
                    }
                }
                let w = UnsafePointer(blockWeights.baseAddress!)
                for r in 0..<oH {
                    for x0 in stride(from: 0, to: oW, by: 16) {
                        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>()
                        var a3 = SIMD16<Float>(), a4 = SIMD16<Float>(), a5 = SIMD16<Float>()
                        for i in 0..<k {
                            let row = padded + (r + i) * Wp + x0
                            for j in 0..<k {
                                let v = VectorKernels.load(row + j, as: SIMD16<Float>.self)
                                let t = w + (i * k + j) * channelBlock
                                a0 = a0.addingProduct(v, t[0])
                                a1 = a1.addingProduct(v, t[1])
                                a2 = a2.addingProduct(v, t[2])
                                a3 = a3.addingProduct(v, t[3])
                                a4 = a4.addingProduct(v, t[4])
                                a5 = a5.addingProduct(v, t[5])
                            }
                        }
                        let width = min(16, oW - x0), out = y + firstChannel * P + r * oW + x0, b = bias + firstChannel
                        store(a0 + b[0], to: out, width: width)
                        if count > 1 { store(a1 + b[1], to: out + P, width: width) }
                        if count > 2 { store(a2 + b[2], to: out + 2 * P, width: width) }
                        if count > 3 { store(a3 + b[3], to: out + 3 * P, width: width) }
                        if count > 4 { store(a4 + b[4], to: out + 4 * P, width: width) }
                        if count > 5 { store(a5 + b[5], to: out + 5 * P, width: width) }
                    }
                }
            }
        }
    }

    /// Floats of the `dY` copy that `accumulateWeightGradient` needs as scratch.
    public static func gradientScratchCount(_ g: ConvolutionGeometry, outputChannels: Int) -> Int {
        (outputChannels + channelBlock - 1) / channelBlock * channelBlock * paddedRunLength(g)
    }

    /// Length of one channel's `dY` re-laid with row stride `Wp`, rounded up to whole 16-float
    /// vectors (zeros after the end add nothing).
    private static func paddedRunLength(_ g: ConvolutionGeometry) -> Int {
        (g.outputHeight * g.paddedWidth + 15) / 16 * 16
    }

    /// **Adds** `dW[c, i, j] += Σ_{r,x} dy[c, r, x] · padded[r + i, x + j]` for every output
    /// channel and tap (`weightGradient`: `outputChannels × k²`). `dy` is `outputChannels × oH × oW`;
    /// `padded` is `Hp × Wp` plus slack; `scratch` holds `gradientScratchCount` floats (overwritten).
    /// The sums run over 16-float vectors with wide registers (12 sums in 12 of 32 registers) and
    /// 8-float ones otherwise (12 sums of 16 floats would not fit 16 AVX2 registers); `wide` picks
    /// one (nil: `VectorKernels.wideRegisters`; tests check both).
    public static func accumulateWeightGradient(_ g: ConvolutionGeometry, outputChannels: Int, padded: UnsafePointer<Float>,
                                                dy: UnsafePointer<Float>, weightGradient: UnsafeMutablePointer<Float>,
                                                scratch: UnsafeMutablePointer<Float>, wide: Bool? = nil) {
        precondition(applies(g))
        let k = g.kernelSize, taps = k * k, Wp = g.paddedWidth, oH = g.outputHeight, oW = g.outputWidth, P = g.outputPositions
        let run = paddedRunLength(g), blocks = (outputChannels + channelBlock - 1) / channelBlock
        scratch.update(repeating: 0, count: blocks * channelBlock * run)
        for c in 0..<outputChannels {
            for r in 0..<oH { VectorKernels.copy(dy + c * P + r * oW, scratch + c * run + r * Wp, count: oW) }
        }
        for block in 0..<blocks {
            let d = UnsafePointer(scratch + block * channelBlock * run)
            let count = min(channelBlock, outputChannels - block * channelBlock)
            for firstTap in stride(from: 0, to: taps, by: 2) {
                // An odd last tap is paired with itself; its duplicate sums are not stored.
                let secondTap = min(firstTap + 1, taps - 1)
                let x0 = padded + (firstTap / k) * Wp + firstTap % k, x1 = padded + (secondTap / k) * Wp + secondTap % k
                let sums = wide ?? VectorKernels.wideRegisters
                    ? tapPairSums(SIMD16<Float>.self, d: d, run: run, x0: x0, x1: x1)
                    : tapPairSums(SIMD8<Float>.self, d: d, run: run, x0: x0, x1: x1)
                let dW = weightGradient + block * channelBlock * taps, paired = secondTap != firstTap
                for c in 0..<count {
                    dW[c * taps + firstTap] += sums[2 * c]
                    if paired { dW[c * taps + secondTap] += sums[2 * c + 1] }
                }
            }
        }
    }

    /// `Σ_p d[c·run + p] · x0[p]` and `· x1[p]` for the 6 channels of a block, as
    /// `(c0·x0, c0·x1, c1·x0, ...)`: 12 independent vector sums of `V`.
    @inline(__always)
    private static func tapPairSums<V: HalvingSum>(_: V.Type, d: UnsafePointer<Float>, run: Int, x0: UnsafePointer<Float>,
                                              x1: UnsafePointer<Float>) -> SIMD16<Float> {
        var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V()
        var a6 = V(), a7 = V(), a8 = V(), a9 = V(), a10 = V(), a11 = V()
        for p in stride(from: 0, to: run, by: V.scalarCount) {
            let u = VectorKernels.load(x0 + p, as: V.self), w = VectorKernels.load(x1 + p, as: V.self)
            let g0 = VectorKernels.load(d + p, as: V.self)
            a0 = a0.addingProduct(g0, u); a1 = a1.addingProduct(g0, w)
            let g1 = VectorKernels.load(d + run + p, as: V.self)
            a2 = a2.addingProduct(g1, u); a3 = a3.addingProduct(g1, w)
            let g2 = VectorKernels.load(d + 2 * run + p, as: V.self)
            a4 = a4.addingProduct(g2, u); a5 = a5.addingProduct(g2, w)
            let g3 = VectorKernels.load(d + 3 * run + p, as: V.self)
            a6 = a6.addingProduct(g3, u); a7 = a7.addingProduct(g3, w)
            let g4 = VectorKernels.load(d + 4 * run + p, as: V.self)
            a8 = a8.addingProduct(g4, u); a9 = a9.addingProduct(g4, w)
            let g5 = VectorKernels.load(d + 5 * run + p, as: V.self)
            a10 = a10.addingProduct(g5, u); a11 = a11.addingProduct(g5, w)
        }
        return SIMD16(a0.halvingSum, a1.halvingSum, a2.halvingSum, a3.halvingSum, a4.halvingSum, a5.halvingSum,
                      a6.halvingSum, a7.halvingSum, a8.halvingSum, a9.halvingSum, a10.halvingSum, a11.halvingSum, 0, 0, 0, 0)
    }

    /// Stores the first `width` lanes of `value`.
    @inline(__always)
    private static func store(_ value: SIMD16<Float>, to out: UnsafeMutablePointer<Float>, width: Int) {
        if width == 16 {
            VectorKernels.store(value, out)
        } else if width >= 8 {
            VectorKernels.store(value.lowHalf, out)
            for x in 8..<width { out[x] = value[x] }
        } else {
            for x in 0..<width { out[x] = value[x] }
        }
    }
}
