/// A differentiable transformation of a batch of samples, with its parameters held outside it.
///
/// Contract shared by every layer:
/// - Activations are row-major; a batch is `batch × inputCount` (NCHW for images).
/// - `parameters` points at this layer's slice of the model's flat vector, tensors in
///   `parameterShapes` order; `parameterGradient` at the same slice of the gradient vector.
/// - `forward` overwrites `output`. `backward` **accumulates** into `parameterGradient` and
///   **overwrites** `inputGradient` (skipped when nil, for the first layer).
/// - `scratch` holds `scratchCount(batch:)` floats owned by the caller; contents are undefined on
///   entry. Layers keep no state between calls, so one value can serve many threads. (Recomputing
///   a convolution's column matrices in `backward` measured faster than keeping them from
///   `forward`: the kept matrices overflow L2.)
public protocol Layer: Sendable {
    /// Per-sample input shape, for example `[1, 28, 28]` or `[400]`.
    var inputShape: [Int] { get }
    /// Per-sample output shape.
    var outputShape: [Int] { get }
    /// Elements per input sample. Stored by every layer: the kernels read it per image, and a
    /// shape array built on each read would allocate in the training step.
    var inputCount: Int { get }
    /// Elements per output sample (stored, as `inputCount`).
    var outputCount: Int { get }
    /// Parameter tensors (PyTorch suffix and shape), in `state_dict` order; empty when none.
    var parameterShapes: [(suffix: String, shape: [Int])] { get }
    /// Fills this layer's parameter slice as PyTorch's default initialization would.
    func initialize(_ parameters: UnsafeMutableBufferPointer<Float>, using generator: inout SeededGenerator)
    /// Floats of scratch memory `forward` and `backward` need for a batch of `batch`.
    func scratchCount(batch: Int) -> Int
    func forward(
        batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>)
    func backward(
        batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
        parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>)
}

extension Layer {
    public var parameterCount: Int { parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) } }
    public var parameterShapes: [(suffix: String, shape: [Int])] { [] }
    public func initialize(_ parameters: UnsafeMutableBufferPointer<Float>, using generator: inout SeededGenerator) {}
    public func scratchCount(batch: Int) -> Int { 0 }
}

/// PyTorch's default initialization of a weight with fan-in `fanIn` and its bias:
/// `kaiming_uniform_(a: sqrt(5))` gives bound `gain·sqrt(3/fanIn)` with `gain = sqrt(2/(1+5))`,
/// which is `1/sqrt(fanIn)`; the bias is uniform in the same bound. Weights are drawn first, then
/// biases, each in row-major order.
func initializeUniformFanIn(_ parameters: UnsafeMutableBufferPointer<Float>, fanIn: Int, using generator: inout SeededGenerator) {
    let bound = 1 / Float(fanIn).squareRoot()
    for index in parameters.indices {
        parameters[index] = generator.nextUniform(-bound, bound)
    }
}
