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

    @Test func fedAvgWeightsBySamples() {
        var strategy = FedAvg()
        let next = strategy.aggregate(global: [10, 10], updates: [update(0, samples: 1, [1, 0]), update(1, samples: 3, [-1, 4])])
        #expect(next == [9.5, 13])
    }

    @Test func fedAvgMAccumulatesServerMomentum() {
        var strategy = FedAvgM(momentum: 0.5, serverLearningRate: 1, parameterCount: 1)
        let first = strategy.aggregate(global: [0], updates: [update(0, samples: 1, [2])])!
        // v = 2, x = 2
        #expect(first == [2])
        let second = strategy.aggregate(global: first, updates: [update(0, samples: 1, [2])])!
        // v = 0.5·2 + 2 = 3, x = 5
        #expect(second == [5])
    }

    @Test func fedAdamStep() {
        var strategy = FedAdaptive(kind: .adam, eta: 0.1, tau: 0.01, parameterCount: 1)
        let next = strategy.aggregate(global: [1], updates: [update(0, samples: 1, [0.5])])!
        // m = 0.1·0.5 = 0.05; v = 0.99·1e-4 + 0.01·0.25 = 0.002599; x = 1 + 0.1·0.05/(√0.002599 + 0.01)
        let expected: Float = 1 + 0.1 * 0.05 / (Float(0.002599).squareRoot() + 0.01)
        #expect(abs(next[0] - expected) < 1e-6)
    }

    @Test func fedYogiVarianceMovesTowardTheSquare() {
        var m: [Float] = [0], v: [Float] = [1], x: [Float] = [0]
        Aggregation.adaptiveStep(kind: .yogi, x: &x, delta: [0.5], m: &m, v: &v, eta: 1, beta1: 0.9, beta2: 0.99, tau: 0)
        // v − Δ² = 0.75 > 0, so v = 1 − 0.01·0.25 = 0.9975
        #expect(abs(v[0] - 0.9975) < 1e-7)
    }

    /// FedNova: dᵢ = Δᵢ/aᵢ, x += τ_eff · Σ pᵢ dᵢ with τ_eff = Σ pᵢ aᵢ (plain SGD: aᵢ = steps).
    @Test func fedNovaNormalizesByLocalSteps() {
        var strategy = FedNova()
        let next = strategy.aggregate(global: [0], updates: [update(0, samples: 1, steps: 2, [2]), update(1, samples: 1, steps: 8, [4])])!
        // d = [1, 0.5], p = [0.5, 0.5], Σ p d = 0.75, τ_eff = 5, x = 3.75 (FedAvg would give 3)
        #expect(abs(next[0] - 3.75) < 1e-6)
        #expect(abs(Aggregation.fedNovaNorm(steps: 3, momentum: 0.5) - (3 - 0.5 * (1 - 0.125) / 0.5) / 0.5) < 1e-12)
    }

    /// SCAFFOLD: x += η·mean(Δy); c += (|S|/N)·mean(Δc); cᵢ += Δcᵢ.
    @Test func scaffoldUpdatesControlVariates() {
        var strategy = Scaffold(serverLearningRate: 1, parameterCount: 1)
        strategy.totalClients = 4
        let next = strategy.aggregate(global: [1], updates: [update(0, samples: 5, [2], control: [1]), update(2, samples: 1, [4], control: [3])])!
        #expect(next == [4])  // equal weights: 1 + 3
        let state = strategy.state
        #expect(state["server.control"] == [1])  // (2/4)·2
        #expect(state["client.0.control"] == [1] && state["client.2.control"] == [3])
        let rule = strategy.clientRule()
        #expect(rule.serverControl == [1] && rule.clientControl?(2) == [3] && rule.clientControl?(1) == nil)
    }

    @Test func strategySpecs() throws {
        #expect(try makeStrategy("fedprox:0.01", parameterCount: 1).spec == "fedprox:0.01")
        #expect(try makeStrategy("fedavgm:0.9", parameterCount: 1) is FedAvgM)
        for bad in ["fedsgd", "fedprox", "fedprox:-1", "fedavg:1", "fedavgm:1.5", "fedadam:x"] {
            #expect(throws: JobError.self, "\(bad)") { try makeStrategy(bad, parameterCount: 1) }
        }
    }
}
