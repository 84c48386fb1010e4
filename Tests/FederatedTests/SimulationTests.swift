import Datasets
import Engine
@testable import Federated
import Foundation
import Testing

/// Random 28×28 images of 10 classes.
func syntheticImages(count: Int, seed: UInt64) -> LabeledImages {
    var generator = SeededGenerator(seed: seed)
    let labels = (0..<count).map { UInt16($0 % 10) }
    // Class-dependent brightness so that a few rounds can learn something.
    var pixels = [UInt8](repeating: 0, count: count * 784)
    for i in pixels.indices {
        let noise = Int(generator.next(upperBound: UInt64(60)))
        pixels[i] = UInt8(min(255, Int(labels[i / 784]) * 20 + noise))
    }
    return LabeledImages(channels: 1, height: 28, width: 28, classes: 10, pixels: pixels, labels: labels,
                         mean: [FashionMNIST.mean], std: [FashionMNIST.std])
}

/// A short simulation on synthetic data: 6 clients (3 per round), Dirichlet 1, B=16, momentum
/// 0.5, 3 rounds, then `edit`.
func smallSimulation(_ edit: (inout SimulationConfiguration) -> Void) throws -> Simulation {
    var configuration = SimulationConfiguration()
    configuration.federation.clients = 6
    configuration.federation.rounds = 3
    configuration.federation.fraction = 0.5
    configuration.federation.partition = "dirichlet:1"
    configuration.federation.minPartitionSize = 5
    configuration.training.batchSize = 16
    configuration.training.momentum = 0.5
    edit(&configuration)
    return try Simulation(configuration: configuration, train: syntheticImages(count: 240, seed: 5), test: syntheticImages(count: 50, seed: 6))
}

@Suite struct SimulationTests {
    /// FedAvg of one full-batch gradient step per client, weighted by sample counts, equals one
    /// centralized gradient step on the union of their data.
    @Test func fedAvgOfFullBatchStepsEqualsCentralizedGradientDescent() {
        let data = syntheticImages(count: 21, seed: 1)
        let network = LeNet5.grayscale
        var generator = SeededGenerator(seed: 2)
        let global = network.initialParameters(using: &generator)
        let optimizer = SGDConfiguration(learningRate: 0.1)
        let shares = [Array(0..<4), Array(4..<11), Array(11..<21)]
        let training = SupervisedTraining(network: network, optimizer: optimizer, batchSize: 21, chunks: 1, threads: 1)
        let local = LocalTrainingConfiguration(epochs: 1, batchSize: 21, optimizer: optimizer)
        let updates = shares.enumerated().map { client, indices in
            var g = SeededGenerator(seed: 3)
            return trainClient(client, indices: indices, data: data, global: global, configuration: local, instructions: RoundInstructions(),
                               clientControl: nil, training: training, generator: &g)
        }
        let federated = Aggregation.adding(global, WeightedMean().aggregate(updates, round: 1).direction)

        var centralized = global
        var g = SeededGenerator(seed: 4)
        _ = training.runEpoch(parameters: &centralized, data: data, indices: Array(0..<21), shuffle: false, generator: &g)
        let scale = centralized.map(abs).max()!
        let worst = zip(federated, centralized).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-5 * scale, "max difference \(worst)")
        #expect(federated != global)
    }

    /// SCAFFOLD's client correction is applied to the weights after every momentum-SGD step,
    /// `w −= lr·(c − cᵢ)` (NIID-Bench's placement), not fed through the momentum buffer.
    @Test func scaffoldCorrectionBypassesMomentum() {
        let data = syntheticImages(count: 48, seed: 7)
        let network = LeNet5.grayscale
        var generator = SeededGenerator(seed: 8)
        let global = network.initialParameters(using: &generator)
        let optimizer = SGDConfiguration(learningRate: 0.05, momentum: 0.9)
        let local = LocalTrainingConfiguration(epochs: 1, batchSize: 16, optimizer: optimizer)
        let c = (0..<global.count).map { Float($0 % 7) * 0.01 }, ci = (0..<global.count).map { Float($0 % 3) * 0.01 }
        let instructions = RoundInstructions(serverControl: c)
        let training = SupervisedTraining(network: network, optimizer: optimizer, batchSize: 16, chunks: 1, threads: 1)
        var g = SeededGenerator(seed: 9)
        let update = trainClient(0, indices: Array(0..<48), data: data, global: global, configuration: local, instructions: instructions,
                                 clientControl: ci, training: training, generator: &g)

        // Reference: the same epoch step by step, the correction subtracted after each step.
        let reference = SupervisedTraining(network: network, optimizer: optimizer, batchSize: 16, chunks: 1, threads: 1)
        var parameters = global, order = SeededGenerator(seed: 9)
        _ = reference.runEpoch(parameters: &parameters, data: data, indices: Array(0..<48), shuffle: true, generator: &order,
                               afterStep: { w in for i in w.indices { w[i] -= 0.05 * (c[i] - ci[i]) } })
        let expected = zip(parameters, global).map { $0 - $1 }
        let scale = expected.map(abs).max()!
        #expect(zip(update.delta, expected).map { abs($0 - $1) }.max()! <= 1e-5 * scale)
        #expect(update.steps == 3)

        // Through the gradient instead, momentum would have amplified it: a different model.
        let viaGradient = SupervisedTraining(network: network, optimizer: optimizer, batchSize: 16, chunks: 1, threads: 1)
        var amplified = global, order2 = SeededGenerator(seed: 9)
        _ = viaGradient.runEpoch(parameters: &amplified, data: data, indices: Array(0..<48), shuffle: true, generator: &order2,
                                 adjustGradient: { _, gradient in for i in 0..<gradient.count { gradient[i] += c[i] - ci[i] } })
        #expect(zip(zip(amplified, global).map { $0 - $1 }, update.delta).map { abs($0 - $1) }.max()! > 1e-3)
    }

    func simulation(_ edit: (inout SimulationConfiguration) -> Void) throws -> Simulation {
        try smallSimulation(edit)
    }

    @Test(arguments: ["fedavg", "fedprox:0.01", "scaffold", "fednova", "fedadam"])
    func bitIdenticalAcrossThreadCounts(strategy: String) throws {
        var finals: [[Float]] = []
        for threads in [1, 2, 3] {
            let run = try simulation { $0.run.threads = threads; $0.federation.strategy = strategy }
            let initial = run.global
            for _ in 0..<2 { run.runRound() }
            #expect(run.global != initial, "the model must have trained")
            #expect(run.metrics.allSatisfy { $0.committed && $0.clients == 3 })
            finals.append(run.global)
        }
        #expect(finals[0] == finals[1] && finals[1] == finals[2])
    }

    /// Compression keeps runs bit-identical: codec randomness comes from (seed, round, client).
    @Test(arguments: [("qsgd:4", "fp32", true), ("topk:0.05+qsgd:4", "topk:0.1", true), ("powersgd:2", "qsgd:4", false), ("stc:0.01", "fp16", true)])
    func compressedRunsAreBitIdenticalAcrossThreadCounts(codec: String, downCodec: String, errorFeedback: Bool) throws {
        var finals: [[Float]] = []
        var bytes: [[Int]] = []
        for threads in [1, 2, 3] {
            let run = try simulation {
                $0.run.threads = threads; $0.federation.fraction = 1
                $0.compression = CompressionSection()
                ($0.compression.codec, $0.compression.downCodec, $0.compression.errorFeedback) = (codec, downCodec, errorFeedback)
            }
            for _ in 0..<3 { run.runRound() }
            finals.append(run.global)
            bytes.append(run.metrics.flatMap { [$0.bytesUp, $0.bytesDown] })
            #expect(run.metrics.allSatisfy { $0.compressionUp > 1.9 && $0.rejected == 0 })
            #expect(run.metrics.dropFirst().allSatisfy { $0.compressionDown > 1.9 || downCodec == "fp32" })
        }
        #expect(finals[0] == finals[1] && finals[1] == finals[2])
        #expect(bytes[0] == bytes[1] && bytes[1] == bytes[2])
    }

    @Test func dropoutRoundsKeepGoing() throws {
        let run = try simulation {
            $0.federation.dropout = 0.5; $0.federation.clients = 8; $0.federation.fraction = 1; $0.federation.minSurvivors = 3; $0.federation.rounds = 6
        }
        var previous = run.global
        var failures = 0, keptRounds = 0
        for _ in 0..<6 {
            let metrics = run.runRound()
            failures += metrics.failures
            #expect(metrics.clients + metrics.failures == 8)
            if metrics.clients < 3 {
                #expect(run.global == previous, "too few survivors: the model is kept")
                keptRounds += 1
            }
            #expect(run.global.allSatisfy { $0.isFinite })
            previous = run.global
        }
        #expect(failures > 0)
        #expect(run.metrics.count == 6 && run.metrics.last!.testAccuracy != nil)
    }

    /// `--client-evaluation` is an evaluation task per client: every client reports, the mean and
    /// worst decile come from the replies, and evaluating creates no client state.
    @Test func clientEvaluationRunsOnEveryClient() throws {
        let run = try simulation {
            $0.federation.clientEvaluation = true; $0.compression.codec = "powersgd:1"; $0.federation.fraction = 0.5; $0.federation.rounds = 1
        }
        let metrics = run.runRound()
        let mean = try #require(metrics.clientAccuracyMean), worst = try #require(metrics.clientAccuracyWorstDecile)
        #expect(worst <= mean && mean > 0 && mean <= 1)
        let reference = run.partitions.map { indices in
            SupervisedTraining(network: run.network, optimizer: SGDConfiguration(learningRate: 0.1), batchSize: 500, chunks: 1, threads: 1)
                .evaluate(parameters: run.global, data: run.train, indices: indices).accuracy
        }
        #expect(abs(mean - reference.reduce(0, +) / Double(reference.count)) < 1e-12)
        #expect(Set(run.inProcess!.states.keys) == Set(run.sampledClients(round: 1)), "only the clients that trained keep state")
    }

    /// `--drop ROUND:CLIENT` fails exactly the chosen clients in the chosen rounds, reproducibly.
    @Test func scheduledDropsFailTheChosenClients() throws {
        let probe = try simulation { _ in }
        let first = probe.sampledClients(round: 1), second = probe.sampledClients(round: 2)
        let drop = "1:\(first[0]),1:\(first[2]),2:\(second[1])"
        var finals: [[Float]] = []
        for threads in [1, 2] {
            let run = try simulation { $0.federation.drop = drop; $0.run.threads = threads; $0.federation.rounds = 2 }
            let metrics = [run.runRound(), run.runRound()]
            #expect(metrics.map(\.failures) == [2, 1] && metrics.map(\.clients) == [1, 2])
            finals.append(run.global)
        }
        #expect(finals[0] == finals[1])
        // A drop of a client that was not sampled changes nothing.
        let unsampled = (0..<6).first { !first.contains($0) }!
        let quiet = try simulation { $0.federation.drop = "1:\(unsampled)"; $0.federation.rounds = 1 }
        #expect(quiet.runRound().failures == 0)
    }

    /// `--clip C`: FedAvg's step is a weighted mean of clipped updates, so the model moves by at
    /// most C (convexity of the norm), while without the clip it moves further; bit-identical
    /// across thread counts.
    @Test func clippedUpdatesBoundTheStep() throws {
        var finals: [[Float]] = []
        for threads in [1, 2] {
            let run = try simulation { $0.privacy.clip = 0.01; $0.run.threads = threads; $0.training.momentum = 0 }
            let start = run.global
            #expect(run.runRound().committed)
            let step = L2Clip.norm(zip(run.global, start).map { $0 - $1 })
            #expect(step <= 0.01 * (1 + 1e-5) && step > 0.002, "step \(step)")
            finals.append(run.global)
        }
        #expect(finals[0] == finals[1])
        let free = try simulation { $0.training.momentum = 0 }
        let start = free.global
        free.runRound()
        #expect(L2Clip.norm(zip(free.global, start).map { $0 - $1 }) > 0.02)
    }

    @Test func sampledClientsFollowFractionAndMinimum() throws {
        let run = try simulation { $0.federation.clients = 10; $0.federation.fraction = 0.1; $0.federation.minClients = 3 }
        let sampled = run.sampledClients(round: 1)
        #expect(sampled.count == 3 && Set(sampled).count == 3)
        #expect(run.sampledClients(round: 1) == sampled && run.sampledClients(round: 2) != sampled)
    }
}

@Suite(.serialized) struct SimulationJobTests {
    /// A small MNIST-format directory (plain IDX files).
    func dataDirectory() -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fedtrain-sim-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (split, count, seed) in [("train", 200, UInt64(7)), ("t10k", 40, 8)] {
            let data = syntheticImages(count: count, seed: seed)
            func idx(_ dims: [Int], _ bytes: [UInt8]) -> Data {
                var header: [UInt8] = [0, 0, 8, UInt8(dims.count)]
                for d in dims { header += [UInt8(d >> 24 & 255), UInt8(d >> 16 & 255), UInt8(d >> 8 & 255), UInt8(d & 255)] }
                return Data(header + bytes)
            }
            FileManager.default.createFile(atPath: "\(directory)/\(split)-images-idx3-ubyte", contents: idx([count, 28, 28], data.pixels))
            FileManager.default.createFile(atPath: "\(directory)/\(split)-labels-idx1-ubyte", contents: idx([count], data.labels.map { UInt8($0) }))
        }
        return directory
    }

    func configuration(data: String, rounds: Int, compressed: Bool = false, robust: Bool = false) -> SimulationConfiguration {
        var c = SimulationConfiguration()
        c.data.data = data
        c.federation.clients = 4
        c.federation.rounds = rounds
        c.federation.partition = "dirichlet:1"
        c.federation.minPartitionSize = 5
        c.federation.strategy = "scaffold"
        c.training.batchSize = 16
        c.training.momentum = 0.9
        c.federation.dropout = 0.2
        if compressed {
            c.federation.strategy = "fedavgm"
            c.compression.codec = "powersgd:2"
            c.compression.downCodec = "topk:0.1+qsgd:4"
            c.compression.errorFeedback = true
        }
        if robust {
            c.federation.strategy = "fedavgm"
            c.robustness.aggregator = "centered-clip:1"
            c.robustness.bucketing = 2
            c.robustness.attack = "backdoor:1"
            c.robustness.attackers = 0.25
        }
        return c
    }

    /// Centered clipping's center (strategy state), the attackers and their poisoned data are
    /// restored or rebuilt exactly: a resumed attacked run ends with the uninterrupted run's model.
    @Test func resumedRobustRunEqualsUninterruptedRun() throws {
        let data = dataDirectory(), whole = data + "/whole", split = data + "/split"
        defer { try? FileManager.default.removeItem(atPath: data) }
        _ = try SimulationJob(configuration: configuration(data: data, rounds: 4, robust: true), outputDirectory: whole, saveModel: nil).run()
        _ = try SimulationJob(configuration: configuration(data: data, rounds: 2, robust: true), outputDirectory: split, saveModel: nil).run()
        _ = try SimulationJob(configuration: configuration(data: data, rounds: 4, robust: true), outputDirectory: split, saveModel: nil).run(resume: true)
        let a = try Data(contentsOf: URL(fileURLWithPath: "\(whole)/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: "\(split)/model.safetensors"))
        #expect(a == b, "resumed model differs")
        let last = try String(contentsOfFile: "\(split)/metrics.jsonl", encoding: .utf8).split(separator: "\n").last!
        #expect(last.contains("backdoor_success") && last.contains("attackers_sampled"))
    }

    /// A described model (strided conv, BatchNorm, average pooling, Dropout) through compression,
    /// checkpoints and resume: the running statistics are aggregated and checkpointed with the
    /// parameters, Dropout's masks come from the clients' seeded streams. Resuming under another
    /// model is refused, naming the key.
    @Test func describedModelResumesBitIdentically() throws {
        let data = dataDirectory(), whole = data + "/whole", split = data + "/split"
        defer { try? FileManager.default.removeItem(atPath: data) }
        func described(rounds: Int) -> SimulationConfiguration {
            var c = configuration(data: data, rounds: rounds, compressed: true)
            c.data.model = .described(ModelSpec(layers: [.conv(out: 4, kernel: 3, stride: 2, padding: 1), .batchnorm, .relu,
                                                         .avgpool(kernel: 2, stride: nil), .flatten, .dense(.units(12)), .dropout(0.5),
                                                         .relu, .dense(.classes)]))
            return c
        }
        _ = try SimulationJob(configuration: described(rounds: 3), outputDirectory: whole, saveModel: nil).run()
        _ = try SimulationJob(configuration: described(rounds: 1), outputDirectory: split, saveModel: nil).run()
        var other = described(rounds: 3)
        other.data.model = .lenet5
        #expect { try SimulationJob(configuration: other, outputDirectory: split, saveModel: nil).run(resume: true) } throws: {
            "\($0)".contains("model: described")
        }
        _ = try SimulationJob(configuration: described(rounds: 3), outputDirectory: split, saveModel: nil).run(resume: true)
        let a = try Data(contentsOf: URL(fileURLWithPath: "\(whole)/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: "\(split)/model.safetensors"))
        #expect(a == b, "resumed model differs")
        // 4·1·3·3 + 4 conv, BatchNorm's 4 + 4 and buffers, 12·(4·7·7) + 12 and 10·12 + 10 dense
        // parameters, named as nn.Sequential's.
        let header = try Safetensors.tensors([UInt8](a), path: "model")
        #expect(Set(header.keys) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                     "1.num_batches_tracked", "5.weight", "5.bias", "8.weight", "8.bias"])
        #expect(header["5.weight"]?.shape == [12, 196])
        // Every round's clients ran local steps: the aggregate's batch count is their mean, above 0.
        #expect(header["1.num_batches_tracked"]!.values[0] > 0 && header["1.running_var"]!.values != [1, 1, 1, 1])
    }

    /// FedBN (`local_batchnorm`): the global model's BatchNorm entries never move from their
    /// initial values while the other parameters train; every client keeps its own (checkpointed:
    /// a resumed run ends with the uninterrupted one's model and client accuracies).
    @Test func localBatchNormStaysOnTheClients() throws {
        let data = dataDirectory(), whole = data + "/whole", split = data + "/split"
        defer { try? FileManager.default.removeItem(atPath: data) }
        func fedBN(rounds: Int) -> SimulationConfiguration {
            var c = configuration(data: data, rounds: rounds)
            c.federation.strategy = "fedavg"
            c.training.localBatchnorm = true
            c.federation.clientEvaluation = true
            c.data.model = .described(ModelSpec(layers: [.conv(out: 4, kernel: 3, stride: 2, padding: 1), .batchnorm, .relu,
                                                         .flatten, .dense(.classes)]))
            return c
        }
        let summary = try SimulationJob(configuration: fedBN(rounds: 3), outputDirectory: whole, saveModel: nil).run()
        _ = try SimulationJob(configuration: fedBN(rounds: 1), outputDirectory: split, saveModel: nil).run()
        let resumed = try SimulationJob(configuration: fedBN(rounds: 3), outputDirectory: split, saveModel: nil).run(resume: true)
        let a = try Data(contentsOf: URL(fileURLWithPath: "\(whole)/model.safetensors"))
        #expect(a == (try Data(contentsOf: URL(fileURLWithPath: "\(split)/model.safetensors"))), "resumed model differs")
        #expect(summary.clientAccuracyMean == resumed.clientAccuracyMean && summary.clientAccuracyMean != nil)
        let model = try Safetensors.tensors([UInt8](a), path: "model")
        #expect(model["1.weight"]!.values == [1, 1, 1, 1] && model["1.bias"]!.values == [0, 0, 0, 0])
        #expect(model["1.running_mean"]!.values == [0, 0, 0, 0] && model["1.running_var"]!.values == [1, 1, 1, 1])
        #expect(model["1.num_batches_tracked"]!.values == [0])
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(split)/checkpoint")
        #expect(files.contains { $0.hasPrefix("client-") }, "the clients' BatchNorm layers are checkpointed")
        var plain = fedBN(rounds: 1)
        plain.data.model = .lenet5
        #expect { try SimulationJob(configuration: plain, outputDirectory: nil, saveModel: nil).run() } throws: {
            "\($0)".contains("local_batchnorm keeps BatchNorm layers on the clients, and model lenet5 has none")
        }
    }

    /// SCAFFOLD's correction trains parameters only: BatchNorm's buffers get no correction and
    /// no control variate, so they hold what the forward passes wrote (batches counted exactly).
    @Test func scaffoldLeavesBatchNormBuffersToTheForwardPass() throws {
        let data = syntheticImages(count: 48, seed: 7)
        let network = try ModelSpec(layers: [.flatten, .dense(.units(8)), .batchnorm, .relu, .dense(.classes)]).build(input: [1, 28, 28], classes: 10)
        var generator = SeededGenerator(seed: 1)
        let global = network.initialParameters(using: &generator)
        let control = [Float](repeating: 0.5, count: network.parameterCount)
        let training = SupervisedTraining(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchSize: 16, chunks: 1, threads: 1)
        var stream = SeededGenerator(seed: 2)
        let update = trainClient(0, indices: Array(0..<48), data: data, global: global,
                                 configuration: LocalTrainingConfiguration(epochs: 1, batchSize: 16, optimizer: SGDConfiguration(learningRate: 0.1)),
                                 instructions: RoundInstructions(proximalMu: 0, serverControl: control), clientControl: nil,
                                 training: training, generator: &stream)
        for range in network.bufferRanges { #expect(update.controlDelta![range].allSatisfy { $0 == 0 }) }
        let count = network.layout["2.num_batches_tracked"]!.range.lowerBound
        #expect(global[count] + update.delta[count] == 3, "three steps counted, no correction added")
    }

    /// Also with compression: residuals, PowerSGD warm starts and downlink copies are checkpointed.
    @Test(arguments: [false, true])
    func resumedRunEqualsUninterruptedRun(compressed: Bool) throws {
        let data = dataDirectory(), whole = data + "/whole", split = data + "/split"
        defer { try? FileManager.default.removeItem(atPath: data) }
        _ = try SimulationJob(configuration: configuration(data: data, rounds: 4, compressed: compressed), outputDirectory: whole, saveModel: nil).run()
        _ = try SimulationJob(configuration: configuration(data: data, rounds: 2, compressed: compressed), outputDirectory: split, saveModel: nil).run()
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(split)/checkpoint")
        #expect(files.contains { $0.hasPrefix("client-") }, "client states (control variates, residuals) are checkpointed")
        if compressed { #expect(files.contains { $0.hasPrefix("mirror-") }, "downlink mirrors are checkpointed") }
        // The interrupted run is continued to 4 rounds from its checkpoint.
        let summary = try SimulationJob(configuration: configuration(data: data, rounds: 4, compressed: compressed), outputDirectory: split, saveModel: nil)
            .run(resume: true)
        #expect(summary.rounds == 4)
        let a = try Data(contentsOf: URL(fileURLWithPath: "\(whole)/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: "\(split)/model.safetensors"))
        #expect(a == b, "resumed model differs")
        let metricsA = try String(contentsOfFile: "\(whole)/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let metricsB = try String(contentsOfFile: "\(split)/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(metricsA.count == 4 && metricsB.count == 4)
        for file in ["config.yaml", "metrics.csv", "summary.json", "checkpoint/checkpoint.json"] {
            #expect(FileManager.default.fileExists(atPath: "\(split)/\(file)"), "\(file)")
        }
        let summaryJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(split)/summary.json"))) as! [String: Any]
        for key in ["final_accuracy", "best_accuracy", "rounds", "bytes_up", "bytes_down", "seconds_per_round", "images_per_second",
                    "compression_up", "compression_down"] {
            #expect(summaryJSON[key] != nil, "summary lacks \(key)")
        }
    }

    /// Resuming with another configuration is refused, naming the key, and writes nothing: the
    /// run can still be resumed with its own configuration afterwards.
    @Test func resumeWithAnEditedConfigurationIsRefused() throws {
        let data = dataDirectory(), run = data + "/run"
        defer { try? FileManager.default.removeItem(atPath: data) }
        _ = try SimulationJob(configuration: configuration(data: data, rounds: 2), outputDirectory: run, saveModel: nil).run()
        let config = try String(contentsOfFile: "\(run)/config.yaml", encoding: .utf8)
        let checkpoint = try Data(contentsOf: URL(fileURLWithPath: "\(run)/checkpoint/checkpoint.json"))
        var edited = configuration(data: data, rounds: 3)
        edited.federation.strategy = "fedyogi"
        edited.federation.clients = 5
        do {
            _ = try SimulationJob(configuration: edited, outputDirectory: run, saveModel: nil).run(resume: true)
            Issue.record("an edited configuration was resumed")
        } catch {
            #expect(error.description.contains("clients: 4 in the run, 5 now") && error.description.contains("strategy: scaffold in the run, fedyogi now"),
                    "\(error)")
        }
        do {
            _ = try SimulationJob(configuration: configuration(data: data, rounds: 1), outputDirectory: run, saveModel: nil).run(resume: true)
            Issue.record("fewer rounds than finished were accepted")
        } catch {
            #expect(error.description.contains("it has finished 2"), "\(error)")
        }
        #expect(try String(contentsOfFile: "\(run)/config.yaml", encoding: .utf8) == config)
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(run)/checkpoint/checkpoint.json")) == checkpoint)
        var moreThreads = configuration(data: data, rounds: 3)
        moreThreads.run.threads = 1
        #expect(try SimulationJob(configuration: moreThreads, outputDirectory: run, saveModel: nil).run(resume: true).rounds == 3)
    }

    /// An output directory holding a run is refused without --overwrite; one in use by another
    /// run is refused; the input config is never overwritten.
    @Test func outputDirectoryIsGuarded() throws {
        let data = dataDirectory(), run = data + "/run"
        defer { try? FileManager.default.removeItem(atPath: data) }
        _ = try SimulationJob(configuration: configuration(data: data, rounds: 1), outputDirectory: run, saveModel: nil).run()
        #expect(throws: JobError.self) { try SimulationJob(configuration: configuration(data: data, rounds: 1), outputDirectory: run, saveModel: nil).run() }
        var job = SimulationJob(configuration: configuration(data: data, rounds: 1), outputDirectory: run, saveModel: nil)
        job.overwrite = true
        let held = try OutputDirectory(run, inputConfig: nil)
        try held.lock()
        do {
            _ = try job.run()
            Issue.record("a locked directory was written")
        } catch { #expect(error.description.contains("in use by another fedtrain run"), "\(error)") }
        do {
            _ = try job.run(resume: true)
            Issue.record("a locked directory was resumed")
        } catch { #expect(error.description.contains("in use by another fedtrain run"), "\(error)") }
        withExtendedLifetime(held) {}
        job.inputConfig = "\(run)/config.yaml"
        do {
            _ = try job.run()
            Issue.record("the input config was overwritten")
        } catch { #expect(error.description.contains("would overwrite the input config"), "\(error)") }
        FileManager.default.createFile(atPath: data + "/file", contents: Data())
        do {
            _ = try SimulationJob(configuration: configuration(data: data, rounds: 1), outputDirectory: data + "/file", saveModel: nil).run()
            Issue.record("a file was used as the output directory")
        } catch { #expect(error.description.contains("is a file, not a directory"), "\(error)") }
    }

    /// Per-client state is written when it changes: with SCAFFOLD, a round writes the files of
    /// the clients that took part, not all clients'.
    @Test func checkpointBytesFollowTheClientsThatTookPart() throws {
        let data = dataDirectory(), run = data + "/run"
        defer { try? FileManager.default.removeItem(atPath: data) }
        var c = configuration(data: data, rounds: 2)
        (c.federation.clients, c.federation.fraction, c.federation.dropout) = (8, 0.25, 0)
        let job = SimulationJob(configuration: c, outputDirectory: run, saveModel: nil)
        _ = try job.run()
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(run)/checkpoint")
        let clientFiles = files.filter { $0.hasPrefix("client-") }
        // Two rounds of 2 sampled clients each: at most 4 clients hold state, each in one file.
        #expect(clientFiles.count >= 2 && clientFiles.count <= 4, "\(files)")
        #expect(clientFiles.filter { $0.hasSuffix("-r2.safetensors") }.count == 2, "round 2 rewrote only its own clients: \(files)")
    }

    /// A checkpoint.json edited by hand (client ids not as written, a negative id, a path
    /// instead of a file name) is a one-line checkpoint error, never a crash.
    @Test(arguments: [("\"1\":", "\"01\":"), ("\"1\":", "\"-1\":"), ("\"model\":\"model-2", "\"model\":\"../model-2")])
    func editedCheckpointIsRefused(from: String, to: String) throws {
        let data = dataDirectory(), run = data + "/run"
        defer { try? FileManager.default.removeItem(atPath: data) }
        var c = configuration(data: data, rounds: 2, compressed: true)
        c.federation.dropout = 0
        _ = try SimulationJob(configuration: c, outputDirectory: run, saveModel: nil).run()
        let path = "\(run)/checkpoint/checkpoint.json"
        let json = try String(contentsOfFile: path, encoding: .utf8)
        #expect(json.contains(from), "\(json.prefix(300))")
        try json.replacingOccurrences(of: from, with: to).write(toFile: path, atomically: true, encoding: .utf8)
        c.federation.rounds = 3
        #expect(throws: JobError.self) { try SimulationJob(configuration: c, outputDirectory: run, saveModel: nil).run(resume: true) }
    }

    /// A run that fails before its first round (here: missing data) leaves nothing in the way of
    /// the corrected command.
    @Test func failedStartLeavesTheDirectoryReusable() throws {
        let data = dataDirectory(), run = data + "/run"
        defer { try? FileManager.default.removeItem(atPath: data) }
        var bad = configuration(data: data + "/missing", rounds: 1)
        bad.data.data = data + "/missing"
        #expect(throws: JobError.self) { try SimulationJob(configuration: bad, outputDirectory: run, saveModel: nil).run() }
        #expect(try SimulationJob(configuration: configuration(data: data, rounds: 1), outputDirectory: run, saveModel: nil).run().rounds == 1)
        // A config.yaml fedtrain did not write is never replaced without --overwrite.
        let other = data + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try "clients: 4 # mine\n".write(toFile: other + "/config.yaml", atomically: true, encoding: .utf8)
        #expect(throws: JobError.self) { try SimulationJob(configuration: configuration(data: data, rounds: 1), outputDirectory: other, saveModel: nil).run() }
        #expect(try String(contentsOfFile: other + "/config.yaml", encoding: .utf8) == "clients: 4 # mine\n")
    }

    @Test func configErrorsNameTheKey() {
        func error(_ text: String) -> String? {
            do {
                try ConfigurationFile.decode(text, source: "x.yaml").validate()
                return nil
            } catch { return error.description }
        }
        #expect(error("colour: blue\n")?.contains("unknown config key colour") == true)
        #expect(error("clients: many\n") == "x.yaml: config key clients: expected an integer")
        #expect(error("seed: -1\n")?.contains("config key seed") == true)
        #expect(error("model: resnet\n")?.contains("config key model: unknown model resnet; built-in models: lenet5, lenet5-rgb, fedavg-cnn") == true)
        for (key, value) in [("fraction", "1.5"), ("clients", "0"), ("partition", "dirichlet:0"), ("dropout", "1.0"), ("strategy", "fedsgd"),
                             ("codec", "topk:2"), ("down_codec", "zip"), ("error_feedback", "maybe"), ("min_survivors", "0"),
                             ("max_samples", "0"), ("server_optimizer", "rmsprop"), ("drop", "0:1"), ("drop", "1:99"), ("rounds", "-1")] {
            let message = error("\(key): \(value)\n")
            #expect(message?.contains(key) == true, "\(key): \(value) gave \(message ?? "no error")")
        }
        #expect(error("clients: 3\nmin_clients: 2\n") == nil)
    }
}
