/// Rectified linear unit, `y = max(0, x)`; the gradient passes where the output is positive
/// (PyTorch's convention at 0: gradient 0). Explicit 16-lane SIMD: the select in the backward
/// pass does not auto-vectorize.
public struct ReLU: Layer {
    public let inputShape: [Int]
    public let inputCount: Int
    public init(shape: [Int]) {
        inputShape = shape
        inputCount = shape.reduce(1, *)
    }
    public var outputShape: [Int] { inputShape }
    public var outputCount: Int { inputCount }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let count = batch * inputCount, lanes = SIMD16<Float>.scalarCount
        var index = 0
        while index + lanes <= count {
            let x = UnsafeRawPointer(input + index).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(output + index).storeBytes(of: x.replacing(with: 0, where: x .< 0), as: SIMD16<Float>.self)
            index += lanes
        }
        while index < count {
            output[index] = input[index] < 0 ? 0 : input[index]
            index += 1
        }
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        guard let inputGradient else { return }
        let count = batch * inputCount, lanes = SIMD16<Float>.scalarCount
        var index = 0
        while index + lanes <= count {
            let y = UnsafeRawPointer(output + index).loadUnaligned(as: SIMD16<Float>.self)
            let dy = UnsafeRawPointer(outputGradient + index).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(inputGradient + index).storeBytes(of: dy.replacing(with: 0, where: y .<= 0), as: SIMD16<Float>.self)
            index += lanes
        }
        while index < count {
            inputGradient[index] = output[index] > 0 ? outputGradient[index] : 0
            index += 1
        }
    }
}
