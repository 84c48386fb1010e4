import Datasets
import Engine
import Foundation

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

extension ConfigurationError {
    /// Refuses a job whose training buffers (`bytes`, for `what`) would not fit in the memory
    /// available now, instead of letting the allocation kill the process.
    static func checkMemory(_ bytes: Int, for what: String) throws(ConfigurationError) {
        guard let available = SystemMemory.availableBytes, bytes > available else { return }
        func gigabytes(_ value: Int) -> String { String(format: "%.1f GB", Double(value) / 1e9) }
        throw ConfigurationError("\(what) needs \(gigabytes(bytes)) of training buffers, more than the \(gigabytes(available)) "
            + "available: lower batch_size or threads")
    }
}
