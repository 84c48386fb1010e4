import Engine
import Foundation
import Yams

/// The YAML form of a `SimulationConfiguration`: one flat mapping of keys to scalars. Written by
/// a YAML encoder, so every value (a seed of 2⁶⁴−1, a path with tabs, quotes or non-ASCII
/// letters) reads back exactly.
public enum ConfigurationFile {
    /// Parses `text` (from `source`, named in errors): unknown keys, keys without a value and
    /// wrong types are errors naming the key (ranges are `SimulationConfiguration.validate`'s).
    /// Keys absent from `text` keep their defaults.
    public static func decode(_ text: String, source: String) throws(ConfigurationError) -> SimulationConfiguration {
        guard let node = try compose(text, source: source) else { return SimulationConfiguration() }
        guard let mapping = node.mapping else { throw ConfigurationError("\(source): expected a mapping of keys to values") }
        let known = Set(SimulationConfiguration.keys)
        for key in mapping.keys {
            guard let name = key.string, known.contains(name) else {
                throw ConfigurationError("\(source): unknown config key \(key.string ?? "\(key)"); known keys: \(SimulationConfiguration.keys.joined(separator: ", "))")
            }
            if name == DataSection.CodingKeys.model.rawValue, mapping[key]?.mapping != nil { continue }
            guard let scalar = mapping[key]?.scalar else { throw ConfigurationError("\(source): config key \(name): expected a single value") }
            if scalar.style == .plain, ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
                throw ConfigurationError("\(source): config key \(name) has no value")
            }
        }
        do {
            return try YAMLDecoder().decode(SimulationConfiguration.self, from: node)
        } catch let error as DecodingError {
            throw ConfigurationError("\(source): \(describe(error))")
        } catch {
            throw ConfigurationError("\(source): \(error)")
        }
    }

    /// Reads and parses the file at `path`.
    public static func read(_ path: String) throws(ConfigurationError) -> SimulationConfiguration {
        let bytes: [UInt8]
        do { bytes = try AtomicFile.read(path) } catch { throw ConfigurationError(error.description) }
        return try decode(text(bytes, source: path), source: path)
    }

    /// `bytes` as UTF-8 text, or an error naming `source`.
    static func text(_ bytes: [UInt8], source: String) throws(ConfigurationError) -> String {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ConfigurationError("\(source): not UTF-8 text") }
        return text
    }

    /// The YAML node of `text` (nil when empty), or an error naming `source`.
    static func compose(_ text: String, source: String) throws(ConfigurationError) -> Node? {
        do { return try Yams.compose(yaml: text) } catch { throw ConfigurationError("\(source): not valid YAML: \(error)") }
    }

    /// Every key of `configuration`, one per line, in `SimulationConfiguration.keys` order.
    public static func encode(_ configuration: SimulationConfiguration) -> String {
        do { return try YAMLEncoder().encode(configuration) } catch { preconditionFailure("configuration does not encode: \(error)") }
    }

    /// One line naming the key and what it needed.
    static func describe(_ error: DecodingError) -> String {
        func key(_ path: [any CodingKey]) -> String { path.last?.stringValue ?? "value" }
        func expectation(_ type: Any.Type) -> String {
            switch type {
            case is Int.Type: return "an integer"
            case is UInt64.Type: return "an integer in 0...18446744073709551615"
            case is Double.Type, is Float.Type: return "a number"
            case is Bool.Type: return "true or false"
            case is String.Type: return "a string"
            default: return "a \(type)"
            }
        }
        switch error {
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            if context.codingPath.first?.stringValue == DataSection.CodingKeys.model.rawValue {
                let inner = context.codingPath.dropFirst().map { $0.intValue.map { "layer \($0)" } ?? $0.stringValue }
                return "config key model\(inner.isEmpty ? "" : " " + inner.joined(separator: " ")): expected \(expectation(type))"
            }
            return "config key \(key(context.codingPath)): expected \(expectation(type))"
        case .dataCorrupted(let context):
            if context.codingPath.first?.stringValue == DataSection.CodingKeys.model.rawValue {
                return "config key model: \(context.debugDescription)"
            }
            return "config key \(key(context.codingPath)): \(context.debugDescription)"
        case .keyNotFound(let codingKey, _):
            return "config key \(codingKey.stringValue) is missing"
        @unknown default:
            return "\(error)"
        }
    }
}
