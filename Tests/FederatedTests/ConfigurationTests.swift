import Engine
@testable import Federated
import Testing

@Suite struct ConfigurationTests {
    /// `config.yaml` reads back exactly: every key, a seed of 2⁶⁴−1, floats by their shortest
    /// form, paths with tabs, quotes, backslashes, colons and non-ASCII letters.
    @Test(arguments: ["/data/plain", "/tmp/a\tb\"c'd\\e: f #g/é/ü/日本", " leading and trailing ", "yes", "123", ""])
    func yamlRoundTrip(path: String) throws {
        var configuration = SimulationConfiguration()
        configuration.data.data = path
        configuration.federation.seed = UInt64.max
        configuration.federation.strategy = "fedprox:0.01"
        configuration.federation.serverOptimizer = "adam:0.03:0.001"
        configuration.federation.drop = "2:1,3:0"
        configuration.federation.fraction = 0.1
        configuration.training.lr = 0.1
        configuration.training.momentum = 0.9
        configuration.training.weightDecay = 1e-9
        configuration.federation.dropout = 1.0 / 3
        configuration.compression.codec = "topk:0.01+qsgd:4"
        configuration.compression.errorFeedback = true
        configuration.run.threads = 3
        let text = ConfigurationFile.encode(configuration)
        #expect(try ConfigurationFile.decode(text, source: "config.yaml") == configuration, "\(text)")
        #expect(text.contains("lr: 0.1\n") && text.contains("weight_decay: 0.000000001\n"), "\(text)")
        #expect(try ConfigurationFile.decode(ConfigurationFile.encode(SimulationConfiguration()), source: "x") == SimulationConfiguration())
    }

    /// A described model is a mapping under `model`: it reads, round-trips through `config.yaml`
    /// (so a networked server sends it to its clients), compares by value when a run resumes, and
    /// a bad layer is refused naming it.
    @Test func describedModelsLiveInTheConfigFile() throws {
        let text = """
            clients: 4
            model:
              input: [1, 28, 28]
              layers:
                - conv: {out: 4, kernel: 3, padding: 1}
                - relu
                - avgpool: 2
                - flatten
                - dense: classes
            test_fraction: 0.25

            """
        let configuration = try ConfigurationFile.decode(text, source: "job.yaml")
        let spec = ModelSpec(input: [1, 28, 28], layers: [.conv(out: 4, kernel: 3, stride: 1, padding: 1), .relu,
                                                          .avgpool(kernel: 2, stride: nil), .flatten, .dense(.classes)])
        #expect(configuration.data.model == .described(spec) && configuration.data.testFraction == 0.25)
        let again = try ConfigurationFile.decode(ConfigurationFile.encode(configuration), source: "config.yaml")
        #expect(again == configuration)
        #expect(again.differingKeys(from: configuration).isEmpty)
        var other = configuration
        other.data.model = .builtin(.fedAvgCNN)
        #expect(other.differingKeys(from: configuration) == ["model"])
        #expect(throws: ConfigurationError("job.yaml: config key model: model layer 1: unknown layer softmax; known layers: conv, maxpool, avgpool, dense, relu, flatten, batchnorm, dropout")) {
            try ConfigurationFile.decode("model:\n  layers: [flatten, softmax]\n", source: "job.yaml")
        }
        #expect(throws: ConfigurationError("job.yaml: config key model: model has no setting layer; its settings: input, layers")) {
            try ConfigurationFile.decode("model:\n  layer: [flatten]\n", source: "job.yaml")
        }
        var bad = SimulationConfiguration()
        bad.data.testFraction = 1
        #expect(throws: ConfigurationError("test_fraction must be in (0, 1) (got 1.0)")) { try bad.validate() }
    }

    /// Every key has one definition: the file keys are the sections' coding keys, once each.
    @Test func keysAreUnique() {
        #expect(Set(SimulationConfiguration.keys).count == SimulationConfiguration.keys.count)
        #expect(SimulationConfiguration.keys.contains("min_survivors") && SimulationConfiguration.keys.contains("server_optimizer"))
    }

    @Test func differingKeysNameWhatChanged() {
        let a = SimulationConfiguration()
        var b = a
        b.federation.strategy = "fedyogi"
        b.federation.rounds = 40
        b.run.threads = a.run.threads + 1
        #expect(a.differingKeys(from: b) == ["rounds", "strategy", "threads"])
        #expect(a.value(of: "strategy") == "fedavg" && b.value(of: "strategy") == "fedyogi")
    }

    @Test func scheduledDrops() throws {
        var federation = FederationSection()
        federation.drop = "3:1,1:0"
        #expect(try federation.scheduledDrops() == [ScheduledDrop(round: 3, client: 1), ScheduledDrop(round: 1, client: 0)])
        let plan = FaultPlan(scheduled: try federation.scheduledDrops(), seed: 0)
        #expect(plan.drops(round: 3, client: 1) && !plan.drops(round: 3, client: 0) && !plan.drops(round: 1, client: 1))
        for bad in ["3", "a:b", "0:1", "1:10", "1:-1", "1:1,"] {
            federation.drop = bad
            #expect(throws: ConfigurationError.self, "\(bad)") { try federation.scheduledDrops() }
        }
    }
}

@Suite struct MemoryCheckTests {
    /// Training buffers beyond the available memory are a configuration error, not a crash.
    @Test func buffersBeyondAvailableMemoryAreRefused() throws {
        let available = try #require(SystemMemory.availableBytes)
        #expect(available > 1 << 20)
        #expect(throws: ConfigurationError.self) { try ConfigurationError.checkMemory(available + (1 << 30), for: "batch_size 100000") }
        try ConfigurationError.checkMemory(1 << 20, for: "batch_size 32")
    }

    /// The estimate is what a trainer allocates: one workspace per chunk plus the gradients.
    @Test func trainerByteCountFollowsBatchAndChunks() {
        let network = LeNet5.grayscale
        let one = Trainer.byteCount(network: network, batchCapacity: 64, chunks: 1)
        #expect(one == Workspace.byteCount(network: network, capacity: 64) + 2 * network.parameterCount * 4)
        #expect(Trainer.byteCount(network: network, batchCapacity: 64, chunks: 2)
            == 2 * Workspace.byteCount(network: network, capacity: 32) + 3 * network.parameterCount * 4)
        #expect(Workspace.byteCount(network: network, capacity: 12_000) > 100 * Workspace.byteCount(network: network, capacity: 100))
    }
}
