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
        let first = prepareVelocity(count: parameters.count)
        let configuration = configuration
        withVelocity { velocity in
            SGD.update(configuration, parameters: parameters.baseAddress!, gradient: gradient.baseAddress!,
                       velocity: velocity, firstStep: first, range: 0..<parameters.count)
        }
    }

    /// Allocates the momentum buffer for `count` parameters if needed; returns whether the next
    /// update is the first one (which copies the gradient into the buffer).
    public mutating func prepareVelocity(count: Int) -> Bool {
        guard configuration.momentum != 0 else { return false }
        if velocity.isEmpty {
            velocity = [Float](repeating: 0, count: count)
            return true
        }
        precondition(velocity.count == count, "optimizer state belongs to another model")
        return false
    }

    /// Runs `body` with the momentum buffer (nil without momentum).
    public mutating func withVelocity<R>(_ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
        if velocity.isEmpty { return body(nil) }
        return velocity.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }

    /// The update on elements `range` only. Elements are independent, so disjoint ranges may run
    /// on different threads and give the same result as one call over everything. Each case is
    /// its own branch-free loop: a conditional store inside one loop was compiled to masked
    /// stores (`vmaskmovps`), which are microcoded on AMD Zen and made the update 10× slower.
    public static func update(
        _ c: SGDConfiguration, parameters p: UnsafeMutablePointer<Float>, gradient g: UnsafeMutablePointer<Float>,
        velocity b: UnsafeMutablePointer<Float>?, firstStep: Bool, range: Range<Int>
    ) {
        let lr = c.learningRate, wd = c.weightDecay, mu = c.momentum, keep = 1 - c.dampening
        guard let b else {
            for i in range { p[i] -= lr * (g[i] + wd * p[i]) }
            return
        }
        if firstStep {
            for i in range { b[i] = g[i] + wd * p[i] }
        } else {
            for i in range { b[i] = mu * b[i] + keep * (g[i] + wd * p[i]) }
        }
        if c.nesterov {
            for i in range { p[i] -= lr * ((g[i] + wd * p[i]) + mu * b[i]) }
        } else {
            for i in range { p[i] -= lr * b[i] }
        }
    }
}
