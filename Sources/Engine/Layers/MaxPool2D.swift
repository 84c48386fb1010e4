/// Max pooling over `kernelSize²` windows with `stride`, no padding, floor mode (PyTorch's
/// `max_pool2d` defaults). Ties go to the first maximum in row-major window order, as in
/// PyTorch; backward recomputes that position from the input instead of storing indices.
///
/// The common 2×2 stride-2 window has a branch-free SIMD path (window winners are random, so
/// branches mispredict). It propagates a NaN only when it is first in its window; a NaN anywhere
/// in the model already makes the loss NaN.
public struct MaxPool2D: Layer {
    public let geometry: ConvolutionGeometry
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let inputCount: Int
    public let outputCount: Int

    public init(channels: Int, inputHeight: Int, inputWidth: Int, kernelSize: Int, stride: Int? = nil) {
        geometry = ConvolutionGeometry(channels: channels, height: inputHeight, width: inputWidth,
                                       kernelSize: kernelSize, stride: stride ?? kernelSize)
        precondition(geometry.outputHeight > 0 && geometry.outputWidth > 0, "pooling window larger than input")
        inputShape = [channels, inputHeight, inputWidth]
        outputShape = [channels, geometry.outputHeight, geometry.outputWidth]
        inputCount = channels * inputHeight * inputWidth
        outputCount = channels * geometry.outputPositions
    }

    private var isHalving: Bool { geometry.kernelSize == 2 && geometry.stride == 2 && geometry.outputWidth >= 8 }

    /// Offset inside `plane` of the first maximum of window (oy, ox).
    @inline(__always)
    private func argmax(_ plane: UnsafePointer<Float>, _ oy: Int, _ ox: Int) -> Int {
        let k = geometry.kernelSize, W = geometry.width
        var best = (oy * geometry.stride) * W + ox * geometry.stride
        var bestValue = plane[best]
        for ky in 0..<k {
            let rowStart = (oy * geometry.stride + ky) * W + ox * geometry.stride
            for kx in 0..<k {
                let value = plane[rowStart + kx]
                if value.isNaN { return rowStart + kx }
                if value > bestValue {
                    best = rowStart + kx
                    bestValue = value
                }
            }
        }
        return best
    }

    /// The four corners of eight adjacent 2×2 windows starting at column `2·ox` of rows `top`
    /// and `top + W`, and their maxima (ties keep the earlier corner).
    @inline(__always)
    private func windows(_ top: UnsafePointer<Float>, _ ox: Int) -> (a: SIMD8<Float>, b: SIMD8<Float>, c: SIMD8<Float>, d: SIMD8<Float>, m: SIMD8<Float>) {
        let upper = VectorKernels.load(top + 2 * ox, as: SIMD16<Float>.self)
        let lower = VectorKernels.load(top + geometry.width + 2 * ox, as: SIMD16<Float>.self)
        let a = upper.evenHalf, b = upper.oddHalf, c = lower.evenHalf, d = lower.oddHalf
        let ab = a.replacing(with: b, where: b .> a), cd = c.replacing(with: d, where: d .> c)
        return (a, b, c, d, ab.replacing(with: cd, where: cd .> ab))
    }

    /// Window starts covering `0..<oW` in steps of 8; the last one overlaps so it stays inside
    /// the row (recomputing a few windows is harmless).
    @inline(__always)
    private func chunkStart(_ index: Int, _ oW: Int) -> Int { min(index * 8, oW - 8) }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let oH = geometry.outputHeight, oW = geometry.outputWidth, W = geometry.width, planeSize = geometry.height * W
        for plane in 0..<(batch * geometry.channels) {
            let x = input + plane * planeSize, y = output + plane * oH * oW
            if isHalving {
                for oy in 0..<oH {
                    for chunk in 0..<((oW + 7) / 8) {
                        let ox = chunkStart(chunk, oW)
                        VectorKernels.store(windows(x + 2 * oy * W, ox).m, y + oy * oW + ox)
                    }
                }
                continue
            }
            for oy in 0..<oH {
                for ox in 0..<oW { y[oy * oW + ox] = x[argmax(x, oy, ox)] }
            }
        }
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        guard let inputGradient else { return }
        let oH = geometry.outputHeight, oW = geometry.outputWidth, W = geometry.width, planeSize = geometry.height * W
        // Positions no window covers (floor mode) get no gradient; the fast path writes only the
        // covered ones, so it needs the zero fill only when some are left over.
        if !isHalving || geometry.height != 2 * oH || W != 2 * oW {
            inputGradient.update(repeating: 0, count: batch * inputCount)
        }
        for plane in 0..<(batch * geometry.channels) {
            let x = input + plane * planeSize, dx = inputGradient + plane * planeSize
            let dy = outputGradient + plane * oH * oW
            if isHalving {
                for oy in 0..<oH {
                    for chunk in 0..<((oW + 7) / 8) {
                        let ox = chunkStart(chunk, oW)
                        let (a, b, c, d, m) = windows(x + 2 * oy * W, ox)
                        let g = VectorKernels.load(dy + oy * oW + ox, as: SIMD8<Float>.self)
                        let pickA = a .== m, pickB = .!pickA .& (b .== m)
                        let pickC = .!(pickA .| pickB) .& (c .== m), pickD = .!(pickA .| pickB .| pickC)
                        let zero = SIMD8<Float>()
                        let ga = zero.replacing(with: g, where: pickA), gb = zero.replacing(with: g, where: pickB)
                        let gc = zero.replacing(with: g, where: pickC), gd = zero.replacing(with: g, where: pickD)
                        var upper = SIMD16<Float>(), lower = SIMD16<Float>()
                        for lane in 0..<8 {
                            upper[2 * lane] = ga[lane]
                            upper[2 * lane + 1] = gb[lane]
                            lower[2 * lane] = gc[lane]
                            lower[2 * lane + 1] = gd[lane]
                        }
                        VectorKernels.store(upper, dx + 2 * oy * W + 2 * ox)
                        VectorKernels.store(lower, dx + (2 * oy + 1) * W + 2 * ox)
                    }
                }
                continue
            }
            for oy in 0..<oH {
                for ox in 0..<oW { dx[argmax(x, oy, ox)] += dy[oy * oW + ox] }
            }
        }
    }
}
