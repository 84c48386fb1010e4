import Datasets
import Engine

/// Local training settings every client uses.
public struct LocalTrainingConfiguration: Sendable, Codable, Equatable {
    public var epochs: Int
    public var batchSize: Int
    public var optimizer: SGDConfiguration
}

/// Runs one client's local training: from the global model, `epochs` of SGD over the client's
/// samples with a fresh optimizer (a new `torch.optim.SGD` per round, as Flower clients do),
/// following the strategy's `ClientRule`, and returns the update.
///
/// Deterministic: the shuffling comes only from `generator`, which the simulation derives from
/// (seed, round, client), and the trainer runs single-threaded; so a client's update does not
/// depend on which worker thread ran it.
func trainClient(
    _ client: Int, indices: [Int], data: LabeledImages, global: [Float], configuration: LocalTrainingConfiguration,
    rule: ClientRule, training: SupervisedTraining, generator: inout SeededGenerator
) -> ClientUpdate {
    var parameters = global
    training.trainer.optimizer.reset()
    let count = global.count
    let clientControl = rule.serverControl == nil ? nil : (rule.clientControl?(client) ?? [Float](repeating: 0, count: count))
    // The correction c − cᵢ is the same for every step of the round: compute it once.
    let correction: [Float]? = rule.serverControl.map { c in zip(c, clientControl!).map { $0 - $1 } }
    let mu = rule.proximalMu
    let adjust: ((UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) -> Void)?
    if mu != 0 || correction != nil {
        adjust = { w, g in
            if mu != 0 {
                global.withUnsafeBufferPointer { w0 in
                    for i in 0..<count { g[i] += mu * (w[i] - w0[i]) }
                }
            }
            if let correction {
                correction.withUnsafeBufferPointer { c in
                    BLAS.axpy(count: count, alpha: 1, c.baseAddress!, g.baseAddress!)
                }
            }
        }
    } else {
        adjust = nil
    }
    var steps = 0, lossSum = 0.0, samples = 0
    for epoch in 1...configuration.epochs {
        let summary = training.runEpoch(epoch: epoch, parameters: &parameters, data: data, indices: indices, shuffle: true,
                                        generator: &generator, adjustGradient: adjust)
        steps += summary.steps
        lossSum += summary.meanLoss * Double(summary.samples)
        samples += summary.samples
    }
    let delta = zip(parameters, global).map { $0 - $1 }
    var controlDelta: [Float]?
    if let control = rule.serverControl {
        // cᵢ⁺ = cᵢ − c − Δy / (K·lr), so Δcᵢ = cᵢ⁺ − cᵢ = −c − Δy / (K·lr).
        let scale = 1 / (Float(max(1, steps)) * configuration.optimizer.learningRate)
        controlDelta = (0..<count).map { -control[$0] - delta[$0] * scale }
    }
    return ClientUpdate(client: client, samples: indices.count, steps: steps, delta: delta, controlDelta: controlDelta,
                        trainLoss: samples > 0 ? lossSum / Double(samples) : .nan)
}
