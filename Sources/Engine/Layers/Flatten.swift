/// Reshapes each CHW sample to a vector; row-major NCHW memory is already in PyTorch's
/// `flatten(1)` order, so this is a copy.
public struct Flatten: Layer {
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let inputCount: Int
    public init(shape: [Int]) {
        inputShape = shape
        inputCount = shape.reduce(1, *)
        outputShape = [inputCount]
    }
    public var outputCount: Int { inputCount }

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
