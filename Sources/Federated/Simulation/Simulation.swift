import Datasets
import Engine

/// A federation's rounds: partitions the training set across clients, then runs rounds through
/// the `RoundCoordinator`, with the `ClientRuntime` on the clients' side. On one machine
/// (`fedtrain simulate`) an `InProcessTransport` carries the envelope bytes to every client
/// across cores; a networked server passes its `RemoteClients` instead, and its clients run
/// the same `ClientRuntime` in their own processes (`ClientHost`).
///
/// Reproducibility: every random choice comes from a generator derived from (seed, round,
/// client, purpose), each client trains single-threaded, and updates are aggregated in sampled
/// order; so a run is bit-identical for any `threads` (on one OpenBLAS kernel set), and a round
/// depends only on the state a checkpoint stores.
/// Memory: one trainer per worker thread; per sampled client its task and reply envelopes, its
/// decoded model and update; per-client state only for clients that keep some (codec state,
/// residuals, model copies and their server-side mirrors, control variates).
public final class Simulation {
    public let configuration: SimulationConfiguration
    public let network: Sequential
    public let train: LabeledImages
    public let test: LabeledImages
    public let partitions: [[Int]]
    /// The rounds' coordinator (in an asynchronous run, the one the `AsyncCoordinator` steps).
    public var coordinator: RoundCoordinator { asynchronous?.rounds ?? synchronous }
    private var synchronous: RoundCoordinator
    /// FedBuff or FedAsync (`mode`): the coordinator and the trips in simulated time.
    public private(set) var asynchronous: AsyncCoordinator?
    public private(set) var schedule = AsyncSchedule()
    /// An asynchronous run over remote clients: their trips in real time, logged.
    public let networkSchedule: NetworkSchedule?
    /// Carries tasks and replies; `inProcess` when the clients run here (it holds their state).
    public let transport: any ClientTransport
    public let inProcess: InProcessTransport?
    public private(set) var metrics: [RoundMetrics] = []
    private let evaluator: SupervisedTraining
    /// Central DP's noise multiplier (given, or calibrated for the planned rounds), for the accountant.
    public let noiseMultiplier: Double?
    /// The privacy one round spends (computed once: the accountant's costly part).
    private let roundAccountant: RDPAccountant?
    /// The privacy settings the clients run with: DP-SGD's noise multiplier resolved
    /// (`SimulationConfiguration.resolvingExampleNoise`).
    public let resolvedPrivacy: PrivacySection
    /// Simulated client durations, deadline and over-selection (`simulated_clock`).
    public let simulatedClock: SimulatedClock?
    /// The simulated attack, if the job has one.
    public let adversary: Adversary?
    /// The backdoor's triggered test set (non-target images, stamped, labelled with the target).
    private let triggeredTest: LabeledImages?
    /// Builds the coordinator's tasks (downlink encoding) across the cores.
    private let tasksInParallel: RoundCoordinator.ParallelFor

    /// `remote`: the clients run elsewhere and this transport reaches them (nil: in this process);
    /// in an asynchronous mode it must be an `AsyncClientTransport`, and `eventLog` records the run.
    /// `replaying`: an asynchronous run replayed from its event log (`replayStep`), in this process.
    public init(configuration: SimulationConfiguration, train: LabeledImages, test: LabeledImages,
                remote: (any ClientTransport)? = nil, eventLog: AsyncEventLog? = nil, replaying: Bool = false) throws(ConfigurationError) {
        try configuration.validate()
        let partitions = try Self.partitions(configuration: configuration, train: train)
        // The run's configuration stays as given (what a resume compares); its clients run with
        // DP-SGD's noise multiplier resolved.
        let resolved = try configuration.resolvingExampleNoise(partitions: partitions)
        (self.configuration, self.partitions, resolvedPrivacy) = (configuration, partitions, resolved.privacy)
        let federation = configuration.federation, seed = federation.seed
        let network = try configuration.data.model.network(for: train)
        (self.network, self.train, self.test) = (network, train, test)
        var initGenerator = SeededGenerator.derived(seed: seed, RandomStream.initialization.rawValue)
        let layout = network.layout, compression = configuration.compression
        let runtime = try Self.clientRuntime(configuration: resolved, network: network), local = runtime.training
        if local.exampleDP != nil { try ExampleDPSGD.check(network) }
        if configuration.training.localBatchnorm, network.batchNormRanges.isEmpty {
            throw ConfigurationError("local_batchnorm keeps BatchNorm layers on the clients, and model \(configuration.data.model) has none")
        }
        let adversary = try Adversary(configuration: configuration)
        try adversary?.spec.validate(classes: train.classes)
        self.adversary = adversary
        triggeredTest = adversary?.spec.backdoorTarget.map { DataPoisoning.triggeredTest(test, target: $0) }
        var strategy = StrategyFactory(federation: federation, training: configuration.training, privacy: configuration.privacy,
                                       robustness: configuration.robustness, asynchrony: configuration.asynchrony)
        // Clients in other processes: a deployed federation, whose DP noise must be unpredictable.
        if remote != nil { strategy.noise = .secure }
        if configuration.privacy.clipPerLayer { strategy.clipLayers = layout }
        strategy.threads = configuration.run.threads
        simulatedClock = configuration.clock.simulatedClock ? try SimulatedClock(section: configuration.clock, clients: federation.clients, seed: seed) : nil
        synchronous = RoundCoordinator(
            settings: .init(clients: federation.clients, sampledPerRound: configuration.clock.sampled(needed: federation.sampledPerRound, clients: federation.clients),
                            minSurvivors: federation.minSurvivors,
                            maxSamples: federation.maxSamples, localEpochs: configuration.training.localEpochs,
                            batchSize: configuration.training.batchSize, seed: seed, layout: layout, uplinkCodec: runtime.uplinkCodec.spec,
                            poissonRate: federation.poissonRate),
            global: network.initialParameters(using: &initGenerator),
            strategy: try strategy.make(parameterCount: layout.count),
            downlink: Downlink(codec: try CodecRegistry.codec(parsing: compression.downCodec), layout: layout, seed: seed))
        let asynchrony = configuration.asynchrony
        if asynchrony.isAsynchronous {
            asynchronous = AsyncCoordinator(rounds: synchronous, settings: .init(
                updatesPerStep: asynchrony.updatesPerStep, staleness: try Staleness(parsing: asynchrony.staleness),
                maxStaleness: asynchrony.maxStaleness, rebases: asynchrony.mode == .fedasync))
        }
        if asynchronous != nil, remote == nil, simulatedClock == nil, !replaying {
            throw ConfigurationError("mode \(asynchrony.mode.rawValue) in simulation runs on the simulated clock: add simulated_clock: true (--simulated-clock)")
        }
        if let remote {
            (transport, inProcess) = (remote, nil)
            if asynchronous != nil {
                guard let clients = remote as? any AsyncClientTransport, let eventLog else {
                    throw ConfigurationError("mode \(asynchrony.mode.rawValue) needs asynchronous clients and an event log")
                }
                networkSchedule = NetworkSchedule(transport: clients, log: eventLog)
            } else {
                networkSchedule = nil
            }
        } else {
            networkSchedule = nil
            let workers = min(configuration.run.threads, max(federation.sampledPerRound, federation.clientEvaluation ? federation.clients : 1))
            let split = partitions
            let poisoned = adversary.flatMap { adversary in
                adversary.poisonedData(train, partitions: split, seed: seed).map { (clients: adversary.attackers, data: $0) }
            }
            let local = try InProcessTransport(runtime: runtime, network: network, data: train, partitions: partitions,
                                           faults: FaultPlan(dropout: federation.dropout, scheduled: try federation.scheduledDrops(), seed: seed),
                                           workers: workers, poisoned: poisoned)
            (transport, inProcess) = (local, local)
        }
        noiseMultiplier = try configuration.privacy.resolvedNoiseMultiplier(rate: federation.fraction, rounds: federation.rounds)
        roundAccountant = configuration.privacy.roundAccountant(centralNoise: noiseMultiplier, samplingRate: federation.poissonRate)
        let threads = configuration.run.threads
        tasksInParallel = { count, body in Parallelism.forEach(count: count, workers: threads) { index, _ in body(index) } }
        // Evaluation splits batches into a fixed number of chunks, so its sums do not depend on threads.
        evaluator = SupervisedTraining(network: network, optimizer: local.optimizer, batchSize: 500, chunks: 8, threads: configuration.run.threads)
    }

    /// Each client's sample indices in `train`: the job's partitioner, seeded from (seed, partition).
    public static func partitions(configuration: SimulationConfiguration, train: LabeledImages) throws(ConfigurationError) -> [[Int]] {
        let federation = configuration.federation
        var generator = SeededGenerator.derived(seed: federation.seed, RandomStream.partition.rawValue)
        do {
            return try Partitioner(scheme: try PartitionScheme(parsing: federation.partition), clients: federation.clients,
                                   minimumSize: federation.minPartitionSize)
                .split(labels: train.labels, classes: train.classes, generator: &generator)
        } catch {
            throw ConfigurationError("partition \(federation.partition): \(error.description)")
        }
    }

    /// The clients' side of the job: local training, uplink codec, error feedback and stages.
    /// `secureNoise`: local DP draws from the system's secure generator (a deployed client).
    public static func clientRuntime(configuration: SimulationConfiguration, network: Sequential, secureNoise: Bool = false) throws(ConfigurationError) -> ClientRuntime {
        precondition(configuration.privacy.dp != "dpsgd" || configuration.privacy.noiseMultiplier != nil,
                     "DP-SGD's noise multiplier is resolved first (resolvingExampleNoise)")
        let compression = configuration.compression
        let uplink = try CodecRegistry.codec(parsing: compression.codec), downlink = try CodecRegistry.codec(parsing: compression.downCodec)
        let local = LocalTrainingConfiguration(epochs: configuration.training.localEpochs, batchSize: configuration.training.batchSize,
                                               optimizer: configuration.training.optimizer,
                                               exampleDP: configuration.privacy.exampleDPSGD(secure: secureNoise))
        let attack = try Adversary(configuration: configuration)?.stage.map { [$0] } ?? []
        return ClientRuntime(layout: network.layout, training: local, uplinkCodec: uplink,
                             errorFeedback: compression.errorFeedback, keepsModelCopy: !downlink.isDense,
                             stages: configuration.privacy.clientStages(layout: network.layout, secure: secureNoise) + attack,
                             seed: configuration.federation.seed, momentum: configuration.robustness.clientMomentum.map(Float.init),
                             localRanges: configuration.training.localBatchnorm ? network.batchNormRanges : [])
    }

    public var global: [Float] { coordinator.global }
    public var completedRounds: Int { coordinator.completedRounds }
    var allClients: [Int] { Array(0..<configuration.federation.clients) }

    /// The distinct client sizes (DP-SGD's accountant depends on nothing else of a client).
    private var partitionSizes: Set<Int> { Set(partitions.map(\.count)) }

    /// Per-client label histograms, for the partition report.
    public var histograms: [[Int]] { partitions.map { train.classHistogram($0) } }

    /// Clients sampled in `round` (1-based), in sampled order.
    public func sampledClients(round: Int) -> [Int] { coordinator.sample(round: round, available: allClients) }

    /// Runs the next round. `clientDone(done, total)` reports progress on the calling thread.
    @discardableResult
    public func runRound(clientDone: ((Int, Int) -> Void)? = nil) -> RoundMetrics {
        if asynchronous != nil { return runAsyncStep(clientDone: clientDone) }
        let clock = ContinuousClock(), start = clock.now
        // With online windows, the round samples the clients online when it begins, waiting for one if none is.
        var available = transport.available(from: allClients), roundStart = metrics.last?.simulatedTime ?? 0, waited = 0.0
        if let simulatedClock, simulatedClock.availability != nil {
            if let first = simulatedClock.firstOnline(available, from: roundStart) { (waited, roundStart) = (first - roundStart, first) }
            available = available.filter { simulatedClock.isOnline($0, at: roundStart) }
        }
        // The tasks (a model copy each) are not used past the exchange, nor is a reply's envelope
        // once accepted: neither stays alive while the updates are checked and aggregated.
        var tasks = synchronous.begin(available: available, parallelFor: tasksInParallel)
        let sampled = tasks.map(\.client)
        var replies = transport.exchange(tasks, clientDone: clientDone)
        let trainingSeconds = (clock.now - start).seconds
        if let adversary, let inProcess { replies = adversary.forge(replies, runtime: inProcess.runtime) }
        var simulatedSeconds: Double?
        if let simulatedClock {
            // Over-selection closes on the round's size; otherwise every sampled client is awaited.
            let target = configuration.clock.overSelection > 0 ? configuration.federation.sampledPerRound : tasks.count
            let partitions = self.partitions
            let closed = simulatedClock.closeRound(tasks: tasks, replies: replies, samples: { partitions[$0].count },
                                                   epochs: configuration.training.localEpochs, target: target, start: roundStart)
            (replies, simulatedSeconds) = (closed.replies, waited + closed.seconds)
        }
        tasks = []
        for index in replies.indices {
            let reply = replies[index]
            replies[index].bytes = []
            _ = synchronous.accept(reply.bytes, from: reply.client)
        }
        let aggregationStart = clock.now
        let outcome = synchronous.finish()
        let aggregationSeconds = (clock.now - aggregationStart).seconds
        var result = record(outcome, sampled: sampled, trainingSeconds: trainingSeconds, aggregationSeconds: aggregationSeconds)
        if let simulatedSeconds {
            result.simulatedSeconds = simulatedSeconds
            result.simulatedTime = (metrics.last?.simulatedTime ?? 0) + simulatedSeconds
        }
        return finishRecord(result, start: start)
    }

    /// Runs events until the next server step of an asynchronous run; its metrics.
    private func runAsyncStep(clientDone: ((Int, Int) -> Void)?) -> RoundMetrics {
        let clock = ContinuousClock(), start = clock.now
        if let networkSchedule {
            let concurrency = configuration.asynchrony.clientsInFlight(federation: configuration.federation)
            let (step, trips) = networkSchedule.runUntilStep(&asynchronous!, concurrency: concurrency, all: allClients)
            return recordStep(step, trips: trips, trainingSeconds: 0, trainedSamples: 0, start: start)
        }
        let partitions = self.partitions, transport = self.transport
        var trainingSeconds = 0.0, trainedSamples = 0
        let clients = AsyncSchedule.Clients(clock: simulatedClock!, samples: { partitions[$0].count }, epochs: configuration.training.localEpochs) { tasks in
            let trainingStart = clock.now
            defer { trainingSeconds += (clock.now - trainingStart).seconds }
            trainedSamples += tasks.reduce(0) { $0 + partitions[$1.client].count }
            return transport.exchange(tasks, clientDone: clientDone)
        }
        let event = schedule.runUntilStep(&asynchronous!, concurrency: configuration.asynchrony.clientsInFlight(federation: configuration.federation),
                                          available: transport.available(from: allClients), clients: clients)
        var result = stepMetrics(event.step, trips: event.trips, trainingSeconds: trainingSeconds, trainedSamples: trainedSamples)
        result.simulatedSeconds = event.seconds
        result.simulatedTime = schedule.now
        return finishRecord(result, start: start)
    }

    /// Replays a networked asynchronous run's events through its next step (`fedtrain replay`).
    public func replayStep(_ replay: inout ReplaySchedule) throws(ConfigurationError) -> RoundMetrics {
        precondition(asynchronous != nil && inProcess != nil)
        let start = ContinuousClock.now, transport = self.transport
        let (step, trips) = try replay.runUntilStep(&asynchronous!) { transport.exchange($0, clientDone: nil) }
        return recordStep(step, trips: trips, trainingSeconds: 0, trainedSamples: 0, start: start)
    }

    private func recordStep(_ step: AsyncCoordinator.Step, trips: Int, trainingSeconds: Double, trainedSamples: Int,
                            start: ContinuousClock.Instant) -> RoundMetrics {
        finishRecord(stepMetrics(step, trips: trips, trainingSeconds: trainingSeconds, trainedSamples: trainedSamples), start: start)
    }

    /// A server step's metrics. Clients may train ahead of the step that aggregates them: the
    /// training rate is that of the training this step ran (0 when it ran none here).
    private func stepMetrics(_ step: AsyncCoordinator.Step, trips: Int, trainingSeconds: Double, trainedSamples: Int) -> RoundMetrics {
        var result = record(step.outcome, sampled: step.outcome.updates.map(\.client), trainingSeconds: trainingSeconds, aggregationSeconds: nil)
        result.imagesPerSecond = trainingSeconds > 0 ? Double(trainedSamples * configuration.training.localEpochs) / trainingSeconds : 0
        result.trips = trips
        if !step.staleness.isEmpty {
            result.stalenessMean = Double(step.staleness.reduce(0, +)) / Double(step.staleness.count)
            result.stalenessMax = step.staleness.max()
        }
        return result
    }

    /// A round's (or server step's) metrics from its outcome.
    private func record(_ outcome: RoundCoordinator.Outcome, sampled: [Int], trainingSeconds: Double, aggregationSeconds: Double?) -> RoundMetrics {
        var result = RoundMetrics(round: outcome.round, clients: outcome.accepted, failures: outcome.failures,
                                  rejected: outcome.rejections.values.reduce(0, +), bytesUp: outcome.bytesUp, bytesDown: outcome.bytesDown,
                                  denseBytesUp: outcome.denseBytesUp, denseBytesDown: outcome.denseBytesDown, seconds: 0,
                                  imagesPerSecond: Double(outcome.samples * configuration.training.localEpochs) / max(trainingSeconds, 1e-9))
        result.rejections = Dictionary(uniqueKeysWithValues: outcome.rejections.map { ($0.key.rawValue, $0.value) })
        result.committed = outcome.committed
        result.trainLoss = outcome.trainLoss
        if configuration.privacy.adaptiveClip != nil { result.clip = outcome.aggregate?.clip }
        result.epsilon = resolvedPrivacy.exampleEpsilon(rounds: outcome.round, clientSizes: partitionSizes, batchSize: configuration.training.batchSize,
                                                              epochs: configuration.training.localEpochs)
            ?? configuration.privacy.spentEpsilon(rounds: outcome.round, round: roundAccountant)
        if configuration.robustness.isActive {
            recordRobustness(&result, sampled: sampled, outcome: outcome, seconds: aggregationSeconds)
        }
        return result
    }

    /// Evaluates when the round calls for it, times the round and appends its metrics.
    private func finishRecord(_ result: RoundMetrics, start: ContinuousClock.Instant) -> RoundMetrics {
        var result = result
        if result.round % configuration.federation.evalEvery == 0 || result.round == configuration.federation.rounds {
            (result.testLoss, result.testAccuracy) = evaluator.evaluate(parameters: global, data: test)
            if let triggeredTest { result.backdoorSuccess = evaluator.evaluate(parameters: global, data: triggeredTest).accuracy }
            if configuration.federation.clientEvaluation { evaluateOnClients(&result) }
        }
        result.seconds = (ContinuousClock.now - start).seconds
        metrics.append(result)
        return result
    }

    /// The robustness metrics of a round: the attackers sampled, those a selecting rule kept, the
    /// distance of the aggregate from the plain mean of the honest updates, the honest updates'
    /// median norm, and the time the coordinator took to aggregate.
    private func recordRobustness(_ result: inout RoundMetrics, sampled: [Int], outcome: RoundCoordinator.Outcome, seconds: Double?) {
        let attackers = adversary?.attackers ?? []
        result.aggregationSeconds = seconds
        result.attackersSampled = sampled.filter { attackers.contains($0) }.sorted()
        if let selected = outcome.aggregate?.selected {
            result.selected = selected.count
            result.attackersSelected = selected.filter { attackers.contains($0) }.count
        }
        let honest = outcome.updates.filter { !attackers.contains($0.client) }.map(\.delta)
        let norms = honest.map(L2Clip.norm).sorted()
        if !norms.isEmpty { result.honestNormMedian = norms.count % 2 == 1 ? norms[norms.count / 2] : (norms[norms.count / 2 - 1] + norms[norms.count / 2]) / 2 }
        if let aggregate = outcome.aggregate, !honest.isEmpty {
            let mean = Aggregation.weightedMean(honest, weights: [Double](repeating: 1, count: honest.count))
            result.honestDistance = L2Clip.norm(zip(aggregate.scaled, mean).map { $0 - $1 })
        }
    }

    /// Every client evaluates the global model on its own data (an evaluation task each): the
    /// mean accuracy and the mean of the worst decile. Tasks go out in groups, so a large
    /// federation never holds a model-sized envelope for every client at once.
    private func evaluateOnClients(_ result: inout RoundMetrics) {
        var accuracies: [Double] = []
        let group = 8 * configuration.run.threads
        for start in stride(from: 0, to: allClients.count, by: group) {
            let clients = Array(allClients[start..<min(allClients.count, start + group)])
            let replies = transport.exchange(coordinator.evaluationTasks(clients: clients), clientDone: nil)
            accuracies += replies.compactMap { coordinator.evaluationAccuracy($0.bytes, from: $0.client) }
        }
        accuracies.sort()
        guard !accuracies.isEmpty else { return }
        result.clientAccuracyMean = accuracies.reduce(0, +) / Double(accuracies.count)
        let decile = max(1, accuracies.count / 10)
        result.clientAccuracyWorstDecile = accuracies[..<decile].reduce(0, +) / Double(decile)
    }

    // MARK: Checkpoints

    /// The state to checkpoint after the last round; client states and mirrors only where they
    /// changed since the last `markSaved`.
    public func snapshot() -> CheckpointSnapshot {
        CheckpointSnapshot(round: completedRounds, global: global, strategyState: coordinator.strategy.state,
                           changedClients: inProcess.map { local in local.states.filter { local.changed.contains($0.key) } } ?? [:],
                           changedMirrors: coordinator.downlink.mirrors.filter { coordinator.downlink.changed.contains($0.key) },
                           metrics: metrics, configuration: configuration,
                           asynchrony: asynchronous.map { AsyncCheckpoint(coordinator: $0.state, schedule: schedule, events: networkSchedule?.log.count) })
    }

    public func markSaved() {
        inProcess?.markSaved()
        transport.checkpointed(round: completedRounds)
        if asynchronous != nil { asynchronous!.markMirrorsSaved() } else { synchronous.markMirrorsSaved() }
    }

    /// Continues from a checkpoint's contents.
    public func restore(round: Int, global: [Float], strategyState: [String: [Float]], clients: [Int: ClientState],
                        mirrors: [Int: DownlinkMirror], metrics: [RoundMetrics], asynchrony: AsyncCheckpoint? = nil) throws(CheckpointError) {
        guard round == metrics.count, round <= configuration.federation.rounds else {
            throw CheckpointError("checkpoint round \(round) does not fit a run of \(configuration.federation.rounds) rounds")
        }
        switch (asynchronous, asynchrony) {
        case (nil, nil):
            try synchronous.restore(round: round, global: global, strategyState: strategyState, mirrors: mirrors)
        case (.some, .some(let saved)):
            try asynchronous!.restore(round: round, global: global, strategyState: strategyState, mirrors: mirrors, state: saved.coordinator)
            guard networkSchedule != nil || saved.schedule.fits(asynchronous!, clients: configuration.federation.clients) else {
                throw CheckpointError("checkpoint: the asynchronous schedule does not fit the run (its trips, clients or times)")
            }
            schedule = saved.schedule
            networkSchedule?.abandonTrips(&asynchronous!)
        default:
            throw CheckpointError("checkpoint: the run was \(asynchrony == nil ? "synchronous" : "asynchronous"), this one is not")
        }
        if let inProcess {
            try inProcess.restore(clients)
        } else if !clients.isEmpty {
            throw CheckpointError("checkpoint holds client states, but the clients run elsewhere (a checkpoint of `fedtrain simulate`)")
        }
        self.metrics = metrics
    }
}
