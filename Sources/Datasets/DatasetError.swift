import Engine

/// Why a data file was rejected. Every case names the file.
public enum DatasetError: Error, CustomStringConvertible, Sendable, Equatable {
    case missingFile(path: String)
    case unreadable(path: String, reason: String)
    case notGzip(path: String)
    case truncated(path: String, detail: String)
    case corrupt(path: String, detail: String)
    case invalidFormat(path: String, detail: String)
    case mismatch(detail: String)

    public var description: String {
        switch self {
        case .missingFile(let path): return "\(path): no such file"
        case .unreadable(let path, let reason): return "\(path): cannot be read: \(reason)"
        case .notGzip(let path): return "\(path): not a gzip file (bad magic bytes)"
        case .truncated(let path, let detail): return "\(path): truncated: \(detail)"
        case .corrupt(let path, let detail): return "\(path): corrupt: \(detail)"
        case .invalidFormat(let path, let detail): return "\(path): \(detail)"
        case .mismatch(let detail): return detail
        }
    }

    static func reading(_ path: String) throws(DatasetError) -> [UInt8] {
        do {
            return try AtomicFile.read(path)
        } catch {
            if error.problem == "no such file" { throw .missingFile(path: path) }
            throw .unreadable(path: path, reason: error.problem)
        }
    }
}
