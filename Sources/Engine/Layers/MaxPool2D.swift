/// Max pooling over `kernelSize²` windows with `stride`, no padding, floor mode (PyTorch's
/// `max_pool2d` defaults). Ties go to the first maximum in row-major window order, as in
/// PyTorch; backward recomputes that position from the input instead of storing indices.
public struct MaxPool2D: Layer {
    public let geometry: ConvolutionGeometry

    public init(channels: Int, inputHeight: Int, inputWidth: Int, kernelSize: Int, stride: Int? = nil) {
        geometry = ConvolutionGeometry(channels: channels, height: inputHeight, width: inputWidth,
                                       kernelSize: kernelSize, stride: stride ?? kernelSize)
        precondition(geometry.outputHeight > 0 && geometry.outputWidth > 0, "pooling window larger than input")
    }

    public var inputShape: [Int] { [geometry.channels, geometry.height, geometry.width] }
    public var outputShape: [Int] { [geometry.channels, geometry.outputHeight, geometry.outputWidth] }

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

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let oH = geometry.outputHeight, oW = geometry.outputWidth, planeSize = geometry.height * geometry.width
        for plane in 0..<(batch * geometry.channels) {
            let x = input + plane * planeSize, y = output + plane * oH * oW
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
        let oH = geometry.outputHeight, oW = geometry.outputWidth, planeSize = geometry.height * geometry.width
        inputGradient.update(repeating: 0, count: batch * inputCount)
        for plane in 0..<(batch * geometry.channels) {
            let x = input + plane * planeSize, dx = inputGradient + plane * planeSize
            let dy = outputGradient + plane * oH * oW
            for oy in 0..<oH {
                for ox in 0..<oW { dx[argmax(x, oy, ox)] += dy[oy * oW + ox] }
            }
        }
    }
}
