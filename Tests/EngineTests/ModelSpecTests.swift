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
        (#"{"input": [3, 8, 8], "layers": ["flatten", {"dense": "classes"}]}"#, "model: input [3, 8, 8] does not match the data's [1, 8, 8]"),
    ])
    func malformedSpecsAreRefusedNamingTheLayer(json: String, message: String) throws {
        let spec = try Self.decode(json)
        #expect(throws: ModelSpecError(message)) { try spec.build(input: [1, 8, 8], classes: 3) }
    }

    @Test(arguments: [
        (#"{"layers": ["flatten", "softmax"]}"#, "model layer 1: unknown layer softmax; known layers: conv, maxpool, avgpool, dense, relu, flatten"),
        (#"{"layers": [{"conv": {"out": 2}}]}"#, "model layer 0: conv needs kernel"),
        (#"{"layers": [{"conv": {"out": 2, "kernel": 3, "dilation": 2}}]}"#, "model layer 0: conv has no setting dilation; its settings: out, kernel, stride, padding"),
        (#"{"layers": [{"dense": "many"}]}"#, "model layer 0: dense takes a number of units or classes, got many"),
        (#"{"layers": ["conv"]}"#, "model layer 0: conv needs settings (for example conv: ...)"),
        (#"{"layers": [{"relu": 1}]}"#, "model layer 0: relu takes no settings (write - relu)"),
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
                                                          .flatten, .dense(.units(16)), .dense(.classes)])
        let decoded = try JSONDecoder().decode(ModelSpec.self, from: JSONEncoder().encode(spec))
        #expect(decoded == spec)
    }
}
