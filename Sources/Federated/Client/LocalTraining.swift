import Datasets
import Engine

/// Local training settings every client uses.
public struct LocalTrainingConfiguration: Sendable, Codable, Equatable {
    public var epochs: Int
    public var batchSize: Int
    public var optimizer: SGDConfiguration
    /// Example-level DP-SGD instead of plain SGD (`dp: dpsgd`).
    public var exampleDP: ExampleDPSGD?

    public init(epochs: Int, batchSize: Int, optimizer: SGDConfiguration, exampleDP: ExampleDPSGD? = nil) {
        (self.epochs, self.batchSize, self.optimizer, self.exampleDP) = (epochs, batchSize, optimizer, exampleDP)
    }
}

/// Runs one client's local training: from the global model, `epochs` of SGD over the client's
/// samples with a fresh optimizer (a new `torch.optim.SGD` per round, as Flower clients do),
/// following the round's instructions, and returns the update. `clientControl` is the client's
/// own SCAFFOLD control variate `cᵢ` (zero when nil), used only when the instructions carry `c`.
///
/// Deterministic: the shuffling comes only from `generator`, which the client derives from
/// (seed, round, client), and the trainer runs single-threaded; so a client's update does not
/// depend on which worker thread ran it.
func trainClient(
    _ client: Int, indices: [Int], data: LabeledImages, global: [Float], configuration: LocalTrainingConfiguration,
    instructions: RoundInstructions, clientControl: [Float]?, training: SupervisedTraining, generator: inout SeededGenerator
) -> ClientUpdate {
    var parameters = global
    training.trainer.optimizer.reset()
    let count = global.count
    // SCAFFOLD's correction c − cᵢ is the same for every step of the round: compute it once. It is
    // applied to the weights after each optimizer step, `w −= lr·(c − cᵢ)`, outside the momentum
    // buffer, as NIID-Bench does: added to the gradient, momentum amplified it (by 1/(1−β), 10×
    // at 0.9) while the control variates, estimated as Δy/(K·lr), grew by the same factor each
    // round, and SCAFFOLD diverged on #C=3 within two rounds. Without momentum both are the same.
    // Buffers (BatchNorm's running statistics) are not trained: no correction moves them, and
    // their control variates stay zero.
    let buffers = training.trainer.network.bufferRanges
    let correction: [Float]? = instructions.serverControl.map { c in
        var correction = zip(c, clientControl ?? [Float](repeating: 0, count: count)).map { $0 - $1 }
        for range in buffers { correction.replaceSubrange(range, with: repeatElement(0, count: range.count)) }
        return correction
    }
    let learningRate = configuration.optimizer.learningRate
    let mu = instructions.proximalMu
    let adjust: ((UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) -> Void)?
    if mu != 0 {
        adjust = { w, g in
            global.withUnsafeBufferPointer { w0 in
                for i in 0..<count { g[i] += mu * (w[i] - w0[i]) }
            }
        }
    } else {
        adjust = nil
    }
    let afterStep: ((inout [Float]) -> Void)? = correction.map { correction in
        { parameters in
            parameters.withUnsafeMutableBufferPointer { w in
                correction.withUnsafeBufferPointer { c in BLAS.axpy(count: count, alpha: -learningRate, c.baseAddress!, w.baseAddress!) }
            }
        }
    }
    var steps = 0, lossSum = 0.0, samples = 0
    for epoch in 1...configuration.epochs {
        let summary = training.runEpoch(epoch: epoch, parameters: &parameters, data: data, indices: indices, shuffle: true,
                                        generator: &generator, adjustGradient: adjust, afterStep: afterStep)
        steps += summary.steps
        lossSum += summary.meanLoss * Double(summary.samples)
        samples += summary.samples
    }
    let delta = zip(parameters, global).map { $0 - $1 }
    var controlDelta: [Float]?
    if let control = instructions.serverControl {
        // cᵢ⁺ = cᵢ − c − Δy / (K·lr), so Δcᵢ = cᵢ⁺ − cᵢ = −c − Δy / (K·lr).
        let scale = 1 / (Float(max(1, steps)) * configuration.optimizer.learningRate)
        var change = (0..<count).map { -control[$0] - delta[$0] * scale }
        for range in buffers { change.replaceSubrange(range, with: repeatElement(0, count: range.count)) }
        controlDelta = change
    }
    return ClientUpdate(client: client, samples: indices.count, steps: steps, delta: delta, controlDelta: controlDelta,
                        trainLoss: samples > 0 ? lossSum / Double(samples) : .nan)
}
