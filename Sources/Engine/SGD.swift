/// Hyper-parameters of stochastic gradient descent, with PyTorch's `torch.optim.SGD` meaning.
public struct SGDConfiguration: Sendable, Hashable, Codable {
    public var learningRate: Float
    public var momentum: Float
    public var dampening: Float
    public var weightDecay: Float
    public var nesterov: Bool

    public init(learningRate: Float, momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) {
        precondition(!nesterov || (momentum > 0 && dampening == 0), "Nesterov momentum requires a momentum and zero dampening")
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }
}

/// SGD with momentum, dampening, Nesterov and (coupled) weight decay, step for step as PyTorch:
///
///     g = grad + weightDecay · θ
///     b = g                                  (first step)
///     b = momentum · b + (1 − dampening) · g (later steps)
///     g = nesterov ? g + momentum · b : b
///     θ = θ − learningRate · g
///
/// The momentum buffer `velocity` uses the model's parameter layout.
public struct SGD: Sendable {
    public var configuration: SGDConfiguration
    /// Momentum buffer; empty until the first step with momentum.
    public private(set) var velocity: [Float] = []

    public init(_ configuration: SGDConfiguration) {
        self.configuration = configuration
    }

    /// Forgets the momentum buffer (a new `torch.optim.SGD`).
    public mutating func reset() { velocity.removeAll(keepingCapacity: true) }

    /// Updates `parameters` in place from `gradient`, which is used as scratch (overwritten).
    public mutating func step(parameters: UnsafeMutableBufferPointer<Float>, gradient: UnsafeMutableBufferPointer<Float>) {
        precondition(parameters.count == gradient.count)
        let count = parameters.count
        let c = configuration
        let p = parameters.baseAddress!, g = gradient.baseAddress!
        if c.weightDecay != 0 { BLAS.axpy(count: count, alpha: c.weightDecay, p, g) }
        if c.momentum != 0 {
            let first = velocity.isEmpty
            if first { velocity = [Float](repeating: 0, count: count) }
            precondition(velocity.count == count, "optimizer state belongs to another model")
            velocity.withUnsafeMutableBufferPointer { buffer in
                let b = buffer.baseAddress!
                if first {
                    b.update(from: g, count: count)
                } else {
                    let keep = 1 - c.dampening
                    for i in 0..<count { b[i] = c.momentum * b[i] + keep * g[i] }
                }
                if c.nesterov {
                    BLAS.axpy(count: count, alpha: c.momentum, b, g)
                } else {
                    g.update(from: b, count: count)
                }
            }
        }
        BLAS.axpy(count: count, alpha: -c.learningRate, g, p)
    }
}
