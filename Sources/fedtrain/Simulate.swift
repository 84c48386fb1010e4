import ArgumentParser
import Engine
import Federated
import Foundation

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate a federation on this machine: partitioned clients, local SGD in parallel, server aggregation.",
        discussion: "A --config YAML file sets any option (names with underscores, e.g. local_epochs); flags override it.")

    @OptionGroup var jobOptions: JobOptions
    @OptionGroup(title: "Simulated clock") var clock: ClockOptions
    @OptionGroup(title: "Asynchronous modes") var asynchrony: AsyncOptions
    @OptionGroup(title: "Run") var runOptions: RunOptions
    @Option(help: "Output directory: config.yaml, metrics.jsonl/csv, summary.json, model.safetensors, checkpoint/.") var out: String?
    @Flag(help: "Replace the run already in the --out directory.") var overwrite = false
    @Option(help: "Continue the run in this directory from its last checkpoint (only --rounds may change).") var resume: String?
    @Option(help: "Also save the final global model to this safetensors file.") var save: String?

    /// The configuration to run: the config file (with --resume, the run's own config.yaml unless
    /// --config names another), then the flags.
    func resolved() throws(ConfigurationError) -> SimulationConfiguration {
        try jobOptions.resolve(file: jobOptions.config ?? resume.map { "\($0)/config.yaml" }, run: runOptions, clock: clock, asynchrony: asynchrony)
    }

    func validate() throws {
        if resume != nil && out != nil && out != resume { throw ValidationError("--resume continues in its own directory; drop --out") }
        if resume != nil && overwrite { throw ValidationError("--overwrite replaces a run with a new one; it does not go with --resume") }
    }

    func run() throws {
        let configuration: SimulationConfiguration
        do { configuration = try resolved() } catch { fail(error.description) }
        var job = SimulationJob(configuration: configuration, outputDirectory: resume ?? out, saveModel: save)
        job.overwrite = overwrite
        job.inputConfig = jobOptions.config
        let directory = resume ?? out
        Interruption.install(directory: directory)
        var line = ProgressLine()
        let rounds = configuration.federation.rounds
        let summary: SimulationJob.Summary
        do {
            summary = try job.run(resume: resume != nil) { event in
                switch event {
                case .started(let simulation):
                    let f = configuration.federation, t = configuration.training, c = configuration.compression
                    print("fedtrain simulate: \(configuration.data.model), \(f.clients) clients (\(f.sampledPerRound) per round), "
                        + "\(f.partition), \(simulation.coordinator.strategy.spec), E=\(t.localEpochs), B=\(t.batchSize), "
                        + "lr \(t.lr), momentum \(t.momentum), codec \(c.codec)\(c.errorFeedback ? " with error feedback" : ""), "
                        + "down \(c.downCodec), \(plural(rounds, "round")), \(plural(configuration.run.threads, "thread")), seed \(f.seed), "
                        + "OpenBLAS \(BLAS.kernelDescription) kernels")
                    printHistograms(simulation.histograms)
                    if simulation.completedRounds > 0 {
                        print("resumed after round \(simulation.completedRounds)")
                        Interruption.checkpointWritten()
                    }
                case .clientDone(let round, let done, let total, let seconds):
                    line.update("round \(round)/\(rounds) \(ProgressLine.bar(Double(done) / Double(total))) clients \(done)/\(total) \(format(seconds, 1)) s")
                case .checkpointed:
                    Interruption.checkpointWritten()
                case .roundDone(let m):
                    line.finish(roundLine(m, rounds: rounds))
                }
            }
        } catch {
            fail(error.description)
        }
        print(doneLine(summary))
        if let directory { print("results in \(directory)") }
    }
}

/// The permanent line of a finished round.
func roundLine(_ m: RoundMetrics, rounds: Int) -> String {
    let accuracy = m.testAccuracy.map { "accuracy \(format(100 * $0, 2))%, loss \(m.testLoss.map { format($0) } ?? "-")" } ?? "not evaluated"
    let privacy = m.epsilon.map { "epsilon \(format($0, 3)), " } ?? ""
    let clientAccuracy = m.clientAccuracyMean.map { mean in
        "client accuracy \(format(100 * mean, 2))% (worst decile \(format(100 * m.clientAccuracyWorstDecile!, 2))%), "
    } ?? ""
    let rejected = m.rejected > 0
        ? "\(m.rejected) rejected (\(m.rejections.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))), " : ""
    let robustness = (m.backdoorSuccess.map { "backdoor success \(format(100 * $0, 2))%, " } ?? "")
        + (m.attackersSampled.map { "\(plural($0.count, "attacker")) sampled, " } ?? "")
        + (m.selected.map { "kept \($0) (\(plural(m.attackersSelected ?? 0, "attacker"))), " } ?? "")
    let simulated = m.simulatedTime.map { "simulated \(format(m.simulatedSeconds ?? 0, 1)) s (total \(format($0, 1)) s), " } ?? ""
    let remaining = Double(rounds - m.round) * m.seconds
    return "round \(m.round)/\(rounds): \(accuracy), \(robustness)\(simulated)\(clientAccuracy)train loss \(m.trainLoss.map { format($0) } ?? "-"), "
        + "clients \(m.clients)\(m.failures > 0 ? " (\(m.failures) dropped)" : "")\(m.committed ? "" : ", model kept"), "
        + "up \(megabytes(m.bytesUp))\(ratio(m.compressionUp)), down \(megabytes(m.bytesDown))\(ratio(m.compressionDown)), "
        + rejected + privacy + "\(Int(m.imagesPerSecond)) img/s, \(format(m.seconds, 2)) s, ETA \(format(remaining, 0)) s"
}

/// The last line of a run.
func doneLine(_ summary: SimulationJob.Summary) -> String {
    let clientAccuracy = (summary.clientAccuracyMean.map { ", client accuracy \(format(100 * $0, 2))%" } ?? "")
        + (summary.epsilon.map { ", (epsilon \(format($0, 3)), delta \(summary.delta!))-DP" } ?? "")
    return "done: final accuracy \(summary.finalAccuracy.map { format(100 * $0, 2) + "%" } ?? "-"), best \(summary.bestAccuracy.map { format(100 * $0, 2) + "%" } ?? "-")"
        + "\(clientAccuracy), \(plural(summary.rounds, "round")), \(format(summary.secondsPerRound, 2)) s/round, "
        + "up \(megabytes(summary.bytesUp))\(ratio(summary.compressionUp)), down \(megabytes(summary.bytesDown))\(ratio(summary.compressionDown))"
}

func plural(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

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
