import Engine

/// Builds the strategy a configuration names: `--strategy` picks the aggregator, the client
/// instructions and a default server optimizer; `--server-optimizer` replaces that optimizer for
/// the strategies whose own step is plain (FedAvg, FedProx, SCAFFOLD, FedNova), so for example
/// FedProx clients can feed a FedAdam server.
public struct StrategyFactory: Sendable {
    public static let strategyHelp = "fedavg, fedprox:MU, fedavgm[:MOMENTUM[:SERVER_LR]], fedadam|fedyogi|fedadagrad[:SERVER_LR[:TAU]], scaffold[:SERVER_LR], fednova"
    public static let optimizerHelp = "sgd[:LR], momentum[:BETA[:LR]], adam|yogi|adagrad[:LR[:TAU]]"

    public var strategy: String
    public var serverOptimizer: String?
    /// Local SGD momentum (FedNova's effective step count depends on it).
    public var localMomentum: Float
    /// All clients of the federation (SCAFFOLD scales its control update by |S|/N).
    public var totalClients: Int
    /// Central DP replaces the aggregator by a clipped sum over the expected client count and
    /// adds noise before the server optimizer.
    public var privacy: PrivacySection
    /// A robust rule (`--aggregator`, `--norm-bound`, `--bucketing`) replaces the strategy's mean.
    public var robustness: RobustnessSection
    public var sampledPerRound: Int
    public var seed: UInt64
    /// DP noise: seeded in simulation; `.secure` for a deployed server.
    public var noise: NoiseSource
    /// Central DP's server-side clip per tensor of this layout (`clip_per_layer`), nil: flat.
    public var clipLayers: ParameterLayout?
    public var poissonRate: Double?
    public var rounds: Int
    /// Threads the server's aggregation may use (central DP's clip); results do not depend on it.
    public var threads = 1

    public init(federation: FederationSection, training: LocalTrainingSection, privacy: PrivacySection = PrivacySection(),
                robustness: RobustnessSection = RobustnessSection(), asynchrony: AsyncSection = AsyncSection()) {
        strategy = federation.strategy
        // FedAsync's mixing α is a plain server step of α on the (staleness-weighted) rebased update.
        serverOptimizer = asynchrony.mode == .fedasync ? "sgd:\(asynchrony.mixing)" : federation.serverOptimizer
        localMomentum = training.momentum
        totalClients = federation.clients
        self.privacy = privacy
        self.robustness = robustness
        sampledPerRound = asynchrony.isAsynchronous ? asynchrony.updatesPerStep
            : federation.poissonRate.map { Int(($0 * Double(federation.clients)).rounded(.down)) } ?? federation.sampledPerRound
        seed = federation.seed
        noise = .seeded(federation.seed)
        poissonRate = federation.poissonRate
        rounds = federation.rounds
    }

    public func make(parameterCount: Int) throws(ConfigurationError) -> ComposedStrategy {
        let (name, numbers) = try Self.parse(strategy, what: "strategy")
        func argument(_ index: Int, _ fallback: Float) -> Float { index < numbers.count ? numbers[index] : fallback }
        func limit(_ count: Int) throws(ConfigurationError) {
            if numbers.count > count { throw ConfigurationError("strategy \(strategy): \(name) takes at most \(count) parameters") }
        }
        var aggregator: any Aggregator
        var optimizer: any ServerOptimizer = PlainServerStep(learningRate: 1)
        var proximalMu: Float = 0
        var controlVariate: ServerControlVariate?
        var ownsOptimizer = false
        switch name {
        case "fedavg":
            try limit(0)
            aggregator = WeightedMean()
        case "fedprox":
            try limit(1)
            guard numbers.count == 1 else { throw ConfigurationError("strategy \(strategy): fedprox needs mu, as in fedprox:0.01") }
            aggregator = WeightedMean()
            proximalMu = numbers[0]
        case "fedavgm":
            try limit(2)
            aggregator = WeightedMean()
            optimizer = try Self.momentum(argument(0, 0.9), argument(1, 1), spec: strategy, parameterCount: parameterCount)
            ownsOptimizer = true
        case "fedadam", "fedyogi", "fedadagrad":
            try limit(2)
            aggregator = WeightedMean()
            optimizer = AdaptiveServerOptimizer(kind: Aggregation.AdaptiveKind(rawValue: String(name.dropFirst(3)))!,
                                                eta: argument(0, 0.01), tau: argument(1, 1e-3), parameterCount: parameterCount)
            ownsOptimizer = true
        case "scaffold":
            try limit(1)
            aggregator = UniformMean()
            optimizer = PlainServerStep(learningRate: argument(0, 1))
            ownsOptimizer = !numbers.isEmpty
            controlVariate = ServerControlVariate(parameterCount: parameterCount, totalClients: totalClients)
        case "fednova":
            try limit(0)
            aggregator = FedNovaMean(localMomentum: Double(localMomentum))
        default:
            throw ConfigurationError("unknown strategy \(strategy); expected \(Self.strategyHelp)")
        }
        var spec = strategy
        let rule = try robustness.aggregatorSpec()
        if !rule.isPlainMean {
            guard aggregator is WeightedMean else {
                throw ConfigurationError("aggregator \(rule.description): strategy \(strategy) aggregates its own way; use fedavg, fedprox, fedavgm or fedadam|fedyogi|fedadagrad with it")
            }
            aggregator = try rule.make(parameterCount: parameterCount, seed: seed, expectedUpdates: sampledPerRound)
            spec += " aggregated by \(rule.description)"
        }
        if let serverOptimizer {
            guard !ownsOptimizer else {
                throw ConfigurationError("server_optimizer \(serverOptimizer): strategy \(strategy) already sets the server's step; "
                    + "use fedavg, fedprox, scaffold (without SERVER_LR) or fednova with it")
            }
            optimizer = try Self.optimizer(serverOptimizer, parameterCount: parameterCount)
            spec += " with server optimizer \(serverOptimizer)"
        }
        guard privacy.isCentral, let clip = privacy.clip, let rate = poissonRate,
              let z = try privacy.resolvedNoiseMultiplier(rate: rate, rounds: rounds) else {
            return ComposedStrategy(spec: spec, aggregator: aggregator, optimizer: optimizer, proximalMu: proximalMu, controlVariate: controlVariate)
        }
        let expected = rate * Double(totalClients)
        guard let quantile = privacy.adaptiveClip else {
            return ComposedStrategy(spec: spec + " with central DP (clip \(clip), noise multiplier \(z))",
                                    aggregator: ClippedSumOverExpected(clip: clip, expectedClients: expected, parameterCount: parameterCount,
                                                                       layers: clipLayers, threads: threads),
                                    optimizer: optimizer, proximalMu: proximalMu, controlVariate: controlVariate,
                                    centralNoise: CentralGaussianNoise(noiseMultiplier: z, clip: clip, expectedClients: expected, noise: noise))
        }
        let countNoise = privacy.clipCountStddev ?? expected / 20
        guard let updateNoise = AdaptiveClipping.updateNoiseMultiplier(total: z, countNoise: countNoise) else {
            throw ConfigurationError("adaptive_clip: the count's noise clip_count_stddev \(countNoise) must exceed half the noise multiplier \(z)")
        }
        let adaptive = AdaptiveClipping(initialClip: clip, quantile: quantile, learningRate: privacy.adaptiveClipLR, countNoise: countNoise)
        return ComposedStrategy(spec: spec + " with central DP (adaptive clip from \(clip) to quantile \(quantile), noise multiplier \(z): "
                                    + "\(updateNoise) on the updates, \(countNoise) on the count)",
                                aggregator: ClippedSumOverExpected(clip: clip, expectedClients: expected, parameterCount: parameterCount,
                                                                   adaptive: adaptive, noise: noise, threads: threads),
                                optimizer: optimizer, proximalMu: proximalMu, controlVariate: controlVariate,
                                centralNoise: CentralGaussianNoise(noiseMultiplier: updateNoise, clip: clip, expectedClients: expected, noise: noise))
    }

    /// Parses `--server-optimizer`.
    static func optimizer(_ spec: String, parameterCount: Int) throws(ConfigurationError) -> any ServerOptimizer {
        let (name, numbers) = try parse(spec, what: "server_optimizer")
        func argument(_ index: Int, _ fallback: Float) -> Float { index < numbers.count ? numbers[index] : fallback }
        let most = ["sgd": 1, "momentum": 2, "adam": 2, "yogi": 2, "adagrad": 2][name]
        guard let most else { throw ConfigurationError("unknown server_optimizer \(spec); expected \(optimizerHelp)") }
        guard numbers.count <= most else { throw ConfigurationError("server_optimizer \(spec): \(name) takes at most \(most) parameters") }
        switch name {
        case "sgd": return PlainServerStep(learningRate: argument(0, 1))
        case "momentum": return try momentum(argument(0, 0.9), argument(1, 1), spec: spec, parameterCount: parameterCount)
        default:
            return AdaptiveServerOptimizer(kind: Aggregation.AdaptiveKind(rawValue: name)!, eta: argument(0, 0.01), tau: argument(1, 1e-3),
                                           parameterCount: parameterCount)
        }
    }

    private static func momentum(_ beta: Float, _ learningRate: Float, spec: String, parameterCount: Int) throws(ConfigurationError) -> ServerMomentum {
        guard beta < 1 else { throw ConfigurationError("\(spec): server momentum must be below 1") }
        return ServerMomentum(momentum: beta, learningRate: learningRate, parameterCount: parameterCount)
    }

    /// `NAME[:X[:Y]]` with non-negative finite numbers.
    private static func parse(_ spec: String, what: String) throws(ConfigurationError) -> (String, [Float]) {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var numbers: [Float] = []
        for part in parts.dropFirst() {
            guard let value = Float(part), value.isFinite, value >= 0 else {
                throw ConfigurationError("\(what) \(spec): \(part) is not a non-negative number")
            }
            numbers.append(value)
        }
        return (parts[0], numbers)
    }
}
