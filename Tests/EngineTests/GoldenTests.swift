import Engine
import Foundation
import Testing
import TestSupport

/// Compares fedtrain with PyTorch on the fixture written by `scripts/make_golden.py`: same
/// weights, same batch, the same logits, loss, gradients and SGD trajectories.
///
/// Tolerances (PyTorch uses MKL/oneDNN with other summation orders): every element within
/// `1e-4 · max|reference|` of the tensor plus `1e-4` relative, for the forward pass, the gradients
/// and the first steps; the 3-step trajectories within `2e-4` of the weight scale.
@Suite struct GoldenTests {
    static let fixture: [String: Safetensors.Tensor] = {
        let url = Bundle.module.url(forResource: "golden", withExtension: "safetensors", subdirectory: "Fixtures")!
        return try! Safetensors.tensors([UInt8](Data(contentsOf: url)), path: url.path)
    }()

    /// A model of `Fixtures/<name>.json`, as PyTorch's `nn.Sequential` of the same layers.
    static func described(_ name: String, input: [Int], classes: Int) -> Sequential {
        let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures")!
        let spec = try! JSONDecoder().decode(ModelSpec.self, from: Data(contentsOf: url))
        return try! spec.build(input: input, classes: classes)
    }

    /// Every model trains in training mode (BatchNorm by its batch, Dropout with the masks of
    /// seed 0, which the fixture's script draws as fedtrain does); the BatchNorm models' buffers
    /// (running statistics, batches counted) are compared after the steps, and the
    /// evaluation-mode logits then (Dropout the identity).
    static let models: [(String, Sequential)] = [
        ("lenet5", LeNet5.grayscale), ("lenet5rgb", LeNet5.rgb),
        ("described", described("described", input: [3, 20, 20], classes: 7)),
        ("batchnorm", described("batchnorm", input: [2, 12, 12], classes: 4)),
        ("dropout", described("dropout", input: [2, 10, 10], classes: 5)),
    ]

    func tensor(_ name: String) -> [Float] {
        guard let tensor = Self.fixture[name] else {
            Issue.record("fixture has no tensor \(name)")
            return []
        }
        return tensor.values
    }

    func vector(_ prefix: String, _ network: Sequential) -> [Float] {
        network.layout.entries.flatMap { tensor("\(prefix).\($0.name)") }
    }

    /// Largest error relative to the reference tensor's scale, per layout entry. A tensor whose
    /// values are all below a hundredth of the whole vector's largest (the gradient of a bias
    /// that a BatchNorm follows, zero up to rounding) is held to that hundredth instead.
    func expectClose(_ actual: [Float], _ expected: [Float], layout: ParameterLayout, scaleTolerance: Float, _ what: String) {
        let floor = 1e-2 * expected.map(abs).max()!
        for entry in layout.entries {
            let a = Array(actual[entry.range]), e = Array(expected[entry.range])
            let scale = max(e.map(abs).max()!, floor)
            #expect(closeness(a, e, rtol: 1e-4, atol: scaleTolerance * scale) <= 1, "\(what) \(entry.name)")
        }
    }

    @Test(arguments: models.map(\.0))
    func forwardAndGradientsMatchPyTorch(prefix: String) {
        let network = Self.models.first { $0.0 == prefix }!.1
        let parameters = vector("\(prefix).param", network)
        let input = tensor("\(prefix).input"), labels = tensor("\(prefix).labels").map { Int32($0) }
        let batch = labels.count
        let workspace = Workspace(network: network, capacity: batch)
        let logits = parameters.withUnsafeBufferPointer { p in
            input.withUnsafeBufferPointer { x in
                Array(UnsafeBufferPointer(start: workspace.forward(batch: batch, input: x.baseAddress!, parameters: p.baseAddress!,
                                                                   mode: ForwardMode(training: true)),
                                          count: batch * network.outputCount))
            }
        }
        let expectedLogits = tensor("\(prefix).logits")
        #expect(closeness(logits, expectedLogits, rtol: 1e-4, atol: 1e-4 * expectedLogits.map(abs).max()!) <= 1)

        let trainer = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.05), batchCapacity: batch, chunks: 2, threads: 2)
        var gradient = [Float](repeating: .nan, count: network.parameterCount)
        let loss = parameters.withUnsafeBufferPointer { p in
            input.withUnsafeBufferPointer { x in
                labels.withUnsafeBufferPointer { y in
                    gradient.withUnsafeMutableBufferPointer { g in
                        trainer.computeGradient(parameters: p.baseAddress!, images: x.baseAddress!, labels: y.baseAddress!,
                                                count: batch, into: g.baseAddress!)
                    }
                }
            }
        }
        let expectedLoss = Double(tensor("\(prefix).loss")[0])
        #expect(abs(loss - expectedLoss) <= 1e-5 * abs(expectedLoss))
        expectClose(gradient, vector("\(prefix).grad", network), layout: network.layout, scaleTolerance: 1e-4, "gradient")
    }

    @Test(arguments: models.map(\.0))
    func sgdTrajectoriesMatchPyTorch(prefix: String) {
        let network = Self.models.first { $0.0 == prefix }!.1
        let input = tensor("\(prefix).input"), labels = tensor("\(prefix).labels").map { Int32($0) }
        for (tag, configuration) in [("momentum3", SGDConfiguration(learningRate: 0.05, momentum: 0.9)),
                                     ("nesterov3", SGDConfiguration(learningRate: 0.05, momentum: 0.9, weightDecay: 0.01, nesterov: true))] {
            var parameters = vector("\(prefix).param", network)
            let trainer = Trainer(network: network, optimizer: configuration, batchCapacity: labels.count)
            for _ in 0..<3 {
                input.withUnsafeBufferPointer { x in
                    labels.withUnsafeBufferPointer { y in
                        _ = trainer.step(parameters: &parameters, images: x.baseAddress!, labels: y.baseAddress!, count: labels.count)
                    }
                }
            }
            expectClose(parameters, vector("\(prefix).\(tag)", network), layout: network.layout, scaleTolerance: 2e-4, tag)
            let workspace = Workspace(network: network, capacity: labels.count)
            let logits = parameters.withUnsafeBufferPointer { p in
                input.withUnsafeBufferPointer { x in
                    Array(UnsafeBufferPointer(start: workspace.forward(batch: labels.count, input: x.baseAddress!, parameters: p.baseAddress!),
                                              count: labels.count * network.outputCount))
                }
            }
            let expected = tensor("\(prefix).\(tag).eval_logits")
            #expect(closeness(logits, expected, rtol: 1e-4, atol: 2e-4 * expected.map(abs).max()!) <= 1, "\(tag) evaluation logits")
        }
    }
}

@Suite struct PyTorchCheckpointTests {
    /// A file written by `safetensors.torch.save_file(model.state_dict())` loads into fedtrain.
    @Test func loadsACheckpointSavedByPyTorch() throws {
        let url = Bundle.module.url(forResource: "torch_lenet5", withExtension: "safetensors", subdirectory: "Fixtures")!
        let network = LeNet5.grayscale
        let parameters = try Safetensors.load(url.path, layout: network.layout)
        let expected = network.layout.entries.flatMap { GoldenTests.fixture["lenet5.param.\($0.name)"]!.values }
        #expect(parameters == expected)
    }
}
