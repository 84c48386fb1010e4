import Datasets
import Engine

/// Example-level DP-SGD inside a client (Abadi et al. 2016, as Opacus runs it): every step takes
/// a Poisson lot (each of the client's n samples with probability q = B/n, B the batch size),
/// computes each example's gradient, clips it to L2 norm `clip` (computed in Double; batched, see
/// `Trainer.clippedGradientSum`), sums,
/// adds N(0, (σ·clip)²) per coordinate, divides by the expected lot size B, and takes a PyTorch
/// SGD step (momentum and weight decay as configured). An epoch is round(n/B) steps. What a
/// client's examples spend is the RDP accountant's ε for q, σ and its steps.
///
/// Randomness: lots and noise come from (seed, exampleDP, round, client) in simulation and from
/// the system's secure generator in a deployed client (`secure`): a lot or noise the server
/// could predict would void the guarantee.
public struct ExampleDPSGD: Sendable, Equatable, Codable {
    public var clip: Double
    public var noiseMultiplier: Double
    public var secure: Bool

    public init(clip: Double, noiseMultiplier: Double, secure: Bool) {
        precondition(clip > 0 && noiseMultiplier >= 0)
        (self.clip, self.noiseMultiplier, self.secure) = (clip, noiseMultiplier, secure)
    }

    /// Refuses a network whose training mixes examples (BatchNorm: one example's gradient would
    /// depend on the others of its lot, unbounding its sensitivity) or draws masks (Dropout: the
    /// per-example gradients would share one), as Opacus refuses them.
    public static func check(_ network: Sequential) throws(ConfigurationError) {
        if network.mixesSamples || network.drawsRandomNumbers {
            throw ConfigurationError("DP-SGD does not support batchnorm or dropout layers (per-example gradients need examples trained independently)")
        }
    }

    /// The Poisson rate and steps per epoch of a client with `samples` samples and batch size `batchSize`.
    public static func sampling(samples: Int, batchSize: Int) -> (rate: Double, stepsPerEpoch: Int) {
        let expected = min(batchSize, samples)
        return (Double(expected) / Double(samples), max(1, Int((Double(samples) / Double(expected)).rounded())))
    }

    /// The ε at `delta` of an example of a client with `samples` samples after `epochs` epochs.
    public func epsilon(samples: Int, batchSize: Int, epochs: Int, delta: Double) -> Double {
        let (rate, steps) = Self.sampling(samples: samples, batchSize: batchSize)
        return RDPAccountant.epsilon(samplingRate: rate, noiseMultiplier: noiseMultiplier, steps: epochs * steps, delta: delta).epsilon
    }

    /// Trains `epochs` of DP-SGD from `global` on `indices` of `data`; returns the update.
    /// `epochDone(epoch, parameters, mean loss)` is called after every epoch.
    func train(client: Int, round: Int, seed: UInt64, indices: [Int], data: LabeledImages, global: [Float],
               configuration: LocalTrainingConfiguration, training: SupervisedTraining,
               epochDone: ((Int, [Float], Double) -> Void)? = nil) -> ClientUpdate {
        let count = global.count, expected = min(configuration.batchSize, indices.count)
        let (rate, stepsPerEpoch) = Self.sampling(samples: indices.count, batchSize: configuration.batchSize)
        var random = (secure ? NoiseSource.secure : .seeded(seed)).generator(.exampleDP, round: round, client: client)
        var parameters = global, velocity = [Float](repeating: 0, count: count)
        var sum = [Float](repeating: 0, count: count)
        let noiseScale = noiseMultiplier * clip
        var steps = 0, lossSum = 0.0, examples = 0
        for step in 0..<(configuration.epochs * stepsPerEpoch) {
            let lot = indices.filter { _ in random.nextUnitDouble() < rate }
            lossSum += sum.withUnsafeMutableBufferPointer { s in
                training.clippedGradientSum(parameters: parameters, data: data, indices: lot, clip: clip, into: s)
            }
            examples += lot.count
            // Noise on every coordinate, every step (an empty lot too: its release is noise only).
            sum.withUnsafeMutableBufferPointer { random.addGaussian(standardDeviation: noiseScale, to: $0) }
            for i in 0..<count { sum[i] /= Float(expected) }
            parameters.withUnsafeMutableBufferPointer { p in
                sum.withUnsafeMutableBufferPointer { g in
                    velocity.withUnsafeMutableBufferPointer { v in
                        SGD.update(configuration.optimizer, parameters: p.baseAddress!, gradient: g.baseAddress!,
                                   velocity: configuration.optimizer.momentum > 0 ? v.baseAddress! : nil, firstStep: steps == 0, range: 0..<count)
                    }
                }
            }
            steps += 1
            if (step + 1) % stepsPerEpoch == 0 { epochDone?((step + 1) / stepsPerEpoch, parameters, examples > 0 ? lossSum / Double(examples) : 0) }
        }
        return ClientUpdate(client: client, samples: indices.count, steps: steps, delta: zip(parameters, global).map { $0 - $1 },
                            trainLoss: examples > 0 ? lossSum / Double(examples) : 0)
    }
}
