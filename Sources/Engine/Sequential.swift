/// A feed-forward stack of layers and the layout of its flat parameter vector.
///
/// The value describes the architecture only; parameters live in a `[Float]` laid out by
/// `layout` (PyTorch `state_dict` names: `<layer name>.<suffix>`, parameters then buffers per
/// layer), and activations in a
/// `Workspace`. Immutable and `Sendable`, so one value serves every thread and client.
public struct Sequential: Sendable {
    public let layers: [any Layer]
    /// PyTorch module name of each layer, nil for layers without parameters.
    public let names: [String?]
    public let layout: ParameterLayout
    /// Offset of each layer's slice in the flat vector.
    public let parameterOffsets: [Int]

    public init(_ namedLayers: [(name: String?, layer: any Layer)]) {
        precondition(!namedLayers.isEmpty, "a network needs at least one layer")
        var layout = ParameterLayout()
        var offsets: [Int] = [], buffers: [Range<Int>] = []
        for (index, (name, layer)) in namedLayers.enumerated() {
            if index > 0 {
                precondition(namedLayers[index - 1].layer.outputCount == layer.inputCount,
                             "layer \(index) expects \(layer.inputShape), previous produces \(namedLayers[index - 1].layer.outputShape)")
            }
            offsets.append(layout.count)
            precondition(layer.stateCount == 0 || name != nil, "layer \(index) has parameters but no name")
            for (suffix, shape) in layer.parameterShapes {
                layout.append(name: "\(name!).\(suffix)", shape: shape)
            }
            for (suffix, shape) in layer.bufferShapes {
                buffers.append(layout.append(name: "\(name!).\(suffix)", shape: shape).range)
            }
        }
        layers = namedLayers.map(\.layer)
        names = namedLayers.map(\.name)
        self.layout = layout
        parameterOffsets = offsets
        bufferRanges = buffers
        mixesSamples = layers.contains { $0.mixesSamples }
        drawsRandomNumbers = layers.contains { $0.drawsRandomNumbers }
    }

    /// The slices (parameters and buffers) of the BatchNorm layers, in layer order.
    public var batchNormRanges: [Range<Int>] {
        zip(layers, parameterOffsets).compactMap { layer, offset in layer is BatchNorm ? offset..<(offset + layer.stateCount) : nil }
    }

    /// Where the buffers (non-trainable state, `Layer.bufferShapes`) sit in the flat vector.
    public let bufferRanges: [Range<Int>]
    /// Some layer mixes the samples of a batch (BatchNorm): a batch trains in one chunk.
    public let mixesSamples: Bool
    /// Some layer draws random numbers when training (Dropout).
    public let drawsRandomNumbers: Bool

    public var inputShape: [Int] { layers[0].inputShape }
    public var inputCount: Int { layers[0].inputCount }
    public var outputCount: Int { layers[layers.count - 1].outputCount }
    public var parameterCount: Int { layout.count }

    /// A fresh parameter vector with PyTorch's default initialization, drawn layer by layer in
    /// order from `generator` (so the same seed gives the same weights on any thread count).
    public func initialParameters(using generator: inout SeededGenerator) -> [Float] {
        var parameters = [Float](repeating: 0, count: parameterCount)
        parameters.withUnsafeMutableBufferPointer { buffer in
            for (layer, offset) in zip(layers, parameterOffsets) where layer.stateCount > 0 {
                let slice = UnsafeMutableBufferPointer(rebasing: buffer[offset..<(offset + layer.stateCount)])
                layer.initialize(slice, using: &generator)
            }
        }
        return parameters
    }
}
