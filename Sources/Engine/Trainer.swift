/// Runs SGD steps and evaluations of one network, splitting each batch into a fixed number of
/// gradient chunks that run in parallel (see `Parallelism` for why threads go there).
///
/// Determinism: a step computes each chunk's gradient independently and sums them in chunk
/// order, so for a fixed `chunks` the result is bit-identical whatever `threads` is.
/// Memory: one `Workspace` and one gradient vector per chunk, allocated in `init`; a step
/// allocates nothing (apart from the momentum buffer on the very first momentum step).
public final class Trainer {
    public let network: Sequential
    /// Largest batch a step or evaluation call accepts.
    public let batchCapacity: Int
    public let chunks: Int
    public let threads: Int
    public var optimizer: SGD
    private let workspaces: [Workspace]
    /// `chunks` per-chunk gradients, then the reduced gradient the optimizer consumes.
    private let gradients: UnsafeMutableBufferPointer<Float>
    /// Per-chunk results; raw buffers because chunks write them from different threads.
    private let chunkLoss: UnsafeMutableBufferPointer<Double>
    private let chunkCorrect: UnsafeMutableBufferPointer<Int>

    public init(network: Sequential, optimizer: SGDConfiguration, batchCapacity: Int, chunks: Int = 1, threads: Int = 1) {
        precondition(batchCapacity >= 1 && chunks >= 1 && threads >= 1)
        self.network = network
        self.batchCapacity = batchCapacity
        self.chunks = min(chunks, batchCapacity)
        self.threads = threads
        self.optimizer = SGD(optimizer)
        let chunkCapacity = (batchCapacity + self.chunks - 1) / self.chunks
        workspaces = (0..<self.chunks).map { _ in Workspace(network: network, capacity: chunkCapacity) }
        gradients = .allocate(capacity: (self.chunks + 1) * network.parameterCount)
        gradients.initialize(repeating: 0)
        chunkLoss = .allocate(capacity: self.chunks)
        chunkLoss.initialize(repeating: 0)
        chunkCorrect = .allocate(capacity: self.chunks)
        chunkCorrect.initialize(repeating: 0)
        Parallelism.useSingleThreadedBLAS()
    }

    deinit {
        gradients.deallocate()
        chunkLoss.deallocate()
        chunkCorrect.deallocate()
    }

    /// Samples `start..<start+count` of chunk `chunk` when `total` samples are split `chunks` ways.
    @inline(__always)
    private func chunkRange(_ chunk: Int, total: Int) -> Range<Int> {
        let base = total / chunks, extra = total % chunks
        let start = chunk * base + min(chunk, extra)
        return start..<(start + base + (chunk < extra ? 1 : 0))
    }

    private func forEachChunk(total: Int, _ body: (Int, Range<Int>) -> Void) {
        let active = min(chunks, total)
        Parallelism.run(workers: min(threads, active)) { worker in
            for chunk in stride(from: worker, to: active, by: min(threads, active)) {
                body(chunk, chunkRange(chunk, total: total))
            }
        }
    }

    /// Fills rows `range` of the batch buffers before a chunk reads them. Called by the worker
    /// that runs the chunk, so gathering a batch runs in parallel too.
    public typealias BatchLoader = (Range<Int>) -> Void

    /// The loader of a batch that is already in place.
    public static func batchInPlace(_ rows: Range<Int>) {}

    /// Computes every chunk's gradient of the batch-mean loss into its own buffer (in parallel)
    /// and returns the summed loss of the batch.
    private func accumulateChunks(
        parameters: UnsafePointer<Float>, images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
        load: BatchLoader
    ) -> Double {
        precondition(count >= 1 && count <= batchCapacity, "batch \(count) outside 1...\(batchCapacity)")
        let P = network.parameterCount, inputCount = network.inputCount, classes = network.outputCount
        let scale = 1 / Float(count)
        let gradientBase = gradients.baseAddress!
        forEachChunk(total: count) { chunk, range in
            load(range)
            let workspace = workspaces[chunk]
            let x = images + range.lowerBound * inputCount
            let chunkGradient = gradientBase + chunk * P
            chunkGradient.update(repeating: 0, count: P)
            let logits = workspace.forward(batch: range.count, input: x, parameters: parameters)
            chunkLoss[chunk] = SoftmaxCrossEntropy.lossAndGradient(
                batch: range.count, classes: classes, logits: logits, labels: labels + range.lowerBound,
                gradientScale: scale, logitGradient: workspace.logitGradient)
            workspace.backward(batch: range.count, input: x, parameters: parameters, gradient: chunkGradient)
        }
        var loss = 0.0
        for chunk in 0..<min(chunks, count) { loss += chunkLoss[chunk] }
        return loss
    }

    /// `gradient[range] = Σ chunk gradients[range]`, summed in chunk order (so the result does
    /// not depend on how ranges are split across threads).
    private func reduceChunks(into gradient: UnsafeMutablePointer<Float>, range: Range<Int>, active: Int) {
        let P = network.parameterCount, base = gradients.baseAddress!
        (gradient + range.lowerBound).update(from: base + range.lowerBound, count: range.count)
        for chunk in 1..<max(1, active) {
            BLAS.axpy(count: range.count, alpha: 1, base + chunk * P + range.lowerBound, gradient + range.lowerBound)
        }
    }

    /// Part `worker` of `0..<count` split into `workers` ranges aligned to 16 elements.
    private func slice(_ worker: Int, of count: Int, workers: Int) -> Range<Int> {
        let size = ((count + workers - 1) / workers + 15) / 16 * 16
        return min(count, worker * size)..<min(count, (worker + 1) * size)
    }

    /// Overwrites `gradient` with dL/dθ of the mean softmax cross-entropy over `count` samples
    /// (`images`: `count × inputCount`, `labels`: `count` class indices) and returns that mean loss.
    /// `load`, when given, fills the rows of `images` and `labels` each chunk is about to read.
    @discardableResult
    public func computeGradient(
        parameters: UnsafePointer<Float>, images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
        into gradient: UnsafeMutablePointer<Float>, load: BatchLoader = batchInPlace
    ) -> Double {
        let loss = accumulateChunks(parameters: parameters, images: images, labels: labels, count: count, load: load)
        let P = network.parameterCount, active = min(chunks, count)
        Parallelism.run(workers: threads) { worker in
            reduceChunks(into: gradient, range: slice(worker, of: P, workers: threads), active: active)
        }
        return loss / Double(count)
    }

    /// One optimizer step on a batch; returns the batch's mean loss before the update.
    /// `load` is as in `computeGradient`. `adjustGradient`, when given, may modify the mean-loss
    /// gradient before the update (FedProx's proximal term, SCAFFOLD's correction); it gets the
    /// parameters and the gradient.
    @discardableResult
    public func step(
        parameters: inout [Float], images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
        load: BatchLoader = batchInPlace,
        adjustGradient: ((UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) -> Void)? = nil
    ) -> Double {
        precondition(parameters.count == network.parameterCount, "parameter vector belongs to another model")
        let P = network.parameterCount, active = min(chunks, count), workers = threads
        let total = gradients.baseAddress! + chunks * P
        let firstStep = optimizer.prepareVelocity(count: P)
        let configuration = optimizer.configuration
        return parameters.withUnsafeMutableBufferPointer { p in
            let loss = accumulateChunks(parameters: p.baseAddress!, images: images, labels: labels, count: count, load: load)
            optimizer.withVelocity { velocity in
                if let adjustGradient {
                    Parallelism.run(workers: workers) { worker in
                        reduceChunks(into: total, range: slice(worker, of: P, workers: workers), active: active)
                    }
                    adjustGradient(UnsafeBufferPointer(p), UnsafeMutableBufferPointer(start: total, count: P))
                    Parallelism.run(workers: workers) { worker in
                        SGD.update(configuration, parameters: p.baseAddress!, gradient: total, velocity: velocity,
                                   firstStep: firstStep, range: slice(worker, of: P, workers: workers))
                    }
                } else {
                    Parallelism.run(workers: workers) { worker in
                        let range = slice(worker, of: P, workers: workers)
                        reduceChunks(into: total, range: range, active: active)
                        SGD.update(configuration, parameters: p.baseAddress!, gradient: total, velocity: velocity,
                                   firstStep: firstStep, range: range)
                    }
                }
            }
            return loss / Double(count)
        }
    }

    /// Sum of per-sample losses and number of correct first-arg-max predictions over `count`
    /// samples (forward only).
    public func evaluate(
        parameters: UnsafePointer<Float>, images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
        load: BatchLoader = batchInPlace
    ) -> (lossSum: Double, correct: Int) {
        precondition(count >= 1 && count <= batchCapacity, "batch \(count) outside 1...\(batchCapacity)")
        let inputCount = network.inputCount, classes = network.outputCount
        forEachChunk(total: count) { chunk, range in
            load(range)
            let logits = workspaces[chunk].forward(batch: range.count, input: images + range.lowerBound * inputCount,
                                                  parameters: parameters)
            let result = SoftmaxCrossEntropy.lossAndCorrect(batch: range.count, classes: classes, logits: logits,
                                                            labels: labels + range.lowerBound)
            chunkLoss[chunk] = result.loss
            chunkCorrect[chunk] = result.correct
        }
        var loss = 0.0, correct = 0
        for chunk in 0..<min(chunks, count) {
            loss += chunkLoss[chunk]
            correct += chunkCorrect[chunk]
        }
        return (loss, correct)
    }
}
