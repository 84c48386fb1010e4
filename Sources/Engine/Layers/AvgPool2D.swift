/// Average pooling over `kernelSize²` windows with `stride`, no padding, floor mode (PyTorch's
/// `avg_pool2d` defaults): each output is the window's sum, in row-major window order, divided by
/// `kernelSize²` (PyTorch's CPU kernel, so results match it bit for bit); backward spreads
/// `dy/kernelSize²` over the window, accumulating where windows overlap (stride < kernel).
public struct AvgPool2D: Layer {
    public let geometry: ConvolutionGeometry
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let inputCount: Int
    public let outputCount: Int

    public init(channels: Int, inputHeight: Int, inputWidth: Int, kernelSize: Int, stride: Int? = nil) {
        geometry = .pooling(channels: channels, height: inputHeight, width: inputWidth, kernelSize: kernelSize, stride: stride)
        (inputShape, outputShape, inputCount, outputCount) = geometry.poolingShapes
    }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let k = geometry.kernelSize, s = geometry.stride, W = geometry.width
        let oH = geometry.outputHeight, oW = geometry.outputWidth, plane = geometry.height * W
        let area = Float(k * k)
        for p in 0..<(batch * geometry.channels) {
            let x = input + p * plane, y = output + p * oH * oW
            for oy in 0..<oH {
                for ox in 0..<oW {
                    var sum: Float = 0
                    for ky in 0..<k {
                        let row = x + (oy * s + ky) * W + ox * s
                        for kx in 0..<k { sum += row[kx] }
                    }
                    y[oy * oW + ox] = sum / area
                }
            }
        }
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        guard let inputGradient else { return }
        let k = geometry.kernelSize, s = geometry.stride, W = geometry.width
        let oH = geometry.outputHeight, oW = geometry.outputWidth, plane = geometry.height * W
        let area = Float(k * k)
        inputGradient.update(repeating: 0, count: batch * inputCount)
        for p in 0..<(batch * geometry.channels) {
            let dx = inputGradient + p * plane, dy = outputGradient + p * oH * oW
            for oy in 0..<oH {
                for ox in 0..<oW {
                    let g = dy[oy * oW + ox] / area
                    for ky in 0..<k {
                        let row = dx + (oy * s + ky) * W + ox * s
                        for kx in 0..<k { row[kx] += g }
                    }
                }
            }
        }
    }
}
