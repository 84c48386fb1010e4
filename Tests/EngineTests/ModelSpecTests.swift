import Engine
import Foundation
import Testing
import TestSupport

/// Average pooling against a hand-computed case and finite differences (it is linear, so the
/// differences are exact up to rounding).
@Suite struct AvgPoolTests {
    @Test func windowsAverageTheirInputs() {
        // 1×3×4 plane, 2×2 windows with stride 1 overlap: 2×3 outputs.
        let layer = AvgPool2D(channels: 1, inputHeight: 3, inputWidth: 4, kernelSize: 2, stride: 1)
        let input: [Float] = [1, 2, 3, 4,
                              5, 6, 7, 8,
                              9, 10, 11, 12]
        let harness = LayerHarness(layer: layer, batch: 1)
        #expect(harness.forward(input: input, parameters: []) == [3.5, 4.5, 5.5, 7.5, 8.5, 9.5])
        // Each input's gradient is the sum of dy/4 over the windows holding it.
        let gradient = harness.backward(input: input, parameters: [], projection: [4, 8, 12, 16, 20, 24]).input
        #expect(gradient == [1, 3, 5, 3, 5, 12, 16, 9, 4, 9, 11, 6])
    }

    @Test(arguments: [(2, 6, 6, 2, 2), (3, 7, 5, 3, 2), (1, 5, 5, 2, 1)])
    func gradientsMatchFiniteDifferences(channels: Int, height: Int, width: Int, kernel: Int, stride: Int) {
        let layer = AvgPool2D(channels: channels, inputHeight: height, inputWidth: width, kernelSize: kernel, stride: stride)
        checkLayerGradients(layer, batch: 2, seed: 31)
    }
}

@Suite struct ModelSpecTests {
    static func decode(_ json: String) throws -> ModelSpec {
        try JSONDecoder().decode(ModelSpec.self, from: Data(json.utf8))
    }

    @Test func shapesAreThreadedThroughEveryLayerKind() throws {
        let spec = try Self.decode("""
            {"layers": [{"conv": {"out": 4, "kernel": 5, "stride": 2, "padding": 1}}, "relu", {"maxpool": {"kernel": 3, "stride": 2}},
                        {"avgpool": 2}, {"conv": {"out": 6, "kernel": 1}}, "flatten", {"dense": 9}, "relu", {"dense": "classes"}]}
            """)
        let network = try spec.build(input: [2, 33, 31], classes: 5)
        // conv: ⌊(33+2−5)/2⌋+1 = 16, ⌊(31+2−5)/2⌋+1 = 15; maxpool 3/2: 7×7; avgpool 2: 3×3; conv 1×1: 6×3×3.
        #expect(network.layers.map(\.outputShape) == [[4, 16, 15], [4, 7, 7], [4, 7, 7], [4, 3, 3], [6, 3, 3], [54], [9], [9], [5]])
        #expect(network.layout.entries.map(\.name) == ["0.weight", "0.bias", "4.weight", "4.bias", "6.weight", "6.bias", "8.weight", "8.bias"])
        #expect(network.layout.entries.map(\.shape) == [[4, 2, 5, 5], [4], [6, 4, 1, 1], [6], [9, 54], [9], [5, 9], [5]])
    }

    @Test func fedAvgCNNHasThePapersParameterCount() throws {
        #expect(try ModelSpec.fedAvgCNN.build(input: [1, 28, 28], classes: 10).parameterCount == 1_663_370)
    }

    /// A ReLU before a max pool runs after it: outputs and gradients equal the described order's.
    @Test func reluBeforeMaxPoolRunsAfterItWithTheSameResults() throws {
        let spec = ModelSpec(layers: [.conv(out: 3, kernel: 3, stride: 1, padding: 1), .relu, .maxpool(kernel: 2, stride: nil),
                                      .flatten, .dense(.classes)])
        let swapped = try spec.build(input: [1, 6, 6], classes: 4)
        #expect(swapped.layers[1] is MaxPool2D && swapped.layers[2] is ReLU)
        let conv = swapped.layers[0], pool = swapped.layers[1]
        let literal = Sequential([("0", conv), (nil, ReLU(shape: conv.outputShape)), (nil, pool),
                                  (nil, swapped.layers[3]), ("4", swapped.layers[4])])
        var generator = SeededGenerator(seed: 3)
        let parameters = swapped.initialParameters(using: &generator)
        let images = randomArray(3 * 36, seed: 4), labels: [Int32] = [0, 3, 1]
        func run(_ network: Sequential) -> (Double, [Float]) {
            let trainer = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchCapacity: 3, chunks: 1, threads: 1)
            var gradient = [Float](repeating: 0, count: network.parameterCount)
            let loss = gradient.withUnsafeMutableBufferPointer { g in
                trainer.computeGradient(parameters: parameters, images: images, labels: labels, count: 3, into: g.baseAddress!)
            }
            return (loss, gradient)
        }
        let (a, b) = (run(swapped), run(literal))
        #expect(a.0 == b.0 && a.1 == b.1)
    }

    @Test(arguments: [
        (#"{"layers": [{"conv": {"out": -2, "kernel": 3}}, "flatten", {"dense": "classes"}]}"#, "model layer 0 (conv): out must be at least 1 (got -2)"),
        (#"{"layers": [{"conv": {"out": 2, "kernel": 0}}, "flatten", {"dense": "classes"}]}"#, "model layer 0 (conv): kernel must be at least 1 (got 0)"),
        (#"{"layers": [{"conv": {"out": 2, "kernel": 3, "padding": -1}}, "flatten", {"dense": "classes"}]}"#, "model layer 0 (conv): padding must be at least 0 (got -1)"),
        (#"{"layers": [{"conv": {"out": 2, "kernel": 3, "stride": 0}}, "flatten", {"dense": "classes"}]}"#, "model layer 0 (conv): stride must be at least 1 (got 0)"),
        (#"{"layers": ["relu", {"conv": {"out": 2, "kernel": 9}}, "flatten", {"dense": "classes"}]}"#, "model layer 1 (conv): kernel 9 is larger than its padded input 8×8"),
        (#"{"layers": [{"maxpool": 9}, "flatten", {"dense": "classes"}]}"#, "model layer 0 (maxpool): window 9 is larger than its input 8×8"),
        (#"{"layers": [{"avgpool": {"kernel": 2, "stride": 0}}, "flatten", {"dense": "classes"}]}"#, "model layer 0 (avgpool): stride must be at least 1 (got 0)"),
        (#"{"layers": [{"dense": 5}]}"#, "model layer 0 (dense): needs a flat input, got [1, 8, 8] (put flatten before it)"),
        (#"{"layers": ["flatten", {"dense": 0}, {"dense": "classes"}]}"#, "model layer 1 (dense): out must be at least 1 (got 0)"),
        (#"{"layers": ["flatten", {"maxpool": 2}, {"dense": "classes"}]}"#, "model layer 1 (maxpool): needs a [channels, height, width] input, got [64] (it comes after flatten or dense)"),
        (#"{"layers": ["flatten", {"dense": 7}]}"#, "model: the last layer (1, dense) produces [7] per sample; the data has 3 classes (end with dense: classes)"),
        (#"{"layers": []}"#, "model: no layers"),
        (#"{"layers": ["flatten", {"dropout": 0.99999999999}, {"dense": "classes"}]}"#, "model layer 1 (dropout): probability must be in [0, 1) (got 0.99999999999)"),
        (#"{"layers": [{"conv": {"out": 2, "kernel": 3, "padding": 4611686018427387904}}, "flatten", {"dense": "classes"}]}"#, "model layer 0 (conv): padding 4611686018427387904 exceeds 1048576"),
        (#"{"layers": ["flatten", {"dense": 1048576}, {"dense": 1048576}, {"dense": "classes"}]}"#, "model layer 2 (dense): 1048576×1048576 weights are too many"),
        (#"{"layers": ["flatten", {"dropout": 1.5}, {"dense": "classes"}]}"#, "model layer 1 (dropout): probability must be in [0, 1) (got 1.5)"),
        (#"{"input": [3, 8, 8], "layers": ["flatten", {"dense": "classes"}]}"#, "model: input [3, 8, 8] does not match the data's [1, 8, 8]"),
    ])
    func malformedSpecsAreRefusedNamingTheLayer(json: String, message: String) throws {
        let spec = try Self.decode(json)
        #expect(throws: ModelSpecError(message)) { try spec.build(input: [1, 8, 8], classes: 3) }
    }

    @Test(arguments: [
        (#"{"layers": ["flatten", "softmax"]}"#, "model layer 1: unknown layer softmax; known layers: conv, maxpool, avgpool, dense, relu, flatten, batchnorm, dropout"),
        (#"{"layers": [{"conv": {"out": 2}}]}"#, "model layer 0: conv needs kernel"),
        (#"{"layers": [{"conv": {"out": 2, "kernel": 3, "dilation": 2}}]}"#, "model layer 0: conv has no setting dilation; its settings: out, kernel, stride, padding"),
        (#"{"layers": [{"dense": "many"}]}"#, "model layer 0: dense takes a number of units or classes, got many"),
        (#"{"layers": ["conv"]}"#, "model layer 0: conv needs settings (for example conv: ...)"),
        (#"{"layers": [{"relu": 1}]}"#, "model layer 0: relu takes no settings (write - relu)"),
        (#"{"layers": [{"batchnorm": 1}]}"#, "model layer 0: batchnorm takes no settings (write - batchnorm)"),
        (#"{"layers": [{"dropout": "half"}]}"#, "model layer 0: dropout takes a probability, for example dropout: 0.5"),
        (#"{"layers": [{"conv": {"out": 1, "kernel": 1}, "relu": 1}]}"#, #"model layer 0: expected one layer name per list item, got ["conv", "relu"]"#),
    ])
    func malformedLayersAreRefusedWhenRead(json: String, message: String) {
        #expect {
            try Self.decode(json)
        } throws: { error in
            guard case DecodingError.dataCorrupted(let context) = error else { return false }
            return context.debugDescription == message
        }
    }

    @Test func descriptionsRoundTripThroughCodable() throws {
        let spec = ModelSpec(input: [3, 32, 32], layers: [.conv(out: 8, kernel: 3, stride: 2, padding: 1), .relu,
                                                          .maxpool(kernel: 3, stride: 2), .avgpool(kernel: 2, stride: nil),
                                                          .batchnorm, .flatten, .dense(.units(16)), .dropout(0.25), .dense(.classes)])
        let decoded = try JSONDecoder().decode(ModelSpec.self, from: JSONEncoder().encode(spec))
        #expect(decoded == spec)
    }
}

/// BatchNorm and Dropout beyond the PyTorch golden fixture (`GoldenTests`, batchnorm model):
/// finite differences through the batch statistics, Dropout's masks and their independence from
/// chunking, and the optimizer leaving buffers alone.
@Suite struct NormalizationAndDropoutTests {
    static let spec = ModelSpec(layers: [.conv(out: 3, kernel: 3, stride: 1, padding: 1), .batchnorm, .relu, .flatten,
                                         .dense(.units(6)), .batchnorm, .dropout(0.4), .dense(.classes)])

    func gradient(_ trainer: Trainer, _ parameters: [Float], _ images: [Float], _ labels: [Int32], seed: UInt64) -> (Double, [Float]) {
        var gradient = [Float](repeating: .nan, count: trainer.network.parameterCount)
        let loss = gradient.withUnsafeMutableBufferPointer { g in
            trainer.computeGradient(parameters: parameters, images: images, labels: labels, count: labels.count, into: g.baseAddress!, seed: seed)
        }
        return (loss, gradient)
    }

    /// Without ReLU kinks, so central differences see a smooth function (Dropout's mask is fixed by the seed).
    @Test func trainingGradientsMatchFiniteDifferences() throws {
        let smooth = ModelSpec(layers: [.conv(out: 3, kernel: 3, stride: 1, padding: 1), .batchnorm, .flatten,
                                        .dense(.units(6)), .batchnorm, .dropout(0.4), .dense(.classes)])
        let network = try smooth.build(input: [2, 4, 4], classes: 3)
        var generator = SeededGenerator(seed: 5)
        var parameters = network.initialParameters(using: &generator)
        // Non-trivial γ and β, so their gradients and the scale path are exercised.
        for entry in network.layout.entries where entry.name.hasSuffix("1.weight") || entry.name.hasSuffix("5.bias") {
            for i in entry.range { parameters[i] = generator.nextUniform(0.5, 1.5) }
        }
        let images = randomArray(5 * 32, seed: 6), labels: [Int32] = [0, 2, 1, 1, 0]
        let trainer = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchCapacity: 5)
        let (_, analytic) = gradient(trainer, parameters, images, labels, seed: 9)
        let numeric = numericGradient(of: { gradient(trainer, $0, images, labels, seed: 9).0 }, at: parameters, step: 1e-3)
        let buffers = Set(network.bufferRanges.flatMap { Array($0) })
        for i in parameters.indices {
            if buffers.contains(i) {
                #expect(analytic[i] == 0, "buffer \(i) has a gradient")
            } else {
                #expect(abs(analytic[i] - numeric[i]) <= 1e-3 + 1e-2 * abs(numeric[i]), "parameter \(i): \(analytic[i]) vs \(numeric[i])")
            }
        }
    }

    /// A batch run whole or as two chunks (rows 0-2 and 3-6) draws the same masks; trainers with
    /// 1 and 3 chunks agree up to their summation order, and another seed draws other masks.
    @Test func dropoutMasksFollowTheSeedNotTheChunks() throws {
        let layer = Dropout(shape: [40], probability: 0.5)
        let input = randomArray(7 * 40, seed: 2)
        var state: [Float] = [0], scratch: [Float] = [0]
        func run(_ rows: Range<Int>) -> [Float] {
            var output = [Float](repeating: .nan, count: rows.count * 40)
            input.withUnsafeBufferPointer { x in
                output.withUnsafeMutableBufferPointer { y in
                    layer.forward(batch: rows.count, input: x.baseAddress! + rows.lowerBound * 40, output: y.baseAddress!, state: &state,
                                  scratch: &scratch, mode: ForwardMode(training: true, seed: 11, firstRow: rows.lowerBound, layer: 2))
                }
            }
            return output
        }
        #expect(run(0..<7) == run(0..<3) + run(3..<7))
        // The masks' allocation-free generator is the variadic one's stream.
        #expect(SeededGenerator.derived(seed: 11, 2, then: 5) == SeededGenerator.derived(seed: 11, 2, 5))
        let network = try ModelSpec(layers: [.flatten, .dense(.units(8)), .dropout(0.5), .dense(.classes)]).build(input: [2, 4, 4], classes: 3)
        var generator = SeededGenerator(seed: 3)
        let parameters = network.initialParameters(using: &generator)
        let images = randomArray(7 * 32, seed: 4), labels: [Int32] = [0, 1, 2, 0, 1, 2, 0]
        let one = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchCapacity: 7, chunks: 1)
        let three = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.1), batchCapacity: 7, chunks: 3, threads: 2)
        let a = gradient(one, parameters, images, labels, seed: 11), b = gradient(three, parameters, images, labels, seed: 11)
        #expect(abs(a.0 - b.0) < 1e-6 && zip(a.1, b.1).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(gradient(one, parameters, images, labels, seed: 12).1 != a.1, "another seed, another mask")
        // BatchNorm's statistics are the whole batch's: its networks train in one chunk.
        #expect(Trainer(network: try Self.spec.build(input: [2, 4, 4], classes: 3), optimizer: .init(learningRate: 0.1),
                        batchCapacity: 7, chunks: 3).chunks == 1)
    }

    @Test func dropoutKeepsAboutOneMinusPAndScalesLikePyTorch() {
        let layer = Dropout(shape: [1000], probability: 0.3)
        let input = (0..<4000).map { Float($0 % 97) * 0.37 + 1 }
        var output = [Float](repeating: .nan, count: 4000), scratch: [Float] = [0]
        var state: [Float] = [0]
        let mode = ForwardMode(training: true, seed: 42, firstRow: 0)
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                layer.forward(batch: 4, input: x.baseAddress!, output: y.baseAddress!, state: &state, scratch: &scratch, mode: mode)
            }
        }
        let kept = zip(input, output).filter { $0.1 != 0 }
        // 4000 Bernoulli(0.7) draws: the count lies within 5 standard deviations (29) of 2800.
        #expect(abs(kept.count - 2800) < 145)
        // PyTorch: x · (1/(1 − p)) with the scale computed in float.
        let scale: Float = 1 / Float(0.7)
        #expect(kept.allSatisfy { $0.1 == $0.0 * scale })
        // Backward routes the gradient through the same mask; evaluation is the identity.
        var gradient = [Float](repeating: .nan, count: 4000)
        let ones = [Float](repeating: 1, count: 4000), none: [Float] = [0]
        ones.withUnsafeBufferPointer { dy in
            gradient.withUnsafeMutableBufferPointer { dx in
                layer.backward(batch: 4, input: dy.baseAddress!, output: dy.baseAddress!, outputGradient: dy.baseAddress!,
                               inputGradient: dx.baseAddress!, parameters: none, parameterGradient: &state, scratch: &scratch, mode: mode)
            }
        }
        #expect(zip(output, gradient).allSatisfy { ($0.0 == 0) == ($0.1 == 0) })
        #expect(LayerHarness(layer: layer, batch: 4).forward(input: input, parameters: []) == input)
    }

    /// Weight decay, momentum and a gradient adjustment (FedProx, SCAFFOLD) move parameters,
    /// never buffers: they hold what the forward passes wrote (running statistics, batch count).
    @Test func theOptimizerLeavesBuffersAlone() throws {
        let network = try ModelSpec(layers: [.flatten, .batchnorm, .dense(.classes)]).build(input: [1, 2, 2], classes: 2)
        var generator = SeededGenerator(seed: 1)
        var parameters = network.initialParameters(using: &generator)
        let images: [Float] = [1, 2, 3, 4, 3, 2, 1, 0], labels: [Int32] = [0, 1]
        let trainer = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.5, momentum: 0.9, weightDecay: 0.1),
                              batchCapacity: 2)
        for _ in 0..<2 {
            trainer.step(parameters: &parameters, images: images, labels: labels, count: 2) { _, g in
                for i in g.indices { g[i] += 1 }
            }
        }
        // Feature means (2, 2, 2, 2) and unbiased variances (2, 0, 2, 8) of the two samples:
        // after two steps running = 0.81·initial + 0.19·batch.
        let mean = network.layout["1.running_mean"]!.range, variance = network.layout["1.running_var"]!.range
        #expect(parameters[mean].map { ($0 * 1000).rounded() / 1000 } == [0.38, 0.38, 0.38, 0.38])
        #expect(parameters[variance].map { ($0 * 1000).rounded() / 1000 } == [1.19, 0.81, 1.19, 2.33])
        #expect(parameters[network.layout["1.num_batches_tracked"]!.range] == [2])
    }
}
