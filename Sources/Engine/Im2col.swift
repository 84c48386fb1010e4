/// Geometry of a 2-D convolution or pooling window over one CHW image.
public struct ConvolutionGeometry: Sendable, Hashable {
    public var channels: Int
    public var height: Int
    public var width: Int
    public var kernelSize: Int
    public var stride: Int
    public var padding: Int

    public init(channels: Int, height: Int, width: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0) {
        precondition(channels > 0 && height > 0 && width > 0 && kernelSize > 0 && stride > 0 && padding >= 0)
        self.channels = channels
        self.height = height
        self.width = width
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
    }

    public var outputHeight: Int { (height + 2 * padding - kernelSize) / stride + 1 }
    public var outputWidth: Int { (width + 2 * padding - kernelSize) / stride + 1 }
    /// Rows of the column matrix: `channels · kernelSize²`.
    public var patchSize: Int { channels * kernelSize * kernelSize }
    /// Columns of the column matrix: one per output position.
    public var outputPositions: Int { outputHeight * outputWidth }
    public var paddedHeight: Int { height + 2 * padding }
    public var paddedWidth: Int { width + 2 * padding }
    /// Floats of the zero-padded copy of one image that `im2col` and `col2im` work through,
    /// slack included.
    public var paddedImageSize: Int { channels * paddedHeight * paddedWidth + Self.im2colSlack }
    /// Floats `im2col` may write past the column matrix and read past the padded image (see there).
    public static let im2colSlack = 16
    /// Stride-1 layers with output rows of at most 16 copy each row segment as one 16-float
    /// vector (see `im2col`).
    var hasShortRows: Bool { stride == 1 && outputWidth <= Self.im2colSlack }
}

/// Unrolls one CHW image into the column matrix `col(patchSize × outputPositions)`, row
/// `(c·k + ky)·k + kx`, column `oy·outputWidth + ox` (Caffe/darknet layout); zero padding.
/// Overwrites all of `col` **and up to `im2colSlack` floats after it**. `padded` is scratch of
/// `g.paddedImageSize` floats: the image is copied into a zero border (and slack) once, so every
/// row segment of `col` is an unchecked contiguous copy.
///
/// Stride-1 layers with output rows of at most 16 (LeNet's conv2: 10) copy each segment as one
/// 16-float load and store, in increasing address order, so the tail each store spills past its
/// segment is overwritten by the next one; only the last spills past `col`. Short rows otherwise
/// cost two overlapping copies each, 1500 per conv2 image.
public func im2col(_ g: ConvolutionGeometry, image: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>, padded: UnsafeMutablePointer<Float>) {
    let k = g.kernelSize, oH = g.outputHeight, oW = g.outputWidth, P = oH * oW
    let Hp = g.paddedHeight, Wp = g.paddedWidth
    let source: UnsafePointer<Float>
    if g.padding > 0 || g.hasShortRows {
        copyPadded(g, image: image, into: padded, slack: ConvolutionGeometry.im2colSlack)
        source = UnsafePointer(padded)
    } else {
        source = image
    }
    if g.hasShortRows {
        for c in 0..<g.channels {
            let plane = source + c * Hp * Wp
            for ky in 0..<k {
                for kx in 0..<k {
                    let row = col + ((c * k + ky) * k + kx) * P
                    for oy in 0..<oH {
                        VectorKernels.store(VectorKernels.load(plane + (oy + ky) * Wp + kx, as: SIMD16<Float>.self), row + oy * oW)
                    }
                }
            }
        }
        return
    }
    for c in 0..<g.channels {
        let plane = source + c * Hp * Wp
        for ky in 0..<k {
            for kx in 0..<k {
                let row = col + ((c * k + ky) * k + kx) * P
                for oy in 0..<oH {
                    let from = plane + (oy * g.stride + ky) * Wp + kx, to = row + oy * oW
                    if g.stride == 1 {
                        VectorKernels.copy(from, to, count: oW)
                    } else {
                        for ox in 0..<oW { to[ox] = from[ox * g.stride] }
                    }
                }
            }
        }
    }
}

/// Writes `image` into `padded` (`channels × Hp × Wp`) inside a zero border, followed by
/// `slack` zeros (for kernels that read past the last row).
public func copyPadded(_ g: ConvolutionGeometry, image: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>, slack: Int = 0) {
    let Hp = g.paddedHeight, Wp = g.paddedWidth
    padded.update(repeating: 0, count: g.channels * Hp * Wp + slack)
    for c in 0..<g.channels {
        for y in 0..<g.height {
            VectorKernels.copy(image + (c * g.height + y) * g.width, padded + (c * Hp + y + g.padding) * Wp + g.padding, count: g.width)
        }
    }
}

/// The adjoint of `im2col`: adds every entry of `col` back into the image position it was read
/// from. **Overwrites** `image` with that sum. `padded` is scratch of `g.paddedImageSize` floats.
///
/// Stride-1 layers whose padded rows are at most 16 wide (LeNet's conv2: 14) gather instead of
/// scatter: each padded row is summed in one 16-lane register from its `k²` shifted column
/// segments (lanes outside a segment masked to zero) and stored once. Scattered adds of short
/// overlapping segments stalled on store-to-load forwarding. This path reads up to
/// `im2colSlack` floats before and after `col` (any values; they are discarded).
public func col2im(_ g: ConvolutionGeometry, col: UnsafePointer<Float>, image: UnsafeMutablePointer<Float>, padded: UnsafeMutablePointer<Float>) {
    let k = g.kernelSize, oH = g.outputHeight, oW = g.outputWidth, P = oH * oW
    let Hp = g.paddedHeight, Wp = g.paddedWidth
    let gathers = g.hasShortRows && Wp <= ConvolutionGeometry.im2colSlack
    let throughPadded = g.padding > 0 || gathers
    let target = throughPadded ? padded : image
    if gathers {
        // keep[kx]: all-ones bits in lanes kx..<kx + oW (the lanes segment kx covers), else zero.
        withUnsafeTemporaryAllocation(of: SIMD16<UInt32>.self, capacity: k) { keep in
            for kx in 0..<k {
                var bits = SIMD16<UInt32>()
                for x in kx..<(kx + oW) { bits[x] = .max }
                keep[kx] = bits
            }
            for c in 0..<g.channels {
                for y in 0..<Hp {
                    var sum = SIMD16<Float>()
                    for ky in max(0, y - oH + 1)..<(min(k - 1, y) + 1) {
                        let row = col + (c * k + ky) * k * P + (y - ky) * oW
                        for kx in 0..<k {
                            // Lane x holds col[(c, ky, kx), oy·oW + x − kx], valid where keep[kx] is set.
                            let segment = VectorKernels.load(row + kx * P - kx, as: SIMD16<Float>.self)
                            sum += unsafeBitCast(unsafeBitCast(segment, to: SIMD16<UInt32>.self) & keep[kx], to: SIMD16<Float>.self)
                        }
                    }
                    VectorKernels.store(sum, target + (c * Hp + y) * Wp)
                }
            }
        }
    } else {
        target.update(repeating: 0, count: g.channels * Hp * Wp)
        for c in 0..<g.channels {
            let plane = target + c * Hp * Wp
            for ky in 0..<k {
                for kx in 0..<k {
                    let row = col + ((c * k + ky) * k + kx) * P
                    for oy in 0..<oH {
                        let to = plane + (oy * g.stride + ky) * Wp + kx, from = row + oy * oW
                        if g.stride == 1 {
                            VectorKernels.add(from, to, count: oW)
                        } else {
                            for ox in 0..<oW { to[ox * g.stride] += from[ox] }
                        }
                    }
                }
            }
        }
    }
    if throughPadded {
        for c in 0..<g.channels {
            for y in 0..<g.height {
                VectorKernels.copy(padded + (c * Hp + y + g.padding) * Wp + g.padding,
                                   image + (c * g.height + y) * g.width, count: g.width)
            }
        }
    }
}

extension ConvolutionGeometry {
    /// A pooling window's geometry: stride `kernelSize` unless given, no padding; the window
    /// must fit the input (`ModelSpec` checks this for user input).
    static func pooling(channels: Int, height: Int, width: Int, kernelSize: Int, stride: Int?) -> ConvolutionGeometry {
        let geometry = ConvolutionGeometry(channels: channels, height: height, width: width, kernelSize: kernelSize, stride: stride ?? kernelSize)
        precondition(geometry.outputHeight > 0 && geometry.outputWidth > 0, "pooling window larger than input")
        return geometry
    }

    /// A pooling layer's per-sample input and output shapes and sizes.
    var poolingShapes: (input: [Int], output: [Int], inputCount: Int, outputCount: Int) {
        ([channels, height, width], [channels, outputHeight, outputWidth], channels * height * width, channels * outputPositions)
    }
}
