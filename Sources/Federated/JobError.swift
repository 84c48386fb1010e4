import Datasets
import Engine

/// A setting a user got wrong: a flag, a config file key, a spec. The message names the key.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A checkpoint that cannot be used: corrupt, for another model, or for another configuration.
public struct CheckpointError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Anything a user can get wrong in a job, by kind; each prints as one line.
public enum JobError: Error, CustomStringConvertible, Sendable {
    case configuration(ConfigurationError)
    case checkpoint(CheckpointError)
    case data(DatasetError)
    /// An output file or directory that cannot be written (or is held by another run).
    case output(String)

    public var description: String {
        switch self {
        case .configuration(let error): return error.description
        case .checkpoint(let error): return error.description
        case .data(let error): return error.description
        case .output(let message): return message
        }
    }
}
