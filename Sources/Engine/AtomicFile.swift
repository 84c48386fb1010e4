import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Errors from reading or writing files; `path` names the file.
public struct FileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String
    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }
    public var description: String { "\(path): \(problem)" }
}

public enum AtomicFile {
    /// Replaces `path` with `bytes` so that a crash leaves either the old or the new file, never
    /// a torn one: write a temporary file beside it, fsync it, rename it over `path`, fsync the
    /// directory.
    public static func write(_ bytes: [UInt8], to path: String) throws(FileError) {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = "\(path).tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw FileError(path: path, problem: "cannot create: \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            if result < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(descriptor)
                unlink(temporary)
                throw FileError(path: path, problem: "write failed: \(reason)")
            }
            written += result
        }
        guard fsync(descriptor) == 0, close(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw FileError(path: path, problem: "fsync failed: \(reason)")
        }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw FileError(path: path, problem: "rename failed: \(reason)")
        }
        syncDirectory(directory)
    }

    /// Flushes `directory`'s entries (a rename or a new file in it) to disk.
    public static func syncDirectory(_ directory: String) {
        let descriptor = open(directory.isEmpty ? "." : directory, O_RDONLY)
        if descriptor >= 0 {
            fsync(descriptor)
            close(descriptor)
        }
    }

    /// Throws unless `write(_:to:)` could create `path`: its directory exists and is writable, and
    /// `path` is not a directory. Jobs call it before hours of work, not after.
    public static func checkWritable(_ path: String) throws(FileError) {
        let directory = (path as NSString).deletingLastPathComponent
        let parent = directory.isEmpty ? "." : directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) else {
            throw FileError(path: path, problem: "cannot be written: no directory \(parent)")
        }
        guard isDirectory.boolValue else { throw FileError(path: path, problem: "cannot be written: \(parent) is not a directory") }
        guard access(parent, W_OK | X_OK) == 0 else {
            throw FileError(path: path, problem: "cannot be written: \(parent): \(String(cString: strerror(errno)))")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw FileError(path: path, problem: "cannot be written: is a directory")
        }
    }

    /// Writes `value` as pretty-printed, key-sorted JSON to `path`, atomically as `write`.
    public static func writeJSON(_ value: some Encodable, to path: String) throws(FileError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes: [UInt8]
        do { bytes = [UInt8](try encoder.encode(value)) } catch {
            throw FileError(path: path, problem: "cannot encode JSON: \(error)")
        }
        try write(bytes, to: path)
    }

    /// The whole content of `path`.
    public static func read(_ path: String) throws(FileError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                throw FileError(path: path, problem: "no such file")
            }
            throw FileError(path: path, problem: isDirectory.boolValue ? "is a directory" : "cannot be read")
        }
        return [UInt8](data)
    }
}

/// An exclusive lock on a directory (`flock` on its `.lock` file), held until released or the
/// process ends (a crash releases it too), so two processes never write one directory.
public final class DirectoryLock: @unchecked Sendable {
    private let descriptor: Int32

    /// Takes the lock; `busy` is the error's problem when another process holds it.
    public init(_ directory: String, busy: String) throws(FileError) {
        let descriptor = open("\(directory)/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileError(path: directory, problem: "cannot lock: \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw FileError(path: directory, problem: busy)
        }
        self.descriptor = descriptor
    }

    deinit { close(descriptor) }
}
