import ArgumentParser
import Engine
import Federated

// Flags for the configuration sections, shared by the commands. Each flag sets the config key of
// the same name (dashes for underscores, see `SimulationConfiguration`); nil leaves the value
// from the config file or the default, which the help text shows.

/// `--model`, `--data`.
struct DataOptions: ParsableArguments {
    @Option(help: "Model: \(ModelChoice.builtinNames), or a YAML file describing one (default: lenet5).")
    var model: String?
    @Option(help: "Data: folder:DIR (class subfolders of PNG/JPEG images), an MNIST-family IDX directory or a cifar-10-batches-bin directory (default: Fashion-MNIST from dataset-fashion-mnist; none for lenet5-rgb).")
    var data: String?
    @Option(name: .customLong("test-fraction"), parsing: .unconditional,
            help: "An image folder without train/ and test/: fraction of each class held out for testing (default: 0.2).")
    var testFraction: Double?
    @Flag(name: .customLong("skip-bad-images"), help: "Skip and count an image folder's unreadable, truncated and non-image files instead of failing.")
    var skipBadImages = false

    /// The `--model` choice (a description file is read here, so the configuration carries it).
    func modelChoice() throws(ConfigurationError) -> ModelChoice? {
        try model.map { argument throws(ConfigurationError) in try ModelChoice.parse(argument) }
    }

    func apply(to section: inout DataSection) throws(ConfigurationError) {
        if let model = try modelChoice() { section.model = model }
        if let data { section.data = data }
        if let testFraction { section.testFraction = testFraction }
        if skipBadImages { section.skipBadImages = true }
    }
}

private let federationDefaults = FederationSection()
private let trainingDefaults = LocalTrainingSection()

/// Clients, rounds, sampling, partition, strategy, faults, evaluation, seed.
struct FederationOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Number of clients (default: \(federationDefaults.clients)).") var clients: Int?
    @Option(parsing: .unconditional, help: "Number of rounds (default: \(federationDefaults.rounds)).") var rounds: Int?
    @Option(parsing: .unconditional, help: "Fraction of clients sampled per round (default: \(federationDefaults.fraction)).") var fraction: Double?
    @Option(name: .customLong("min-clients"), parsing: .unconditional, help: "Minimum clients sampled per round (default: \(federationDefaults.minClients)).")
    var minClients: Int?
    @Option(name: .customLong("client-sampling"), help: "fixed (⌊fraction·clients⌋ per round) or poisson (each client with probability fraction) (default: fixed).")
    var clientSampling: String?
    @Option(help: "Partition: iid, dirichlet:ALPHA, labels:K, shards:S, quantity:BETA (default: \(federationDefaults.partition)).") var partition: String?
    @Option(name: .customLong("min-partition-size"), parsing: .unconditional,
            help: "Smallest client the Dirichlet and quantity partitions accept (default: \(federationDefaults.minPartitionSize)).")
    var minPartitionSize: Int?
    @Option(help: "Strategy: \(StrategyFactory.strategyHelp) (default: \(federationDefaults.strategy)).") var strategy: String?
    @Option(name: .customLong("server-optimizer"),
            help: "Server optimizer replacing the strategy's plain step (fedavg, fedprox, scaffold, fednova): \(StrategyFactory.optimizerHelp).")
    var serverOptimizer: String?
    @Option(parsing: .unconditional, help: "Probability that a sampled client drops out of a round (default: \(federationDefaults.dropout)).") var dropout: Double?
    @Option(help: "Clients that fail in chosen rounds: ROUND:CLIENT[,ROUND:CLIENT...] (clients numbered from 0).") var drop: String?
    @Option(name: .customLong("min-survivors"), parsing: .unconditional,
            help: "Rounds with fewer accepted replies keep the model (default: \(federationDefaults.minSurvivors)).")
    var minSurvivors: Int?
    @Option(name: .customLong("max-samples"), parsing: .unconditional,
            help: "Largest sample count a reply may claim; larger claims are rejected (default: \(federationDefaults.maxSamples)).")
    var maxSamples: Int?
    @Option(name: .customLong("eval-every"), parsing: .unconditional,
            help: "Evaluate the global model every N rounds and after the last (default: \(federationDefaults.evalEvery)).")
    var evalEvery: Int?
    @Flag(name: .customLong("client-evaluation"), help: "Every client also evaluates the global model on its own data (mean, worst decile).")
    var clientEvaluation = false
    @Option(parsing: .unconditional, help: "Seed of every random choice (default: \(federationDefaults.seed)).") var seed: UInt64?

    func apply(to section: inout FederationSection) {
        if let clients { section.clients = clients }
        if let rounds { section.rounds = rounds }
        if let fraction { section.fraction = fraction }
        if let minClients { section.minClients = minClients }
        if let clientSampling { section.clientSampling = clientSampling }
        if let partition { section.partition = partition }
        if let minPartitionSize { section.minPartitionSize = minPartitionSize }
        if let strategy { section.strategy = strategy }
        if let serverOptimizer { section.serverOptimizer = serverOptimizer }
        if let dropout { section.dropout = dropout }
        if let drop { section.drop = drop }
        if let minSurvivors { section.minSurvivors = minSurvivors }
        if let maxSamples { section.maxSamples = maxSamples }
        if let evalEvery { section.evalEvery = evalEvery }
        if clientEvaluation { section.clientEvaluation = true }
        if let seed { section.seed = seed }
    }
}

/// Local SGD.
struct LocalTrainingOptions: ParsableArguments {
    @Option(name: .customLong("local-epochs"), parsing: .unconditional, help: "Local epochs per round (default: \(trainingDefaults.localEpochs)).")
    var localEpochs: Int?
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Local minibatch size (default: \(trainingDefaults.batchSize)).")
    var batchSize: Int?
    @Option(parsing: .unconditional, help: "Local learning rate (default: \(trainingDefaults.lr)).") var lr: Float?
    @Option(parsing: .unconditional, help: "Local SGD momentum (default: \(trainingDefaults.momentum)).") var momentum: Float?
    @Option(name: .customLong("weight-decay"), parsing: .unconditional, help: "Local weight decay (default: \(trainingDefaults.weightDecay)).")
    var weightDecay: Float?
    @Flag(name: .customLong("local-batchnorm"), help: "FedBN: every client keeps its BatchNorm layers (weights and running statistics) to itself.")
    var localBatchnorm = false

    func apply(to section: inout LocalTrainingSection) {
        if localBatchnorm { section.localBatchnorm = true }
        if let localEpochs { section.localEpochs = localEpochs }
        if let batchSize { section.batchSize = batchSize }
        if let lr { section.lr = lr }
        if let momentum { section.momentum = momentum }
        if let weightDecay { section.weightDecay = weightDecay }
    }
}

/// Update compression.
struct CompressionOptions: ParsableArguments {
    @Option(help: "Uplink codec: \(CodecRegistry.help) (default: fp32).") var codec: String?
    @Option(name: .customLong("down-codec"), help: "Downlink codec for the change of the global model, same specs (default: fp32).") var downCodec: String?
    @Flag(name: .customLong("error-feedback"), help: "Clients keep what the uplink codec dropped and add it to their next update.")
    var errorFeedback = false

    func apply(to section: inout CompressionSection) {
        if let codec { section.codec = codec }
        if let downCodec { section.downCodec = downCodec }
        if errorFeedback { section.errorFeedback = true }
    }
}

private let clockDefaults = ClockSection()

/// The simulated clock.
struct ClockOptions: ParsableArguments {
    @Flag(name: .customLong("simulated-clock"), help: "Time rounds by simulated client speeds and links; metrics get simulated seconds.")
    var simulatedClock = false
    @Option(name: .customLong("sample-seconds"), parsing: .unconditional,
            help: "Median client seconds per training sample (default: \(clockDefaults.sampleSeconds)).")
    var sampleSeconds: Double?
    @Option(name: .customLong("speed-spread"), parsing: .unconditional, help: "σ of the log-normal client speeds (default: \(clockDefaults.speedSpread)).")
    var speedSpread: Double?
    @Option(name: .customLong("slow-fraction"), parsing: .unconditional, help: "Fraction of clients slower by --slow-factor (default: 0).")
    var slowFraction: Double?
    @Option(name: .customLong("slow-factor"), parsing: .unconditional, help: "How much slower they are (default: \(clockDefaults.slowFactor)).")
    var slowFactor: Double?
    @Option(parsing: .unconditional, help: "Median client link in MB/s (default: \(clockDefaults.bandwidth)).") var bandwidth: Double?
    @Option(name: .customLong("bandwidth-spread"), parsing: .unconditional,
            help: "σ of the log-normal client links (default: \(clockDefaults.bandwidthSpread)).")
    var bandwidthSpread: Double?
    @Option(name: .customLong("clock-trace"), help: "File of one line per client: SECONDS_PER_SAMPLE MB_PER_SECOND.") var clockTrace: String?
    @Option(parsing: .unconditional, help: "Simulated seconds after which a round closes with the replies it has (default: none).")
    var deadline: Double?
    @Option(name: .customLong("over-selection"), parsing: .unconditional,
            help: "Sample this fraction more clients than a round needs and close on the first (default: 0).")
    var overSelection: Double?
    @Option(parsing: .unconditional, help: "Fraction of time each client is online, in windows of --availability-period (default: 1).")
    var availability: Double?
    @Option(name: .customLong("availability-period"), parsing: .unconditional,
            help: "Simulated seconds of one online/offline cycle (default: \(clockDefaults.availabilityPeriod)).")
    var availabilityPeriod: Double?

    func apply(to section: inout ClockSection) {
        if simulatedClock { section.simulatedClock = true }
        if let sampleSeconds { section.sampleSeconds = sampleSeconds }
        if let speedSpread { section.speedSpread = speedSpread }
        if let slowFraction { section.slowFraction = slowFraction }
        if let slowFactor { section.slowFactor = slowFactor }
        if let bandwidth { section.bandwidth = bandwidth }
        if let bandwidthSpread { section.bandwidthSpread = bandwidthSpread }
        if let clockTrace { section.clockTrace = clockTrace }
        if let deadline { section.deadline = deadline }
        if let overSelection { section.overSelection = overSelection }
        if let availability { section.availability = availability }
        if let availabilityPeriod { section.availabilityPeriod = availabilityPeriod }
    }
}

private let asyncDefaults = AsyncSection()

/// Asynchronous modes (FedBuff, FedAsync) on the simulated clock.
struct AsyncOptions: ParsableArguments {
    @Option(help: "sync, fedbuff or fedasync (default: sync); the asynchronous modes need --simulated-clock.") var mode: AsyncSection.Mode?
    @Option(parsing: .unconditional, help: "FedBuff: updates per server step, K (default: \(asyncDefaults.buffer)).") var buffer: Int?
    @Option(parsing: .unconditional, help: "Clients training at once, C (default: the round size).") var concurrency: Int?
    @Option(help: "Staleness weight: \(Staleness.help) (default: \(asyncDefaults.staleness)).") var staleness: String?
    @Option(name: .customLong("max-staleness"), parsing: .unconditional, help: "Refuse updates older than this many versions (default: none).")
    var maxStaleness: Int?
    @Option(parsing: .unconditional, help: "FedAsync's mixing α (default: \(asyncDefaults.mixing)).") var mixing: Double?
    @Option(name: .customLong("server-lr"), parsing: .unconditional, help: "The plain server step's learning rate: shorthand for --server-optimizer sgd:ETA.")
    var serverLR: Double?

    func apply(to section: inout AsyncSection, federation: inout FederationSection) throws(ConfigurationError) {
        if let mode { section.mode = mode }
        if let buffer { section.buffer = buffer }
        if let concurrency { section.concurrency = concurrency }
        if let staleness { section.staleness = staleness }
        if let maxStaleness { section.maxStaleness = maxStaleness }
        if let mixing { section.mixing = mixing }
        if let serverLR {
            guard serverLR > 0, serverLR.isFinite else { throw ConfigurationError("--server-lr must be a positive number (got \(serverLR))") }
            guard federation.serverOptimizer == nil else { throw ConfigurationError("--server-lr and server_optimizer both set the server's step; keep one") }
            federation.serverOptimizer = "sgd:\(serverLR)"
        }
    }
}

extension AsyncSection.Mode: ExpressibleByArgument {}

/// `--threads`.
struct RunOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Worker threads (default: all cores, \(Parallelism.availableCores) here); results do not depend on it.")
    var threads: Int?

    func apply(to section: inout RunSection) {
        if let threads { section.threads = threads }
    }
}

private let dpHelp = "Differential privacy: off; central (DP-FedAvg: the server clips, sums, adds Gaussian noise; needs --clip, "
    + "--client-sampling poisson and --noise-multiplier or --target-epsilon); or local (each client clips and adds noise; needs --clip "
    + "and --local-epsilon); or dpsgd (example-level DP-SGD in every client: Poisson lots of expected size --batch-size, each "
    + "example's gradient clipped to --clip, noise --noise-multiplier times the clip, or calibrated so that every client's examples "
    + "spend at most --target-epsilon in the planned rounds) (default: off)."

/// Privacy of uploads.
struct PrivacyOptions: ParsableArguments {
    @Option(help: ArgumentHelp(dpHelp)) var dp: String?
    @Option(parsing: .unconditional, help: "L2 clip of every update (with central DP: the sensitivity; clients clip too) (default: none).")
    var clip: Double?
    @Option(name: .customLong("noise-multiplier"), parsing: .unconditional, help: "Central DP or DP-SGD: noise standard deviation over the clip.")
    var noiseMultiplier: Double?
    @Option(name: .customLong("target-epsilon"), parsing: .unconditional, help: "Central DP or DP-SGD: ε for the whole run; the noise is calibrated for the planned rounds.")
    var targetEpsilon: Double?
    @Option(parsing: .unconditional, help: "δ of the (ε, δ) guarantee (default: 1e-5).") var delta: Double?
    @Flag(name: .customLong("clip-per-layer"), help: "Clip every parameter tensor to C/√L instead of the whole update to C.")
    var clipPerLayer = false
    @Option(name: .customLong("local-epsilon"), parsing: .unconditional, help: "Local DP: the ε of each round's update (with --dp local and --clip).")
    var localEpsilon: Double?
    @Option(name: .customLong("adaptive-clip"), parsing: .unconditional,
            help: "Central DP: the clip starts at --clip and follows this quantile of the update norms (Andrew et al. 2021).")
    var adaptiveClip: Double?
    @Option(name: .customLong("adaptive-clip-lr"), parsing: .unconditional, help: "Its geometric step (default: 0.2).") var adaptiveClipLR: Double?
    @Option(name: .customLong("clip-count-stddev"), parsing: .unconditional,
            help: "Noise on its count of unclipped updates (default: expected clients per round / 20).")
    var clipCountStddev: Double?

    func apply(to section: inout PrivacySection) {
        if let dp { section.dp = dp }
        if let clip { section.clip = clip }
        if let noiseMultiplier { section.noiseMultiplier = noiseMultiplier }
        if let targetEpsilon { section.targetEpsilon = targetEpsilon }
        if let delta { section.delta = delta }
        if clipPerLayer { section.clipPerLayer = true }
        if let localEpsilon { section.localEpsilon = localEpsilon }
        if let adaptiveClip { section.adaptiveClip = adaptiveClip }
        if let adaptiveClipLR { section.adaptiveClipLR = adaptiveClipLR }
        if let clipCountStddev { section.clipCountStddev = clipCountStddev }
    }
}

/// Robust aggregation and simulated attacks.
struct RobustnessOptions: ParsableArguments {
    @Option(help: "Aggregation rule: \(AggregatorSpec.help) (default: mean, the strategy's sample-weighted mean).")
    var aggregator: String?
    @Option(name: .customLong("norm-bound"), parsing: .unconditional, help: "Clip every decoded update to this L2 norm before the rule.")
    var normBound: Double?
    @Option(parsing: .unconditional, help: "Average updates in shuffled buckets of this size before the rule.") var bucketing: Int?
    @Option(help: "Simulated attack: \(AttackSpec.help) (default: none).") var attack: String?
    @Option(parsing: .unconditional, help: "Fraction of all clients that attack, chosen once from the seed.") var attackers: Double?
    @Option(name: .customLong("client-momentum"), parsing: .unconditional,
            help: "Clients send the momentum β·m + (1 − β)·Δ of their updates (Karimireddy et al. 2021; default: off).")
    var clientMomentum: Double?

    func apply(to section: inout RobustnessSection) {
        if let aggregator { section.aggregator = aggregator }
        if let normBound { section.normBound = normBound }
        if let bucketing { section.bucketing = bucketing }
        if let attack { section.attack = attack }
        if let attackers { section.attackers = attackers }
        if let clientMomentum { section.clientMomentum = clientMomentum }
    }
}

private let networkDefaults = NetworkSection()

/// A networked server's rounds.
struct NetworkOptions: ParsableArguments {
    @Option(name: .customLong("min-available"), parsing: .unconditional,
            help: "Clients that must be connected before a round samples from them; 0 means all (default: \(networkDefaults.minAvailable)).")
    var minAvailable: Int?
    @Option(name: .customLong("available-deadline"), parsing: .unconditional,
            help: "Seconds a round waits for --min-available clients before the server stops, its state kept (default: \(networkDefaults.availableDeadline)).")
    var availableDeadline: Double?
    @Option(name: .customLong("round-deadline"), parsing: .unconditional,
            help: "Seconds a round waits for its sampled clients (default: \(networkDefaults.roundDeadline)).")
    var roundDeadline: Double?
    @Option(name: .customLong("on-underflow"),
            help: "A deadline passed with fewer than --min-survivors replies: extend:N, skip or stop (default: \(networkDefaults.onUnderflow)).")
    var onUnderflow: String?
    @Option(parsing: .unconditional, help: "Seconds between client heartbeats; three missed and a client is gone (default: \(networkDefaults.heartbeat)).")
    var heartbeat: Double?

    func apply(to section: inout NetworkSection) {
        if let minAvailable { section.minAvailable = minAvailable }
        if let availableDeadline { section.availableDeadline = availableDeadline }
        if let roundDeadline { section.roundDeadline = roundDeadline }
        if let onUnderflow { section.onUnderflow = onUnderflow }
        if let heartbeat { section.heartbeat = heartbeat }
    }
}

/// The options every job command takes (`simulate`, `server`, `privacy cost`): the config file
/// and the sections every job has; a command adds its own (clock, asynchrony, network) and Run.
struct JobOptions: ParsableArguments {
    @Option(help: "YAML configuration file; flags override its keys.") var config: String?
    @OptionGroup(title: "Model and data") var data: DataOptions
    @OptionGroup(title: "Federation") var federation: FederationOptions
    @OptionGroup(title: "Local training") var training: LocalTrainingOptions
    @OptionGroup(title: "Compression") var compression: CompressionOptions
    @OptionGroup(title: "Privacy") var privacy: PrivacyOptions
    @OptionGroup(title: "Robustness") var robustness: RobustnessOptions

    /// The configuration a job command runs: `file`'s keys (defaults without one), then the flags
    /// of every section; validated.
    func resolve(file: String?, run: RunOptions, clock: ClockOptions? = nil, asynchrony: AsyncOptions? = nil,
                 network: NetworkOptions? = nil) throws(ConfigurationError) -> SimulationConfiguration {
        var configuration = SimulationConfiguration()
        if let file { configuration = try ConfigurationFile.read(file) }
        try data.apply(to: &configuration.data)
        federation.apply(to: &configuration.federation)
        training.apply(to: &configuration.training)
        compression.apply(to: &configuration.compression)
        privacy.apply(to: &configuration.privacy)
        robustness.apply(to: &configuration.robustness)
        clock?.apply(to: &configuration.clock)
        try asynchrony?.apply(to: &configuration.asynchrony, federation: &configuration.federation)
        run.apply(to: &configuration.run)
        network?.apply(to: &configuration.network)
        try configuration.validate()
        return configuration
    }
}
