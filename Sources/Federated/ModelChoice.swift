import Datasets
import Engine
import Yams

/// The model a job trains: a built-in name (`lenet5`, `lenet5-rgb`, `fedavg-cnn`) or a
/// described network (`ModelSpec`). Either is built for the data's sample shape and classes, so
/// the same choice fits any data set whose images it can take.
///
/// In a config file `model` is a name or a mapping (`input`, `layers`); `--model FILE.yaml`
/// reads a description from its own file into the configuration, so a networked server sends
/// the description itself to its clients.
public enum ModelChoice: Sendable, Equatable, Codable, CustomStringConvertible {
    case builtin(BuiltinModel)
    case described(ModelSpec)

    public static let lenet5 = ModelChoice.builtin(.lenet5)

    public enum BuiltinModel: String, CaseIterable, Sendable, Codable {
        /// LeNet-5 (`LeNet5`, module names conv1…fc3) on 28×28 or 32×32 images of any channels.
        case lenet5
        /// The same LeNet-5 on 3-channel 32×32 images (CIFAR-10); its data has no default.
        case lenet5RGB = "lenet5-rgb"
        /// McMahan et al.'s CNN (`ModelSpec.fedAvgCNN`).
        case fedAvgCNN = "fedavg-cnn"
    }

    public static var builtinNames: String { BuiltinModel.allCases.map(\.rawValue).joined(separator: ", ") }

    /// The built-in name, or `described` followed by the layers in one line (canonical: equal
    /// descriptions give equal text).
    public var description: String {
        switch self {
        case .builtin(let model): return model.rawValue
        case .described(let spec):
            let layers = spec.layers.map { layer -> String in
                switch layer {
                case .conv(let out, let kernel, let stride, let padding): return "conv(\(out),k\(kernel),s\(stride),p\(padding))"
                case .maxpool(let kernel, let stride): return "maxpool(k\(kernel)\(stride.map { ",s\($0)" } ?? ""))"
                case .avgpool(let kernel, let stride): return "avgpool(k\(kernel)\(stride.map { ",s\($0)" } ?? ""))"
                case .dense(.units(let units)): return "dense(\(units))"
                case .dense(.classes): return "dense(classes)"
                case .relu, .flatten, .batchnorm: return layer.name
                case .dropout(let p): return "dropout(\(p))"
                }
            }
            return "described " + (spec.input.map { ModelSpec.format($0) + " " } ?? "") + layers.joined(separator: " ")
        }
    }

    /// The image shape the model requires of its data, where it declares one (a described
    /// model's `input`; lenet5-rgb's 3 channels): image folders are converted to it.
    public var declaredInput: (channels: Int?, size: (height: Int, width: Int)?)? {
        switch self {
        case .builtin(.lenet5RGB): return (3, nil)
        case .builtin: return nil
        case .described(let spec):
            // A shape `build` will refuse is not used to convert the images: it reports it.
            guard let input = spec.input, input.count == 3, input.allSatisfy({ $0 >= 1 && $0 <= ModelSpec.maxSize }) else { return nil }
            return (input[0] == 1 || input[0] == 3 ? input[0] : nil, (input[1], input[2]))
        }
    }

    /// The data directory used when none is given, if there is one.
    public var defaultDataDirectory: String? {
        if case .builtin(.lenet5RGB) = self { return nil }
        return FashionMNIST.defaultDirectory
    }

    /// The network for `data`'s samples and classes; a model that cannot take them is refused
    /// with a message naming the layer.
    public func network(for data: LabeledImages) throws(ConfigurationError) -> Sequential {
        let input = [data.channels, data.height, data.width]
        switch self {
        case .builtin(.lenet5), .builtin(.lenet5RGB):
            if case .builtin(.lenet5RGB) = self, data.channels != 3 {
                throw ConfigurationError("model lenet5-rgb needs 3-channel images; the data has \(data.channels) (use lenet5)")
            }
            guard data.height == data.width, data.height == 28 || data.height == 32 else {
                throw ConfigurationError("model \(self) needs 28×28 or 32×32 images; the data has \(data.height)×\(data.width) (describe a model for it)")
            }
            return LeNet5.make(inputChannels: data.channels, inputSize: data.height, classes: data.classes)
        case .builtin(.fedAvgCNN):
            do { return try ModelSpec.fedAvgCNN.build(input: input, classes: data.classes) } catch { throw ConfigurationError("fedavg-cnn: \(error)") }
        case .described(let spec):
            do { return try spec.build(input: input, classes: data.classes) } catch { throw ConfigurationError(error.description) }
        }
    }

    /// `--model`'s argument: a built-in name, or a YAML file holding a description (its mapping
    /// of `input` and `layers`, alone or under a `model` key).
    public static func parse(_ argument: String) throws(ConfigurationError) -> ModelChoice {
        if let builtin = BuiltinModel(rawValue: argument) { return .builtin(builtin) }
        let bytes: [UInt8]
        do { bytes = try AtomicFile.read(argument) } catch {
            throw ConfigurationError("--model \(argument): neither a built-in model (\(builtinNames)) nor a readable file (\(error.problem))")
        }
        let node = try ConfigurationFile.compose(ConfigurationFile.text(bytes, source: argument), source: argument)
        guard var mapping = node?.mapping else { throw ConfigurationError("\(argument): expected a mapping with layers (and optionally input)") }
        if mapping.count == 1, let inner = mapping["model"]?.mapping { mapping = inner }
        do {
            return .described(try YAMLDecoder().decode(ModelSpec.self, from: Node.mapping(mapping)))
        } catch DecodingError.dataCorrupted(let context) {
            throw ConfigurationError("\(argument): \(context.debugDescription)")
        } catch let error as DecodingError {
            throw ConfigurationError("\(argument): \(ConfigurationFile.describe(error))")
        } catch {
            throw ConfigurationError("\(argument): \(error)")
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let name = try? container.decode(String.self) {
            guard let builtin = BuiltinModel(rawValue: name) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "unknown model \(name); built-in models: \(Self.builtinNames), or a mapping with layers"))
            }
            self = .builtin(builtin)
        } else {
            self = .described(try container.decode(ModelSpec.self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .builtin(let model): try container.encode(model.rawValue)
        case .described(let spec): try container.encode(spec)
        }
    }
}
