/// Rectified linear unit, `y = max(0, x)`; the gradient passes where the output is positive
/// (PyTorch's convention at 0: gradient 0).
public struct ReLU: Layer {
    public let inputShape: [Int]
    public init(shape: [Int]) { inputShape = shape }
    public var outputShape: [Int] { inputShape }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        for index in 0..<(batch * inputCount) {
            output[index] = max(input[index], 0)
        }
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        guard let inputGradient else { return }
        for index in 0..<(batch * inputCount) {
            inputGradient[index] = output[index] > 0 ? outputGradient[index] : 0
        }
    }
}
