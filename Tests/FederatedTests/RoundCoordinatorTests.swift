import Datasets
import Engine
@testable import Federated
import Testing

/// Records what the coordinator hands it; aggregates as FedAvg with a plain step.
struct RecordingStrategy: Strategy {
    var spec: String { "recording" }
    var seenResults: [Int] = []
    var seenFailures: [Int] = []
    var rounds = 0
    func configure(round: Int) -> RoundInstructions { RoundInstructions() }
    var aggregatesEmptyRounds: Bool { false }
    mutating func aggregate(round: Int, global: [Float], results: [ClientUpdate], failures: [Int]) -> [Float]? {
        (seenResults, seenFailures) = (results.map(\.client), failures)
        rounds += 1
        return Aggregation.adding(global, WeightedMean().aggregate(results, round: 1).direction)
    }
    var state: [String: [Float]] { ["rounds": [Float(rounds)]] }
    mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {}
}

@Suite struct RoundCoordinatorTests {
    let shapes = layout([[4]])

    func coordinator(strategy: any Strategy, clients: Int = 4, minSurvivors: Int = 1, global: [Float] = [0, 0, 0, 0]) -> RoundCoordinator {
        RoundCoordinator(settings: .init(clients: clients, sampledPerRound: clients, minSurvivors: minSurvivors, maxSamples: 100, localEpochs: 1, batchSize: 10, seed: 3,
                                         layout: shapes, uplinkCodec: "fp32"),
                         global: global, strategy: strategy, downlink: Downlink(codec: DenseCodec(), layout: shapes, seed: 3))
    }

    func fedavg(_ spec: String = "fedavg") throws -> ComposedStrategy {
        var federation = FederationSection()
        federation.strategy = spec
        return try StrategyFactory(federation: federation, training: LocalTrainingSection()).make(parameterCount: 4)
    }

    /// A reply as a client would send it; every field can be made wrong.
    func reply(_ client: Int, delta: [Float], samples: Int = 10, steps: Int = 1, loss: Double = 0.5, round: Int = 1, version: Int = 0,
               codec: any UpdateCodec = DenseCodec(), layout: ParameterLayout? = nil, kind: Envelope.Kind = .update, messageRound: Int? = nil) -> [UInt8] {
        var envelope = Envelope(kind: kind, client: client, round: round, modelVersion: version)
        envelope.samples = samples
        envelope.steps = steps
        envelope.trainLoss = loss
        var state: [Float] = [], generator = SeededGenerator(seed: 1)
        let messageLayout = layout ?? shapes
        envelope.payloads[.update] = delta.withUnsafeBufferPointer {
            UpdateMessage.encode($0, kind: .update, round: messageRound ?? round, layout: messageLayout, codec: codec, state: &state, generator: &generator)
        }
        return envelope.bytes
    }

    @Test func tasksCarryTheModelAndRound() throws {
        var server = coordinator(strategy: try fedavg(), global: [1, 2, 3, 4])
        let tasks = server.begin(available: [0, 1, 2, 3])
        #expect(Set(tasks.map(\.client)) == [0, 1, 2, 3] && tasks.map(\.client) == server.sample(round: 1, available: [0, 1, 2, 3]))
        for task in tasks {
            let envelope = try Envelope(decoding: task.bytes)
            #expect(envelope.kind == .train && envelope.client == task.client && envelope.round == 1 && envelope.modelVersion == 0)
            #expect(try UpdateMessage.decode(envelope.payloads[.model]!, layout: shapes).values == [1, 2, 3, 4])
        }
    }

    @Test func everyBadReplyIsRejectedWithItsReason() throws {
        var server = coordinator(strategy: try fedavg(), clients: 5)
        _ = server.begin(available: [0, 1, 2, 3, 4])
        let cases: [([UInt8], Int, RejectionReason)] = [
            ([1, 2, 3], 4, .malformed),
            (reply(0, delta: [1, 1, 1, 1], round: 2), 0, .wrongRound),
            (reply(1, delta: [1, 1, 1, 1], version: 7), 1, .staleModel),
            (reply(2, delta: [1, 1, 1, 1], codec: Float16Codec()), 2, .wrongCodec),
            (reply(3, delta: [1, 1, 1, 1, 1], layout: layout([[5]])), 3, .wrongLayout),
        ]
        for (bytes, client, reason) in cases {
            #expect(server.accept(bytes, from: client) == .rejected(reason), "\(reason)")
        }
        // A rejected client cannot try again in the round.
        #expect(server.accept(reply(4, delta: [1, 1, 1, 1]), from: 4) == .rejected(.unexpected))
        let outcome = server.finish()
        #expect(outcome.accepted == 0 && !outcome.committed && outcome.failures == 0)
        #expect(outcome.rejections == [.malformed: 1, .wrongRound: 1, .staleModel: 1, .wrongCodec: 1, .wrongLayout: 1, .unexpected: 1])
        #expect(server.global == [0, 0, 0, 0] && server.completedRounds == 1)

        _ = server.begin(available: [0, 1, 2, 3, 4])
        let more: [([UInt8], Int, RejectionReason)] = [
            (reply(0, delta: [1, .nan, 1, 1], round: 2, version: 1), 0, .nonFinite),
            (reply(1, delta: [1, 1, 1, 1], samples: 0, round: 2, version: 1), 1, .sampleCount),
            (reply(2, delta: [1, 1, 1, 1], samples: 101, round: 2, version: 1), 2, .sampleCount),
            (reply(3, delta: [1, 1, 1, 1], round: 2, version: 1, kind: .diverged), 3, .nonFinite),
        ]
        for (bytes, client, reason) in more {
            #expect(server.accept(bytes, from: client) == .rejected(reason), "\(reason)")
        }
        // Bytes claiming another sender, or from a client that was not sampled.
        #expect(server.accept(reply(4, delta: [1, 1, 1, 1], samples: 10, steps: 2, round: 2, version: 1), from: 4) == .rejected(.stepCount))
        #expect(server.accept(reply(2, delta: [1, 1, 1, 1], round: 2, version: 1), from: 1) == .rejected(.unexpected))
        #expect(server.accept(reply(9, delta: [1, 1, 1, 1], round: 2, version: 1), from: 9) == .rejected(.unexpected))
        let second = server.finish()
        #expect(second.rejections == [.nonFinite: 2, .sampleCount: 2, .stepCount: 1, .unexpected: 2] && second.failures == 0)

        // A loss that is not finite, or so large that weighting would overflow the round's mean.
        _ = server.begin(available: [0, 1, 2, 3, 4])
        #expect(server.accept(reply(0, delta: [1, 1, 1, 1], loss: .nan, round: 3, version: 2), from: 0) == .rejected(.nonFinite))
        #expect(server.accept(reply(1, delta: [1, 1, 1, 1], loss: 1e308, round: 3, version: 2), from: 1) == .rejected(.nonFinite))
        #expect(server.accept(reply(2, delta: [1, 1, 1, 1], samples: 25, steps: 3, round: 3, version: 2), from: 2) == .accepted)
    }

    /// Results reach the strategy in sampled order whatever the arrival order, with the clients
    /// that sent nothing as failures.
    @Test func resultsInSampledOrderAndFailuresPassedOn() throws {
        var server = coordinator(strategy: RecordingStrategy(), clients: 4)
        let sampled = server.begin(available: [0, 1, 2, 3]).map(\.client)
        for client in sampled.dropLast().reversed() { #expect(server.accept(reply(client, delta: [1, 2, 3, 4]), from: client) == .accepted) }
        let outcome = server.finish()
        let strategy = try #require(server.strategy as? RecordingStrategy)
        #expect(strategy.seenResults == Array(sampled.dropLast()) && strategy.seenFailures == [sampled.last!])
        #expect(outcome.accepted == 3 && outcome.failures == 1 && outcome.committed && server.global == [1, 2, 3, 4])
        #expect(outcome.trainLoss == 0.5 && outcome.samples == 30)
    }

    /// A round whose aggregate is not finite keeps the model and the strategy's state (server
    /// momentum) as they were.
    @Test func nonFiniteAggregateCommitsNothing() throws {
        var server = coordinator(strategy: try fedavg("fedavgm:0.9:1"), clients: 2, global: [3e38, 0, 0, 0])
        _ = server.begin(available: [0, 1])
        for client in 0..<2 { #expect(server.accept(reply(client, delta: [3e38, 1, 1, 1]), from: client) == .accepted) }
        let outcome = server.finish()
        #expect(!outcome.committed && outcome.accepted == 2)
        #expect(server.global == [3e38, 0, 0, 0])
        #expect(server.strategy.state["server.velocity"] == [0, 0, 0, 0])
        // The next round starts from the kept state and commits normally.
        _ = server.begin(available: [0, 1])
        for client in 0..<2 { _ = server.accept(reply(client, delta: [-1, 1, 1, 1], round: 2, version: 1), from: client) }
        #expect(server.finish().committed && server.global == [3e38 - 1, 1, 1, 1] && server.strategy.state["server.velocity"] == [-1, 1, 1, 1])
    }

    @Test func tooFewSurvivorsKeepTheModel() throws {
        var server = coordinator(strategy: RecordingStrategy(), clients: 3, minSurvivors: 2)
        _ = server.begin(available: [0, 1, 2])
        _ = server.accept(reply(1, delta: [1, 1, 1, 1]), from: 1)
        let outcome = server.finish()
        #expect(!outcome.committed && outcome.failures == 2 && server.global == [0, 0, 0, 0])
        #expect((server.strategy as? RecordingStrategy)?.rounds == 0)
    }

    /// A corrupted reply inside a simulated round (real clients, in-process transport) is
    /// rejected and counted, and the round aggregates the others.
    @Test func corruptReplyInASimulatedRoundIsRejected() throws {
        let data = syntheticImages(count: 120, seed: 4), network = LeNet5.grayscale
        let partitions = [Array(0..<40), Array(40..<80), Array(80..<120)]
        var generator = SeededGenerator(seed: 5)
        let global = network.initialParameters(using: &generator)
        var server = RoundCoordinator(settings: .init(clients: 3, sampledPerRound: 3, minSurvivors: 1, maxSamples: 100, localEpochs: 1, batchSize: 20, seed: 5,
                                                      layout: network.layout, uplinkCodec: "fp32"),
                                      global: global, strategy: try fedavgFor(network), downlink: Downlink(codec: DenseCodec(), layout: network.layout, seed: 5))
        let runtime = ClientRuntime(layout: network.layout, training: LocalTrainingConfiguration(epochs: 1, batchSize: 20, optimizer: SGDConfiguration(learningRate: 0.05)),
                                    uplinkCodec: DenseCodec(), errorFeedback: false, keepsModelCopy: false, seed: 5)
        let transport = try InProcessTransport(runtime: runtime, network: network, data: data, partitions: partitions, faults: FaultPlan(seed: 5), workers: 2)
        var replies = transport.exchange(server.begin(available: [0, 1, 2]), clientDone: nil)
        #expect(replies.count == 3)
        replies[1].bytes[replies[1].bytes.count / 2] ^= 0x40
        let verdicts = replies.map { server.accept($0.bytes, from: $0.client) }
        #expect(verdicts == [.accepted, .rejected(.malformed), .accepted])
        let outcome = server.finish()
        #expect(outcome.committed && outcome.accepted == 2 && outcome.rejections == [.malformed: 1])
        #expect(server.global != global && server.global.allSatisfy(\.isFinite))
    }

    func fedavgFor(_ network: Sequential) throws -> ComposedStrategy {
        try StrategyFactory(federation: FederationSection(), training: LocalTrainingSection()).make(parameterCount: network.parameterCount)
    }
}
