/// Fills rows of a batch's image and label buffers just before a chunk reads them. Called by
/// the worker thread that runs the chunk (different rows from different threads), so gathering a
/// batch runs in parallel too.
public protocol BatchSource: AnyObject {
    func load(rows: Range<Int>)
}

/// Runs SGD steps and evaluations of one network, splitting each batch into a fixed number of
/// gradient chunks that run in parallel (see `Parallelism` for why threads go there).
///
/// Determinism: a step computes each chunk's gradient independently and sums them in chunk
/// order, so for a fixed `chunks` the result is bit-identical whatever `threads` is. A network
/// whose layers mix the samples of a batch (BatchNorm) trains each batch in one chunk, as its
/// statistics are the whole batch's. Buffers (BatchNorm's running statistics) change only
/// through a step's forward pass: the optimizer's update (weight decay, FedProx and SCAFFOLD
/// corrections included) leaves them as the forward pass wrote them.
/// Memory: one `Workspace` and one gradient vector per chunk, allocated in `init`; a step
/// allocates nothing (apart from the momentum buffer on the very first momentum step): its
/// parallel jobs are closures built once in `init` that read the step's inputs from `step`
/// (a closure handed to another thread per call would be heap-allocated every time).
///
/// Dense weight gradients: a plain step does not form one full `dW` per chunk (written, then
/// summed by the reduction: for a 1.6M-weight dense layer that memory traffic is paid per chunk,
/// whatever the batch size). With several chunks, they keep their dense layers' output
/// gradients, and a third job forms each `dW` directly in the reduced gradient, threads splitting
/// its rows in fixed blocks, chunks summed in chunk order: the same sums (see `denseRowBlock`).
/// Measured on `fedavg-cnn` at B=32, 2 threads: +8% images/s (docs/models.md).
public final class Trainer {
    public let network: Sequential
    /// Largest batch a step or evaluation call accepts.
    public let batchCapacity: Int
    public let chunks: Int
    public let threads: Int
    public var optimizer: SGD
    /// One per chunk for training, created by the first call that needs it: evaluation runs
    /// each worker's chunks in that worker's, so a trainer that only evaluates holds `threads`.
    private var workspaces: [Workspace?]
    /// `chunks` per-chunk gradients, then the reduced gradient the optimizer consumes: `chunks + 1`
    /// copies of the model, allocated (zeroed) by the first training call, so a trainer that only
    /// evaluates (the server's, `simulate`'s evaluator) never holds them.
    private var gradientStorage: UnsafeMutableBufferPointer<Float>?
    /// The gradients, for the jobs of a training call (which allocated them before they run).
    private var gradients: UnsafeMutableBufferPointer<Float> { gradientStorage! }
    /// Per-chunk results; raw buffers because chunks write them from different threads.
    private let chunkLoss: UnsafeMutableBufferPointer<Double>
    private let chunkCorrect: UnsafeMutableBufferPointer<Int>
    /// The buffers as a step's forward pass left them, restored after the update.
    private let savedBuffers: UnsafeMutableBufferPointer<Float>
    /// Samples per chunk at most, and each chunk's per-sample squared gradient norms and clip
    /// factors (`clippedGradientSum`).
    private let chunkCapacity: Int
    private let sampleNorms: UnsafeMutableBufferPointer<Double>
    private let sampleFactors: UnsafeMutableBufferPointer<Float>

    /// The inputs of the step in progress, written before each parallel job and only read while
    /// it runs.
    private struct StepInputs {
        var parameters: UnsafeMutablePointer<Float>?
        var images: UnsafePointer<Float>?
        var labels: UnsafePointer<Int32>?
        var count = 0
        var source: BatchSource?
        var velocity: UnsafeMutablePointer<Float>?
        var firstStep = false
        var updateAfterReduce = false
        var mode = ForwardMode.evaluation
        /// Per-sample clip bound of a `clippedGradientSum`, nil for a plain gradient.
        var clip: Double?
        var configuration = SGDConfiguration(learningRate: 0)
    }
    private var inputs = StepInputs()
    private var chunkJob: ((Int) -> Void)?
    private var deferredJob: ((Int) -> Void)?
    private var reduceJob: ((Int) -> Void)?
    /// The dense layers (their index, output rows and weight range in the flat vector), whose
    /// weight gradients a plain step defers, and the rest of the flat vector, which chunks reduce.
    private let denseLayers: [(index: Int, rows: Int, weights: Range<Int>)]
    private let chunkReducedRanges: [Range<Int>]
    /// `[0..<parameterCount]`: what chunks zero and reduce when the step defers nothing.
    private let wholeVector: [Range<Int>]
    /// Whether the step in progress defers the dense weight gradients: only across several
    /// chunks (one chunk has nothing to sum, and keeps the exact products it always ran, on every
    /// kernel set), and not for a clipped sum, which weights each sample.
    private var defersDenseWeights: Bool { inputs.clip == nil && chunks > 1 && !denseLayers.isEmpty }
    /// The parts of the flat vector the step in progress reduces from the chunk gradients.
    private var reducedRanges: [Range<Int>] { defersDenseWeights ? chunkReducedRanges : wholeVector }

    /// Bytes a trainer allocates for `batchCapacity` and `chunks` (workspaces and gradients; the
    /// momentum buffer comes on top), so a job can refuse a batch that would not fit in memory.
    public static func byteCount(network: Sequential, batchCapacity: Int, chunks: Int) -> Int {
        let chunks = network.mixesSamples ? 1 : min(chunks, batchCapacity), chunkCapacity = (batchCapacity + chunks - 1) / chunks
        return chunks * Workspace.byteCount(network: network, capacity: chunkCapacity)
            + (chunks + 1) * network.parameterCount * MemoryLayout<Float>.stride
    }

    public init(network: Sequential, optimizer: SGDConfiguration, batchCapacity: Int, chunks: Int = 1, threads: Int = 1) {
        precondition(batchCapacity >= 1 && chunks >= 1 && threads >= 1)
        self.network = network
        self.batchCapacity = batchCapacity
        self.chunks = network.mixesSamples ? 1 : min(chunks, batchCapacity)
        self.threads = threads
        self.optimizer = SGD(optimizer)
        let chunkCapacity = (batchCapacity + self.chunks - 1) / self.chunks
        self.chunkCapacity = chunkCapacity
        workspaces = Array(repeating: nil, count: self.chunks)
        chunkLoss = .allocate(capacity: self.chunks)
        chunkLoss.initialize(repeating: 0)
        chunkCorrect = .allocate(capacity: self.chunks)
        chunkCorrect.initialize(repeating: 0)
        savedBuffers = .allocate(capacity: max(1, network.bufferRanges.reduce(0) { $0 + $1.count }))
        savedBuffers.initialize(repeating: 0)
        sampleNorms = .allocate(capacity: self.chunks * chunkCapacity)
        sampleNorms.initialize(repeating: 0)
        sampleFactors = .allocate(capacity: self.chunks * chunkCapacity)
        sampleFactors.initialize(repeating: 0)
        denseLayers = network.layers.enumerated().compactMap { index, layer in
            guard let dense = layer as? Dense else { return nil }
            let start = network.parameterOffsets[index]
            return (index, dense.outputFeatures, start..<(start + dense.outputFeatures * dense.inputFeatures))
        }
        var reduced: [Range<Int>] = [], start = 0
        for layer in denseLayers {
            if start < layer.weights.lowerBound { reduced.append(start..<layer.weights.lowerBound) }
            start = layer.weights.upperBound
        }
        if start < network.parameterCount { reduced.append(start..<network.parameterCount) }
        chunkReducedRanges = reduced
        wholeVector = [0..<network.parameterCount]
        Parallelism.useSingleThreadedBLAS()
        chunkJob = { [unowned self] worker in self.runChunks(worker: worker) }
        deferredJob = { [unowned self] worker in self.formDenseWeightGradients(worker: worker) }
        reduceJob = { [unowned self] worker in self.reduceAndUpdate(worker: worker) }
    }

    deinit {
        gradientStorage?.deallocate()
        chunkLoss.deallocate()
        chunkCorrect.deallocate()
        savedBuffers.deallocate()
        sampleNorms.deallocate()
        sampleFactors.deallocate()
    }

    /// Copies the buffers out of (`save`) or back into `parameters`.
    private func moveBuffers(_ parameters: UnsafeMutablePointer<Float>, save: Bool) {
        var offset = 0
        for range in network.bufferRanges {
            let kept = savedBuffers.baseAddress! + offset, live = parameters + range.lowerBound
            if save { kept.update(from: live, count: range.count) } else { live.update(from: kept, count: range.count) }
            offset += range.count
        }
    }

    /// Samples `start..<start+count` of chunk `chunk` when `total` samples are split `chunks` ways.
    @inline(__always)
    private func chunkRange(_ chunk: Int, total: Int) -> Range<Int> {
        let base = total / chunks, extra = total % chunks
        let start = chunk * base + min(chunk, extra)
        return start..<(start + base + (chunk < extra ? 1 : 0))
    }

    /// Runs `body(worker, chunk, rows)` for the chunks of `total` samples, worker w taking chunks
    /// w, w + workers...; the first `workers` workspaces exist when it runs.
    private func forEachChunk(total: Int, _ body: (Int, Int, Range<Int>) -> Void) {
        let active = min(chunks, total), workers = workers(total: total)
        createWorkspaces(workers)
        Parallelism.run(workers: workers) { worker in
            for chunk in stride(from: worker, to: active, by: workers) {
                body(worker, chunk, chunkRange(chunk, total: total))
            }
        }
    }

    /// Creates the first `count` workspaces not created yet (before the jobs that use them run).
    private func createWorkspaces(_ count: Int) {
        for index in 0..<count where workspaces[index] == nil { workspaces[index] = Workspace(network: network, capacity: chunkCapacity) }
    }

    /// Number of workers for `total` samples.
    private func workers(total: Int) -> Int { min(threads, min(chunks, total)) }

    /// Job body: this worker's chunks of the step in `inputs`, each into its own gradient buffer.
    private func runChunks(worker: Int) {
        let total = inputs.count, active = min(chunks, total), stride = workers(total: total)
        let P = network.parameterCount, inputCount = network.inputCount, classes = network.outputCount
        let scale = 1 / Float(total)
        for chunk in Swift.stride(from: worker, to: active, by: stride) {
            let range = chunkRange(chunk, total: total)
            inputs.source?.load(rows: range)
            let workspace = workspaces[chunk]!
            let x = inputs.images! + range.lowerBound * inputCount
            let parameters = UnsafePointer(inputs.parameters!)
            let chunkGradient = gradients.baseAddress! + chunk * P
            for reduced in reducedRanges { (chunkGradient + reduced.lowerBound).update(repeating: 0, count: reduced.count) }
            var mode = inputs.mode
            mode.firstRow = range.lowerBound
            let logits = workspace.forward(batch: range.count, input: x, parameters: parameters, mode: mode)
            let labels = inputs.labels! + range.lowerBound
            chunkLoss[chunk] = SoftmaxCrossEntropy.lossAndGradient(
                batch: range.count, classes: classes, logits: logits, labels: labels,
                gradientScale: inputs.clip == nil ? scale : 1, logitGradient: workspace.logitGradient)
            if let clip = inputs.clip {
                let norms = sampleNorms.baseAddress! + chunk * chunkCapacity
                let factors = sampleFactors.baseAddress! + chunk * chunkCapacity
                norms.update(repeating: 0, count: range.count)
                workspace.sampleGradientNorms(batch: range.count, input: x, parameters: parameters, squaredNorms: norms)
                for row in 0..<range.count { factors[row] = Self.clipFactor(squaredNorm: norms[row], clip: clip) }
                workspace.accumulateClippedGradient(batch: range.count, input: x, parameters: parameters, factors: factors, gradient: chunkGradient)
                continue
            }
            workspace.backward(batch: range.count, input: x, parameters: parameters, gradient: chunkGradient, mode: mode,
                               deferringDenseWeights: defersDenseWeights)
        }
    }

    /// Rows per block of a deferred dense weight gradient. Blocks are fixed, so how they are
    /// split across threads cannot change a bit. Blocks of a multiple of the GEMM kernel's
    /// register tile also give exactly the bits of one whole product: 48 is a multiple of the
    /// 12 of OpenBLAS's Haswell sgemm kernel (which it also runs on Zen; measured: blocks of 12,
    /// 24, 48 and 96 rows equal the whole product, 32 and 64 do not) and of 4, 8 and 16.
    static let denseRowBlock = 48

    /// Job body: this worker's blocks of rows of every dense layer's weight gradient, formed in
    /// the reduced gradient from each chunk's kept output gradient, in chunk order.
    private func formDenseWeightGradients(worker: Int) {
        let total = inputs.count, reducedGradient = gradients.baseAddress! + chunks * network.parameterCount
        for layer in denseLayers {
            let blocks = (layer.rows + Self.denseRowBlock - 1) / Self.denseRowBlock
            for block in (worker * blocks / threads)..<((worker + 1) * blocks / threads) {
                let rows = (block * Self.denseRowBlock)..<min(layer.rows, (block + 1) * Self.denseRowBlock)
                for chunk in 0..<min(chunks, total) {
                    let range = chunkRange(chunk, total: total)
                    workspaces[chunk]!.accumulateDeferredWeightGradient(
                        layer: layer.index, rows: rows, batch: range.count, input: inputs.images! + range.lowerBound * network.inputCount,
                        beta: chunk == 0 ? 0 : 1, gradient: reducedGradient)
                }
            }
        }
    }

    /// Job body: this worker's slice of the parameters: the chunk gradients summed in chunk order
    /// into the reduced gradient (so the sum does not depend on the slicing; deferred dense
    /// weights are there already), then, when asked, the SGD update of the slice.
    private func reduceAndUpdate(worker: Int) {
        let P = network.parameterCount, base = gradients.baseAddress!
        let range = slice(worker, of: P, workers: threads)
        let total = base + chunks * P
        for reduced in reducedRanges {
            let part = reduced.clamped(to: range)
            guard !part.isEmpty else { continue }
            (total + part.lowerBound).update(from: base + part.lowerBound, count: part.count)
            for chunk in 1..<max(1, min(chunks, inputs.count)) {
                BLAS.axpy(count: part.count, alpha: 1, base + chunk * P + part.lowerBound, total + part.lowerBound)
            }
        }
        if inputs.updateAfterReduce {
            SGD.update(inputs.configuration, parameters: inputs.parameters!, gradient: total, velocity: inputs.velocity,
                       firstStep: inputs.firstStep, range: range)
        }
    }

    /// Part `worker` of `0..<count` split into `workers` ranges aligned to 16 elements.
    private func slice(_ worker: Int, of count: Int, workers: Int) -> Range<Int> {
        let size = ((count + workers - 1) / workers + 15) / 16 * 16
        return min(count, worker * size)..<min(count, (worker + 1) * size)
    }

    /// Allocates the gradients on the first training call, before any job reads them.
    private func allocateGradients() {
        guard gradientStorage == nil else { return }
        let storage = UnsafeMutableBufferPointer<Float>.allocate(capacity: (chunks + 1) * network.parameterCount)
        storage.initialize(repeating: 0)
        gradientStorage = storage
    }

    /// Computes the chunk gradients of a batch in training mode and sums them into the reduced
    /// gradient (plus the SGD update when `update`); returns the batch's summed loss. With
    /// `updatesBuffers` the forward pass updates the running statistics, which are saved for
    /// `moveBuffers` to restore after the update.
    private func runStep(
        parameters: UnsafeMutablePointer<Float>, images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
        source: BatchSource?, update: Bool, seed: UInt64, updatesBuffers: Bool
    ) -> Double {
        precondition(count >= 1 && count <= batchCapacity, "batch \(count) outside 1...\(batchCapacity)")
        allocateGradients()
        createWorkspaces(min(chunks, count))
        inputs.parameters = parameters
        inputs.images = images
        inputs.labels = labels
        inputs.count = count
        inputs.source = source
        inputs.updateAfterReduce = update
        inputs.mode = ForwardMode(training: true, updatesBuffers: updatesBuffers, seed: seed)
        Parallelism.runPrebuilt(workers: workers(total: count), job: chunkJob!)
        if defersDenseWeights { Parallelism.runPrebuilt(workers: threads, job: deferredJob!) }
        if updatesBuffers { moveBuffers(parameters, save: true) }
        Parallelism.runPrebuilt(workers: threads, job: reduceJob!)
        // The pointers were valid only for this call (DESIGN: never store a pointer).
        (inputs.parameters, inputs.images, inputs.labels, inputs.source) = (nil, nil, nil, nil)
        var loss = 0.0
        for chunk in 0..<min(chunks, count) { loss += chunkLoss[chunk] }
        return loss
    }

    /// Overwrites `gradient` with dL/dθ of the mean softmax cross-entropy over `count` samples
    /// (`images`: `count × inputCount`, `labels`: `count` class indices) in training mode and
    /// returns that mean loss; the buffers' gradient is zero and `parameters` are only read.
    /// `source`, when given, fills the rows of `images` and `labels` each chunk is about to read;
    /// `seed` draws Dropout's masks.
    @discardableResult
    public func computeGradient(
        parameters: UnsafePointer<Float>, images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
        into gradient: UnsafeMutablePointer<Float>, source: BatchSource? = nil, seed: UInt64 = 0
    ) -> Double {
        let loss = runStep(parameters: UnsafeMutablePointer(mutating: parameters), images: images, labels: labels, count: count,
                           source: source, update: false, seed: seed, updatesBuffers: false)
        gradient.update(from: gradients.baseAddress! + chunks * network.parameterCount, count: network.parameterCount)
        return loss / Double(count)
    }

    /// One optimizer step on a batch; returns the batch's mean loss before the update.
    /// `source` and `seed` are as in `computeGradient`. `adjustGradient`, when given, may modify
    /// the mean-loss gradient before the update (FedProx's proximal term, SCAFFOLD's correction);
    /// it gets the parameters and the gradient.
    @discardableResult
    public func step(
        parameters: inout [Float], images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
        source: BatchSource? = nil, seed: UInt64 = 0,
        adjustGradient: ((UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) -> Void)? = nil
    ) -> Double {
        precondition(parameters.count == network.parameterCount, "parameter vector belongs to another model")
        let P = network.parameterCount
        allocateGradients()
        let total = gradients.baseAddress! + chunks * P
        inputs.firstStep = optimizer.prepareVelocity(count: P)
        // The jobs read the configuration from `inputs`: `optimizer` is being accessed (mutably,
        // for its velocity buffer) for the whole step.
        inputs.configuration = optimizer.configuration
        return parameters.withUnsafeMutableBufferPointer { p in
            optimizer.withVelocity { velocity in
                inputs.velocity = velocity
                // With an adjustment the update waits for it; otherwise it runs in the reduce job.
                let updatesBuffers = !network.bufferRanges.isEmpty
                let loss = runStep(parameters: p.baseAddress!, images: images, labels: labels, count: count,
                                   source: source, update: adjustGradient == nil, seed: seed, updatesBuffers: updatesBuffers)
                if let adjustGradient {
                    adjustGradient(UnsafeBufferPointer(p), UnsafeMutableBufferPointer(start: total, count: P))
                    let configuration = inputs.configuration, first = inputs.firstStep
                    Parallelism.run(workers: threads) { worker in
                        SGD.update(configuration, parameters: p.baseAddress!, gradient: total, velocity: velocity,
                                   firstStep: first, range: slice(worker, of: P, workers: threads))
                    }
                }
                if updatesBuffers { moveBuffers(p.baseAddress!, save: false) }
                inputs.velocity = nil
                return loss / Double(count)
            }
        }
    }

    /// Overwrites `sum` with Σᵢ min(1, C/‖gᵢ‖)·gᵢ over the `count` samples, gᵢ the gradient of
    /// sample i's loss (DP-SGD's clipped sum, Abadi et al. 2016), and returns the summed loss.
    /// Batched: one forward pass, one backward pass that computes each sample's gradient norm
    /// (`Workspace.sampleGradientNorms`: closed form for dense layers, Goodfellow 2015;
    /// per-sample gradients for the others), then the clipped sum from what it kept
    /// (`Workspace.accumulateClippedGradient`; Bu et al. 2023's book-keeping, so no second
    /// backward pass). No per-sample gradient of the whole model is formed.
    /// The factor keeps a relative margin of 1e-5 below C: the norms (the dense layers' closed
    /// form) and the weighted sums round differently (about 1e-6 relative in Float), and a
    /// clipped gradient recomputed in Double must stay within C. The network must not mix samples or draw random numbers.
    @discardableResult
    public func clippedGradientSum(
        parameters: UnsafePointer<Float>, images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
        clip: Double, into sum: UnsafeMutablePointer<Float>, source: BatchSource? = nil
    ) -> Double {
        precondition(clip > 0 && clip.isFinite, "clip bound must be a positive number")
        inputs.clip = clip
        defer { inputs.clip = nil }
        let loss = runStep(parameters: UnsafeMutablePointer(mutating: parameters), images: images, labels: labels, count: count,
                           source: source, update: false, seed: 0, updatesBuffers: false)
        sum.update(from: gradients.baseAddress! + chunks * network.parameterCount, count: network.parameterCount)
        return loss
    }

    /// min(1, C/‖g‖) with the margin `clippedGradientSum` documents.
    static func clipFactor(squaredNorm: Double, clip: Double) -> Float {
        let bound = clip * (1 - 1e-5), norm = squaredNorm.squareRoot()
        return norm <= bound ? 1 : Float(bound / norm)
    }

    /// Sum of per-sample losses and number of correct first-arg-max predictions over `count`
    /// samples (forward only).
    public func evaluate(
        parameters: UnsafePointer<Float>, images: UnsafePointer<Float>, labels: UnsafePointer<Int32>, count: Int,
        source: BatchSource? = nil
    ) -> (lossSum: Double, correct: Int) {
        precondition(count >= 1 && count <= batchCapacity, "batch \(count) outside 1...\(batchCapacity)")
        let inputCount = network.inputCount, classes = network.outputCount
        forEachChunk(total: count) { worker, chunk, range in
            source?.load(rows: range)
            let logits = workspaces[worker]!.forward(batch: range.count, input: images + range.lowerBound * inputCount,
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
