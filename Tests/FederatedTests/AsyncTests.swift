import Engine
@testable import Federated
import Foundation
import Testing

@Suite struct StalenessTests {
    /// The three functions of Xie et al. 2019 on literal ages; every one is 1 when fresh.
    @Test func weightsFollowTheirDefinitions() throws {
        #expect(try Staleness(parsing: "const").weight(7) == 1)
        let poly = try Staleness(parsing: "poly:0.5")
        #expect(poly.weight(0) == 1 && poly.weight(3) == 0.5 && poly.weight(8) == 1.0 / 3)
        let hinge = try Staleness(parsing: "hinge:10:4")
        #expect(hinge.weight(0) == 1 && hinge.weight(4) == 1 && hinge.weight(5) == 1.0 / 11 && hinge.weight(6) == 1.0 / 21)
        for weights in [poly, hinge].map({ s in (0..<50).map(s.weight) }) {
            #expect(zip(weights, weights.dropFirst()).allSatisfy { $0 >= $1 }, "non-increasing")
        }
        for bad in ["poly", "poly:-1", "poly:nan", "hinge:1", "hinge:1:2.5", "const:1", "linear:1", ""] {
            #expect(throws: ConfigurationError.self) { try Staleness(parsing: bad) }
        }
    }
}

/// A trace of `clients` identical clients whose links are so fast that every trip takes exactly
/// samples · 0.01 s: with equal partitions, all clients of a wave arrive at the same instant.
func equalClientsTrace(_ clients: Int) -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("fedtrain-trace-\(UUID().uuidString).txt").path
    FileManager.default.createFile(atPath: path, contents: Data(String(repeating: "0.01 1e290\n", count: clients).utf8))
    return path
}

@Suite struct AsyncTests {
    /// 6 clients of 40 samples (iid over 240), 3 per round, on the simulated clock.
    func simulation(_ edit: (inout SimulationConfiguration) -> Void) throws -> Simulation {
        try smallSimulation {
            $0.federation.partition = "iid"
            $0.clock.simulatedClock = true
            $0.clock.slowFraction = 0.3
            edit(&$0)
        }
    }

    func run(_ simulation: Simulation, steps: Int) -> [RoundMetrics] { (0..<steps).map { _ in simulation.runRound() } }

    /// FedBuff with K = C = the round size and zero staleness (equal clients all arrive together)
    /// is synchronous FedAvg with the same server learning rate, bit for bit.
    @Test func fedBuffWithoutStalenessIsSynchronousFedAvg() throws {
        let trace = equalClientsTrace(6)
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let synchronous = try smallSimulation {
            $0.federation.partition = "iid"
            $0.federation.serverOptimizer = "sgd:0.7"
        }
        let buffered = try simulation {
            $0.federation.serverOptimizer = "sgd:0.7"
            $0.clock.clockTrace = trace
            $0.asynchrony.mode = .fedbuff
            $0.asynchrony.buffer = 3
            $0.asynchrony.concurrency = 3
        }
        let steps = run(buffered, steps: 3)
        _ = run(synchronous, steps: 3)
        #expect(steps.allSatisfy { $0.stalenessMax == 0 && $0.clients == 3 && $0.trips == 3 })
        #expect(steps.map(\.simulatedTime!) == [0.4, 0.8, 1.2000000000000002])
        #expect(buffered.global == synchronous.global)
        #expect(steps.map(\.testAccuracy) == synchronous.metrics.map(\.testAccuracy))
    }

    /// With one client at a time (never stale), FedBuff with K = 1 and constant staleness is
    /// FedAsync with α = η, bit for bit; with several clients at a time FedAsync's rebasing differs.
    @Test func fedBuffOfOneIsFedAsync() throws {
        func asynchronous(_ mode: AsyncSection.Mode, concurrency: Int) throws -> Simulation {
            try simulation {
                $0.asynchrony.mode = mode
                $0.asynchrony.buffer = 1
                $0.asynchrony.concurrency = concurrency
                $0.asynchrony.staleness = "const"
                if mode == .fedbuff { $0.federation.serverOptimizer = "sgd:0.6" } else { $0.asynchrony.mixing = 0.6 }
            }
        }
        let buffered = try asynchronous(.fedbuff, concurrency: 1), mixing = try asynchronous(.fedasync, concurrency: 1)
        _ = run(buffered, steps: 5)
        _ = run(mixing, steps: 5)
        #expect(buffered.global == mixing.global)
        let staleBuffered = try asynchronous(.fedbuff, concurrency: 3), staleMixing = try asynchronous(.fedasync, concurrency: 3)
        let stale = run(staleBuffered, steps: 5)
        _ = run(staleMixing, steps: 5)
        #expect(stale.contains { $0.stalenessMax! > 0 })
        #expect(staleBuffered.global != staleMixing.global)
    }

    /// A coordinator over 4 clients and 4 parameters starting at 0, with a plain server step.
    func coordinator(_ settings: AsyncCoordinator.Settings, serverLearningRate: Float) throws -> AsyncCoordinator {
        var federation = FederationSection()
        federation.serverOptimizer = "sgd:\(serverLearningRate)"
        let strategy = try StrategyFactory(federation: federation, training: LocalTrainingSection()).make(parameterCount: 4)
        return AsyncCoordinator(rounds: RoundCoordinatorTests().coordinator(strategy: strategy), settings: settings)
    }

    /// FedAsync on literal updates: x ← (1 − α s(τ)) x + α s(τ) x_client, where x_client is the
    /// client's base model plus its update; here α = 0.5 and s(τ) = 1 / (1 + τ).
    @Test func fedAsyncMixesTheClientModel() throws {
        let replies = RoundCoordinatorTests()
        var server = try coordinator(.init(updatesPerStep: 1, staleness: try Staleness(parsing: "poly:1"), maxStaleness: nil, rebases: true),
                                     serverLearningRate: 0.5)
        let tasks = server.dispatch(2, available: [0, 1, 2, 3])
        let (a, b) = (tasks[0].client, tasks[1].client)
        #expect(server.accept(replies.reply(a, delta: [2, 2, 2, 2]), from: a) == .accepted && server.bufferIsFull)
        #expect(server.step().staleness == [0])
        #expect(server.global == [1, 1, 1, 1])  // (1 − 0.5)·0 + 0.5·(0 + 2)
        // b trained from version 0: τ = 1, s = 1/2, and its model 0 + [4, 0, 0, 0] is mixed with weight 1/4.
        #expect(server.accept(replies.reply(b, delta: [4, 0, 0, 0]), from: b) == .accepted)
        #expect(server.step().staleness == [1])
        #expect(server.global == [1.75, 0.75, 0.75, 0.75])
        #expect(server.accept(replies.reply(b, delta: [4, 0, 0, 0]), from: b) == .rejected(.unexpected), "b is no longer in flight")
    }

    /// FedBuff on literal updates: the buffer holds s(τ)·Δ and the strategy's sample-weighted
    /// mean steps once K = 2 are in; a client trains once per version.
    @Test func fedBuffWeighsBufferedUpdatesByStaleness() throws {
        let replies = RoundCoordinatorTests()
        var server = try coordinator(.init(updatesPerStep: 2, staleness: try Staleness(parsing: "poly:1"), maxStaleness: nil, rebases: false),
                                     serverLearningRate: 1)
        let clients = server.dispatch(4, available: [0, 1, 2, 3]).map(\.client)
        #expect(Set(clients) == [0, 1, 2, 3] && server.dispatch(1, available: [0, 1, 2, 3]).isEmpty)
        _ = server.accept(replies.reply(clients[0], delta: [2, 2, 2, 2]), from: clients[0])
        #expect(server.dispatch(1, available: [0, 1, 2, 3]).isEmpty, "one trip per client and version")
        _ = server.accept(replies.reply(clients[1], delta: [4, 4, 4, 4]), from: clients[1])
        #expect(server.bufferIsFull && server.step().outcome.committed && server.global == [3, 3, 3, 3])
        // Both now one version stale: s = 1/2.
        _ = server.accept(replies.reply(clients[2], delta: [2, 0, 0, 0], samples: 10), from: clients[2])
        _ = server.accept(replies.reply(clients[3], delta: [0, 0, 0, 0], samples: 30), from: clients[3])
        let step = server.step()
        #expect(step.staleness == [1, 1] && step.outcome.round == 2)
        #expect(server.global == [3.25, 3, 3, 3])  // 3 + (10·1 + 30·0) / 40
        #expect(server.dispatch(4, available: [0, 1, 2, 3]).count == 4, "a new version frees every client")
    }

    /// Events happen in simulated time whatever the number of threads: bit-identical runs.
    @Test func asynchronousRunsAreBitIdenticalAcrossThreadCounts() throws {
        func run(threads: Int) throws -> ([Float], [RoundMetrics]) {
            let simulation = try simulation {
                $0.federation.clients = 8
                $0.asynchrony.mode = .fedbuff
                $0.asynchrony.buffer = 2
                $0.asynchrony.concurrency = 4
                $0.run.threads = threads
            }
            return (simulation.global, self.run(simulation, steps: 6))
        }
        let (one, two) = (try run(threads: 1), try run(threads: 2))
        #expect(one.0 == two.0)
        #expect(one.1.map(\.simulatedTime) == two.1.map(\.simulatedTime) && one.1.map(\.stalenessMean) == two.1.map(\.stalenessMean))
        #expect(one.1.contains { $0.stalenessMax! > 0 }, "heterogeneous clients make stale updates")
    }

    /// `max_staleness` refuses old updates as `stale_model` rejections; none are aggregated.
    @Test func updatesBeyondTheStalenessLimitAreRefused() throws {
        let simulation = try simulation {
            $0.federation.clients = 8
            $0.asynchrony.mode = .fedbuff
            $0.asynchrony.buffer = 1
            $0.asynchrony.concurrency = 6
            $0.asynchrony.maxStaleness = 1
        }
        let steps = run(simulation, steps: 8)
        #expect(steps.allSatisfy { $0.stalenessMax! <= 1 })
        #expect(steps.reduce(0) { $0 + ($1.rejections["stale_model"] ?? 0) } > 0)
    }

    /// What the asynchronous modes cannot run with is refused before the run.
    @Test func invalidAsynchronousConfigurationsAreRefused() {
        func refused(_ edit: (inout SimulationConfiguration) -> Void) -> Bool {
            var configuration = SimulationConfiguration()
            configuration.clock.simulatedClock = true
            configuration.asynchrony.mode = .fedbuff
            edit(&configuration)
            do { try configuration.validate() } catch { return true }
            return false
        }
        #expect(!refused { _ in })
        #expect(refused { $0.asynchrony.buffer = 11 })
        #expect(refused { $0.asynchrony.concurrency = -1 })
        #expect(refused { $0.asynchrony.staleness = "poly" })
        #expect(refused { $0.asynchrony.maxStaleness = -1 })
        #expect(refused { $0.clock.deadline = 5 })
        #expect(refused { $0.federation.strategy = "scaffold" })
        #expect(refused { $0.robustness.aggregator = "krum:2"; $0.asynchrony.buffer = 6 })  // Krum needs 2f + 3
        #expect(!refused { $0.robustness.aggregator = "krum:2"; $0.asynchrony.buffer = 7 })
        #expect(refused { $0.asynchrony.mode = .sync; $0.asynchrony.buffer = 4 })
        #expect(refused { $0.asynchrony.mode = .fedasync; $0.federation.strategy = "fedadam" })
        #expect(refused { $0.asynchrony.mode = .fedasync; $0.federation.serverOptimizer = "sgd:0.5" })
        #expect(refused { $0.asynchrony.mode = .fedasync; $0.asynchrony.mixing = 0 })
        #expect(refused { $0.federation.clientSampling = "poisson" })
        // A simulation needs the clock to time its trips; a networked server has real ones.
        #expect(throws: ConfigurationError.self) { try smallSimulation { $0.asynchrony.mode = .fedbuff; $0.asynchrony.buffer = 2 } }
        var networked = SimulationConfiguration()
        networked.asynchrony.mode = .fedbuff
        #expect(throws: Never.self) { try networked.checkNetworked() }
        networked.clock.simulatedClock = true
        #expect(throws: ConfigurationError.self) { try networked.checkNetworked() }
    }
}

@Suite(.serialized) struct AsyncResumeTests {
    func configuration(data: String, steps: Int, mode: AsyncSection.Mode, compressed: Bool) -> SimulationConfiguration {
        var c = SimulationJobTests().configuration(data: data, rounds: steps, compressed: compressed)
        if !compressed { c.federation.strategy = "fedavgm" }
        c.federation.clients = 6
        c.clock.simulatedClock = true
        c.clock.slowFraction = 0.3
        c.asynchrony.mode = mode
        c.asynchrony.buffer = 2
        c.asynchrony.concurrency = 4
        if mode == .fedasync { c.federation.strategy = "fedavg" }
        return c
    }

    /// A run stopped after 3 steps and resumed to 6 (trips in flight, trained or not, the buffer,
    /// FedAsync's base models, client and downlink state all checkpointed) ends with the
    /// uninterrupted run's model and metrics.
    @Test(arguments: [(AsyncSection.Mode.fedbuff, false), (.fedbuff, true), (.fedasync, false)])
    func resumedAsynchronousRunEqualsUninterruptedRun(mode: AsyncSection.Mode, compressed: Bool) throws {
        let data = SimulationJobTests().dataDirectory(), whole = data + "/whole", split = data + "/split"
        defer { try? FileManager.default.removeItem(atPath: data) }
        _ = try SimulationJob(configuration: configuration(data: data, steps: 6, mode: mode, compressed: compressed), outputDirectory: whole, saveModel: nil).run()
        _ = try SimulationJob(configuration: configuration(data: data, steps: 3, mode: mode, compressed: compressed), outputDirectory: split, saveModel: nil).run()
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(split)/checkpoint")
        #expect(files.filter { $0.hasPrefix("async-") } == ["async-3.json"])
        _ = try SimulationJob(configuration: configuration(data: data, steps: 6, mode: mode, compressed: compressed), outputDirectory: split, saveModel: nil)
            .run(resume: true)
        let a = try Data(contentsOf: URL(fileURLWithPath: "\(whole)/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: "\(split)/model.safetensors"))
        #expect(a == b, "resumed model differs")
        func results(_ directory: String) throws -> [[String: String]] {
            try String(contentsOfFile: "\(directory)/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return object.filter { !["seconds", "images_per_second"].contains($0.key) }.mapValues { "\($0)" }
            }
        }
        let (metricsA, metricsB) = (try results(whole), try results(split))
        #expect(metricsA.count == 6 && metricsA == metricsB)
        #expect(metricsA.contains { ($0["staleness_max"].flatMap(Int.init) ?? 0) > 0 })
    }
}
