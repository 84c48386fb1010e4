/// Dropout with PyTorch's semantics: in training each value is kept with probability `1 − p` and
/// scaled by `1/(1 − p)` (computed in Float), else zeroed; in evaluation it is the identity.
///
/// Masks come from the step's seed (`ForwardMode`): the values of the sample in row `r` of the
/// whole batch draw from `SeededGenerator.derived(seed:, layer, r)`, one `nextUnitFloat` each in
/// order, kept when the draw is at least `p`; so chunking a batch does not change them, and
/// backward regenerates the forward pass's mask instead of storing it.
public struct Dropout: Layer {
    public let inputShape: [Int]
    public let inputCount: Int
    public let probability: Float

    public init(shape: [Int], probability: Float) {
        precondition(probability >= 0 && probability < 1, "dropout probability must be in [0, 1)")
        inputShape = shape
        inputCount = shape.reduce(1, *)
        self.probability = probability
    }

    public var outputShape: [Int] { inputShape }
    public var outputCount: Int { inputCount }
    public var drawsRandomNumbers: Bool { probability > 0 }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        output.update(from: input, count: batch * inputCount)
    }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        state: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, mode: ForwardMode) {
        guard mode.training, probability > 0 else { return output.update(from: input, count: batch * inputCount) }
        masked(input, output, batch: batch, mode: mode)
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        inputGradient?.update(from: outputGradient, count: batch * inputCount)
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>, mode: ForwardMode) {
        guard let inputGradient else { return }
        guard mode.training, probability > 0 else { return inputGradient.update(from: outputGradient, count: batch * inputCount) }
        masked(outputGradient, inputGradient, batch: batch, mode: mode)
    }

    /// `to = from · mask/(1 − p)` with the mask of `mode`'s rows.
    private func masked(_ from: UnsafePointer<Float>, _ to: UnsafeMutablePointer<Float>, batch: Int, mode: ForwardMode) {
        let scale = 1 / Float(1 - Double(probability)), p = probability
        for row in 0..<batch {
            var generator = SeededGenerator.derived(seed: mode.seed, UInt64(mode.layer), then: UInt64(mode.firstRow + row))
            let offset = row * inputCount
            for i in 0..<inputCount {
                to[offset + i] = generator.nextUnitFloat() >= p ? from[offset + i] * scale : 0
            }
        }
    }
}
