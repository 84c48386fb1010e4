/// Batch normalization with PyTorch's semantics (`BatchNorm2d` on `[C, H, W]` samples,
/// `BatchNorm1d` on `[C]`): momentum 0.1, ε 1e-5, affine, running statistics tracked.
///
/// State slice, in `state_dict` order: `weight` γ and `bias` β (`[C]`, parameters), then the
/// buffers `running_mean`, `running_var` (`[C]`) and `num_batches_tracked` (`[]`, a count kept
/// as a float, exact up to 2²⁴ steps). Per channel, over the batch's `N·H·W` values:
/// - training: `y = x·a + b` with `a = γ/√(var + ε)`, `b = β − mean·a` (the batch's mean and
///   biased variance, computed in Double); a step also updates `running = 0.9·running + 0.1·batch`
///   (the variance unbiased by `n/(n−1)`, as PyTorch; a channel of one value keeps it biased, 0)
///   and counts the batch;
/// - evaluation: the same map with the running statistics.
/// Backward (training) recomputes the batch statistics from the input:
/// `dx = a·(dy − mean(dy) − x̂·mean(dy·x̂))`, `dγ += Σ dy·x̂`, `dβ += Σ dy`.
public struct BatchNorm: Layer {
    public let inputShape: [Int]
    public let inputCount: Int
    public let channels: Int
    /// Values per channel per sample (`H·W`, or 1).
    public let planeSize: Int
    public static let momentum = 0.1
    public static let epsilon = 1e-5

    public init(shape: [Int]) {
        precondition(shape.count == 3 || shape.count == 1, "BatchNorm takes [C, H, W] or [C] samples")
        inputShape = shape
        inputCount = shape.reduce(1, *)
        channels = shape[0]
        planeSize = inputCount / channels
    }

    public var outputShape: [Int] { inputShape }
    public var outputCount: Int { inputCount }
    public var parameterShapes: [(suffix: String, shape: [Int])] { [("weight", [channels]), ("bias", [channels])] }
    public var parameterCount: Int { 2 * channels }
    public var bufferShapes: [(suffix: String, shape: [Int])] {
        [("running_mean", [channels]), ("running_var", [channels]), ("num_batches_tracked", [])]
    }
    public var mixesSamples: Bool { true }

    public func initialize(_ parameters: UnsafeMutableBufferPointer<Float>, using generator: inout SeededGenerator) {
        let C = channels
        for c in 0..<C {
            parameters[c] = 1
            parameters[C + c] = 0
            parameters[2 * C + c] = 0
            parameters[3 * C + c] = 1
        }
        parameters[4 * C] = 0
    }

    /// The batch's per-channel mean and biased variance, in Double.
    @inline(__always)
    private func statistics(_ x: UnsafePointer<Float>, batch: Int, channel c: Int) -> (mean: Double, variance: Double) {
        let stride = channels * planeSize, n = Double(batch * planeSize)
        var sum = 0.0
        for b in 0..<batch {
            let plane = x + b * stride + c * planeSize
            for i in 0..<planeSize { sum += Double(plane[i]) }
        }
        let mean = sum / n
        var squares = 0.0
        for b in 0..<batch {
            let plane = x + b * stride + c * planeSize
            for i in 0..<planeSize {
                let d = Double(plane[i]) - mean
                squares += d * d
            }
        }
        return (mean, squares / n)
    }

    /// `y = x·a + b` on channel `c`.
    @inline(__always)
    private func transform(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channel c: Int, a: Float, b: Float) {
        let stride = channels * planeSize
        for s in 0..<batch {
            let offset = s * stride + c * planeSize
            for i in 0..<planeSize { y[offset + i] = x[offset + i] * a + b }
        }
    }

    private func scale(variance: Double, gamma: Float) -> Float { gamma * Float(1 / (variance + Self.epsilon).squareRoot()) }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let C = channels
        for c in 0..<C {
            // Running variances are aggregated like parameters (noise, codecs, attackers): a
            // negative one counts as 0 rather than making the output NaN.
            let a = scale(variance: max(0, Double(parameters[3 * C + c])), gamma: parameters[c])
            transform(input, output, batch: batch, channel: c, a: a, b: parameters[C + c] - parameters[2 * C + c] * a)
        }
    }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        state: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, mode: ForwardMode) {
        guard mode.training else {
            return forward(batch: batch, input: input, output: output, parameters: UnsafePointer(state), scratch: scratch)
        }
        let C = channels, n = batch * planeSize, m = Self.momentum
        for c in 0..<C {
            let (mean, variance) = statistics(input, batch: batch, channel: c)
            let a = scale(variance: variance, gamma: state[c])
            transform(input, output, batch: batch, channel: c, a: a, b: state[C + c] - Float(mean) * a)
            if mode.updatesBuffers {
                let unbiased = n > 1 ? variance * Double(n) / Double(n - 1) : variance
                state[2 * C + c] = Float((1 - m) * Double(state[2 * C + c]) + m * mean)
                state[3 * C + c] = Float((1 - m) * Double(state[3 * C + c]) + m * unbiased)
            }
        }
        if mode.updatesBuffers { state[4 * C] += 1 }
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        backward(batch: batch, input: input, outputGradient: outputGradient, inputGradient: inputGradient,
                 parameters: parameters, parameterGradient: parameterGradient, training: false)
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>, mode: ForwardMode) {
        backward(batch: batch, input: input, outputGradient: outputGradient, inputGradient: inputGradient,
                 parameters: parameters, parameterGradient: parameterGradient, training: mode.training)
    }

    /// Training: through the batch statistics; evaluation: the fixed affine map.
    private func backward(batch: Int, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                          inputGradient: UnsafeMutablePointer<Float>?, parameters: UnsafePointer<Float>,
                          parameterGradient: UnsafeMutablePointer<Float>, training: Bool) {
        let C = channels, stride = C * planeSize, n = Double(batch * planeSize)
        for c in 0..<C {
            let (mean, variance) = training ? statistics(input, batch: batch, channel: c)
                : (Double(parameters[2 * C + c]), max(0, Double(parameters[3 * C + c])))
            let invstd = 1 / (variance + Self.epsilon).squareRoot()
            var sumDy = 0.0, sumDyXhat = 0.0
            for s in 0..<batch {
                let offset = s * stride + c * planeSize
                for i in 0..<planeSize {
                    let dy = Double(outputGradient[offset + i])
                    sumDy += dy
                    sumDyXhat += dy * (Double(input[offset + i]) - mean) * invstd
                }
            }
            parameterGradient[c] += Float(sumDyXhat)
            parameterGradient[C + c] += Float(sumDy)
            guard let inputGradient else { continue }
            let a = Double(parameters[c]) * invstd
            let meanDy = training ? sumDy / n : 0, meanDyXhat = training ? sumDyXhat / n : 0
            for s in 0..<batch {
                let offset = s * stride + c * planeSize
                for i in 0..<planeSize {
                    let xhat = (Double(input[offset + i]) - mean) * invstd
                    inputGradient[offset + i] = Float(a * (Double(outputGradient[offset + i]) - meanDy - xhat * meanDyXhat))
                }
            }
        }
    }
}
