import Engine

/// Naive reference kernels: the obvious loops, written for clarity, that the fast paths must
/// match. Double accumulation so the reference is the more accurate side of any comparison.
public enum Reference {
    /// `C(m×n) = op(A) · op(B)` by the triple loop (row-major; see `BLAS.gemm` for the storage).
    public static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, _ a: [Float], _ b: [Float]) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let av = transposeA ? a[p * m + i] : a[i * k + p]
                    let bv = transposeB ? b[j * k + p] : b[p * n + j]
                    sum += Double(av) * Double(bv)
                }
                c[i * n + j] = Float(sum)
            }
        }
        return c
    }

    /// Direct convolution (cross-correlation) with zero padding: the six-loop definition.
    /// `input` is `batch × C × H × W`; `weight` `[outC, C, k, k]`; returns `batch × outC × oH × oW`.
    public static func conv2D(_ g: ConvolutionGeometry, batch: Int, outputChannels: Int,
                              input: [Float], weight: [Float], bias: [Float]) -> [Float] {
        let oH = g.outputHeight, oW = g.outputWidth, k = g.kernelSize
        var output = [Float](repeating: 0, count: batch * outputChannels * oH * oW)
        for n in 0..<batch {
            for o in 0..<outputChannels {
                for oy in 0..<oH {
                    for ox in 0..<oW {
                        var sum = Double(bias[o])
                        for c in 0..<g.channels {
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let iy = oy * g.stride - g.padding + ky, ix = ox * g.stride - g.padding + kx
                                    guard iy >= 0, iy < g.height, ix >= 0, ix < g.width else { continue }
                                    let x = input[((n * g.channels + c) * g.height + iy) * g.width + ix]
                                    let w = weight[((o * g.channels + c) * k + ky) * k + kx]
                                    sum += Double(x) * Double(w)
                                }
                            }
                        }
                        output[((n * outputChannels + o) * oH + oy) * oW + ox] = Float(sum)
                    }
                }
            }
        }
        return output
    }

    /// dL/dweight of `conv2D` for `L = Σ outputGradient · output`, by the six-loop definition
    /// (Double sums); returns `[outC, C, k, k]`.
    public static func conv2DWeightGradient(_ g: ConvolutionGeometry, batch: Int, outputChannels: Int,
                                            input: [Float], outputGradient: [Float]) -> [Float] {
        let oH = g.outputHeight, oW = g.outputWidth, k = g.kernelSize
        var gradient = [Double](repeating: 0, count: outputChannels * g.patchSize)
        for n in 0..<batch {
            for o in 0..<outputChannels {
                for oy in 0..<oH {
                    for ox in 0..<oW {
                        let dy = Double(outputGradient[((n * outputChannels + o) * oH + oy) * oW + ox])
                        for c in 0..<g.channels {
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let iy = oy * g.stride - g.padding + ky, ix = ox * g.stride - g.padding + kx
                                    guard iy >= 0, iy < g.height, ix >= 0, ix < g.width else { continue }
                                    gradient[((o * g.channels + c) * k + ky) * k + kx] +=
                                        dy * Double(input[((n * g.channels + c) * g.height + iy) * g.width + ix])
                                }
                            }
                        }
                    }
                }
            }
        }
        return gradient.map { Float($0) }
    }

    /// Max pooling by scanning each window, no padding, floor mode.
    public static func maxPool(_ g: ConvolutionGeometry, batch: Int, input: [Float]) -> [Float] {
        let oH = g.outputHeight, oW = g.outputWidth, k = g.kernelSize
        var output: [Float] = []
        for plane in 0..<(batch * g.channels) {
            for oy in 0..<oH {
                for ox in 0..<oW {
                    var best = -Float.infinity
                    for ky in 0..<k {
                        for kx in 0..<k {
                            best = max(best, input[(plane * g.height + oy * g.stride + ky) * g.width + ox * g.stride + kx])
                        }
                    }
                    output.append(best)
                }
            }
        }
        return output
    }
}

/// Deterministic random test data.
public func randomArray(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in generator.nextUniform(range.lowerBound, range.upperBound) }
}

/// Largest `|a − b| / (atol + rtol·|b|)` over the elements; ≤ 1 means "close". `b` is the reference.
public func closeness(_ a: [Float], _ b: [Float], rtol: Float, atol: Float) -> Float {
    precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
    var worst: Float = 0
    for (x, y) in zip(a, b) {
        if x.isNaN || y.isNaN { return .infinity }
        worst = max(worst, abs(x - y) / (atol + rtol * abs(y)))
    }
    return worst
}
