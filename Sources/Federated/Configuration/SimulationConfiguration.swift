import Foundation
import Datasets
import Engine

/// Everything that defines a federated run, in sections shared by the commands. Equal
/// configurations give bit-identical runs (on one OpenBLAS kernel set), whatever `threads` is.
///
/// The file form is one flat YAML mapping whose keys are the sections' coding keys (`clients`,
/// `local_epochs`...): each key is defined once, in its section, and its flag is the key with
/// dashes (`--local-epochs`). `ConfigurationFile` reads and writes it.
public struct SimulationConfiguration: Sendable, Equatable, Codable {
    public var data = DataSection()
    public var federation = FederationSection()
    public var training = LocalTrainingSection()
    public var compression = CompressionSection()
    public var privacy = PrivacySection()
    public var robustness = RobustnessSection()
    public var clock = ClockSection()
    public var asynchrony = AsyncSection()
    public var run = RunSection()
    public var network = NetworkSection()

    public init() {}

    /// This configuration with DP-SGD's `noise_multiplier` resolved for the clients whose sample
    /// indices are `partitions` (`PrivacySection.resolvedExampleNoise`); unchanged otherwise.
    /// A client runtime is built only from a resolved configuration.
    public func resolvingExampleNoise(partitions: [[Int]]) throws(ConfigurationError) -> SimulationConfiguration {
        var resolved = self
        resolved.privacy = try privacy.resolvingExampleNoise(
            rounds: federation.rounds, clientSizes: Set(partitions.map(\.count)), batchSize: training.batchSize, epochs: training.localEpochs)
        return resolved
    }

    public init(from decoder: any Decoder) throws {
        data = try DataSection(from: decoder)
        federation = try FederationSection(from: decoder)
        training = try LocalTrainingSection(from: decoder)
        compression = try CompressionSection(from: decoder)
        privacy = try PrivacySection(from: decoder)
        robustness = try RobustnessSection(from: decoder)
        clock = try ClockSection(from: decoder)
        asynchrony = try AsyncSection(from: decoder)
        run = try RunSection(from: decoder)
        network = try NetworkSection(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try data.encode(to: encoder)
        try federation.encode(to: encoder)
        try training.encode(to: encoder)
        try compression.encode(to: encoder)
        try privacy.encode(to: encoder)
        try robustness.encode(to: encoder)
        try clock.encode(to: encoder)
        try asynchrony.encode(to: encoder)
        try run.encode(to: encoder)
        try network.encode(to: encoder)
    }

    /// Every key a config file may hold, in file order.
    public static let keys: [String] = DataSection.CodingKeys.allCases.map(\.rawValue)
        + FederationSection.CodingKeys.allCases.map(\.rawValue) + LocalTrainingSection.CodingKeys.allCases.map(\.rawValue)
        + CompressionSection.CodingKeys.allCases.map(\.rawValue) + PrivacySection.CodingKeys.allCases.map(\.rawValue)
        + RobustnessSection.CodingKeys.allCases.map(\.rawValue) + ClockSection.CodingKeys.allCases.map(\.rawValue)
        + AsyncSection.CodingKeys.allCases.map(\.rawValue)
        + RunSection.CodingKeys.allCases.map(\.rawValue) + NetworkSection.CodingKeys.allCases.map(\.rawValue)

    /// Keys whose value does not change results: they may differ when a run is resumed.
    /// The network keys decide when a networked round closes, not how: a restarted server may change them.
    public static let resultNeutralKeys: Set<String> = Set([RunSection.CodingKeys.threads.rawValue]
        + NetworkSection.CodingKeys.allCases.map(\.rawValue))

    /// Checks every key's range and every spec; the one validation all commands use.
    public func validate() throws(ConfigurationError) {
        try data.validate()
        try federation.validate()
        try training.validate()
        try compression.validate()
        try privacy.validate(federation: federation, strategy: federation.strategy)
        try robustness.validate(federation: federation, privacy: privacy)
        try clock.validate(federation: federation)
        try asynchrony.validate(federation: federation, clock: clock, privacy: privacy, robustness: robustness)
        try run.validate()
        try network.validate(clients: federation.clients)
        let strategy = try StrategyFactory(federation: federation, training: training, privacy: privacy, robustness: robustness,
                                           asynchrony: asynchrony).make(parameterCount: 1)
        if asynchrony.isAsynchronous, federation.minSurvivors > asynchrony.updatesPerStep {
            throw ConfigurationError("min_survivors \(federation.minSurvivors) exceeds the \(asynchrony.updatesPerStep) updates of a \(asynchrony.mode.rawValue) step: no step would ever commit")
        }
        if asynchrony.isAsynchronous, strategy.minimumUpdates > asynchrony.updatesPerStep {
            throw ConfigurationError("aggregator \(robustness.aggregator) needs \(strategy.minimumUpdates) updates per step; "
                + "mode \(asynchrony.mode.rawValue) steps on \(asynchrony.updatesPerStep) (raise buffer)")
        }
    }
}

/// Model and data set.
public struct DataSection: Sendable, Equatable, Codable {
    public var model: ModelChoice = .lenet5
    /// The data (`DataSource`); nil for the model's default (Fashion-MNIST from dataset-fashion-mnist).
    public var data: String?
    /// An image folder without `train/` and `test/`: the fraction of each class held out for testing.
    public var testFraction = 0.2
    /// An image folder's unreadable, truncated and non-image files are skipped and counted
    /// instead of failing the load.
    public var skipBadImages = false

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case model, data
        case testFraction = "test_fraction", skipBadImages = "skip_bad_images"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        model = try c.decodeIfPresent(ModelChoice.self, forKey: .model) ?? d.model
        data = try c.decodeIfPresent(String.self, forKey: .data) ?? d.data
        testFraction = try c.decodeIfPresent(Double.self, forKey: .testFraction) ?? d.testFraction
        skipBadImages = try c.decodeIfPresent(Bool.self, forKey: .skipBadImages) ?? d.skipBadImages
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encodeIfPresent(data, forKey: .data)
        try c.encodeDecimal(testFraction, forKey: .testFraction)
        try c.encode(skipBadImages, forKey: .skipBadImages)
    }

    public var directory: String? { data ?? model.defaultDataDirectory }

    func validate() throws(ConfigurationError) {
        guard directory != nil else { throw ConfigurationError("data is required for \(model) (a cifar-10-batches-bin directory or folder:DIR)") }
        guard testFraction > 0, testFraction < 1 else { throw ConfigurationError("test_fraction must be in (0, 1) (got \(testFraction))") }
    }

    /// How an image folder is read for this model: its declared input size and channels, the
    /// split's seed.
    public func folderOptions(seed: UInt64) -> ImageFolder.Options {
        var options = ImageFolder.Options()
        if let input = model.declaredInput {
            options.channels = input.channels
            options.size = input.size
        }
        options.testFraction = testFraction
        options.skipBadImages = skipBadImages
        options.seed = seed
        return options
    }

    /// The training and test sets (`DataSource`); `seed` draws an image folder's test split.
    public func load(seed: UInt64) throws(DatasetError) -> DataSource.Loaded {
        try DataSource.load(directory!, folder: folderOptions(seed: seed))
    }
}

/// Who takes part and how the server runs rounds.
public struct FederationSection: Sendable, Equatable, Codable {
    public var clients = 10
    public var rounds = 20
    /// Fraction of clients sampled per round (at least `minClients`).
    public var fraction = 1.0
    public var minClients = 2
    /// `fixed`: ⌊fraction·clients⌋ clients (at least `minClients`) per round; `poisson`: each
    /// client independently with probability `fraction` (what DP accounting assumes).
    public var clientSampling = "fixed"
    public var partition = "dirichlet:0.5"
    public var minPartitionSize = 10
    public var strategy = "fedavg"
    /// Replaces the strategy's server optimizer (`StrategyFactory.optimizerHelp`); nil keeps it.
    public var serverOptimizer: String?
    /// Probability that a sampled client drops out of a round (simulated failure).
    public var dropout = 0.0
    /// Scheduled failures, `ROUND:CLIENT[,ROUND:CLIENT...]` (simulated).
    public var drop: String?
    /// Rounds with fewer accepted replies keep the global model.
    public var minSurvivors = 1
    /// Largest sample count a reply may claim (its FedAvg weight); larger claims are rejected.
    public var maxSamples = 1_000_000
    public var evalEvery = 1
    /// Also evaluate the global model on every client's own data (an evaluation task per client).
    public var clientEvaluation = false
    public var seed: UInt64 = 0

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case clients, rounds, fraction, minClients = "min_clients", clientSampling = "client_sampling", partition
        case minPartitionSize = "min_partition_size", strategy
        case serverOptimizer = "server_optimizer", dropout, drop, minSurvivors = "min_survivors", maxSamples = "max_samples"
        case evalEvery = "eval_every", clientEvaluation = "client_evaluation", seed
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        clients = try c.decodeIfPresent(Int.self, forKey: .clients) ?? d.clients
        rounds = try c.decodeIfPresent(Int.self, forKey: .rounds) ?? d.rounds
        fraction = try c.decodeIfPresent(Double.self, forKey: .fraction) ?? d.fraction
        minClients = try c.decodeIfPresent(Int.self, forKey: .minClients) ?? d.minClients
        clientSampling = try c.decodeIfPresent(String.self, forKey: .clientSampling) ?? d.clientSampling
        partition = try c.decodeIfPresent(String.self, forKey: .partition) ?? d.partition
        minPartitionSize = try c.decodeIfPresent(Int.self, forKey: .minPartitionSize) ?? d.minPartitionSize
        strategy = try c.decodeIfPresent(String.self, forKey: .strategy) ?? d.strategy
        serverOptimizer = try c.decodeIfPresent(String.self, forKey: .serverOptimizer) ?? d.serverOptimizer
        dropout = try c.decodeIfPresent(Double.self, forKey: .dropout) ?? d.dropout
        drop = try c.decodeIfPresent(String.self, forKey: .drop) ?? d.drop
        minSurvivors = try c.decodeIfPresent(Int.self, forKey: .minSurvivors) ?? d.minSurvivors
        maxSamples = try c.decodeIfPresent(Int.self, forKey: .maxSamples) ?? d.maxSamples
        evalEvery = try c.decodeIfPresent(Int.self, forKey: .evalEvery) ?? d.evalEvery
        clientEvaluation = try c.decodeIfPresent(Bool.self, forKey: .clientEvaluation) ?? d.clientEvaluation
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(clients, forKey: .clients)
        try c.encode(rounds, forKey: .rounds)
        try c.encodeDecimal(fraction, forKey: .fraction)
        try c.encode(minClients, forKey: .minClients)
        try c.encode(clientSampling, forKey: .clientSampling)
        try c.encode(partition, forKey: .partition)
        try c.encode(minPartitionSize, forKey: .minPartitionSize)
        try c.encode(strategy, forKey: .strategy)
        try c.encodeIfPresent(serverOptimizer, forKey: .serverOptimizer)
        try c.encodeDecimal(dropout, forKey: .dropout)
        try c.encodeIfPresent(drop, forKey: .drop)
        try c.encode(minSurvivors, forKey: .minSurvivors)
        try c.encode(maxSamples, forKey: .maxSamples)
        try c.encode(evalEvery, forKey: .evalEvery)
        try c.encode(clientEvaluation, forKey: .clientEvaluation)
        try c.encode(seed, forKey: .seed)
    }

    /// The per-client probability of Poisson sampling, nil for fixed-size sampling.
    public var poissonRate: Double? { clientSampling == "poisson" ? fraction : nil }

    /// Clients sampled per round: `⌊fraction · clients⌋`, at least `minClients` (Flower's rule).
    public var sampledPerRound: Int { min(clients, max(minClients, Int(fraction * Double(clients)))) }

    /// The scheduled failures of `drop`, as (round, client) pairs.
    public func scheduledDrops() throws(ConfigurationError) -> Set<ScheduledDrop> {
        guard let drop, !drop.isEmpty else { return [] }
        var result: Set<ScheduledDrop> = []
        for item in drop.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let round = Int(parts[0]), let client = Int(parts[1]), round >= 1, (0..<clients).contains(client) else {
                throw ConfigurationError("drop: \(item) is not ROUND:CLIENT with ROUND >= 1 and CLIENT in 0..<\(clients)")
            }
            result.insert(ScheduledDrop(round: round, client: client))
        }
        return result
    }

    func validate() throws(ConfigurationError) {
        func check(_ ok: Bool, _ key: CodingKeys, _ rule: String, _ value: Any) throws(ConfigurationError) {
            if !ok { throw ConfigurationError("\(key.rawValue) must be \(rule) (got \(value))") }
        }
        try check(clients >= 1, .clients, "at least 1", clients)
        try check(rounds >= 1, .rounds, "at least 1", rounds)
        try check(fraction > 0 && fraction <= 1, .fraction, "in (0, 1]", fraction)
        try check(minClients >= 1 && minClients <= clients, .minClients, "in 1...clients", minClients)
        try check(["fixed", "poisson"].contains(clientSampling), .clientSampling, "fixed or poisson", clientSampling)
        try check(minPartitionSize >= 0, .minPartitionSize, ">= 0", minPartitionSize)
        try check(dropout >= 0 && dropout < 1, .dropout, "in [0, 1)", dropout)
        try check(minSurvivors >= 1, .minSurvivors, "at least 1", minSurvivors)
        try check(maxSamples >= 1 && maxSamples <= Int(UInt32.max), .maxSamples, "in 1...\(UInt32.max)", maxSamples)
        try check(evalEvery >= 1, .evalEvery, "at least 1", evalEvery)
        do { _ = try PartitionScheme(parsing: partition) } catch { throw ConfigurationError("partition: \(error.description)") }
        _ = try scheduledDrops()
    }
}

/// One scheduled client failure.
public struct ScheduledDrop: Sendable, Hashable {
    public var round: Int
    public var client: Int
    public init(round: Int, client: Int) { (self.round, self.client) = (round, client) }
}

/// Local SGD every client runs.
public struct LocalTrainingSection: Sendable, Equatable, Codable {
    public var localEpochs = 1
    public var batchSize = 32
    public var lr: Float = 0.05
    public var momentum: Float = 0
    public var weightDecay: Float = 0
    /// FedBN (Li et al. 2021): every client keeps its BatchNorm layers (γ, β and running
    /// statistics) to itself; only the other parameters are averaged.
    public var localBatchnorm = false

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case localEpochs = "local_epochs", batchSize = "batch_size", lr, momentum, weightDecay = "weight_decay"
        case localBatchnorm = "local_batchnorm"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        localEpochs = try c.decodeIfPresent(Int.self, forKey: .localEpochs) ?? d.localEpochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        lr = try c.decodeIfPresent(Float.self, forKey: .lr) ?? d.lr
        momentum = try c.decodeIfPresent(Float.self, forKey: .momentum) ?? d.momentum
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? d.weightDecay
        localBatchnorm = try c.decodeIfPresent(Bool.self, forKey: .localBatchnorm) ?? d.localBatchnorm
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(localEpochs, forKey: .localEpochs)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encodeDecimal(lr, forKey: .lr)
        try c.encodeDecimal(momentum, forKey: .momentum)
        try c.encodeDecimal(weightDecay, forKey: .weightDecay)
        try c.encode(localBatchnorm, forKey: .localBatchnorm)
    }

    public var optimizer: SGDConfiguration { SGDConfiguration(learningRate: lr, momentum: momentum, weightDecay: weightDecay) }

    func validate() throws(ConfigurationError) {
        guard localEpochs >= 1 else { throw ConfigurationError("local_epochs must be at least 1 (got \(localEpochs))") }
        guard batchSize >= 1 else { throw ConfigurationError("batch_size must be at least 1 (got \(batchSize))") }
        guard lr > 0, lr.isFinite else { throw ConfigurationError("lr must be a positive number (got \(lr))") }
        guard momentum >= 0, momentum < 1 else { throw ConfigurationError("momentum must be in [0, 1) (got \(momentum))") }
        guard weightDecay >= 0, weightDecay.isFinite else { throw ConfigurationError("weight_decay must be >= 0 (got \(weightDecay))") }
    }
}

/// Update compression both ways.
public struct CompressionSection: Sendable, Equatable, Codable {
    /// Uplink codec spec (`CodecRegistry`), fp32 for none.
    public var codec = "fp32"
    /// Downlink codec spec: compresses the change of the global model since each client's copy.
    public var downCodec = "fp32"
    /// Clients keep the residual of what the uplink codec dropped and add it to their next update.
    public var errorFeedback = false

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable { case codec, downCodec = "down_codec", errorFeedback = "error_feedback" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        codec = try c.decodeIfPresent(String.self, forKey: .codec) ?? d.codec
        downCodec = try c.decodeIfPresent(String.self, forKey: .downCodec) ?? d.downCodec
        errorFeedback = try c.decodeIfPresent(Bool.self, forKey: .errorFeedback) ?? d.errorFeedback
    }

    func validate() throws(ConfigurationError) {
        for (spec, key) in [(codec, CodingKeys.codec), (downCodec, .downCodec)] {
            do { _ = try CodecRegistry.codec(parsing: spec) } catch { throw ConfigurationError("\(key.rawValue): \(error.message)") }
        }
    }
}

/// Privacy of what clients upload: client-side clipping, and central differential privacy
/// (DP-FedAvg) with its accountant.
public struct PrivacySection: Sendable, Equatable, Codable {
    /// `off`; `central`: the server clips every decoded update to `clip`, sums them, adds
    /// Gaussian noise of `noise_multiplier · clip` and divides by the expected number of clients;
    /// `local`: every client clips to `clip` and adds the noise that makes each round's update
    /// (`local_epsilon`, `delta`)-DP.
    public var dp = "off"
    /// Without DP: clients clip their update (error-feedback residual included) to this L2 norm.
    /// With central DP: the server's clip (the sensitivity), which clients apply too.
    public var clip: Double?
    /// Noise standard deviation over the clip. With `target_epsilon` too, it must stay within it.
    public var noiseMultiplier: Double?
    /// The ε the whole run may spend: the noise is calibrated for the planned rounds (central DP:
    /// the rounds' Poisson sampling of clients; DP-SGD: every client's steps, `resolvingExampleNoise`).
    public var targetEpsilon: Double?
    public var delta = 1e-5
    /// Local DP: the ε of each round's update.
    public var localEpsilon: Double?
    /// Clip every parameter tensor to `clip / √L` instead of the whole update to `clip`.
    public var clipPerLayer = false
    /// Central DP: the clip follows this quantile of the update norms from `clip` (Andrew et al. 2021).
    public var adaptiveClip: Double?
    /// Its geometric step η.
    public var adaptiveClipLR = 0.2
    /// The noise on its unclipped count (default: the expected clients per round / 20).
    public var clipCountStddev: Double?

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case dp, clip, noiseMultiplier = "noise_multiplier", targetEpsilon = "target_epsilon", delta
        case adaptiveClip = "adaptive_clip", adaptiveClipLR = "adaptive_clip_lr", clipCountStddev = "clip_count_stddev"
        case localEpsilon = "local_epsilon", clipPerLayer = "clip_per_layer"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        dp = try c.decodeIfPresent(String.self, forKey: .dp) ?? d.dp
        clip = try c.decodeIfPresent(Double.self, forKey: .clip)
        noiseMultiplier = try c.decodeIfPresent(Double.self, forKey: .noiseMultiplier)
        targetEpsilon = try c.decodeIfPresent(Double.self, forKey: .targetEpsilon)
        delta = try c.decodeIfPresent(Double.self, forKey: .delta) ?? d.delta
        adaptiveClip = try c.decodeIfPresent(Double.self, forKey: .adaptiveClip)
        adaptiveClipLR = try c.decodeIfPresent(Double.self, forKey: .adaptiveClipLR) ?? d.adaptiveClipLR
        clipCountStddev = try c.decodeIfPresent(Double.self, forKey: .clipCountStddev)
        localEpsilon = try c.decodeIfPresent(Double.self, forKey: .localEpsilon)
        clipPerLayer = try c.decodeIfPresent(Bool.self, forKey: .clipPerLayer) ?? d.clipPerLayer
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(dp, forKey: .dp)
        if let clip { try c.encodeDecimal(clip, forKey: .clip) }
        if let noiseMultiplier { try c.encodeDecimal(noiseMultiplier, forKey: .noiseMultiplier) }
        if let targetEpsilon { try c.encodeDecimal(targetEpsilon, forKey: .targetEpsilon) }
        try c.encodeDecimal(delta, forKey: .delta)
        if let adaptiveClip { try c.encodeDecimal(adaptiveClip, forKey: .adaptiveClip) }
        try c.encodeDecimal(adaptiveClipLR, forKey: .adaptiveClipLR)
        if let clipCountStddev { try c.encodeDecimal(clipCountStddev, forKey: .clipCountStddev) }
        if let localEpsilon { try c.encodeDecimal(localEpsilon, forKey: .localEpsilon) }
        try c.encode(clipPerLayer, forKey: .clipPerLayer)
    }

    public var isCentral: Bool { dp == "central" }

    /// `dp: dpsgd`: the clients' example-level DP-SGD (from the secure generator when `secure`).
    public func exampleDPSGD(secure: Bool) -> ExampleDPSGD? {
        guard dp == "dpsgd", let clip, let noiseMultiplier else { return nil }
        return ExampleDPSGD(clip: clip, noiseMultiplier: noiseMultiplier, secure: secure)
    }

    /// DP-SGD's noise multiplier when `target_epsilon` is given: the smallest z with which an
    /// example of every client size in `clientSizes` (zero sizes skipped) spends at most
    /// `target_epsilon` in `rounds` rounds of `epochs` epochs (the ε of `exampleEpsilon`); the
    /// given `noise_multiplier` otherwise, which must then stay within a given target.
    /// A networked client with its own data calibrates for its own size.
    public func resolvedExampleNoise(rounds: Int, clientSizes: Set<Int>, batchSize: Int, epochs: Int) throws(ConfigurationError) -> Double? {
        guard dp == "dpsgd", clip != nil else { return nil }
        let sizes = clientSizes.subtracting([0]).sorted()
        if let noiseMultiplier {
            if let targetEpsilon, let spent = exampleEpsilon(rounds: rounds, clientSizes: clientSizes, batchSize: batchSize, epochs: epochs),
               spent > targetEpsilon {
                throw ConfigurationError("noise_multiplier \(noiseMultiplier) spends epsilon \(spent) in \(rounds) rounds of DP-SGD, above target_epsilon \(targetEpsilon)")
            }
            return noiseMultiplier
        }
        guard let targetEpsilon else { return nil }
        guard !sizes.isEmpty else { throw ConfigurationError("DP-SGD's target_epsilon needs a client with data") }
        var z = 0.0
        for size in sizes {
            let (rate, steps) = ExampleDPSGD.sampling(samples: size, batchSize: batchSize)
            guard let needed = RDPAccountant.calibrate(targetEpsilon: targetEpsilon, samplingRate: rate, steps: rounds * epochs * steps, delta: delta) else {
                throw ConfigurationError("target_epsilon \(targetEpsilon) cannot be met by DP-SGD on a client of \(size) samples in \(rounds) rounds with any noise_multiplier up to 10000")
            }
            z = max(z, needed)
        }
        return z
    }

    /// These settings with `noise_multiplier` set to `resolvedExampleNoise`'s (unchanged without DP-SGD).
    public func resolvingExampleNoise(rounds: Int, clientSizes: Set<Int>, batchSize: Int, epochs: Int) throws(ConfigurationError) -> PrivacySection {
        var resolved = self
        resolved.noiseMultiplier = try resolvedExampleNoise(rounds: rounds, clientSizes: clientSizes, batchSize: batchSize, epochs: epochs)
            ?? noiseMultiplier
        return resolved
    }

    /// DP-SGD: the ε at `delta` of an example of the worst client (over the distinct client
    /// sizes) had it taken part in all `rounds` rounds: RDP of `epochs · round(n/B)` Poisson steps
    /// at rate B/n per round.
    public func exampleEpsilon(rounds: Int, clientSizes: Set<Int>, batchSize: Int, epochs: Int) -> Double? {
        guard let dpSGD = exampleDPSGD(secure: false) else { return nil }
        return clientSizes.subtracting([0]).map { dpSGD.epsilon(samples: $0, batchSize: batchSize, epochs: rounds * epochs, delta: delta) }.max()
    }
    public var isLocal: Bool { dp == "local" }

    /// Local DP's σ per coordinate, nil otherwise.
    public var localNoise: Double? {
        guard isLocal, let clip, let localEpsilon else { return nil }
        return LocalGaussianNoise.standardDeviation(epsilon: localEpsilon, delta: delta, clip: clip)
    }

    /// What one round spends, as an accountant of that one step: central DP's Poisson-sampled
    /// round at `samplingRate` and `centralNoise`, or with local DP one Gaussian release of a
    /// client. Nil without DP. Computing it is the accountant's expensive part (156 orders, the
    /// fractional ones by series), so a run computes it once.
    public func roundAccountant(centralNoise: Double?, samplingRate: Double?) -> RDPAccountant? {
        var accountant = RDPAccountant()
        if let localNoise, let clip {
            accountant.compose(samplingRate: 1, noiseMultiplier: localNoise / (2 * clip), steps: 1)
        } else if let centralNoise, let samplingRate {
            accountant.compose(samplingRate: samplingRate, noiseMultiplier: centralNoise, steps: 1)
        } else {
            return nil
        }
        return accountant
    }

    /// The ε a run has spent after `rounds` rounds at `delta`, from one round's `roundAccountant`:
    /// central DP's accountant over the Poisson-sampled rounds; with local DP a client that took
    /// part in every round, the better of basic composition (rounds · ε) and RDP composition of its
    /// Gaussian releases. Nil without DP.
    public func spentEpsilon(rounds: Int, round: RDPAccountant?) -> Double? {
        guard let round else { return nil }
        let rdp = round.repeated(rounds).epsilon(delta: delta).epsilon
        if let localEpsilon, localNoise != nil { return min(Double(rounds) * localEpsilon, rdp) }
        return rdp
    }

    /// `spentEpsilon(rounds:round:)` with the round's accountant computed here.
    public func spentEpsilon(rounds: Int, centralNoise: Double?, samplingRate: Double?) -> Double? {
        spentEpsilon(rounds: rounds, round: roundAccountant(centralNoise: centralNoise, samplingRate: samplingRate))
    }

    /// The client stages these settings ask for, in order: the clip, then local DP's noise (from
    /// the system's secure generator when `secure`). With an adaptive clip only the server clips:
    /// clients do not know the round's clip.
    /// `layout`: the model's, for per-layer clipping.
    public func clientStages(layout: ParameterLayout, secure: Bool = false) -> [any UpdateStage] {
        guard adaptiveClip == nil, dp != "dpsgd", let clip else { return [] }
        return [L2Clip(bound: clip, layers: clipPerLayer ? layout : nil)] + (localNoise.map { [LocalGaussianNoise(standardDeviation: $0, secure: secure)] } ?? [])
    }

    /// The noise multiplier the run uses: the given one, or the smallest whose `rounds` rounds at
    /// Poisson rate `rate` stay within `target_epsilon`. Nil without central DP.
    public func resolvedNoiseMultiplier(rate: Double, rounds: Int) throws(ConfigurationError) -> Double? {
        guard isCentral else { return nil }
        if let noiseMultiplier {
            if let targetEpsilon {
                let spent = RDPAccountant.epsilon(samplingRate: rate, noiseMultiplier: noiseMultiplier, steps: rounds, delta: delta).epsilon
                guard spent <= targetEpsilon else {
                    throw ConfigurationError("noise_multiplier \(noiseMultiplier) spends epsilon \(spent) in \(rounds) rounds, above target_epsilon \(targetEpsilon)")
                }
            }
            return noiseMultiplier
        }
        guard let target = targetEpsilon, let z = RDPAccountant.calibrate(targetEpsilon: target, samplingRate: rate, steps: rounds, delta: delta) else {
            throw ConfigurationError("target_epsilon \(targetEpsilon ?? 0) cannot be met in \(rounds) rounds at sampling rate \(rate) with any noise_multiplier up to 10000")
        }
        return z
    }

    func validate(federation: FederationSection, strategy: String) throws(ConfigurationError) {
        if let clip, !(clip > 0 && clip.isFinite) { throw ConfigurationError("clip must be a positive number (got \(clip))") }
        guard ["off", "central", "local", "dpsgd"].contains(dp) else { throw ConfigurationError("dp must be off, central, local or dpsgd (got \(dp))") }
        guard delta > 0, delta < 1 else { throw ConfigurationError("delta must be in (0, 1) (got \(delta))") }
        if let noiseMultiplier, !(noiseMultiplier >= 0 && noiseMultiplier.isFinite) {
            throw ConfigurationError("noise_multiplier must be >= 0 (got \(noiseMultiplier))")
        }
        if let targetEpsilon, !(targetEpsilon > 0 && targetEpsilon.isFinite) {
            throw ConfigurationError("target_epsilon must be a positive number (got \(targetEpsilon))")
        }
        if clipPerLayer, clip == nil || adaptiveClip != nil {
            throw ConfigurationError("clip_per_layer needs clip, and does not go with adaptive_clip")
        }
        if let localEpsilon, !(localEpsilon > 0 && localEpsilon.isFinite) {
            throw ConfigurationError("local_epsilon must be a positive number (got \(localEpsilon))")
        }
        if isLocal {
            guard clip != nil, localEpsilon != nil else { throw ConfigurationError("dp local needs clip and local_epsilon (each round's ε), as in --clip 1 --local-epsilon 8") }
        } else if localEpsilon != nil {
            throw ConfigurationError("local_epsilon needs dp: local")
        }
        if dp == "dpsgd" {
            guard clip != nil, noiseMultiplier != nil || targetEpsilon != nil else {
                throw ConfigurationError("dp dpsgd needs clip (each example's gradient norm) and noise_multiplier or target_epsilon, as in --clip 1 --noise-multiplier 1.1")
            }
            guard adaptiveClip == nil, clipCountStddev == nil, !clipPerLayer else {
                throw ConfigurationError("dp dpsgd takes clip, noise_multiplier and target_epsilon only (not adaptive_clip, clip_count_stddev or clip_per_layer)")
            }
            guard !strategy.hasPrefix("fedprox"), !strategy.hasPrefix("scaffold") else {
                throw ConfigurationError("dp dpsgd trains with plain DP-SGD steps; strategy \(strategy) changes them (use fedavg, fedavgm, fedadam...)")
            }
            return
        }
        guard isCentral else {
            if noiseMultiplier != nil || targetEpsilon != nil { throw ConfigurationError("noise_multiplier and target_epsilon need dp: central or dpsgd") }
            if adaptiveClip != nil || clipCountStddev != nil { throw ConfigurationError("adaptive_clip and clip_count_stddev need dp: central") }
            return
        }
        if let adaptiveClip, !(adaptiveClip > 0 && adaptiveClip < 1) {
            throw ConfigurationError("adaptive_clip is the target quantile of update norms, in (0, 1) (got \(adaptiveClip))")
        }
        guard adaptiveClipLR > 0, adaptiveClipLR.isFinite else { throw ConfigurationError("adaptive_clip_lr must be positive (got \(adaptiveClipLR))") }
        if let clipCountStddev, !(clipCountStddev > 0 && clipCountStddev.isFinite) {
            throw ConfigurationError("clip_count_stddev must be a positive number (got \(clipCountStddev))")
        }
        guard clip != nil else { throw ConfigurationError("dp central needs clip (the sensitivity), as in --clip 0.5") }
        guard noiseMultiplier != nil || targetEpsilon != nil else { throw ConfigurationError("dp central needs noise_multiplier or target_epsilon") }
        guard federation.clientSampling == "poisson" else {
            throw ConfigurationError("dp central needs client_sampling poisson (the sampling its accountant assumes)")
        }
        guard federation.minSurvivors == 1 else { throw ConfigurationError("dp central releases every round: min_survivors must be 1") }
        let name = strategy.split(separator: ":").first.map(String.init) ?? strategy
        guard !["fednova", "scaffold"].contains(name) else {
            throw ConfigurationError("dp central does not go with \(name) (its weights or control variates are not clipped)")
        }
        _ = try resolvedNoiseMultiplier(rate: federation.fraction, rounds: federation.rounds)
    }
}

/// Byzantine robustness: the aggregation rule and, in simulation, the attack a fraction of the
/// clients mounts (chosen once from the seed).
public struct RobustnessSection: Sendable, Equatable, Codable {
    /// `mean` (the strategy's sample-weighted mean) or a robust rule (`AggregatorSpec.help`).
    public var aggregator = "mean"
    /// Clip every decoded update to this L2 norm before the rule.
    public var normBound: Double?
    /// Average updates in shuffled buckets of this size before the rule.
    public var bucketing: Int?
    /// `none` or an attack (`AttackSpec.help`).
    public var attack = "none"
    /// The fraction of all clients that attack.
    public var attackers = 0.0
    /// Clients send the momentum of their updates, `m = β·m + (1 − β)·Δ` (m starts at the first
    /// Δ), instead of Δ: Karimireddy et al. 2021's defence against attacks that hide in the
    /// variance of honest updates. nil: off.
    public var clientMomentum: Double?

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case aggregator, normBound = "norm_bound", bucketing, attack, attackers, clientMomentum = "client_momentum"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        aggregator = try c.decodeIfPresent(String.self, forKey: .aggregator) ?? d.aggregator
        normBound = try c.decodeIfPresent(Double.self, forKey: .normBound)
        bucketing = try c.decodeIfPresent(Int.self, forKey: .bucketing)
        attack = try c.decodeIfPresent(String.self, forKey: .attack) ?? d.attack
        attackers = try c.decodeIfPresent(Double.self, forKey: .attackers) ?? d.attackers
        clientMomentum = try c.decodeIfPresent(Double.self, forKey: .clientMomentum)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(aggregator, forKey: .aggregator)
        if let normBound { try c.encodeDecimal(normBound, forKey: .normBound) }
        try c.encodeIfPresent(bucketing, forKey: .bucketing)
        try c.encode(attack, forKey: .attack)
        try c.encodeDecimal(attackers, forKey: .attackers)
        if let clientMomentum { try c.encodeDecimal(clientMomentum, forKey: .clientMomentum) }
    }

    public func aggregatorSpec() throws(ConfigurationError) -> AggregatorSpec {
        try AggregatorSpec(parsing: aggregator, normBound: normBound, bucketing: bucketing)
    }

    /// The attack, nil without one.
    public func attackSpec() throws(ConfigurationError) -> AttackSpec? {
        attack == "none" ? nil : try AttackSpec(parsing: attack)
    }

    /// Whether any robustness metric is worth recording (a rule other than the mean, or an attack).
    public var isActive: Bool { aggregator != "mean" || normBound != nil || bucketing != nil || attack != "none" }

    func validate(federation: FederationSection, privacy: PrivacySection) throws(ConfigurationError) {
        let spec = try aggregatorSpec()
        if !spec.isPlainMean, privacy.isCentral {
            throw ConfigurationError("aggregator \(spec.description) does not go with dp central (its accountant assumes a clipped sum)")
        }
        if let clientMomentum, !(clientMomentum.isFinite && (0..<1).contains(clientMomentum)) {
            throw ConfigurationError("client_momentum must be in [0, 1) (got \(clientMomentum))")
        }
        guard attackers.isFinite, (0..<1).contains(attackers) else { throw ConfigurationError("attackers must be a fraction in [0, 1) (got \(attackers))") }
        if try attackSpec() != nil {
            guard Attackers.count(fraction: attackers, clients: federation.clients) >= 1 else {
                throw ConfigurationError("attack \(self.attack) needs attackers: a fraction that makes at least one of \(federation.clients) clients")
            }
        } else if attackers > 0 {
            throw ConfigurationError("attackers \(attackers) needs an attack (--attack NAME)")
        }
    }
}

/// How this process runs the job; never changes results.
public struct RunSection: Sendable, Equatable, Codable {
    public var threads = Parallelism.availableCores

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable { case threads }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        threads = try c.decodeIfPresent(Int.self, forKey: .threads) ?? Self().threads
    }

    func validate() throws(ConfigurationError) {
        guard threads >= 1 else { throw ConfigurationError("threads must be at least 1 (got \(threads))") }
    }
}

/// A networked server's rounds (`fedtrain server`); `simulate` ignores them.
public struct NetworkSection: Sendable, Equatable, Codable {
    /// Clients that must be connected before a round samples from them; 0 means all of them
    /// (Flower's `min_available_clients`; `min_clients` is the least a round samples).
    public var minAvailable = 0
    /// Seconds a round waits for `min_available` connected clients before the server stops the
    /// job (its state kept: the same command continues it).
    public var availableDeadline = 3600.0
    /// Seconds a round waits for its sampled clients before closing with the replies it has.
    public var roundDeadline = 600.0
    /// When a deadline passes with fewer than `min_survivors` replies: `extend:N`, `skip` or `stop`.
    public var onUnderflow = "extend:3"
    /// Seconds between a client's heartbeats during local training; three missed ones and it is gone.
    public var heartbeat = 5.0

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case minAvailable = "min_available", availableDeadline = "available_deadline", roundDeadline = "round_deadline"
        case onUnderflow = "on_underflow", heartbeat
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        minAvailable = try c.decodeIfPresent(Int.self, forKey: .minAvailable) ?? d.minAvailable
        availableDeadline = try c.decodeIfPresent(Double.self, forKey: .availableDeadline) ?? d.availableDeadline
        roundDeadline = try c.decodeIfPresent(Double.self, forKey: .roundDeadline) ?? d.roundDeadline
        onUnderflow = try c.decodeIfPresent(String.self, forKey: .onUnderflow) ?? d.onUnderflow
        heartbeat = try c.decodeIfPresent(Double.self, forKey: .heartbeat) ?? d.heartbeat
    }

    /// `min_available` resolved for a job of `clients`.
    public func requiredClients(of clients: Int) -> Int { minAvailable == 0 ? clients : minAvailable }

    func validate(clients: Int) throws(ConfigurationError) {
        guard (0...clients).contains(minAvailable) else { throw ConfigurationError("min_available must be in 0...clients (\(clients)), got \(minAvailable)") }
        guard availableDeadline.isFinite, availableDeadline > 0 else {
            throw ConfigurationError("available_deadline must be positive seconds, got \(availableDeadline)")
        }
        guard roundDeadline.isFinite, roundDeadline > 0 else { throw ConfigurationError("round_deadline must be positive seconds, got \(roundDeadline)") }
        guard heartbeat.isFinite, heartbeat > 0 else { throw ConfigurationError("heartbeat must be positive seconds, got \(heartbeat)") }
        _ = try UnderflowPolicy(parsing: onUnderflow)
    }
}

extension SimulationConfiguration {
    /// Refuses what a networked server cannot do: simulated failures (real clients fail on their
    /// own) and evaluation on every client.
    public func checkNetworked() throws(ConfigurationError) {
        if federation.dropout > 0 || federation.drop != nil {
            throw ConfigurationError("dropout and drop simulate failures; a networked job has real ones (remove them for fedtrain server)")
        }
        if federation.clientEvaluation {
            throw ConfigurationError("client_evaluation is not supported by fedtrain server yet (the server evaluates on the test set)")
        }
        if clock.simulatedClock {
            throw ConfigurationError("simulated_clock simulates client speeds; a networked job has real ones (remove it for fedtrain server)")
        }
        if robustness.attack != "none" {
            throw ConfigurationError("attack simulates hostile clients; a networked job has real ones (remove attack and attackers for fedtrain server)")
        }
    }

    /// The fewest accepted replies a round needs to be aggregated: `min_survivors`, or more when
    /// the aggregation rule is defined only for more (Krum, Bulyan, trimmed mean).
    public func requiredReplies() throws(ConfigurationError) -> Int {
        let strategy = try StrategyFactory(federation: federation, training: training, privacy: privacy, robustness: robustness, asynchrony: asynchrony).make(parameterCount: 1)
        return max(federation.minSurvivors, strategy.minimumUpdates)
    }

    /// The file-form value of every key (JSON scalars), for comparisons and messages.
    var keyValues: [String: String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            preconditionFailure("configuration does not encode")
        }
        var values = object.mapValues { "\($0)" }
        // A described model is a mapping, whose printed form has no fixed key order.
        values[DataSection.CodingKeys.model.rawValue] = self.data.model.description
        return values
    }

    /// Keys whose values differ from `other`'s, in file order.
    public func differingKeys(from other: SimulationConfiguration) -> [String] {
        let mine = keyValues, theirs = other.keyValues
        return Self.keys.filter { mine[$0] != theirs[$0] }
    }

    /// Refuses to continue a run made with `checkpointed` (which finished `finishedRounds`) under
    /// this configuration when any key that changes results differs, naming the keys; only
    /// `rounds` may grow (and not when central DP calibrated its noise for the planned rounds).
    public func checkResumable(from checkpointed: SimulationConfiguration, finishedRounds: Int, directory: String) throws(CheckpointError) {
        let roundsKey = FederationSection.CodingKeys.rounds.rawValue
        let differing = checkpointed.differingKeys(from: self).filter { !Self.resultNeutralKeys.contains($0) && $0 != roundsKey }
        if !differing.isEmpty {
            let details = differing.map { "\($0): \(checkpointed.value(of: $0)) in the run, \(value(of: $0)) now" }
            throw CheckpointError("cannot resume \(directory) with another configuration (\(details.joined(separator: "; "))); "
                + "start a new run in another directory, or pass --overwrite with --out to replace it")
        }
        if privacy.isCentral || privacy.dp == "dpsgd", privacy.noiseMultiplier == nil, federation.rounds != checkpointed.federation.rounds {
            throw CheckpointError("cannot resume \(directory) to \(federation.rounds) rounds: its noise was calibrated "
                + "for target_epsilon \(privacy.targetEpsilon ?? 0) over \(checkpointed.federation.rounds) rounds")
        }
        guard federation.rounds >= finishedRounds else {
            throw CheckpointError("cannot resume \(directory) to \(federation.rounds) rounds: it has finished \(finishedRounds); rounds may only grow")
        }
    }

    /// A key's value as text ("none" when unset).
    public func value(of key: String) -> String { keyValues[key] ?? "none" }
}

extension KeyedEncodingContainer {
    /// Writes a float by its shortest decimal form (`0.05`, not `0.0500000007` or `5e-2`), which
    /// reads back as the same float.
    mutating func encodeDecimal<T: BinaryFloatingPoint & LosslessStringConvertible>(_ value: T, forKey key: Key) throws {
        guard value.isFinite, let decimal = Decimal(string: value.description) else { preconditionFailure("non-finite setting \(value)") }
        try encode(decimal, forKey: key)
    }
}
