/// Activations, activation gradients and layer scratch for one network at up to `capacity`
/// samples, allocated once. One workspace belongs to one thread at a time; training reuses it
/// for every batch, so the step allocates nothing.
///
/// Memory: every layer output (`capacity × outputCount` each), two ping-pong gradient buffers of
/// the widest activation, one scratch buffer of the largest `scratchCount`, and each dense
/// layer's output gradient kept for its deferred weight gradient (`capacity × outputCount`).
public final class Workspace {
    public let network: Sequential
    public let capacity: Int
    private let storage: UnsafeMutableBufferPointer<Float>
    private let activationOffsets: [Int]
    private let gradientOffsets: (Int, Int)
    private let scratchOffset: Int
    /// Where each dense layer keeps its output gradient for `accumulateDeferredWeightGradient`
    /// (nil for other layers).
    private let keptOutputGradientOffsets: [Int?]

    public init(network: Sequential, capacity: Int) {
        precondition(capacity > 0)
        self.network = network
        self.capacity = capacity
        let plan = Self.plan(network: network, capacity: capacity)
        (activationOffsets, gradientOffsets, scratchOffset, keptOutputGradientOffsets) = (plan.activations, plan.gradients, plan.scratch, plan.kept)
        storage = .allocate(capacity: plan.total)
        storage.initialize(repeating: 0)
    }

    /// Bytes a workspace for `capacity` samples allocates.
    public static func byteCount(network: Sequential, capacity: Int) -> Int {
        plan(network: network, capacity: capacity).total * MemoryLayout<Float>.stride
    }

    /// Offsets (in floats) of the activations, the two gradient buffers, the scratch and the kept
    /// dense output gradients, and the total.
    private static func plan(network: Sequential, capacity: Int) -> (activations: [Int], gradients: (Int, Int), scratch: Int, kept: [Int?], total: Int) {
        var offset = 0
        var activations: [Int] = []
        for layer in network.layers {
            activations.append(offset)
            offset += capacity * layer.outputCount
        }
        let widest = capacity * network.layers.map { max($0.inputCount, $0.outputCount) }.max()!
        let gradients = (offset, offset + widest)
        offset += 2 * widest
        let scratch = offset
        offset += network.layers.map { $0.scratchCount(batch: capacity) }.max()!
        let kept = network.layers.map { layer -> Int? in
            guard layer is Dense else { return nil }
            defer { offset += capacity * layer.outputCount }
            return offset
        }
        return (activations, gradients, scratch, kept, offset)
    }

    /// What each layer keeps between `sampleGradientNorms` and `accumulateClippedGradient`
    /// (`Layer.sampleGradientKeptCount` at `capacity`), and where each layer's part starts;
    /// allocated on the first call (DP-SGD only).
    private var kept: (storage: UnsafeMutableBufferPointer<Float>, offsets: [Int])?

    deinit {
        storage.deallocate()
        kept?.storage.deallocate()
    }

    /// The network's output for the last `forward`, `batch × outputCount`.
    public var logits: UnsafeMutablePointer<Float> { storage.baseAddress! + activationOffsets.last! }

    /// Output of layer `index` from the last `forward`, `batch × outputCount` (for inspection).
    public func activation(_ index: Int) -> UnsafePointer<Float> {
        UnsafePointer(storage.baseAddress! + activationOffsets[index])
    }

    /// Where the loss writes dL/dlogits before `backward`.
    public var logitGradient: UnsafeMutablePointer<Float> { storage.baseAddress! + gradientOffsets.0 }

    /// Runs every layer on `batch` samples at `input` (`batch × inputCount`) in `mode` and
    /// returns `logits`. Only a training mode that `updatesBuffers` writes to `parameters` (its
    /// BatchNorm running statistics); otherwise they are only read.
    @discardableResult
    public func forward(batch: Int, input: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                        mode: ForwardMode = .evaluation) -> UnsafeMutablePointer<Float> {
        precondition(batch >= 1 && batch <= capacity, "batch \(batch) exceeds workspace capacity \(capacity)")
        let base = storage.baseAddress!, scratch = base + scratchOffset
        let state = UnsafeMutablePointer(mutating: parameters)
        var x = input, mode = mode
        for (index, layer) in network.layers.enumerated() {
            let y = base + activationOffsets[index]
            mode.layer = index
            layer.forward(batch: batch, input: x, output: y, state: state + network.parameterOffsets[index], scratch: scratch, mode: mode)
            x = UnsafePointer(y)
        }
        return logits
    }

    /// Back-propagates `logitGradient` through the activations of the preceding `forward` on the
    /// same `input`, **accumulating** dL/dθ into `gradient` (the full flat vector). With
    /// `deferringDenseWeights`, dense layers leave their weight gradient untouched and keep their
    /// output gradient for `accumulateDeferredWeightGradient` instead.
    public func backward(batch: Int, input: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                         gradient: UnsafeMutablePointer<Float>, mode: ForwardMode = .evaluation, deferringDenseWeights: Bool = false) {
        var mode = mode
        let base = storage.baseAddress!, scratch = base + scratchOffset
        walkBackward(input: input) { index, x, y, dy, dx in
            mode.layer = index
            let layerParameters = parameters + network.parameterOffsets[index], layerGradient = gradient + network.parameterOffsets[index]
            if deferringDenseWeights, let dense = network.layers[index] as? Dense {
                dense.backwardDeferringWeightGradient(batch: batch, input: x, outputGradient: dy, inputGradient: dx, parameters: layerParameters,
                                                      parameterGradient: layerGradient, scratch: scratch,
                                                      keptOutputGradient: base + keptOutputGradientOffsets[index]!)
                return
            }
            network.layers[index].backward(batch: batch, input: x, output: y, outputGradient: dy, inputGradient: dx,
                                           parameters: layerParameters, parameterGradient: layerGradient, scratch: scratch, mode: mode)
        }
    }

    /// Rows `rows` of dense layer `index`'s weight gradient from the preceding
    /// `backward(deferringDenseWeights: true)` on `batch` samples at `input`:
    /// `dW[rows] = beta · dW[rows] + dY[:, rows]ᵀ · X`, into `gradient` (the full flat vector).
    public func accumulateDeferredWeightGradient(layer index: Int, rows: Range<Int>, batch: Int, input: UnsafePointer<Float>,
                                                 beta: Float, gradient: UnsafeMutablePointer<Float>) {
        guard let dense = network.layers[index] as? Dense, let kept = keptOutputGradientOffsets[index] else {
            preconditionFailure("layer \(index) is not a dense layer")
        }
        let base = storage.baseAddress!
        let x = index == 0 ? input : UnsafePointer(base + activationOffsets[index - 1])
        dense.accumulateWeightGradient(rows: rows, batch: batch, input: x, keptOutputGradient: base + kept, beta: beta,
                                       weightGradient: gradient + network.parameterOffsets[index])
    }

    /// Calls `body(index, input, output, outputGradient, inputGradient)` for every layer from the
    /// last to the first, with the activations of the preceding `forward` on `input`: the
    /// gradient arriving from above starts as `logitGradient`, and each layer's input gradient
    /// (nil for the first layer) goes to the other of the two gradient buffers, which it feeds next.
    @inline(__always)
    private func walkBackward(input: UnsafePointer<Float>,
                              _ body: (Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>?) -> Void) {
        let base = storage.baseAddress!
        var upstream = base + gradientOffsets.0, downstream = base + gradientOffsets.1
        for index in stride(from: network.layers.count - 1, through: 0, by: -1) {
            let x = index == 0 ? input : UnsafePointer(base + activationOffsets[index - 1])
            body(index, x, base + activationOffsets[index], upstream, index == 0 ? nil : downstream)
            swap(&upstream, &downstream)
        }
    }

    /// Back-propagates `logitGradient` (per-sample loss gradients) through the activations of
    /// the preceding training-mode `forward` on the same `input` and **adds** to
    /// `squaredNorms[i]` (`batch` values) the squared L2 norm of sample i's parameter gradient
    /// (`Layer.accumulateSampleGradientNorms`), keeping what `accumulateClippedGradient` needs.
    /// Overwrites `logitGradient`; computes no parameter gradient. The network must not mix
    /// samples (no BatchNorm) nor draw random numbers (no Dropout).
    public func sampleGradientNorms(batch: Int, input: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                                    squaredNorms: UnsafeMutablePointer<Double>) {
        precondition(!network.mixesSamples && !network.drawsRandomNumbers, "per-sample gradient norms need samples trained independently")
        precondition(batch >= 1 && batch <= capacity, "batch \(batch) exceeds workspace capacity \(capacity)")
        if kept == nil {
            var offsets: [Int] = [], total = 0
            for layer in network.layers {
                offsets.append(total)
                total += max(1, layer.sampleGradientKeptCount(batch: capacity))
            }
            kept = (.allocate(capacity: total), offsets)
        }
        let scratch = storage.baseAddress! + scratchOffset, keptBase = kept!.storage.baseAddress!, offsets = kept!.offsets
        walkBackward(input: input) { index, x, y, dy, dx in
            network.layers[index].accumulateSampleGradientNorms(
                batch: batch, input: x, output: y, outputGradient: dy, inputGradient: dx,
                parameters: parameters + network.parameterOffsets[index], scratch: scratch, kept: keptBase + offsets[index],
                squaredNorms: squaredNorms)
        }
    }

    /// **Adds** Σᵢ `factors[i]`·gᵢ to `gradient` (the full flat vector), gᵢ sample i's parameter
    /// gradient, from what the preceding `sampleGradientNorms` on the same `input` and batch kept
    /// (no second backward pass: Bu et al. 2023's book-keeping).
    public func accumulateClippedGradient(batch: Int, input: UnsafePointer<Float>, parameters: UnsafePointer<Float>,
                                          factors: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>) {
        guard let kept else { preconditionFailure("accumulateClippedGradient before sampleGradientNorms") }
        let base = storage.baseAddress!, scratch = base + scratchOffset
        for (index, layer) in network.layers.enumerated() where layer.parameterCount > 0 {
            let x = index == 0 ? input : UnsafePointer(base + activationOffsets[index - 1])
            layer.accumulateWeightedSampleGradients(
                batch: batch, input: x, output: base + activationOffsets[index], kept: kept.storage.baseAddress! + kept.offsets[index],
                factors: factors, parameters: parameters + network.parameterOffsets[index],
                parameterGradient: gradient + network.parameterOffsets[index], scratch: scratch)
        }
    }
}
