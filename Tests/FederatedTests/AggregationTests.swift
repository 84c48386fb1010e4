@testable import Federated
import Testing

func update(_ client: Int, samples: Int, steps: Int = 1, _ delta: [Float], control: [Float]? = nil) -> ClientUpdate {
    ClientUpdate(client: client, samples: samples, steps: steps, delta: delta, controlDelta: control, trainLoss: 0)
}

@Suite struct AggregationTests {
    @Test func weightedMean() {
        // Prepare
        let vectors: [[Float]] = [[1, 2], [4, 8]]
        // Execute
        let mean = Aggregation.weightedMean(vectors, weights: [1, 3])
        // Assert: (1·1 + 3·4)/4 = 3.25, (1·2 + 3·8)/4 = 6.5
        #expect(mean == [3.25, 6.5])
    }

    /// The strategy a configuration would build.
    func strategy(_ spec: String, serverOptimizer: String? = nil, clients: Int = 4, momentum: Float = 0) throws -> ComposedStrategy {
        var federation = FederationSection(), training = LocalTrainingSection()
        (federation.strategy, federation.serverOptimizer, federation.clients, training.momentum) = (spec, serverOptimizer, clients, momentum)
        return try StrategyFactory(federation: federation, training: training).make(parameterCount: 1)
    }

    func step(_ strategy: inout ComposedStrategy, _ global: [Float], _ results: [ClientUpdate]) -> [Float] {
        strategy.aggregate(round: 1, global: global, results: results, failures: [])!
    }

    @Test func fedAvgWeightsBySamples() throws {
        var fedavg = try strategy("fedavg")
        #expect(step(&fedavg, [10, 10], [update(0, samples: 1, [1, 0]), update(1, samples: 3, [-1, 4])]) == [9.5, 13])
    }

    @Test func fedAvgMAccumulatesServerMomentum() throws {
        var fedavgm = try strategy("fedavgm:0.5:1")
        let first = step(&fedavgm, [0], [update(0, samples: 1, [2])])
        // v = 2, x = 2
        #expect(first == [2])
        // v = 0.5·2 + 2 = 3, x = 5
        #expect(step(&fedavgm, first, [update(0, samples: 1, [2])]) == [5])
        #expect(fedavgm.state["server.velocity"] == [3])
    }

    @Test func fedAdamStep() throws {
        var fedadam = try strategy("fedadam:0.1:0.01")
        let next = step(&fedadam, [1], [update(0, samples: 1, [0.5])])
        // m = 0.1·0.5 = 0.05; v = 0.99·1e-4 + 0.01·0.25 = 0.002599; x = 1 + 0.1·0.05/(√0.002599 + 0.01)
        let expected: Float = 1 + 0.1 * 0.05 / (Float(0.002599).squareRoot() + 0.01)
        #expect(abs(next[0] - expected) < 1e-6)
    }

    /// `--server-optimizer` composes with any aggregator: FedProx clients with a FedAdam server
    /// step exactly as FedAdam does, and FedProx's mu still reaches the clients.
    @Test func serverOptimizerComposesWithTheAggregator() throws {
        var composed = try strategy("fedprox:0.01", serverOptimizer: "adam:0.1:0.01"), fedadam = try strategy("fedadam:0.1:0.01")
        let results = [update(0, samples: 1, [0.5]), update(1, samples: 3, [-0.25])]
        #expect(step(&composed, [1], results) == step(&fedadam, [1], results))
        #expect(composed.configure(round: 1).proximalMu == 0.01 && fedadam.configure(round: 1).proximalMu == 0)
        var momentum = try strategy("fedavg", serverOptimizer: "momentum:0.5"), fedavgm = try strategy("fedavgm:0.5")
        #expect(step(&momentum, [0], results) == step(&fedavgm, [0], results))
        var sgd = try strategy("fednova", serverOptimizer: "sgd:0.5")
        // FedNova with equal steps is FedAvg; the server step halves it: 0.5 · (0.25·0.5 − 0.75·0.25) = −0.03125
        #expect(step(&sgd, [0], results) == [-0.03125])
        for (spec, optimizer) in [("fedadam", "sgd"), ("fedavgm", "adam"), ("scaffold:0.5", "adam"), ("fedavg", "rmsprop"), ("fedavg", "sgd:1:2")] {
            #expect(throws: ConfigurationError.self, "\(spec) with \(optimizer)") { try strategy(spec, serverOptimizer: optimizer) }
        }
    }

    @Test func fedYogiVarianceMovesTowardTheSquare() {
        var m: [Float] = [0], v: [Float] = [1], x: [Float] = [0]
        Aggregation.adaptiveStep(kind: .yogi, x: &x, delta: [0.5], m: &m, v: &v, eta: 1, beta1: 0.9, beta2: 0.99, tau: 0)
        // v − Δ² = 0.75 > 0, so v = 1 − 0.01·0.25 = 0.9975
        #expect(abs(v[0] - 0.9975) < 1e-7)
    }

    /// FedNova: dᵢ = Δᵢ/aᵢ, x += τ_eff · Σ pᵢ dᵢ with τ_eff = Σ pᵢ aᵢ (plain SGD: aᵢ = steps).
    @Test func fedNovaNormalizesByLocalSteps() throws {
        var fednova = try strategy("fednova")
        let next = step(&fednova, [0], [update(0, samples: 1, steps: 2, [2]), update(1, samples: 1, steps: 8, [4])])
        // d = [1, 0.5], p = [0.5, 0.5], Σ p d = 0.75, τ_eff = 5, x = 3.75 (FedAvg would give 3)
        #expect(abs(next[0] - 3.75) < 1e-6)
        #expect(abs(Aggregation.fedNovaNorm(steps: 3, momentum: 0.5) - (3 - 0.5 * (1 - 0.125) / 0.5) / 0.5) < 1e-12)
    }

    /// SCAFFOLD: x += η·mean(Δy); c += (|S|/N)·mean(Δc). The clients keep their own cᵢ.
    @Test func scaffoldUpdatesTheServerControlVariate() throws {
        var scaffold = try strategy("scaffold", clients: 4)
        #expect(scaffold.configure(round: 1).serverControl == [0])
        let next = step(&scaffold, [1], [update(0, samples: 5, [2], control: [1]), update(2, samples: 1, [4], control: [3])])
        #expect(next == [4])  // equal weights: 1 + 3
        #expect(scaffold.state == ["server.control": [1]])  // (2/4)·2
        #expect(scaffold.configure(round: 2).serverControl == [1])
    }

    @Test func strategySpecs() throws {
        #expect(try strategy("fedprox:0.01").spec == "fedprox:0.01")
        #expect(try strategy("fedavgm:0.9").optimizer is ServerMomentum)
        for bad in ["fedsgd", "fedprox", "fedprox:-1", "fedavg:1", "fedavgm:1.5", "fedadam:x"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try strategy(bad) }
        }
    }
}
