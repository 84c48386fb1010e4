import Datasets
import Engine

/// Where a training run is, reported after every step.
public struct TrainingProgress: Sendable {
    public var epoch: Int
    public var step: Int
    public var stepsInEpoch: Int
    public var samplesDone: Int
    /// Mean loss over the epoch's samples so far.
    public var runningLoss: Double
    public var seconds: Double
}

/// What one pass of local training did.
public struct EpochSummary: Sendable {
    /// Sample-weighted mean of the batch losses (each taken before its update).
    public var meanLoss: Double
    public var steps: Int
    public var samples: Int
    public var seconds: Double
}

/// Minibatch SGD over a labeled data set: the loop that centralized training and every federated
/// client run. It owns a `Trainer` and a `BatchBuffer`, so after construction an epoch allocates
/// nothing but its shuffled order.
public final class SupervisedTraining {
    public let trainer: Trainer
    public let batchSize: Int
    private let buffer: BatchBuffer
    /// One piece's clipped sum in `clippedGradientSum` (allocated on first use: DP-SGD only).
    private lazy var pieceGradient = [Float](repeating: 0, count: trainer.network.parameterCount)

    public init(network: Sequential, optimizer: SGDConfiguration, batchSize: Int, chunks: Int, threads: Int) {
        trainer = Trainer(network: network, optimizer: optimizer, batchCapacity: batchSize, chunks: chunks, threads: threads)
        self.batchSize = batchSize
        buffer = BatchBuffer(capacity: batchSize, sampleSize: network.inputCount)
    }

    /// One epoch over `indices` of `data` (shuffled from `generator` when `shuffle`), stopping
    /// early after `maxSteps` steps. `adjustGradient` is passed to every `Trainer.step`;
    /// `afterStep`, when given, may change the parameters after every step (outside the optimizer).
    public func runEpoch(
        epoch: Int = 0, parameters: inout [Float], data: LabeledImages, indices: [Int], shuffle: Bool,
        generator: inout SeededGenerator, maxSteps: Int = .max,
        adjustGradient: ((UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) -> Void)? = nil,
        afterStep: ((inout [Float]) -> Void)? = nil,
        progress: ((TrainingProgress) -> Void)? = nil
    ) -> EpochSummary {
        precondition(data.sampleSize == trainer.network.inputCount, "data samples do not fit the model input")
        let order = EpochOrder(indices: indices, batchSize: batchSize, shuffle: shuffle, generator: &generator)
        buffer.data = data
        defer { buffer.data = nil }
        let clock = ContinuousClock(), start = clock.now
        var lossSum = 0.0, samples = 0, steps = 0
        for batch in 0..<min(order.batchCount, maxSteps) {
            let range = order.batchRange(batch)
            buffer.pending = order.indices[range]
            // Dropout's masks: one draw per step, only for networks that use it (others keep their streams).
            let seed = trainer.network.drawsRandomNumbers ? generator.next() : 0
            let loss = trainer.step(parameters: &parameters, images: buffer.images, labels: buffer.labels, count: range.count,
                                    source: buffer, seed: seed, adjustGradient: adjustGradient)
            afterStep?(&parameters)
            lossSum += loss * Double(range.count)
            samples += range.count
            steps += 1
            progress?(TrainingProgress(epoch: epoch, step: steps, stepsInEpoch: min(order.batchCount, maxSteps),
                                       samplesDone: samples,
                                       runningLoss: lossSum / Double(samples), seconds: (clock.now - start).seconds))
        }
        return EpochSummary(meanLoss: samples > 0 ? lossSum / Double(samples) : .nan, steps: steps, samples: samples,
                            seconds: (clock.now - start).seconds)
    }

    /// Overwrites `sum` with the sum over `indices` of `data` of each sample's loss gradient at
    /// `parameters` clipped to L2 norm `clip` (DP-SGD's lot; `Trainer.clippedGradientSum`, in
    /// pieces of at most `batchSize` samples) and returns the summed loss. An empty lot sums to zero.
    public func clippedGradientSum(parameters: [Float], data: LabeledImages, indices: [Int], clip: Double,
                                   into sum: UnsafeMutableBufferPointer<Float>) -> Double {
        precondition(sum.count == trainer.network.parameterCount, "gradient vector belongs to another model")
        sum.update(repeating: 0)
        buffer.data = data
        defer { buffer.data = nil }
        var loss = 0.0
        parameters.withUnsafeBufferPointer { p in
            for start in stride(from: 0, to: indices.count, by: batchSize) {
                buffer.pending = indices[start..<min(indices.count, start + batchSize)]
                pieceGradient.withUnsafeMutableBufferPointer { g in
                    loss += trainer.clippedGradientSum(parameters: p.baseAddress!, images: buffer.images, labels: buffer.labels,
                                                       count: buffer.pending.count, clip: clip, into: g.baseAddress!, source: buffer)
                    BLAS.axpy(count: g.count, alpha: 1, g.baseAddress!, sum.baseAddress!)
                }
            }
        }
        return loss
    }

    /// Mean loss and accuracy of `parameters` on `indices` of `data` (all samples when nil).
    public func evaluate(parameters: [Float], data: LabeledImages, indices: [Int]? = nil) -> (loss: Double, accuracy: Double) {
        let all = indices ?? Array(0..<data.count)
        guard !all.isEmpty else { return (.nan, .nan) }
        var lossSum = 0.0, correct = 0
        buffer.data = data
        defer { buffer.data = nil }
        parameters.withUnsafeBufferPointer { p in
            for start in stride(from: 0, to: all.count, by: batchSize) {
                buffer.pending = all[start..<min(all.count, start + batchSize)]
                let result = trainer.evaluate(parameters: p.baseAddress!, images: buffer.images, labels: buffer.labels,
                                              count: buffer.pending.count, source: buffer)
                lossSum += result.lossSum
                correct += result.correct
            }
        }
        return (lossSum / Double(all.count), Double(correct) / Double(all.count))
    }
}

