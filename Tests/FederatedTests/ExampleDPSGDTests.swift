import Datasets
import Engine
@testable import Federated
import Testing

@Suite struct ExampleDPSGDTests {
    let data = syntheticImages(count: 40, seed: 11)
    let network = LeNet5.grayscale

    func global() -> [Float] {
        var generator = SeededGenerator(seed: 3)
        return network.initialParameters(using: &generator)
    }

    func dpsgd(clip: Double, noise: Double, batchSize: Int = 40, learningRate: Float = 0.1) -> ClientUpdate {
        let configuration = LocalTrainingConfiguration(epochs: 1, batchSize: batchSize, optimizer: SGDConfiguration(learningRate: learningRate))
        let training = SupervisedTraining(network: network, optimizer: configuration.optimizer, batchSize: batchSize, chunks: 1, threads: 1)
        return ExampleDPSGD(clip: clip, noiseMultiplier: noise, secure: false)
            .train(client: 2, round: 1, seed: 9, indices: Array(0..<40), data: data, global: global(), configuration: configuration, training: training)
    }

    /// With the lot the whole client (q = 1), no clipping and no noise, one DP-SGD step is one
    /// full-batch SGD step: the mean of per-example gradients is the batch gradient.
    @Test func withoutClippingOrNoiseItIsFullBatchSGD() {
        let update = dpsgd(clip: 1e9, noise: 0)
        var parameters = global()
        let training = SupervisedTraining(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchSize: 40, chunks: 1, threads: 1)
        var generator = SeededGenerator(seed: 1)
        _ = training.runEpoch(parameters: &parameters, data: data, indices: Array(0..<40), shuffle: false, generator: &generator)
        let reference = zip(parameters, global()).map { $0 - $1 }
        #expect(update.steps == 1)
        let worst = zip(update.delta, reference).map { abs($0 - $1) }.max()!, scale = reference.map(abs).max()!
        #expect(worst <= 1e-4 * scale, "max |DP-SGD − SGD| = \(worst) against \(scale)")
    }

    /// A lot larger than the batch size is summed in pieces of at most the batch size: the same
    /// clipped sum (to float rounding) as in one piece, and the same loss.
    @Test func lotInPiecesEqualsOnePiece() {
        let parameters = global()
        func clippedSum(batch: Int) -> ([Float], Double) {
            let training = SupervisedTraining(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchSize: batch, chunks: 1, threads: 1)
            var sum = [Float](repeating: 0, count: network.parameterCount)
            let loss = sum.withUnsafeMutableBufferPointer { training.clippedGradientSum(parameters: parameters, data: data, indices: Array(0..<40), clip: 0.05, into: $0) }
            return (sum, loss)
        }
        let (pieces, piecesLoss) = clippedSum(batch: 7), (whole, wholeLoss) = clippedSum(batch: 40)
        let error = zip(pieces, whole).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
        #expect(error <= 1e-5 * L2Clip.norm(whole) && L2Clip.norm(whole) > 0, "error \(error)")
        #expect(abs(piecesLoss - wholeLoss) <= 1e-6 * wholeLoss)
    }

    /// Every example's gradient is clipped to C before the sum: one step moves the model by at
    /// most lr · C · |lot| / B = lr · C here, less than the unclipped step.
    @Test func clippingBoundsTheStep() {
        let clipped = L2Clip.norm(dpsgd(clip: 0.01, noise: 0).delta), unclipped = L2Clip.norm(dpsgd(clip: 1e9, noise: 0).delta)
        #expect(clipped > 0 && clipped <= 0.1 * 0.01 * (1 + 1e-5) && unclipped > 10 * clipped)
    }

    /// The noise is N(0, (σC)²) per coordinate on the sum, then divided by B: the difference of
    /// a noised and an unnoised run (same lots, same draws) over lr·σC/B is standard normal.
    @Test func noiseHasTheCalibratedScale() {
        let clean = dpsgd(clip: 0.5, noise: 0), noised = dpsgd(clip: 0.5, noise: 2)
        let scale = Double(0.1 * 2 * 0.5 / 40)
        let z = zip(noised.delta, clean.delta).map { Double($0 - $1) / -scale }
        let mean = z.reduce(0, +) / Double(z.count)
        let variance = z.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(z.count - 1)
        #expect(abs(mean) < 0.02 && abs(variance.squareRoot() - 1) < 0.02, "mean \(mean), std \(variance.squareRoot())")
    }

    /// Poisson lots: q = B/n and round(n/B) steps per epoch; the run's ε is the accountant's for
    /// the worst client size; the configuration is checked.
    @Test func samplingAccountingAndConfiguration() throws {
        #expect(ExampleDPSGD.sampling(samples: 600, batchSize: 32) == (32.0 / 600, 19))
        #expect(ExampleDPSGD.sampling(samples: 20, batchSize: 32) == (1, 1))
        let lots = dpsgd(clip: 1, noise: 1, batchSize: 10)
        #expect(lots.steps == 4)
        var privacy = PrivacySection()
        (privacy.dp, privacy.clip, privacy.noiseMultiplier) = ("dpsgd", 1, 1.1)
        let epsilon = privacy.exampleEpsilon(rounds: 3, clientSizes: [600, 100], batchSize: 32, epochs: 2)!
        let worst = [600, 100].map { size in
            let (rate, steps) = ExampleDPSGD.sampling(samples: size, batchSize: 32)
            return RDPAccountant.epsilon(samplingRate: rate, noiseMultiplier: 1.1, steps: 3 * 2 * steps, delta: 1e-5).epsilon
        }.max()!
        #expect(epsilon == worst && epsilon > 0)
        var configuration = SimulationConfiguration()
        configuration.privacy = privacy
        try configuration.validate()
        #expect(configuration.privacy.clientStages(layout: network.layout).isEmpty, "the clip is per example, not per update")
        for edit in [{ (c: inout SimulationConfiguration) in c.privacy.noiseMultiplier = nil }, { $0.privacy.adaptiveClip = 0.5 },
                     { $0.federation.strategy = "fedprox:0.1" }, { $0.privacy.clip = nil }] {
            var bad = configuration
            edit(&bad)
            #expect(throws: ConfigurationError.self) { try bad.validate() }
        }
    }

    /// `target_epsilon` calibrates z for the worst client size: with the calibrated z every size
    /// spends at most the target, and the worst spends it (within the bisection's 1e-6);
    /// a given z above the target's spending is refused; a simulation runs with the resolved z.
    @Test func targetEpsilonCalibratesForTheWorstClient() throws {
        var configuration = SimulationConfiguration()
        (configuration.privacy.dp, configuration.privacy.clip, configuration.privacy.targetEpsilon) = ("dpsgd", 1, 3)
        (configuration.federation.rounds, configuration.training.batchSize, configuration.training.localEpochs) = (5, 32, 2)
        try configuration.validate()
        let partitions = [Array(0..<600), Array(0..<100), [], Array(0..<45)]
        let resolved = try configuration.resolvingExampleNoise(partitions: partitions)
        let z = try #require(resolved.privacy.noiseMultiplier)
        let spent = [600, 100, 45].map { ExampleDPSGD(clip: 1, noiseMultiplier: z, secure: false).epsilon(samples: $0, batchSize: 32, epochs: 10, delta: 1e-5) }
        #expect(spent.allSatisfy { $0 <= 3 } && spent.max()! > 3 * (1 - 1e-4), "\(spent) at z \(z)")
        #expect(resolved.privacy.exampleEpsilon(rounds: 5, clientSizes: [600, 100, 45], batchSize: 32, epochs: 2)! <= 3)
        var tooLittle = configuration
        tooLittle.privacy.noiseMultiplier = z * 0.9
        #expect(throws: ConfigurationError.self) { try tooLittle.resolvingExampleNoise(partitions: partitions) }
        var enough = configuration
        enough.privacy.noiseMultiplier = z * 1.1
        #expect(try enough.resolvingExampleNoise(partitions: partitions).privacy.noiseMultiplier == z * 1.1)
        #expect(throws: ConfigurationError.self) { try configuration.resolvingExampleNoise(partitions: [[], []]) }
    }

    /// A simulation keeps the configuration as given (what its checkpoint holds and a resume
    /// compares), runs its clients with the resolved z, and refuses a resume to more rounds
    /// (the noise was calibrated for the planned ones); with z given, rounds may grow.
    @Test func targetEpsilonRunsResumeOnlyToTheirPlannedRounds() throws {
        let simulation = try smallSimulation { c in
            (c.privacy.dp, c.privacy.clip, c.privacy.targetEpsilon, c.federation.strategy) = ("dpsgd", 1, 3, "fedavg")
        }
        let planned = simulation.configuration
        #expect(planned.privacy.noiseMultiplier == nil && simulation.resolvedPrivacy.noiseMultiplier.map { $0 > 0 } == true)
        try planned.checkResumable(from: planned, finishedRounds: 1, directory: "run")
        var more = planned
        more.federation.rounds += 2
        #expect(throws: CheckpointError.self) { try more.checkResumable(from: planned, finishedRounds: 1, directory: "run") }
        var given = planned
        (given.privacy.targetEpsilon, given.privacy.noiseMultiplier) = (nil, 1.2)
        var givenMore = given
        givenMore.federation.rounds += 2
        try givenMore.checkResumable(from: given, finishedRounds: 1, directory: "run")
    }
}
