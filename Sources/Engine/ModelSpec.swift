/// A feed-forward CNN described as data (the `model` of a job's YAML), built into a `Sequential`
/// whose parameter names are those of PyTorch's `nn.Sequential` of the same layers (`0.weight`,
/// `3.bias`: the layer's position in the list), so a checkpoint loads with `load_state_dict`
/// into that module (`scripts/torch_model.py` builds it from the same YAML).
///
/// Shapes are threaded from the input; `build` checks every layer's arithmetic and throws an
/// error naming the layer before any layer's `precondition` could trap.
public struct ModelSpec: Sendable, Equatable, Codable {
    /// Per-sample input `[channels, height, width]`; nil takes it from the data.
    public var input: [Int]?
    public var layers: [LayerSpec]

    public init(input: [Int]? = nil, layers: [LayerSpec]) {
        self.input = input
        self.layers = layers
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case input, layers }

    public init(from decoder: any Decoder) throws {
        let all = try decoder.container(keyedBy: LayerSpec.Key.self)
        if let unknown = all.allKeys.first(where: { CodingKeys(rawValue: $0.stringValue) == nil }) {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "model has no setting \(unknown.stringValue); its settings: input, layers"))
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        input = try c.decodeIfPresent([Int].self, forKey: .input)
        layers = try c.decode([LayerSpec].self, forKey: .layers)
    }

    /// The CNN of McMahan et al. 2017 ("Communication-Efficient Learning of Deep Networks from
    /// Decentralized Data", §3): two 5×5 convolutions of 32 and 64 channels ("same" padding), each
    /// followed by ReLU and 2×2 max pooling, a 512-unit dense layer with ReLU, and the class
    /// scores (1,663,370 parameters on 1×28×28 input with 10 classes).
    public static let fedAvgCNN = ModelSpec(layers: [
        .conv(out: 32, kernel: 5, stride: 1, padding: 2), .relu, .maxpool(kernel: 2, stride: nil),
        .conv(out: 64, kernel: 5, stride: 1, padding: 2), .relu, .maxpool(kernel: 2, stride: nil),
        .flatten, .dense(.units(512)), .relu, .dense(.classes),
    ])

    /// The network for samples of `input` (`[C, H, W]`, or `[N]` for vectors) and `classes`
    /// classes. The last layer must produce `classes` values per sample.
    ///
    /// A ReLU directly followed by a max pool runs after it instead: `maxpool(relu(x)) =
    /// relu(maxpool(x))` exactly, gradients included (see `LeNet5`), and the ReLU then touches
    /// a quarter of the values. Parameter names keep the described order.
    public func build(input: [Int], classes: Int) throws(ModelSpecError) -> Sequential {
        guard !layers.isEmpty else { throw ModelSpecError("model: no layers") }
        guard classes >= 1 else { throw ModelSpecError("model: the data has no classes") }
        if let declared = self.input, declared != input {
            throw ModelSpecError("model: input \(Self.format(declared)) does not match the data's \(Self.format(input))")
        }
        guard (input.count == 3 || input.count == 1), input.allSatisfy({ $0 >= 1 && $0 <= Self.maxSize }) else {
            throw ModelSpecError("model: input \(Self.format(input)) must be [channels, height, width] or [features] with positive sizes")
        }
        var shape = input, total = 0
        var built: [(name: String?, layer: any Layer)] = []
        for (index, spec) in layers.enumerated() {
            let layer = try spec.layer(after: shape, classes: classes, index: index)
            built.append((layer.stateCount == 0 ? nil : String(index), layer))
            shape = layer.outputShape
            total += layer.stateCount
            guard shape.reduce(1, *) <= Self.maxParameters, total <= Self.maxParameters else {
                throw ModelSpecError("model layer \(index) (\(spec.name)): the model exceeds \(Self.maxParameters) values per sample or parameters")
            }
        }
        guard shape == [classes] else {
            throw ModelSpecError("model: the last layer (\(layers.count - 1), \(layers.last!.name)) produces \(Self.format(shape)) per sample; the data has \(classes) classes (end with dense: classes)")
        }
        for i in built.indices.dropLast() where built[i].layer is ReLU && built[i + 1].layer is MaxPool2D {
            let pool = built[i + 1].layer
            built[i] = (nil, pool)
            built[i + 1] = (nil, ReLU(shape: pool.outputShape))
        }
        return Sequential(built)
    }

    /// Largest size a description may give (channels, units, kernel, stride, padding, input):
    /// the shape arithmetic then cannot overflow. Parameters of a layer and of the whole model are
    /// capped at 2³¹ (8 GiB of floats).
    public static let maxSize = 1 << 20
    static let maxParameters = 1 << 31

    public static func format(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
}

/// Why a model description was refused; the message names the layer (index and kind).
public struct ModelSpecError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One layer of a `ModelSpec`. Pools use PyTorch's defaults (stride = kernel, no padding, floor).
public enum LayerSpec: Sendable, Equatable {
    case conv(out: Int, kernel: Int, stride: Int, padding: Int)
    case maxpool(kernel: Int, stride: Int?)
    case avgpool(kernel: Int, stride: Int?)
    case dense(Width)
    case relu
    case flatten
    /// BatchNorm2d after a convolution (`[C, H, W]`), BatchNorm1d after a dense layer (`[C]`).
    case batchnorm
    case dropout(Double)

    /// A dense layer's output size: a number, or the data's class count.
    public enum Width: Sendable, Equatable {
        case units(Int)
        case classes
    }

    /// The YAML name of the layer kind.
    public var name: String {
        switch self {
        case .conv: return "conv"
        case .maxpool: return "maxpool"
        case .avgpool: return "avgpool"
        case .dense: return "dense"
        case .relu: return "relu"
        case .flatten: return "flatten"
        case .batchnorm: return "batchnorm"
        case .dropout: return "dropout"
        }
    }

    public static let names = ["conv", "maxpool", "avgpool", "dense", "relu", "flatten", "batchnorm", "dropout"]

    /// The layer for per-sample input `shape`, with every size checked first.
    func layer(after shape: [Int], classes: Int, index: Int) throws(ModelSpecError) -> any Layer {
        func fail(_ detail: String) -> ModelSpecError { ModelSpecError("model layer \(index) (\(name)): \(detail)") }
        func checkSize(_ value: Int, _ what: String) throws(ModelSpecError) {
            guard value <= ModelSpec.maxSize else { throw fail("\(what) \(value) exceeds \(ModelSpec.maxSize)") }
        }
        func image() throws(ModelSpecError) -> (c: Int, h: Int, w: Int) {
            guard shape.count == 3 else { throw fail("needs a [channels, height, width] input, got \(ModelSpec.format(shape)) (it comes after flatten or dense)") }
            return (shape[0], shape[1], shape[2])
        }
        switch self {
        case .conv(let out, let kernel, let stride, let padding):
            let (c, h, w) = try image()
            guard out >= 1 else { throw fail("out must be at least 1 (got \(out))") }
            guard kernel >= 1 else { throw fail("kernel must be at least 1 (got \(kernel))") }
            guard stride >= 1 else { throw fail("stride must be at least 1 (got \(stride))") }
            guard padding >= 0 else { throw fail("padding must be at least 0 (got \(padding))") }
            try checkSize(out, "out"); try checkSize(kernel, "kernel"); try checkSize(stride, "stride"); try checkSize(padding, "padding")
            let (weights, overflow) = (out * c).multipliedReportingOverflow(by: kernel * kernel)
            guard !overflow, weights <= ModelSpec.maxParameters else { throw fail("\(out)×\(c)×\(kernel)×\(kernel) weights are too many") }
            guard kernel <= h + 2 * padding, kernel <= w + 2 * padding else {
                throw fail("kernel \(kernel) is larger than its padded input \(h + 2 * padding)×\(w + 2 * padding)")
            }
            return Conv2D(inputChannels: c, outputChannels: out, kernelSize: kernel, stride: stride, padding: padding,
                          inputHeight: h, inputWidth: w)
        case .maxpool(let kernel, let stride), .avgpool(let kernel, let stride):
            let (c, h, w) = try image()
            guard kernel >= 1 else { throw fail("kernel must be at least 1 (got \(kernel))") }
            if let stride, stride < 1 { throw fail("stride must be at least 1 (got \(stride))") }
            try checkSize(kernel, "kernel")
            if let stride { try checkSize(stride, "stride") }
            guard kernel <= h, kernel <= w else { throw fail("window \(kernel) is larger than its input \(h)×\(w)") }
            if case .maxpool = self { return MaxPool2D(channels: c, inputHeight: h, inputWidth: w, kernelSize: kernel, stride: stride) }
            return AvgPool2D(channels: c, inputHeight: h, inputWidth: w, kernelSize: kernel, stride: stride)
        case .dense(let width):
            guard shape.count == 1 else { throw fail("needs a flat input, got \(ModelSpec.format(shape)) (put flatten before it)") }
            let out: Int
            switch width {
            case .units(let units): out = units
            case .classes: out = classes
            }
            guard out >= 1 else { throw fail("out must be at least 1 (got \(out))") }
            try checkSize(out, "out")
            guard shape[0] * out <= ModelSpec.maxParameters else { throw fail("\(out)×\(shape[0]) weights are too many") }
            return Dense(inputFeatures: shape[0], outputFeatures: out)
        case .relu:
            return ReLU(shape: shape)
        case .flatten:
            return Flatten(shape: shape)
        case .batchnorm:
            return BatchNorm(shape: shape)
        case .dropout(let p):
            guard p >= 0, p < 1, Float(p) < 1 else { throw fail("probability must be in [0, 1) (got \(p))") }
            return Dropout(shape: shape, probability: Float(p))
        }
    }
}

/// The YAML form: `relu`, `flatten`, `batchnorm`; `dropout: 0.5`; `conv: {out: 32, kernel: 5, stride: 1, padding: 2}`
/// (stride and padding optional); `maxpool: 2` or `maxpool: {kernel: 3, stride: 2}` (avgpool
/// alike); `dense: 512`, `dense: classes` or `dense: {out: 512}`. Errors name the layer.
extension LayerSpec: Codable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let index = decoder.codingPath.last?.intValue.map { " \($0)" } ?? ""
        func fail(_ detail: String) -> DecodingError {
            .dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "model layer\(index): \(detail)"))
        }
        if let single = try? decoder.singleValueContainer(), let name = try? single.decode(String.self) {
            switch name {
            case "relu": self = .relu
            case "flatten": self = .flatten
            case "batchnorm": self = .batchnorm
            case _ where Self.names.contains(name): throw fail("\(name) needs settings (for example \(name): ...)")
            default: throw fail("unknown layer \(name); known layers: \(Self.names.joined(separator: ", "))")
            }
            return
        }
        guard let container = try? decoder.container(keyedBy: Key.self) else {
            throw fail("expected a layer name or a mapping of one layer name to its settings")
        }
        guard container.allKeys.count == 1, let key = container.allKeys.first else {
            throw fail("expected one layer name per list item, got \(container.allKeys.map(\.stringValue).sorted())")
        }
        let name = key.stringValue
        func integer(_ settings: KeyedDecodingContainer<Key>, _ field: String, default value: Int?) throws -> Int? {
            guard settings.contains(Key(field)) else { return value }
            guard let number = try? settings.decode(Int.self, forKey: Key(field)) else { throw fail("\(name) \(field) must be an integer") }
            return number
        }
        func settings(_ allowed: [String]) throws -> KeyedDecodingContainer<Key> {
            guard let settings = try? container.nestedContainer(keyedBy: Key.self, forKey: key) else {
                throw fail("\(name) expects a mapping of \(allowed.joined(separator: ", "))")
            }
            if let unknown = settings.allKeys.first(where: { !allowed.contains($0.stringValue) }) {
                throw fail("\(name) has no setting \(unknown.stringValue); its settings: \(allowed.joined(separator: ", "))")
            }
            return settings
        }
        switch name {
        case "conv":
            let s = try settings(["out", "kernel", "stride", "padding"])
            guard let out = try integer(s, "out", default: nil) else { throw fail("conv needs out") }
            guard let kernel = try integer(s, "kernel", default: nil) else { throw fail("conv needs kernel") }
            self = .conv(out: out, kernel: kernel, stride: try integer(s, "stride", default: 1)!, padding: try integer(s, "padding", default: 0)!)
        case "maxpool", "avgpool":
            let kernel: Int, stride: Int?
            if let size = try? container.decode(Int.self, forKey: key) {
                (kernel, stride) = (size, nil)
            } else {
                let s = try settings(["kernel", "stride"])
                guard let k = try integer(s, "kernel", default: nil) else { throw fail("\(name) needs kernel") }
                (kernel, stride) = (k, try integer(s, "stride", default: nil))
            }
            self = name == "maxpool" ? .maxpool(kernel: kernel, stride: stride) : .avgpool(kernel: kernel, stride: stride)
        case "dense":
            if let units = try? container.decode(Int.self, forKey: key) {
                self = .dense(.units(units))
            } else if let word = try? container.decode(String.self, forKey: key) {
                guard word == "classes" else { throw fail("dense takes a number of units or classes, got \(word)") }
                self = .dense(.classes)
            } else {
                let s = try settings(["out"])
                if let word = try? s.decode(String.self, forKey: Key("out")), word == "classes" {
                    self = .dense(.classes)
                } else {
                    guard let out = try integer(s, "out", default: nil) else { throw fail("dense needs out") }
                    self = .dense(.units(out))
                }
            }
        case "dropout":
            guard let p = try? container.decode(Double.self, forKey: key) else { throw fail("dropout takes a probability, for example dropout: 0.5") }
            self = .dropout(p)
        case "relu", "flatten", "batchnorm":
            throw fail("\(name) takes no settings (write - \(name))")
        default:
            throw fail("unknown layer \(name); known layers: \(Self.names.joined(separator: ", "))")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .relu, .flatten, .batchnorm:
            var single = encoder.singleValueContainer()
            try single.encode(name)
        case .dropout(let p):
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(p, forKey: Key(name))
        case .conv(let out, let kernel, let stride, let padding):
            var container = encoder.container(keyedBy: Key.self)
            var s = container.nestedContainer(keyedBy: Key.self, forKey: Key(name))
            try s.encode(out, forKey: Key("out"))
            try s.encode(kernel, forKey: Key("kernel"))
            try s.encode(stride, forKey: Key("stride"))
            try s.encode(padding, forKey: Key("padding"))
        case .maxpool(let kernel, let stride), .avgpool(let kernel, let stride):
            var container = encoder.container(keyedBy: Key.self)
            var s = container.nestedContainer(keyedBy: Key.self, forKey: Key(name))
            try s.encode(kernel, forKey: Key("kernel"))
            try s.encodeIfPresent(stride, forKey: Key("stride"))
        case .dense(let width):
            var container = encoder.container(keyedBy: Key.self)
            switch width {
            case .units(let units): try container.encode(units, forKey: Key(name))
            case .classes: try container.encode("classes", forKey: Key(name))
            }
        }
    }
}
