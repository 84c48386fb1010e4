/// Max pooling over `kernelSize²` windows with `stride`, no padding, floor mode (PyTorch's
/// `max_pool2d` defaults). Ties go to the first maximum in row-major window order, as in
/// PyTorch; backward recomputes that position from the input instead of storing indices.
///
/// The common 2×2 stride-2 window has a branch-free SIMD path (window winners are random, so
/// branches mispredict), 8 windows at a time for output rows of 8 or more, 4 at a time for rows
/// of 4 to 7 (LeNet's 10×10 → 5×5 pool, which on the scalar path cost as much as the 28×28 one).
/// It propagates a NaN only when it is first in its window; a NaN anywhere in the model already
/// makes the loss NaN.
public struct MaxPool2D: Layer {
    public let geometry: ConvolutionGeometry
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let inputCount: Int
    public let outputCount: Int

    public init(channels: Int, inputHeight: Int, inputWidth: Int, kernelSize: Int, stride: Int? = nil) {
        geometry = .pooling(channels: channels, height: inputHeight, width: inputWidth, kernelSize: kernelSize, stride: stride)
        (inputShape, outputShape, inputCount, outputCount) = geometry.poolingShapes
    }

    /// Windows per SIMD step on the 2×2 stride-2 path (8 or 4), or 0 for the scalar path.
    private var lanes: Int {
        guard geometry.kernelSize == 2 && geometry.stride == 2 else { return 0 }
        return geometry.outputWidth >= 8 ? 8 : geometry.outputWidth >= 4 ? 4 : 0
    }

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

    /// Forward of one plane on the SIMD path: 8 windows per step (`SIMD16` rows) or 4 (`SIMD8`).
    /// The two widths are written out: generic over the vector type, the compiler did not
    /// specialize the lane shuffles and the layer ran 2.5× slower.
    @inline(__always)
    private func forwardPlane(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        let oH = geometry.outputHeight, oW = geometry.outputWidth, W = geometry.width, step = lanes
        for oy in 0..<oH {
            let top = x + 2 * oy * W
            for chunk in 0..<((oW + step - 1) / step) {
                let ox = chunkStart(chunk, oW, step)
                if step == 8 {
                    let m = Self.windowMaxima(VectorKernels.load(top + 2 * ox, as: SIMD16<Float>.self),
                                              VectorKernels.load(top + W + 2 * ox, as: SIMD16<Float>.self))
                    VectorKernels.store(m, y + oy * oW + ox)
                } else {
                    let m = Self.windowMaxima(VectorKernels.load(top + 2 * ox, as: SIMD8<Float>.self),
                                              VectorKernels.load(top + W + 2 * ox, as: SIMD8<Float>.self))
                    VectorKernels.store(m, y + oy * oW + ox)
                }
            }
        }
    }

    /// Backward of one plane on the SIMD path: each window's gradient goes to its first maximum.
    @inline(__always)
    private func backwardPlane(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>) {
        let oH = geometry.outputHeight, oW = geometry.outputWidth, W = geometry.width, step = lanes
        for oy in 0..<oH {
            let top = x + 2 * oy * W, upper = dx + 2 * oy * W
            for chunk in 0..<((oW + step - 1) / step) {
                let ox = chunkStart(chunk, oW, step)
                if step == 8 {
                    let (upperGradient, lowerGradient) = Self.route(
                        VectorKernels.load(dy + oy * oW + ox, as: SIMD8<Float>.self),
                        upper: VectorKernels.load(top + 2 * ox, as: SIMD16<Float>.self),
                        lower: VectorKernels.load(top + W + 2 * ox, as: SIMD16<Float>.self))
                    VectorKernels.store(upperGradient, upper + 2 * ox)
                    VectorKernels.store(lowerGradient, upper + W + 2 * ox)
                } else {
                    let (upperGradient, lowerGradient) = Self.route(
                        VectorKernels.load(dy + oy * oW + ox, as: SIMD4<Float>.self),
                        upper: VectorKernels.load(top + 2 * ox, as: SIMD8<Float>.self),
                        lower: VectorKernels.load(top + W + 2 * ox, as: SIMD8<Float>.self))
                    VectorKernels.store(upperGradient, upper + 2 * ox)
                    VectorKernels.store(lowerGradient, upper + W + 2 * ox)
                }
            }
        }
    }

    /// Window starts covering `0..<oW` in steps of `step`; the last one overlaps so it stays
    /// inside the row (recomputing a few windows is harmless).
    @inline(__always)
    private func chunkStart(_ index: Int, _ oW: Int, _ step: Int) -> Int { min(index * step, oW - step) }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let oH = geometry.outputHeight, oW = geometry.outputWidth, W = geometry.width, planeSize = geometry.height * W
        for plane in 0..<(batch * geometry.channels) {
            let x = input + plane * planeSize, y = output + plane * oH * oW
            switch lanes {
            case 8, 4: forwardPlane(x, y)
            default:
                for oy in 0..<oH {
                    for ox in 0..<oW { y[oy * oW + ox] = x[argmax(x, oy, ox)] }
                }
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
        if lanes == 0 || geometry.height != 2 * oH || W != 2 * oW {
            inputGradient.update(repeating: 0, count: batch * inputCount)
        }
        for plane in 0..<(batch * geometry.channels) {
            let x = input + plane * planeSize, dx = inputGradient + plane * planeSize
            let dy = outputGradient + plane * oH * oW
            switch lanes {
            case 8, 4: backwardPlane(x, dy, dx)
            default:
                for oy in 0..<oH {
                    for ox in 0..<oW { dx[argmax(x, oy, ox)] += dy[oy * oW + ox] }
                }
            }
        }
    }
}

extension MaxPool2D {
    /// The maxima of adjacent 2×2 windows whose rows are `upper` and `lower` (even/odd lanes are
    /// a window's left/right column). Written for both widths the layer uses.
    @inline(__always)
    static func windowMaxima(_ upper: SIMD16<Float>, _ lower: SIMD16<Float>) -> SIMD8<Float> {
        let a = upper.evenHalf, b = upper.oddHalf, c = lower.evenHalf, d = lower.oddHalf
        let ab = a.replacing(with: b, where: b .> a), cd = c.replacing(with: d, where: d .> c)
        return ab.replacing(with: cd, where: cd .> ab)
    }

    @inline(__always)
    static func windowMaxima(_ upper: SIMD8<Float>, _ lower: SIMD8<Float>) -> SIMD4<Float> {
        let a = upper.evenHalf, b = upper.oddHalf, c = lower.evenHalf, d = lower.oddHalf
        let ab = a.replacing(with: b, where: b .> a), cd = c.replacing(with: d, where: d .> c)
        return ab.replacing(with: cd, where: cd .> ab)
    }

    /// The window gradients `g` routed to the corner that won each window (first maximum in
    /// row-major order: upper-left, upper-right, lower-left, lower-right), zeros elsewhere, for
    /// the two input rows of `g.count` adjacent 2×2 windows. Works in the rows' interleaved order,
    /// comparing each value with its pair partner (one in-lane shuffle per row), so no lanes are
    /// split into corners and merged back. Concrete per width: generic versions were not inlined.
    @inline(__always)
    static func route(_ g: SIMD8<Float>, upper: SIMD16<Float>, lower: SIMD16<Float>) -> (SIMD16<Float>, SIMD16<Float>) {
        let upperPartner = upper.pairsSwapped, lowerPartner = lower.pairsSwapped
        let upperMax = upper.replacing(with: upperPartner, where: upperPartner .> upper)
        let lowerMax = lower.replacing(with: lowerPartner, where: lowerPartner .> lower)
        let m = upperMax.replacing(with: lowerMax, where: lowerMax .> upperMax)
        let upperWins = upper .== m, upperPartnerWins = upperPartner .== m
        let oddLane = SIMDMask<SIMD16<Int32>>(SIMD16<Int32>(0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1))
        let pickUpper = upperWins .& .!(oddLane .& upperPartnerWins)
        let pickLower = (lower .== m) .& .!(upperWins .| upperPartnerWins) .& .!(oddLane .& (lowerPartner .== m))
        let spread = SIMD16(interleaving: g, g), zero = SIMD16<Float>()
        return (zero.replacing(with: spread, where: pickUpper), zero.replacing(with: spread, where: pickLower))
    }

    @inline(__always)
    static func route(_ g: SIMD4<Float>, upper: SIMD8<Float>, lower: SIMD8<Float>) -> (SIMD8<Float>, SIMD8<Float>) {
        let upperPartner = upper.pairsSwapped, lowerPartner = lower.pairsSwapped
        let upperMax = upper.replacing(with: upperPartner, where: upperPartner .> upper)
        let lowerMax = lower.replacing(with: lowerPartner, where: lowerPartner .> lower)
        let m = upperMax.replacing(with: lowerMax, where: lowerMax .> upperMax)
        let upperWins = upper .== m, upperPartnerWins = upperPartner .== m
        let oddLane = SIMDMask<SIMD8<Int32>>(SIMD8<Int32>(0, -1, 0, -1, 0, -1, 0, -1))
        let pickUpper = upperWins .& .!(oddLane .& upperPartnerWins)
        let pickLower = (lower .== m) .& .!(upperWins .| upperPartnerWins) .& .!(oddLane .& (lowerPartner .== m))
        let spread = SIMD8(interleaving: g, g), zero = SIMD8<Float>()
        return (zero.replacing(with: spread, where: pickUpper), zero.replacing(with: spread, where: pickLower))
    }
}

extension SIMD16 where Scalar == Float {
    /// `[self[1], self[0], self[3], self[2], ...]`.
    @inline(__always)
    var pairsSwapped: Self {
        var swapped = Self()
        for lane in 0..<16 { swapped[lane] = self[lane ^ 1] }
        return swapped
    }

    /// `[even[0], odd[0], even[1], odd[1], ...]`.
    @inline(__always)
    init(interleaving even: SIMD8<Float>, _ odd: SIMD8<Float>) {
        self.init()
        for lane in 0..<8 {
            self[2 * lane] = even[lane]
            self[2 * lane + 1] = odd[lane]
        }
    }
}

extension SIMD8 where Scalar == Float {
    /// `[self[1], self[0], self[3], self[2], ...]`.
    @inline(__always)
    var pairsSwapped: Self {
        var swapped = Self()
        for lane in 0..<8 { swapped[lane] = self[lane ^ 1] }
        return swapped
    }

    /// `[even[0], odd[0], even[1], odd[1], ...]`.
    @inline(__always)
    init(interleaving even: SIMD4<Float>, _ odd: SIMD4<Float>) {
        self.init()
        for lane in 0..<4 {
            self[2 * lane] = even[lane]
            self[2 * lane + 1] = odd[lane]
        }
    }
}
