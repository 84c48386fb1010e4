import Engine
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A run's output directory, held with an exclusive lock (`flock` on `.lock`) while the run
/// writes into it, so two runs can never mix their files.
final class OutputDirectory: @unchecked Sendable {
    let path: String
    let inputConfig: String?
    private var held: DirectoryLock?

    init(_ path: String, inputConfig: String?) throws(JobError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw .output("\(path) is a file, not a directory")
        }
        self.path = path
        self.inputConfig = inputConfig
    }

    var checkpoints: String { "\(path)/checkpoint" }

    /// Files of a run that got at least one round done; a directory holding any of them holds a run.
    static let runFiles = ["metrics.jsonl", "metrics.csv", "summary.json", "model.safetensors", "checkpoint/checkpoint.json"]
    /// First line of the `config.yaml` a run writes: a config.yaml without it is the user's.
    static let configHeader = "# fedtrain simulate run configuration"

    /// Checks, writing nothing, that a new run may go here: not over the input config, not over
    /// another run (unless `overwrite`), not over a `config.yaml` fedtrain did not write.
    func checkNewRun(overwrite: Bool) throws(JobError) {
        let config = "\(path)/config.yaml"
        if let inputConfig, Self.samePath(inputConfig, config) {
            throw .output("--out \(path) would overwrite the input config \(inputConfig); choose another output directory")
        }
        guard !overwrite else { return }
        let existing = Self.runFiles.filter { FileManager.default.fileExists(atPath: "\(path)/\($0)") }
        if !existing.isEmpty {
            throw .output("\(path) holds another run (\(existing.joined(separator: ", "))); continue it with --resume \(path), "
                + "or replace it with --overwrite")
        }
        if FileManager.default.fileExists(atPath: config),
           !(String(data: FileManager.default.contents(atPath: config) ?? Data(), encoding: .utf8) ?? "").hasPrefix(Self.configHeader) {
            throw .output("\(config) was not written by fedtrain; choose another output directory or pass --overwrite")
        }
    }

    /// Creates the directory, takes the lock, and clears what an earlier run left (checked by
    /// `checkNewRun`).
    func prepareNewRun(overwrite: Bool) throws(JobError) {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw .output("cannot create \(path): \(error.localizedDescription)")
        }
        try lock()
        for file in ["config.yaml", "metrics.jsonl", "metrics.csv", "summary.json", "model.safetensors", "checkpoint"] {
            try? FileManager.default.removeItem(atPath: "\(path)/\(file)")
        }
        do { try FileManager.default.createDirectory(atPath: checkpoints, withIntermediateDirectories: true) } catch {
            throw .output("cannot create \(checkpoints): \(error.localizedDescription)")
        }
    }

    /// Takes the exclusive lock, failing at once when another run holds it.
    func lock() throws(JobError) {
        guard held == nil else { return }
        do { held = try DirectoryLock(path, busy: "is in use by another fedtrain run") } catch { throw .output(error.description) }
    }

    func write(_ bytes: [UInt8], _ name: String) throws(JobError) {
        do { try AtomicFile.write(bytes, to: "\(path)/\(name)") } catch { throw .output(error.description) }
    }

    func writeJSON(_ value: some Encodable, _ name: String) throws(JobError) {
        do { try AtomicFile.writeJSON(value, to: "\(path)/\(name)") } catch { throw .output(error.description) }
    }

    static func samePath(_ a: String, _ b: String) -> Bool {
        URL(fileURLWithPath: a).standardizedFileURL.resolvingSymlinksInPath().path
            == URL(fileURLWithPath: b).standardizedFileURL.resolvingSymlinksInPath().path
    }
}
