/// Direct forward and weight-gradient kernels for stride-1 convolutions with a multiple of 16
/// output channels and more than one input channel (LeNet's conv2: 6 → 16, 5×5 on 14×14).
///
/// Why: the column matrix of such a layer is 150 × 100 floats per image; building it (im2col),
/// OpenBLAS packing it again, and the GEMM call overheads cost about a third of the GEMM time.
/// These kernels read the (padded) image in place instead. Tap `t = (c, ky, kx)` at output
/// position `p = (oy, ox)` reads `padded[base(t) + q(p)]` with `base(t) = (c·Hp + ky)·Wp + kx` and
/// `q(p) = oy·Wp + ox`, so the column matrix is never built.
///
/// Both kernels vectorize over 16 output channels (two 8-lane registers, so every lane is
/// useful whatever the image width): per step, two weight (or `dY`) vector loads and one scalar
/// broadcast per position (or tap) feed two FMAs each, with all sums in registers.
/// - Forward: 4 output positions at a time, summed over all taps; written position-major to
///   a tile and transposed into the CHW output.
/// - Weight gradient: 6 taps at a time, summed over all positions, from `dY` transposed to
///   position-major; accumulated into `dWᵀ` (`taps × outputChannels`).
/// A short last block repeats its last position or tap (so no read leaves the image) and stores
/// only the real ones.
public enum ChannelBlockedConvolution {
    static let channelBlock = 16
    /// Output positions per forward block: 4 × 16 sums in 8 registers. With 6 (12 registers)
    /// LLVM keeps all 6 broadcasts live and spills three sums to the stack on every tap.
    static let positionBlock = 4
    /// Taps per weight-gradient block (12 registers).
    static let tapBlock = 6

    /// Whether these kernels handle this geometry with `outputChannels`.
    public static func applies(_ g: ConvolutionGeometry, outputChannels: Int) -> Bool {
        g.stride == 1 && g.channels > 1 && outputChannels % channelBlock == 0 && g.patchSize >= channelBlock
    }

    /// `y[o, p] = bias[o] + Σ_t weightTransposed[t, o] · padded[base(t) + q(p)]`; overwrites `y`
    /// (`outputChannels × oH × oW`). `weightTransposed` is `Wᵀ` (`patchSize × outputChannels`);
    /// `padded` is the zero-padded image (`channels × Hp × Wp`, or the image itself when the layer
    /// has no padding); `tile` is scratch of `outputPositions × 16` floats (overwritten).
    public static func forward(_ g: ConvolutionGeometry, outputChannels: Int, padded: UnsafePointer<Float>,
                               weightTransposed: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               y: UnsafeMutablePointer<Float>, tile: UnsafeMutablePointer<Float>) {
        precondition(applies(g, outputChannels: outputChannels))
        let k = g.kernelSize, Wp = g.paddedWidth, plane = g.paddedHeight * Wp
        let oW = g.outputWidth, P = g.outputPositions
        func q(_ p: Int) -> Int { (p / oW) * Wp + p % oW }
        for firstChannel in stride(from: 0, to: outputChannels, by: channelBlock) {
            let w = weightTransposed + firstChannel
            for p0 in stride(from: 0, to: P, by: positionBlock) {
                // Loaded per block, not hoisted: held across the tap loop they would push
                // accumulators out of the 16 AVX2 registers.
                let b0 = VectorKernels.load(bias + firstChannel, as: SIMD8<Float>.self)
                let b1 = VectorKernels.load(bias + firstChannel + 8, as: SIMD8<Float>.self)
                let q0 = q(p0), q1 = q(min(p0 + 1, P - 1)), q2 = q(min(p0 + 2, P - 1)), q3 = q(min(p0 + 3, P - 1))
                var a0 = b0, a1 = b1, a2 = b0, a3 = b1, a4 = b0, a5 = b1, a6 = b0, a7 = b1
                var t = 0
                for c in 0..<g.channels {
                    for ky in 0..<k {
                        let row = padded + c * plane + ky * Wp
                        for kx in 0..<k {
                            let x = row + kx, wt = w + t * outputChannels
                            let w0 = VectorKernels.load(wt, as: SIMD8<Float>.self)
                            let w1 = VectorKernels.load(wt + 8, as: SIMD8<Float>.self)
                            a0 = a0.addingProduct(w0, x[q0]); a1 = a1.addingProduct(w1, x[q0])
                            a2 = a2.addingProduct(w0, x[q1]); a3 = a3.addingProduct(w1, x[q1])
                            a4 = a4.addingProduct(w0, x[q2]); a5 = a5.addingProduct(w1, x[q2])
                            a6 = a6.addingProduct(w0, x[q3]); a7 = a7.addingProduct(w1, x[q3])
                            t += 1
                        }
                    }
                }
                let count = min(positionBlock, P - p0), out = tile + p0 * channelBlock
                store(a0, a1, out)
                if count > 1 { store(a2, a3, out + channelBlock) }
                if count > 2 { store(a4, a5, out + 2 * channelBlock) }
                if count > 3 { store(a6, a7, out + 3 * channelBlock) }
            }
            BLAS.transpose(rows: P, columns: channelBlock, tile, y + firstChannel * P)
        }
    }

    /// **Adds** `weightGradientTransposed[t, o] += Σ_p padded[base(t) + q(p)] · dyTransposed[p, o]`
    /// for every tap `t` and output channel `o`. `dyTransposed` is `dYᵀ` (`outputPositions ×
    /// outputChannels`); `weightGradientTransposed` is `patchSize × outputChannels`; `padded` as in
    /// `forward`.
    public static func accumulateWeightGradient(_ g: ConvolutionGeometry, outputChannels: Int, padded: UnsafePointer<Float>,
                                                dyTransposed: UnsafePointer<Float>,
                                                weightGradientTransposed: UnsafeMutablePointer<Float>) {
        precondition(applies(g, outputChannels: outputChannels))
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
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
                var a8 = SIMD8<Float>(), a9 = SIMD8<Float>(), a10 = SIMD8<Float>(), a11 = SIMD8<Float>()
                var p = 0
                for oy in 0..<oH {
                    for ox in 0..<oW {
                        let q = oy * Wp + ox, dp = d + p * outputChannels
                        let d0 = VectorKernels.load(dp, as: SIMD8<Float>.self)
                        let d1 = VectorKernels.load(dp + 8, as: SIMD8<Float>.self)
                        a0 = a0.addingProduct(d0, x0[q]); a1 = a1.addingProduct(d1, x0[q])
                        a2 = a2.addingProduct(d0, x1[q]); a3 = a3.addingProduct(d1, x1[q])
                        a4 = a4.addingProduct(d0, x2[q]); a5 = a5.addingProduct(d1, x2[q])
                        a6 = a6.addingProduct(d0, x3[q]); a7 = a7.addingProduct(d1, x3[q])
                        a8 = a8.addingProduct(d0, x4[q]); a9 = a9.addingProduct(d1, x4[q])
                        a10 = a10.addingProduct(d0, x5[q]); a11 = a11.addingProduct(d1, x5[q])
                        p += 1
                    }
                }
                let count = min(tapBlock, K - t0), dW = weightGradientTransposed + t0 * outputChannels + firstChannel
                accumulate(a0, a1, dW)
                if count > 1 { accumulate(a2, a3, dW + outputChannels) }
                if count > 2 { accumulate(a4, a5, dW + 2 * outputChannels) }
                if count > 3 { accumulate(a6, a7, dW + 3 * outputChannels) }
                if count > 4 { accumulate(a8, a9, dW + 4 * outputChannels) }
                if count > 5 { accumulate(a10, a11, dW + 5 * outputChannels) }
            }
        }
    }

    @inline(__always)
    private static func store(_ low: SIMD8<Float>, _ high: SIMD8<Float>, _ out: UnsafeMutablePointer<Float>) {
        VectorKernels.store(low, out)
        VectorKernels.store(high, out + 8)
    }

    @inline(__always)
    private static func accumulate(_ low: SIMD8<Float>, _ high: SIMD8<Float>, _ out: UnsafeMutablePointer<Float>) {
        VectorKernels.store(VectorKernels.load(out, as: SIMD8<Float>.self) + low, out)
        VectorKernels.store(VectorKernels.load(out + 8, as: SIMD8<Float>.self) + high, out + 8)
    }
}
