import ArgumentParser
import Engine
import Federated
import Foundation

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Centralized training of one model on all the training data.")

    @OptionGroup(title: "Model and data") var dataOptions: DataOptions
    @Option(parsing: .unconditional, help: "Passes over the training data.") var epochs = 10
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Minibatch size.") var batchSize = 64
    @Option(parsing: .unconditional, help: "Learning rate.") var lr: Float = 0.02
    @Option(parsing: .unconditional, help: "SGD momentum (PyTorch semantics).") var momentum: Float = 0.9
    @Option(name: .customLong("weight-decay"), parsing: .unconditional, help: "L2 weight decay added to the gradient.") var weightDecay: Float = 0
    @Flag(help: "Nesterov momentum.") var nesterov = false
    @Option(parsing: .unconditional, help: "Seed of every random choice (initialization, shuffling).") var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Worker threads (default: all cores).") var threads = Parallelism.availableCores
    @Option(parsing: .unconditional, help: "Gradient chunks per step (run in parallel; set it to the core count on machines with more than 2); results are bit-identical across --threads for a fixed value.") var chunks = Parallelism.defaultChunks
    @Option(name: .customLong("init"), help: "Start from this safetensors checkpoint instead of a random initialization.") var initPath: String?
    @Option(help: "Save the trained parameters to this safetensors file (PyTorch state_dict names).") var save: String?
    @Option(name: .customLong("max-steps"), parsing: .unconditional, help: "Stop after this many SGD steps.") var maxSteps: Int?
    @Flag(name: .customLong("no-shuffle"), help: "Visit the training data in file order.") var noShuffle = false
    @Option(name: .customLong("train-limit"), parsing: .unconditional, help: "Use only the first N training examples.") var trainLimit: Int?
    @Option(help: "Write a JSON summary to this file.") var summary: String?
    @Flag(name: .customLong("dp-sgd"), help: "Example-level DP-SGD: Poisson lots of expected size --batch-size, per-example clip --clip, noise --noise-multiplier or calibrated to --target-epsilon.")
    var dpSGD = false
    @Option(parsing: .unconditional, help: "DP-SGD: each example's gradient L2 clip.") var clip: Double?
    @Option(name: .customLong("noise-multiplier"), parsing: .unconditional, help: "DP-SGD: noise standard deviation over the clip.")
    var noiseMultiplier: Double?
    @Option(name: .customLong("target-epsilon"), parsing: .unconditional,
            help: "DP-SGD: the ε the whole training may spend; the noise multiplier is calibrated for the training set and the epochs.")
    var targetEpsilon: Double?
    @Option(parsing: .unconditional, help: "DP-SGD: the δ the ε is reported at (default: 1e-5).") var delta: Double = 1e-5

    func validate() throws {
        if nesterov && momentum == 0 { throw ValidationError("--nesterov needs a non-zero --momentum") }
        if dpSGD {
            guard let clip, clip > 0, clip.isFinite, noiseMultiplier != nil || targetEpsilon != nil else {
                throw ValidationError("--dp-sgd needs --clip C > 0 and --noise-multiplier Z >= 0 or --target-epsilon E")
            }
            if let noiseMultiplier, !(noiseMultiplier >= 0 && noiseMultiplier.isFinite) { throw ValidationError("--noise-multiplier must be >= 0") }
            if let targetEpsilon, !(targetEpsilon > 0 && targetEpsilon.isFinite) { throw ValidationError("--target-epsilon must be a positive number") }
            guard delta > 0, delta < 1 else { throw ValidationError("--delta must be in (0, 1)") }
        } else if clip != nil || noiseMultiplier != nil || targetEpsilon != nil {
            throw ValidationError("--clip, --noise-multiplier and --target-epsilon need --dp-sgd")
        }
        do { try makeJob().validate() } catch { throw ValidationError(error.description) }
        if let summary {
            do { try AtomicFile.checkWritable(summary) } catch { throw ValidationError("--summary \(error.description)") }
        }
    }

    func makeJob() throws(JobError) -> TrainingJob {
        var job = TrainingJob()
        do { try dataOptions.apply(to: &job.data) } catch { throw .configuration(error) }
        job.epochs = epochs
        job.batchSize = batchSize
        job.optimizer = SGDConfiguration(learningRate: lr, momentum: momentum, weightDecay: weightDecay, nesterov: nesterov && momentum > 0)
        job.seed = seed
        job.threads = threads
        job.chunks = chunks
        job.initialParameters = initPath
        job.saveParameters = save
        job.maxSteps = maxSteps
        job.shuffle = !noShuffle
        job.trainLimit = trainLimit
        if dpSGD {
            (job.privacy.dp, job.privacy.clip, job.privacy.noiseMultiplier) = ("dpsgd", clip, noiseMultiplier)
            (job.privacy.targetEpsilon, job.privacy.delta) = (targetEpsilon, delta)
        }
        return job
    }

    func run() throws {
        let job = try makeJob()
        var line = ProgressLine()
        print("fedtrain train: \(job.data.model), \(epochs) epochs, B=\(batchSize), lr \(lr), momentum \(momentum), weight decay \(weightDecay), \(threads) threads, seed \(seed), OpenBLAS \(BLAS.kernelDescription) kernels")
        let result: TrainingJob.Summary
        do {
            result = try job.run(progress: { p in
                line.update("epoch \(p.epoch)/\(epochs) \(ProgressLine.bar(Double(p.step) / Double(p.stepsInEpoch))) \(p.step)/\(p.stepsInEpoch) "
                    + "\(Int(Double(p.samplesDone) / max(p.seconds, 1e-9))) img/s  loss \(format(p.runningLoss))")
            }, epochDone: { e in
                line.finish("epoch \(e.epoch)/\(epochs): train loss \(format(e.trainLoss)), test loss \(format(e.testLoss)), "
                    + "test accuracy \(format(100 * e.testAccuracy, 2))%, \(Int(e.imagesPerSecond)) img/s, \(format(e.seconds, 1)) s"
                    + (e.epsilon.map { ", epsilon \(format($0, 3))" } ?? ""))
            })
        } catch {
            fail(error.description)
        }
        print("done: test accuracy \(format(100 * result.testAccuracy, 2))%, test loss \(format(result.testLoss)), "
            + "\(result.steps) steps, \(Int(result.imagesPerSecond)) img/s training, \(format(result.seconds, 1)) s total"
            + (result.epsilon.map { ", (epsilon \(format($0, 3)), delta \(delta))-DP" } ?? ""))
        if let save { print("saved \(save)") }
        if let summary {
            do { try AtomicFile.writeJSON(result, to: summary) } catch { fail(error.description) }
        }
    }
}
