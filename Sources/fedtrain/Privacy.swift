import ArgumentParser
import Engine
import Federated
import Foundation

struct Privacy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Privacy accounting: ε of the Poisson-subsampled Gaussian mechanism (RDP, exact at fractional orders), or the noise for a target ε.",
        subcommands: [Epsilon.self, Calibrate.self, Gaussian.self, Cost.self])

    /// The mechanism's schedule, shared by both subcommands.
    struct Schedule: ParsableArguments {
        @Option(name: .customLong("sampling-rate"), parsing: .unconditional, help: "Probability q that a client (or example) takes part in a step, in (0, 1].")
        var samplingRate: Double
        @Option(parsing: .unconditional, help: "Number of steps T (rounds, or DP-SGD steps).") var steps: Int
        @Option(parsing: .unconditional, help: "δ of the (ε, δ) guarantee, in (0, 1).") var delta: Double
        @Flag(help: "Print one JSON object.") var json = false

        func validate() throws {
            guard samplingRate > 0, samplingRate <= 1 else { throw ValidationError("--sampling-rate must be in (0, 1] (got \(samplingRate))") }
            guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
            guard delta > 0, delta < 1 else { throw ValidationError("--delta must be in (0, 1) (got \(delta))") }
        }

        func report(epsilon: Double, order: Double, noiseMultiplier: Double) {
            if json {
                let object: [String: Any] = ["epsilon": epsilon.isFinite ? epsilon : "inf", "order": order.isFinite ? order : NSNull(),
                                             "noise_multiplier": noiseMultiplier, "sampling_rate": samplingRate, "steps": steps, "delta": delta]
                let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("epsilon \(epsilon) at delta \(delta) (best RDP order \(order)): noise multiplier \(noiseMultiplier), "
                    + "sampling rate \(samplingRate), \(plural(steps, "step"))")
            }
        }
    }

    struct Epsilon: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "ε after T steps at sampling rate q and noise multiplier z.")
        @Option(name: .customLong("noise-multiplier"), parsing: .unconditional, help: "Noise standard deviation over the sensitivity, z >= 0.")
        var noiseMultiplier: Double
        @OptionGroup var schedule: Schedule

        func validate() throws {
            guard noiseMultiplier >= 0, noiseMultiplier.isFinite else { throw ValidationError("--noise-multiplier must be >= 0 (got \(noiseMultiplier))") }
        }

        func run() {
            let (epsilon, order) = RDPAccountant.epsilon(samplingRate: schedule.samplingRate, noiseMultiplier: noiseMultiplier,
                                                         steps: schedule.steps, delta: schedule.delta)
            schedule.report(epsilon: epsilon, order: order, noiseMultiplier: noiseMultiplier)
        }
    }

    struct Gaussian: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The smallest Gaussian noise σ that makes one release of a query of L2 sensitivity Δ (ε, δ)-DP (analytic Gaussian mechanism).")
        @Option(parsing: .unconditional, help: "ε > 0 of the release.") var epsilon: Double
        @Option(parsing: .unconditional, help: "δ in (0, 1).") var delta: Double
        @Option(parsing: .unconditional, help: "L2 sensitivity Δ of the query (a clip norm) (default: 1).") var sensitivity = 1.0
        @Flag(help: "Print one JSON object.") var json = false

        func validate() throws {
            guard epsilon > 0, epsilon.isFinite else { throw ValidationError("--epsilon must be a positive number (got \(epsilon))") }
            guard delta > 0, delta < 1 else { throw ValidationError("--delta must be in (0, 1) (got \(delta))") }
            guard sensitivity > 0, sensitivity.isFinite else { throw ValidationError("--sensitivity must be a positive number (got \(sensitivity))") }
        }

        func run() {
            let sigma = AnalyticGaussian.noise(epsilon: epsilon, delta: delta, sensitivity: sensitivity)
            if json {
                let object: [String: Any] = ["noise": sigma, "epsilon": epsilon, "delta": delta, "sensitivity": sensitivity]
                print(String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print("noise standard deviation \(sigma) for (epsilon \(epsilon), delta \(delta)) at sensitivity \(sensitivity)")
            }
        }
    }

    struct Calibrate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The smallest noise multiplier whose T steps at rate q stay within ε.")
        @Option(parsing: .unconditional, help: "Target ε > 0.") var epsilon: Double
        @OptionGroup var schedule: Schedule

        func validate() throws {
            guard epsilon > 0, epsilon.isFinite else { throw ValidationError("--epsilon must be a positive number (got \(epsilon))") }
        }

        func run() {
            guard let z = RDPAccountant.calibrate(targetEpsilon: epsilon, samplingRate: schedule.samplingRate, steps: schedule.steps,
                                                  delta: schedule.delta) else {
                fail("no noise multiplier up to 10000 reaches epsilon \(epsilon) in \(plural(schedule.steps, "step")) at sampling rate \(schedule.samplingRate)")
            }
            let achieved = RDPAccountant.epsilon(samplingRate: schedule.samplingRate, noiseMultiplier: z, steps: schedule.steps, delta: schedule.delta)
            schedule.report(epsilon: achieved.epsilon, order: achieved.order, noiseMultiplier: z)
        }
    }

    struct Cost: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What a job's privacy costs in time: the job and the same job without privacy, round by round in turn in one process.",
            discussion: "Rounds of the two alternate (which goes first alternates too), so both see the machine in the same state; "
                + "prints each pair and the median of the paired ratios. Takes simulate's options but its clock and asynchronous ones.")

        @OptionGroup var jobOptions: JobOptions
        @OptionGroup(title: "Run") var runOptions: RunOptions

        func run() {
            let configuration: SimulationConfiguration
            let pair: (baseline: Simulation, variant: Simulation)
            do {
                configuration = try jobOptions.resolve(file: jobOptions.config, run: runOptions)
                pair = try PairedRounds.privacyPair(configuration)
            } catch let error as ConfigurationError {
                fail(error.description)
            } catch {
                fail("\(error)")
            }
            let rounds = configuration.federation.rounds
            print("fedtrain privacy cost: \(configuration.data.model), \(configuration.federation.clients) clients, dp \(configuration.privacy.dp), "
                + "\(plural(rounds, "round")) of each, \(plural(configuration.run.threads, "thread")), OpenBLAS \(BLAS.kernelDescription) kernels")
            print("round  clients  without s  with s  ratio")
            let result = PairedRounds.run(baseline: pair.baseline, variant: pair.variant, rounds: rounds) { round, baseline, variant in
                print("\(round)  \(baseline.clients)  \(format(baseline.seconds))  \(format(variant.seconds))  \(format(variant.seconds / baseline.seconds, 3))")
            }
            guard let median = result.medianRatio, let total = result.totalRatio else { fail("no round could be paired") }
            print("median paired ratio \(format(median)) (privacy adds \(String(format: "%+.2f", (median - 1) * 100))% to a round); "
                + "total \(format(result.variant.reduce(0, +), 3)) s against \(format(result.baseline.reduce(0, +), 3)) s (ratio \(format(total)))"
                + (result.unpaired > 0 ? "; \(plural(result.unpaired, "round")) left out (different clients)" : ""))
        }
    }
}
