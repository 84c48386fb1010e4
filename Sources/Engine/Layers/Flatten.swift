/// Reshapes each CHW sample to a vector; row-major NCHW memory is already in PyTorch's
/// `flatten(1)` order, so this is a copy.
public struct Flatten: Layer {
    public let inputShape: [Int]
    public init(shape: [Int]) { inputShape = shape }
    public var outputShape: [Int] { [inputCount] }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        output.update(from: input, count: batch * inputCount)
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        inputGradient?.update(from: outputGradient, count: batch * inputCount)
    }
}
