import Engine
import Testing
import TestSupport

@Suite struct LeNet5Tests {
    @Test func layoutMatchesPyTorchStateDict() {
        let layout = LeNet5.grayscale.layout
        #expect(layout.entries.map(\.name) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                               "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"])
        #expect(layout["conv1.weight"]?.shape == [6, 1, 5, 5])
        #expect(layout["fc1.weight"]?.shape == [120, 400])
        #expect(layout.count == 61_706)
        let rgb = LeNet5.rgb.layout
        #expect(rgb["conv1.weight"]?.shape == [6, 3, 5, 5])
        #expect(rgb["fc1.weight"]?.shape == [120, 400])
        #expect(rgb.count == 62_006)
        #expect(layout.fingerprint != rgb.fingerprint)
    }

    @Test func initializationIsSeededAndBoundedByFanIn() {
        let network = LeNet5.grayscale
        var first = SeededGenerator(seed: 42), second = SeededGenerator(seed: 42), other = SeededGenerator(seed: 43)
        let a = network.initialParameters(using: &first)
        #expect(a == network.initialParameters(using: &second))
        #expect(a != network.initialParameters(using: &other))
        let fanIns = ["conv1": 25, "conv2": 150, "fc1": 400, "fc2": 120, "fc3": 84]
        for entry in network.layout.entries {
            let bound = 1 / Float(fanIns[String(entry.name.split(separator: ".")[0])]!).squareRoot()
            let values = a[entry.range]
            #expect(values.allSatisfy { abs($0) <= bound }, "\(entry.name) exceeds ±\(bound)")
            if entry.count >= 400 {
                // Uniform on ±bound: the extremes come close to the bound, the mean is near 0.
                #expect(values.map(abs).max()! > 0.95 * bound)
                #expect(abs(values.reduce(0, +) / Float(entry.count)) < 0.1 * bound)
            }
        }
    }

    /// Whole-network check of dL/dθ (mean cross-entropy) against central differences.
    ///
    /// LeNet-5 is piecewise smooth: inside one piece (every ReLU sign and max-pool winner fixed)
    /// central differences are exact up to rounding, across a kink they are not. So each sampled
    /// coordinate is compared where θ ± h stays in θ's piece, and most coordinates must qualify.
    @Test func wholeNetworkGradientMatchesFiniteDifferences() {
        let network = LeNet5.grayscale
        var generator = SeededGenerator(seed: 5)
        let parameters = network.initialParameters(using: &generator)
        let batch = 2
        let images = randomArray(batch * network.inputCount, seed: 6)
        let labels: [Int32] = [1, 7]
        let workspace = Workspace(network: network, capacity: batch)
        func run(_ p: [Float], gradient: inout [Float]) -> (loss: Double, piece: [Int]) {
            p.withUnsafeBufferPointer { p in
                images.withUnsafeBufferPointer { x in
                    labels.withUnsafeBufferPointer { y in
                        gradient.withUnsafeMutableBufferPointer { g in
                            let logits = workspace.forward(batch: batch, input: x.baseAddress!, parameters: p.baseAddress!)
                            let loss = SoftmaxCrossEntropy.lossAndGradient(
                                batch: batch, classes: 10, logits: logits, labels: y.baseAddress!,
                                gradientScale: 1 / Float(batch), logitGradient: workspace.logitGradient)
                            workspace.backward(batch: batch, input: x.baseAddress!, parameters: p.baseAddress!, gradient: g.baseAddress!)
                            return (loss / Double(batch), piece(of: network, workspace: workspace, batch: batch))
                        }
                    }
                }
            }
        }
        var analytic = [Float](repeating: 0, count: parameters.count), unused = analytic
        let center = run(parameters, gradient: &analytic)
        let h: Float = 1e-3
        var compared = 0, sampled = 0
        for entry in network.layout.entries {
            for _ in 0..<min(entry.count, 20) {
                let i = entry.offset + Int(generator.next() % UInt64(entry.count))
                sampled += 1
                var plus = parameters, minus = parameters
                plus[i] += h
                minus[i] -= h
                let (up, down) = (run(plus, gradient: &unused), run(minus, gradient: &unused))
                guard up.piece == center.piece, down.piece == center.piece else { continue }
                compared += 1
                let numeric = (up.loss - down.loss) / Double(2 * h)
                #expect(abs(Double(analytic[i]) - numeric) <= 2e-4 + 1e-2 * abs(numeric), "\(entry.name)[\(i - entry.offset)]")
            }
        }
        #expect(compared >= sampled * 3 / 4, "only \(compared) of \(sampled) coordinates stayed in one smooth piece")
    }
}

/// The smooth piece the last forward pass lies in: the sign of every ReLU output and the winner of
/// every max-pool window, as indices.
func piece(of network: Sequential, workspace: Workspace, batch: Int) -> [Int] {
    var signature: [Int] = []
    for (index, layer) in network.layers.enumerated() {
        let output = workspace.activation(index)
        if layer is ReLU {
            for k in 0..<(batch * layer.outputCount) where output[k] > 0 { signature.append(k) }
        } else if let pool = layer as? MaxPool2D {
            let g = pool.geometry, input = workspace.activation(index - 1)
            for plane in 0..<(batch * g.channels) {
                for oy in 0..<g.outputHeight {
                    for ox in 0..<g.outputWidth {
                        let value = output[(plane * g.outputHeight + oy) * g.outputWidth + ox]
                        let window = (0..<(g.kernelSize * g.kernelSize)).first { w in
                            input[(plane * g.height + oy * g.stride + w / g.kernelSize) * g.width + ox * g.stride + w % g.kernelSize] == value
                        }!
                        signature.append(window)
                    }
                }
            }
        }
    }
    return signature
}

@Suite struct SGDTests {
    func run(_ configuration: SGDConfiguration, parameters: [Float], gradients: [[Float]]) -> [Float] {
        var sgd = SGD(configuration)
        var p = parameters
        for gradient in gradients {
            var g = gradient
            p.withUnsafeMutableBufferPointer { p in g.withUnsafeMutableBufferPointer { sgd.step(parameters: p, gradient: $0) } }
        }
        return p
    }

    @Test func plainStep() {
        #expect(run(SGDConfiguration(learningRate: 0.5), parameters: [1, 2], gradients: [[2, -4]]) == [0, 4])
    }

    /// PyTorch: buf₁ = g₁; bufₜ = μ·bufₜ₋₁ + (1 − dampening)·gₜ; θ −= lr·buf.
    @Test func momentumAndDampening() {
        let p = run(SGDConfiguration(learningRate: 0.1, momentum: 0.9, dampening: 0.5), parameters: [1], gradients: [[1], [2]])
        // buf1 = 1, θ = 0.9; buf2 = 0.9·1 + 0.5·2 = 1.9, θ = 0.9 − 0.19 = 0.71
        #expect(abs(p[0] - 0.71) < 1e-6)
    }

    /// Nesterov: g ← g + μ·buf. Weight decay: g ← g + wd·θ before momentum.
    @Test func nesterovWithWeightDecay() {
        let p = run(SGDConfiguration(learningRate: 0.1, momentum: 0.5, weightDecay: 0.1, nesterov: true),
                    parameters: [2], gradients: [[1], [1]])
        // step 1: g = 1 + 0.2 = 1.2, buf = 1.2, g = 1.2 + 0.6 = 1.8, θ = 2 − 0.18 = 1.82
        // step 2: g = 1 + 0.182 = 1.182, buf = 0.6 + 1.182 = 1.782, g = 1.182 + 0.891 = 2.073, θ = 1.82 − 0.2073 = 1.6127
        #expect(abs(p[0] - 1.6127) < 1e-5)
    }
}

@Suite struct TrainerTests {
    static let network = LeNet5.grayscale

    func train(chunks: Int, threads: Int, steps: Int = 3, batch: Int = 10) -> [Float] {
        var generator = SeededGenerator(seed: 1)
        var parameters = Self.network.initialParameters(using: &generator)
        let trainer = Trainer(network: Self.network, optimizer: SGDConfiguration(learningRate: 0.05, momentum: 0.9),
                              batchCapacity: batch, chunks: chunks, threads: threads)
        let images = randomArray(batch * Self.network.inputCount, seed: 2)
        let labels = (0..<batch).map { Int32($0 % 10) }
        for _ in 0..<steps {
            images.withUnsafeBufferPointer { x in
                labels.withUnsafeBufferPointer { y in
                    _ = trainer.step(parameters: &parameters, images: x.baseAddress!, labels: y.baseAddress!, count: batch)
                }
            }
        }
        return parameters
    }

    @Test func bitIdenticalAcrossThreadCountsForFixedChunks() {
        #expect(train(chunks: 4, threads: 1) == train(chunks: 4, threads: 2))
        #expect(train(chunks: 4, threads: 2) == train(chunks: 4, threads: 3))
    }

    /// With several chunks the dense weight gradients are formed after the chunks, in row blocks
    /// (`Trainer.denseRowBlock`; LeNet-5's fc1 has 120 rows: blocks of 48, 48 and 24). They must
    /// equal each chunk's own full backward pass summed in chunk order, biases included.
    @Test func deferredDenseWeightGradientsEqualPerChunkBackwardSums() {
        let network = Self.network, batch = 10, chunks = 3, P = network.parameterCount
        var generator = SeededGenerator(seed: 5)
        let parameters = network.initialParameters(using: &generator)
        let images = randomArray(batch * network.inputCount, seed: 6)
        let labels = (0..<batch).map { Int32(($0 * 7) % 10) }
        var deferred = [Float](repeating: 0, count: P)
        let trainer = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchCapacity: batch, chunks: chunks, threads: 2)
        var reference = [Float](repeating: 0, count: P)
        parameters.withUnsafeBufferPointer { p in images.withUnsafeBufferPointer { x in labels.withUnsafeBufferPointer { y in
            deferred.withUnsafeMutableBufferPointer { g in
                _ = trainer.computeGradient(parameters: p.baseAddress!, images: x.baseAddress!, labels: y.baseAddress!, count: batch, into: g.baseAddress!)
            }
            // Chunks of 4, 3 and 3 samples, as `Trainer.chunkRange` splits 10 three ways.
            var start = 0
            for size in [4, 3, 3] {
                let workspace = Workspace(network: network, capacity: size)
                let input = x.baseAddress! + start * network.inputCount
                let logits = workspace.forward(batch: size, input: input, parameters: p.baseAddress!, mode: ForwardMode(training: true, updatesBuffers: false, seed: 0))
                _ = SoftmaxCrossEntropy.lossAndGradient(batch: size, classes: network.outputCount, logits: logits, labels: y.baseAddress! + start,
                                                        gradientScale: 1 / Float(batch), logitGradient: workspace.logitGradient)
                var chunkGradient = [Float](repeating: 0, count: P)
                chunkGradient.withUnsafeMutableBufferPointer { workspace.backward(batch: size, input: input, parameters: p.baseAddress!, gradient: $0.baseAddress!) }
                for i in 0..<P { reference[i] = start == 0 ? chunkGradient[i] : reference[i] + chunkGradient[i] }
                start += size
            }
        } } }
        #expect(closeness(deferred, reference, rtol: 1e-6, atol: 1e-9) <= 1)
        #expect(deferred.contains { $0 != 0 })
    }

    @Test func chunkingComputesTheSameMeanGradient() {
        #expect(closeness(train(chunks: 3, threads: 2), train(chunks: 1, threads: 1), rtol: 1e-4, atol: 1e-6) <= 1)
    }

    @Test func lossDecreasesOnAFixedBatch() {
        var generator = SeededGenerator(seed: 3)
        var parameters = Self.network.initialParameters(using: &generator)
        let trainer = Trainer(network: Self.network, optimizer: SGDConfiguration(learningRate: 0.05, momentum: 0.9), batchCapacity: 8, chunks: 2, threads: 2)
        let images = randomArray(8 * Self.network.inputCount, seed: 4)
        let labels: [Int32] = [0, 1, 2, 3, 4, 5, 6, 7]
        var losses: [Double] = []
        for _ in 0..<100 {
            images.withUnsafeBufferPointer { x in
                labels.withUnsafeBufferPointer { y in
                    losses.append(trainer.step(parameters: &parameters, images: x.baseAddress!, labels: y.baseAddress!, count: 8))
                }
            }
        }
        #expect(losses.last! < 0.1 * losses.first!)
        let evaluation = parameters.withUnsafeBufferPointer { p in
            images.withUnsafeBufferPointer { x in labels.withUnsafeBufferPointer { y in
                trainer.evaluate(parameters: p.baseAddress!, images: x.baseAddress!, labels: y.baseAddress!, count: 8) } }
        }
        #expect(evaluation.correct == 8)
    }

    /// A network on the default per-sample path of every kind of convolution (three input
    /// channels, stride 2, padding; 16 output channels: the channel-blocked kernels) and pooling.
    static let stridedNetwork = Sequential([
        ("0", Conv2D(inputChannels: 3, outputChannels: 16, kernelSize: 3, stride: 2, padding: 1, inputHeight: 12, inputWidth: 12)),
        (nil, ReLU(shape: [16, 6, 6])),
        ("2", Conv2D(inputChannels: 16, outputChannels: 16, kernelSize: 3, padding: 1, inputHeight: 6, inputWidth: 6)),
        (nil, AvgPool2D(channels: 16, inputHeight: 6, inputWidth: 6, kernelSize: 2)),
        (nil, Flatten(shape: [16, 3, 3])),
        ("5", Dense(inputFeatures: 144, outputFeatures: 7)),
    ])

    /// DP-SGD's batched clipped sum against the naive reference: each sample's gradient from its
    /// own batch-of-one backward pass, clipped in Double, summed. Chunks and threads do not change it.
    /// Every layer's `parameterCount` (answered without building arrays where there are
    /// parameters) is the count of its `parameterShapes`.
    @Test func parameterCountsMatchTheShapes() {
        let batchNorm = BatchNorm(shape: [16, 6, 6])
        for layer in LeNet5.grayscale.layers + Self.stridedNetwork.layers + Self.denseNetwork.layers + [batchNorm] {
            #expect(layer.parameterCount == layer.parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }, "\(type(of: layer))")
        }
    }

    /// Dense layers only, the first one without an input gradient.
    static let denseNetwork = Sequential([
        ("0", Dense(inputFeatures: 12, outputFeatures: 8)), (nil, ReLU(shape: [8])), ("2", Dense(inputFeatures: 8, outputFeatures: 5)),
    ])

    @Test(arguments: ["lenet5", "strided", "dense"])
    func clippedGradientSumEqualsPerSampleReference(name: String) {
        let (network, classes) = name == "lenet5" ? (LeNet5.grayscale, 10) : name == "strided" ? (Self.stridedNetwork, 7) : (Self.denseNetwork, 5)
        let batch = 9, P = network.parameterCount
        var generator = SeededGenerator(seed: 5)
        let parameters = network.initialParameters(using: &generator)
        let images = randomArray(batch * network.inputCount, seed: 6)
        let labels = (0..<batch).map { Int32($0 % classes) }
        let single = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchCapacity: 1)
        var perSample: [[Float]] = [], losses: [Double] = []
        for i in 0..<batch {
            var gradient = [Float](repeating: 0, count: P)
            losses.append(gradient.withUnsafeMutableBufferPointer { g in
                single.computeGradient(parameters: parameters, images: images.withUnsafeBufferPointer { $0.baseAddress! + i * network.inputCount },
                                       labels: labels.withUnsafeBufferPointer { $0.baseAddress! + i }, count: 1, into: g.baseAddress!)
            })
            perSample.append(gradient)
        }
        let norms = perSample.map { g in g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        let clip = norms.sorted()[batch / 2]
        var reference = [Float](repeating: 0, count: P)
        for (gradient, norm) in zip(perSample, norms) {
            let factor = Float(min(1, clip / norm))
            for j in 0..<P { reference[j] += factor * gradient[j] }
        }
        func clipped(chunks: Int, threads: Int, count: Int = batch, clip: Double = clip, offset: Int = 0) -> ([Float], Double) {
            let trainer = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchCapacity: batch, chunks: chunks, threads: threads)
            var sum = [Float](repeating: .nan, count: P)
            let loss = sum.withUnsafeMutableBufferPointer { s in
                images.withUnsafeBufferPointer { x in labels.withUnsafeBufferPointer { y in
                    trainer.clippedGradientSum(parameters: parameters, images: x.baseAddress! + offset * network.inputCount,
                                               labels: y.baseAddress! + offset, count: count, clip: clip, into: s.baseAddress!) } }
            }
            return (sum, loss)
        }
        /// ‖a − reference‖ / ‖reference‖, in Double.
        func relativeError(_ a: [Float]) -> Double {
            zip(a, reference).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
                / reference.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        }
        let (sum, loss) = clipped(chunks: 1, threads: 1)
        #expect(relativeError(sum) <= 5e-5)
        #expect(abs(loss - losses.reduce(0, +)) <= 1e-5 * loss)
        #expect(clipped(chunks: 3, threads: 1).0 == clipped(chunks: 3, threads: 2).0)
        #expect(relativeError(clipped(chunks: 3, threads: 2).0) <= 5e-5)
        // Alone, each sample's clipped gradient stays within C recomputed in Double.
        for i in 0..<batch {
            let alone = clipped(chunks: 1, threads: 1, count: 1, offset: i).0
            let norm = alone.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(norm <= clip, "sample \(i): \(norm) > \(clip)")
            let factor = min(1, clip / norms[i])
            let error = zip(alone, perSample[i]).reduce(0.0) { $0 + (Double($1.0) - factor * Double($1.1)) * (Double($1.0) - factor * Double($1.1)) }.squareRoot()
            #expect(error <= 5e-5 * factor * norms[i], "sample \(i)")
        }
    }
}
