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

    /// Output columns `ox` whose input column `ox·stride − padding + kx` lies inside the image.
    @inline(__always)
    func validColumns(kx: Int) -> Range<Int> {
        let shift = kx - padding
        let low = shift >= 0 ? 0 : (-shift + stride - 1) / stride
        let high = width - 1 - shift < 0 ? 0 : min(outputWidth, (width - 1 - shift) / stride + 1)
        return low..<max(low, high)
    }
}

/// Unrolls one CHW image into the column matrix `col(patchSize × outputPositions)`, row
/// `(c·k + ky)·k + kx`, column `oy·outputWidth + ox` (Caffe/darknet layout); zero padding.
/// Overwrites all of `col`.
public func im2col(_ g: ConvolutionGeometry, image: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>) {
    let k = g.kernelSize, oH = g.outputHeight, oW = g.outputWidth, P = oH * oW
    for c in 0..<g.channels {
        let plane = image + c * g.height * g.width
        for ky in 0..<k {
            for kx in 0..<k {
                let row = col + ((c * k + ky) * k + kx) * P
                let valid = g.validColumns(kx: kx)
                for oy in 0..<oH {
                    let out = row + oy * oW
                    let iy = oy * g.stride - g.padding + ky
                    if iy < 0 || iy >= g.height || valid.isEmpty {
                        out.update(repeating: 0, count: oW)
                        continue
                    }
                    if valid.lowerBound > 0 { out.update(repeating: 0, count: valid.lowerBound) }
                    if valid.upperBound < oW { (out + valid.upperBound).update(repeating: 0, count: oW - valid.upperBound) }
                    let source = plane + iy * g.width + kx - g.padding
                    if g.stride == 1 {
                        (out + valid.lowerBound).update(from: source + valid.lowerBound, count: valid.count)
                    } else {
                        for ox in valid { out[ox] = source[ox * g.stride] }
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: adds every entry of `col` back into the image position it was read
/// from. Accumulates into `image`; the caller zeroes it first when it wants an overwrite.
public func col2im(_ g: ConvolutionGeometry, col: UnsafePointer<Float>, image: UnsafeMutablePointer<Float>) {
    let k = g.kernelSize, oH = g.outputHeight, oW = g.outputWidth, P = oH * oW
    for c in 0..<g.channels {
        let plane = image + c * g.height * g.width
        for ky in 0..<k {
            for kx in 0..<k {
                let row = col + ((c * k + ky) * k + kx) * P
                let valid = g.validColumns(kx: kx)
                if valid.isEmpty { continue }
                for oy in 0..<oH {
                    let iy = oy * g.stride - g.padding + ky
                    if iy < 0 || iy >= g.height { continue }
                    let source = row + oy * oW
                    let target = plane + iy * g.width + kx - g.padding
                    if g.stride == 1 {
                        for ox in valid { target[ox] += source[ox] }
                    } else {
                        for ox in valid { target[ox * g.stride] += source[ox] }
                    }
                }
            }
        }
    }
}
