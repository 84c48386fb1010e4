import ArgumentParser
import Engine
import Federated
import Foundation
import Yams

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate a federation on this machine: partitioned clients, local SGD in parallel, server aggregation.",
        discussion: "A --config YAML file sets any option (names with underscores, e.g. local_epochs); flags override it.")

    @Option(help: "YAML configuration file; flags override its keys.") var config: String?
    @Option(help: "Model: lenet5 or lenet5-rgb.") var model: ModelKind?
    @Option(help: "Data directory (default: Fashion-MNIST from dataset-fashion-mnist).") var data: String?
    @Option(help: "Number of clients.") var clients: Int?
    @Option(help: "Number of rounds.") var rounds: Int?
    @Option(help: "Fraction of clients sampled per round.") var fraction: Double?
    @Option(name: .customLong("min-clients"), help: "Minimum clients sampled per round.") var minClients: Int?
    @Option(help: "Partition: iid, dirichlet:ALPHA, labels:K, shards:S, quantity:BETA.") var partition: String?
    @Option(name: .customLong("min-partition-size"), help: "Smallest client size the Dirichlet partitions accept (Flower: 10).") var minPartitionSize: Int?
    @Option(help: "Strategy: fedavg, fedprox:MU, fedavgm[:M[:LR]], fedadam|fedyogi|fedadagrad[:LR[:TAU]], scaffold[:LR], fednova.") var strategy: String?
    @Option(name: .customLong("local-epochs"), help: "Local epochs per round.") var localEpochs: Int?
    @Option(name: .customLong("batch-size"), help: "Local minibatch size.") var batchSize: Int?
    @Option(help: "Local learning rate.") var lr: Float?
    @Option(help: "Local SGD momentum.") var momentum: Float?
    @Option(name: .customLong("weight-decay"), help: "Local weight decay.") var weightDecay: Float?
    @Option(help: "Probability that a sampled client drops out of a round.") var dropout: Double?
    @Option(name: .customLong("eval-every"), help: "Evaluate the global model every N rounds (and after the last).") var evalEvery: Int?
    @Flag(name: .customLong("client-evaluation"), help: "Also report accuracy on each client's own data (mean, worst decile).") var clientEvaluation = false
    @Option(help: "Uplink codec: \(CodecRegistry.help).") var codec: String?
    @Option(name: .customLong("down-codec"), help: "Downlink codec for the change of the global model (same specs).") var downCodec: String?
    @Flag(name: .customLong("error-feedback"), help: "Clients keep what the uplink codec dropped and add it to their next update.") var errorFeedback = false
    @Option(help: "Seed of every random choice.") var seed: UInt64?
    @Option(help: "Worker threads (results do not depend on it).") var threads: Int?
    @Option(help: "Output directory: config.yaml, metrics.jsonl/csv, summary.json, model.safetensors, checkpoint/.") var out: String?
    @Option(help: "Continue the run in this output directory from its last checkpoint.") var resume: String?
    @Option(help: "Also save the final global model to this safetensors file.") var save: String?

    func resolved() throws(JobError) -> SimulationConfiguration {
        var configuration = SimulationConfiguration()
        let file = resume.map { "\($0)/config.yaml" } ?? config
        if let file {
            let text: String
            do { text = String(decoding: try AtomicFile.read(file), as: UTF8.self) } catch { throw .invalid(error.description) }
            let loaded: Any?
            do { loaded = try Yams.load(yaml: text) } catch { throw .invalid("\(file): not valid YAML: \(error)") }
            guard let table = loaded as? [String: Any] else { throw .invalid("\(file): expected a mapping of keys to values") }
            for (key, value) in table.sorted(by: { $0.key < $1.key }) {
                do { try configuration.set(key, value) } catch { throw .invalid("\(file): \(error.description)") }
            }
        }
        if let model { configuration.model = model }
        if let data { configuration.data = data }
        if let clients { configuration.clients = clients }
        if let rounds { configuration.rounds = rounds }
        if let fraction { configuration.fraction = fraction }
        if let minClients { configuration.minClients = minClients }
        if let partition { configuration.partition = partition }
        if let minPartitionSize { configuration.minPartitionSize = minPartitionSize }
        if let strategy { configuration.strategy = strategy }
        if let localEpochs { configuration.localEpochs = localEpochs }
        if let batchSize { configuration.batchSize = batchSize }
        if let lr { configuration.lr = lr }
        if let momentum { configuration.momentum = momentum }
        if let weightDecay { configuration.weightDecay = weightDecay }
        if let dropout { configuration.dropout = dropout }
        if let evalEvery { configuration.evalEvery = evalEvery }
        if clientEvaluation { configuration.clientEvaluation = true }
        if let codec { configuration.codec = codec }
        if let downCodec { configuration.downCodec = downCodec }
        if errorFeedback { configuration.errorFeedback = true }
        if let seed { configuration.seed = seed }
        if let threads { configuration.threads = threads }
        try configuration.validate()
        return configuration
    }

    func validate() throws {
        if resume != nil && out != nil && out != resume { throw ValidationError("--resume continues in its own directory; drop --out") }
        do { _ = try resolved() } catch { throw ValidationError(error.description) }
    }

    func run() throws {
        let configuration: SimulationConfiguration
        do { configuration = try resolved() } catch { fail(error.description) }
        let job = SimulationJob(configuration: configuration, outputDirectory: resume ?? out, saveModel: save)
        var line = ProgressLine()
        let summary: SimulationJob.Summary
        do {
            summary = try job.run(resume: resume != nil) { event in
                switch event {
                case .started(let simulation):
                    print("fedtrain simulate: \(configuration.model.rawValue), \(configuration.clients) clients (\(configuration.sampledPerRound) per round), "
                        + "\(configuration.partition), \(configuration.strategy), E=\(configuration.localEpochs), B=\(configuration.batchSize), "
                        + "lr \(configuration.lr), momentum \(configuration.momentum), codec \(configuration.codec)\(configuration.errorFeedback ? " with error feedback" : ""), "
                        + "down \(configuration.downCodec), \(configuration.rounds) rounds, \(configuration.threads) threads, seed \(configuration.seed), OpenBLAS \(BLAS.kernelSet) kernels")
                    printHistograms(simulation.histograms)
                    if simulation.completedRounds > 0 { print("resumed after round \(simulation.completedRounds)") }
                case .clientDone(let round, let done, let total, let seconds):
                    line.update("round \(round)/\(configuration.rounds) \(ProgressLine.bar(Double(done) / Double(total))) clients \(done)/\(total) \(format(seconds, 1)) s")
                case .roundDone(let m):
                    let accuracy = m.testAccuracy.map { "accuracy \(format(100 * $0, 2))%, loss \(format(m.testLoss!))" } ?? "not evaluated"
                    let remaining = Double(configuration.rounds - m.round) * m.seconds
                    line.finish("round \(m.round)/\(configuration.rounds): \(accuracy), train loss \(m.trainLoss.map { format($0) } ?? "-"), "
                        + "clients \(m.clients)\(m.failures > 0 ? " (\(m.failures) dropped)" : ""), up \(megabytes(m.bytesUp))\(ratio(m.compressionUp)), down \(megabytes(m.bytesDown))\(ratio(m.compressionDown)), "
                        + "\(m.rejected > 0 ? "\(m.rejected) rejected, " : "")"
                        + "\(Int(m.imagesPerSecond)) img/s, \(format(m.seconds, 2)) s, ETA \(format(remaining, 0)) s")
                }
            }
        } catch {
            fail(error.description)
        }
        print("done: final accuracy \(summary.finalAccuracy.map { format(100 * $0, 2) + "%" } ?? "-"), best \(summary.bestAccuracy.map { format(100 * $0, 2) + "%" } ?? "-"), "
            + "\(summary.rounds) rounds, \(format(summary.secondsPerRound, 2)) s/round, up \(megabytes(summary.bytesUp))\(ratio(summary.compressionUp)), down \(megabytes(summary.bytesDown))\(ratio(summary.compressionDown))")
        if let directory = resume ?? out { print("results in \(directory)") }
    }
}

func megabytes(_ bytes: Int) -> String { format(Double(bytes) / 1e6, 2) + " MB" }

/// " (123x)" for a compression ratio above 1, nothing otherwise.
func ratio(_ value: Double) -> String { value > 1.0001 ? " (\(format(value, value < 10 ? 1 : 0))x)" : "" }

/// One line per client: its size and label histogram (long federations print the first 20).
func printHistograms(_ histograms: [[Int]]) {
    for (client, histogram) in histograms.enumerated().prefix(20) {
        print("  client \(client): \(histogram.reduce(0, +)) samples, labels \(histogram.map(String.init).joined(separator: " "))")
    }
    if histograms.count > 20 { print("  ... \(histograms.count - 20) more clients") }
}
