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
    /// Values in `parameterShapes`. A requirement so that layers with parameters answer without
    /// building the shape arrays (DP-SGD reads it every step, which must not allocate).
    var parameterCount: Int { get }
    /// Non-trainable state (PyTorch buffers: BatchNorm's running statistics), laid out after the
    /// parameters in the layer's slice, in `state_dict` order; empty when none. Their gradient
    /// is zero and the optimizer leaves them alone (`Trainer`); federated rounds send and
    /// aggregate them like parameters.
    var bufferShapes: [(suffix: String, shape: [Int])] { get }
    /// Whether a sample's output depends on the other samples of its batch (BatchNorm in
    /// training): such a network trains each batch in one chunk.
    var mixesSamples: Bool { get }
    /// Whether training-mode forward draws random numbers (Dropout).
    var drawsRandomNumbers: Bool { get }
    /// Fills this layer's slice (parameters, then buffers) as PyTorch's default initialization would.
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
    /// Forward in `mode`: in training, BatchNorm normalizes by the batch's statistics (and, when
    /// `mode.updatesBuffers`, updates its running ones in `state`, the layer's slice) and
    /// Dropout drops; in evaluation both are fixed maps. Layers without a training behaviour
    /// run `forward`.
    func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                 state: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, mode: ForwardMode)
    /// Backward of the forward in the same `mode` (which it must be given unchanged).
    func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                  outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                  parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                  scratch: UnsafeMutablePointer<Float>, mode: ForwardMode)
    /// Floats that `accumulateSampleGradientNorms` keeps for `accumulateWeightedSampleGradients`
    /// over a batch of `batch`.
    func sampleGradientKeptCount(batch: Int) -> Int
    /// Backward for per-sample clipping (DP-SGD): overwrites `inputGradient` as `backward` does,
    /// **adds** to `squaredNorms[i]` the squared L2 norm (in Double) of sample i's gradient of
    /// this layer's parameters, and overwrites `kept` (`sampleGradientKeptCount(batch:)` floats)
    /// with what `accumulateWeightedSampleGradients` needs to weight them. The default keeps each
    /// sample's gradient, computed by `backward` one sample at a time (exact for any layer that
    /// does not mix samples); `Dense` keeps only `dY`.
    func accumulateSampleGradientNorms(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                                       outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                                       parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                       kept: UnsafeMutablePointer<Float>, squaredNorms: UnsafeMutablePointer<Double>)
    /// **Adds** Σᵢ `factors[i]`·(sample i's parameter gradient) to `parameterGradient`, from the
    /// `kept` of the preceding `accumulateSampleGradientNorms` on the same `input` and batch
    /// (`kept` may be overwritten).
    func accumulateWeightedSampleGradients(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                                           kept: UnsafeMutablePointer<Float>, factors: UnsafePointer<Float>,
                                           parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                                           scratch: UnsafeMutablePointer<Float>)
}

/// How a forward pass runs: training or evaluation, and where a training step's random draws
/// come from. Dropout's draws for a sample derive from (`seed`, layer, the sample's row in the
/// whole batch), so splitting a batch into chunks does not change them.
public struct ForwardMode: Sendable {
    public var training: Bool
    /// Whether training updates BatchNorm's running statistics (a step does; a gradient alone does not).
    public var updatesBuffers: Bool
    public var seed: UInt64
    /// Row of the chunk's first sample in the whole batch.
    public var firstRow: Int
    /// Position of the layer in its network (set by `Workspace`).
    public var layer: Int

    public init(training: Bool, updatesBuffers: Bool = false, seed: UInt64 = 0, firstRow: Int = 0, layer: Int = 0) {
        (self.training, self.updatesBuffers, self.seed, self.firstRow, self.layer) = (training, updatesBuffers, seed, firstRow, layer)
    }

    public static let evaluation = ForwardMode(training: false)
}

extension Layer {
    public var parameterCount: Int { parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) } }
    /// Parameters and buffers: the size of the layer's slice.
    public var stateCount: Int { parameterCount + bufferShapes.reduce(0) { $0 + $1.shape.reduce(1, *) } }
    public var parameterShapes: [(suffix: String, shape: [Int])] { [] }
    public var bufferShapes: [(suffix: String, shape: [Int])] { [] }
    public var mixesSamples: Bool { false }
    public var drawsRandomNumbers: Bool { false }
    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        state: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, mode: ForwardMode) {
        forward(batch: batch, input: input, output: output, parameters: UnsafePointer(state), scratch: scratch)
    }
    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>, mode: ForwardMode) {
        backward(batch: batch, input: input, output: output, outputGradient: outputGradient, inputGradient: inputGradient,
                 parameters: parameters, parameterGradient: parameterGradient, scratch: scratch)
    }
    public func sampleGradientKeptCount(batch: Int) -> Int { batch * parameterCount }
    public func accumulateSampleGradientNorms(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                                              outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                                              parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                              kept: UnsafeMutablePointer<Float>, squaredNorms: UnsafeMutablePointer<Double>) {
        precondition(!mixesSamples && !drawsRandomNumbers, "per-sample gradients need samples trained independently")
        let count = parameterCount
        guard count > 0 else {
            backward(batch: batch, input: input, output: output, outputGradient: outputGradient, inputGradient: inputGradient,
                     parameters: parameters, parameterGradient: kept, scratch: scratch)
            return
        }
        for sample in 0..<batch {
            let gradient = kept + sample * count
            gradient.update(repeating: 0, count: count)
            backward(batch: 1, input: input + sample * inputCount, output: output + sample * outputCount,
                     outputGradient: outputGradient + sample * outputCount, inputGradient: inputGradient.map { $0 + sample * inputCount },
                     parameters: parameters, parameterGradient: gradient, scratch: scratch)
            squaredNorms[sample] += VectorKernels.squaredNorm(gradient, count: count)
        }
    }
    public func accumulateWeightedSampleGradients(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                                                  kept: UnsafeMutablePointer<Float>, factors: UnsafePointer<Float>,
                                                  parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                                                  scratch: UnsafeMutablePointer<Float>) {
        let count = parameterCount
        for sample in 0..<batch where count > 0 {
            BLAS.axpy(count: count, alpha: factors[sample], kept + sample * count, parameterGradient)
        }
    }
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
