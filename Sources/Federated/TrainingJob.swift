import Datasets
import Engine

/// Centralized training: one model, all the training data, SGD for some epochs, a test
/// evaluation after each epoch.
public struct TrainingJob: Sendable {
    /// Model and data (the `model`, `data`, `test_fraction`, `skip_bad_images` keys of a job).
    public var data = DataSection()
    public var epochs = 10
    public var batchSize = 64
    public var optimizer = SGDConfiguration(learningRate: 0.02, momentum: 0.9)
    public var seed: UInt64 = 0
    public var threads = Parallelism.availableCores
    /// Gradient chunks per step; results are bit-identical across `threads` for a fixed value.
    public var chunks = Parallelism.defaultChunks
    public var initialParameters: String?
    public var saveParameters: String?
    public var maxSteps: Int?
    public var shuffle = true
    public var trainLimit: Int?
    /// Example-level DP-SGD (`--dp-sgd`) instead of SGD when `dp` is `dpsgd`: its clip, noise
    /// multiplier or target ε (the noise multiplier is then calibrated for the training set's
    /// size and the epochs, `PrivacySection.resolvedExampleNoise`), and the δ its ε is reported at.
    public var privacy = PrivacySection()

    public init() {}

    /// Result of a finished job; keys are the `--summary` JSON names.
    public struct Summary: Sendable, Codable {
        public var model: String
        public var epochs: Int
        public var steps: Int
        public var trainSamples: Int
        public var batchSize: Int
        public var threads: Int
        public var testAccuracy: Double
        public var testLoss: Double
        public var trainLoss: Double
        /// Training images per second, evaluation excluded.
        public var imagesPerSecond: Double
        public var seconds: Double
        public var trainingSeconds: Double
        /// With DP-SGD: the (ε, δ) the training spent.
        public var epsilon: Double?
        public var delta: Double?
        /// With DP-SGD: the noise multiplier used (given, or calibrated to the target ε).
        public var noiseMultiplier: Double?
        /// The data: classes, sizes, normalization, skipped files.
        public var data: DataSource.Description?

        enum CodingKeys: String, CodingKey {
            case epsilon, delta, data, noiseMultiplier = "noise_multiplier"
            case model, epochs, steps, threads, seconds
            case trainSamples = "train_samples", batchSize = "batch_size"
            case testAccuracy = "test_accuracy", testLoss = "test_loss", trainLoss = "train_loss"
            case imagesPerSecond = "images_per_second", trainingSeconds = "training_seconds"
        }
    }

    /// Per-epoch outcome, for progress output.
    public struct EpochReport: Sendable {
        public var epoch: Int
        public var trainLoss: Double
        public var testLoss: Double
        public var testAccuracy: Double
        public var imagesPerSecond: Double
        public var seconds: Double
        /// With DP-SGD: the ε spent so far.
        public var epsilon: Double?
    }

    /// DP-SGD with its noise multiplier resolved for `samples` training examples; nil without DP-SGD.
    public func resolvedDPSGD(samples: Int) throws(ConfigurationError) -> ExampleDPSGD? {
        try privacy.resolvingExampleNoise(rounds: 1, clientSizes: [samples], batchSize: batchSize, epochs: epochs).exampleDPSGD(secure: false)
    }

    public func validate() throws(JobError) {
        guard epochs >= 1 else { throw .configuration(ConfigurationError("--epochs must be at least 1 (got \(epochs))")) }
        guard batchSize >= 1 else { throw .configuration(ConfigurationError("--batch-size must be at least 1 (got \(batchSize))")) }
        guard threads >= 1 else { throw .configuration(ConfigurationError("--threads must be at least 1 (got \(threads))")) }
        guard chunks >= 1 else { throw .configuration(ConfigurationError("--chunks must be at least 1 (got \(chunks))")) }
        guard optimizer.learningRate > 0, optimizer.learningRate.isFinite else { throw .configuration(ConfigurationError("--lr must be a positive number (got \(optimizer.learningRate))")) }
        guard optimizer.momentum >= 0, optimizer.momentum < 1 else { throw .configuration(ConfigurationError("--momentum must be in [0, 1) (got \(optimizer.momentum))")) }
        guard optimizer.weightDecay >= 0, optimizer.weightDecay.isFinite else { throw .configuration(ConfigurationError("--weight-decay must be >= 0 (got \(optimizer.weightDecay))")) }
        if let maxSteps, maxSteps < 1 { throw .configuration(ConfigurationError("--max-steps must be at least 1 (got \(maxSteps))")) }
        if let trainLimit, trainLimit < 1 { throw .configuration(ConfigurationError("--train-limit must be at least 1 (got \(trainLimit))")) }
        do { try data.validate() } catch { throw .configuration(error) }
        if let saveParameters {
            do { try AtomicFile.checkWritable(saveParameters) } catch { throw .configuration(ConfigurationError("--save \(error.description)")) }
        }
    }

    /// Runs the job. `progress` is called after every step, `epochDone` after every epoch's
    /// evaluation.
    public func run(progress: ((TrainingProgress) -> Void)? = nil, epochDone: ((EpochReport) -> Void)? = nil) throws(JobError) -> Summary {
        try validate()
        let clock = ContinuousClock(), start = clock.now
        var data: DataSource.Loaded
        do { data = try self.data.load(seed: seed) } catch { throw .data(error) }
        let network: Sequential
        do { network = try self.data.model.network(for: data.train) } catch { throw .configuration(error) }
        if let trainLimit { data.train = data.train.prefix(trainLimit) }

        var generator = SeededGenerator(seed: seed)
        var parameters: [Float]
        if let initialParameters {
            do { parameters = try Safetensors.load(initialParameters, layout: network.layout) } catch { throw .checkpoint(CheckpointError(error.description)) }
        } else {
            parameters = network.initialParameters(using: &generator)
        }
        var shuffleGenerator = SeededGenerator.derived(seed: seed, 1)
        // A batch never holds more than the training set: size the buffers by that.
        let batch = min(batchSize, max(1, data.train.count))
        do {
            try ConfigurationError.checkMemory(Trainer.byteCount(network: network, batchCapacity: batch, chunks: chunks), for: "batch size \(batchSize)")
        } catch { throw .configuration(error) }
        let training = SupervisedTraining(network: network, optimizer: optimizer, batchSize: batch, chunks: chunks, threads: threads)
        let indices = Array(0..<data.train.count)
        var steps = 0, trainingSeconds = 0.0, trainLoss = Double.nan, samples = 0
        var test = (loss: Double.nan, accuracy: Double.nan)
        var epochsRun = 0
        let dpSGD: ExampleDPSGD?
        do { dpSGD = try resolvedDPSGD(samples: data.train.count) } catch { throw .configuration(error) }
        let delta = privacy.delta
        if let dpSGD {
            do { try ExampleDPSGD.check(network) } catch { throw .configuration(error) }
            guard maxSteps == nil, shuffle else { throw .configuration(ConfigurationError("--dp-sgd samples Poisson lots: no --max-steps or --no-shuffle")) }
            let configuration = LocalTrainingConfiguration(epochs: epochs, batchSize: batchSize, optimizer: optimizer, exampleDP: dpSGD)
            let total = data.train.count
            var epochStart = clock.now
            let update = dpSGD.train(client: 0, round: 0, seed: seed, indices: indices, data: data.train, global: parameters,
                                     configuration: configuration, training: training) { epoch, current, loss in
                let seconds = (clock.now - epochStart).seconds
                trainingSeconds += seconds
                test = training.evaluate(parameters: current, data: data.test)
                (trainLoss, epochsRun) = (loss, epoch)
                epochDone?(EpochReport(epoch: epoch, trainLoss: loss, testLoss: test.loss, testAccuracy: test.accuracy,
                                       imagesPerSecond: Double(total) / seconds, seconds: seconds,
                                       epsilon: dpSGD.epsilon(samples: total, batchSize: self.batchSize, epochs: epoch, delta: delta)))
                epochStart = clock.now
            }
            parameters = zip(parameters, update.delta).map { $0 + $1 }
            (steps, samples) = (update.steps, total * epochs)
        }
        for epoch in 1...epochs where dpSGD == nil {
            let remaining = (maxSteps ?? .max) - steps
            if remaining <= 0 { break }
            let summary = training.runEpoch(epoch: epoch, parameters: &parameters, data: data.train, indices: indices,
                                            shuffle: shuffle, generator: &shuffleGenerator, maxSteps: remaining, progress: progress)
            steps += summary.steps
            samples += summary.samples
            trainingSeconds += summary.seconds
            trainLoss = summary.meanLoss
            epochsRun = epoch
            test = training.evaluate(parameters: parameters, data: data.test)
            epochDone?(EpochReport(epoch: epoch, trainLoss: trainLoss, testLoss: test.loss, testAccuracy: test.accuracy,
                                   imagesPerSecond: Double(summary.samples) / summary.seconds, seconds: summary.seconds, epsilon: nil))
        }
        if let saveParameters {
            do {
                try Safetensors.save(parameters, layout: network.layout, to: saveParameters,
                                     metadata: ["format": "pt", "model": self.data.model.description, "producer": "fedtrain"])
            } catch { throw .output(error.description) }
        }
        return Summary(model: self.data.model.description, epochs: epochsRun, steps: steps, trainSamples: data.train.count, batchSize: batchSize,
                       threads: threads, testAccuracy: test.accuracy, testLoss: test.loss, trainLoss: trainLoss,
                       imagesPerSecond: Double(samples) / trainingSeconds, seconds: (clock.now - start).seconds,
                       trainingSeconds: trainingSeconds,
                       epsilon: dpSGD?.epsilon(samples: data.train.count, batchSize: batchSize, epochs: epochsRun, delta: delta),
                       delta: dpSGD == nil ? nil : delta, noiseMultiplier: dpSGD?.noiseMultiplier, data: data.description)
    }
}
