import Engine
import Foundation

/// A client process's state on disk (`fedtrain client --state DIR`), so that a client restarted
/// after a crash or a reboot continues where it was: each hosted client's `ClientState` (its
/// error-feedback residual, codec state, model copy, control variate...) and its last training
/// reply, which it sends again, unchanged, if the server asks for that round again (training a
/// second time would advance its state twice).
///
/// One file per client, `client-K.state`, rewritten atomically after each training reply:
/// the magic `FTCS1\n`, the reply's round and byte count (little-endian UInt64s), the reply,
/// then the state's vectors as safetensors. State and reply are written together, so a crash
/// leaves the old pair or the new one. `job.yaml` holds the job's configuration: a directory
/// is refused for a job whose results would differ (`checkResumable`). One client process per
/// directory: the store holds its lock (`DirectoryLock`) while it lives.
public struct ClientStateStore: Sendable {
    public let directory: String
    private let lock: DirectoryLock
    static let magic = Array("FTCS1\n".utf8)

    /// What a client's file holds.
    public struct Saved: Sendable, Equatable {
        public var state: ClientState
        public var reply: (round: Int, bytes: [UInt8])?

        public init(state: ClientState, reply: (round: Int, bytes: [UInt8])?) {
            (self.state, self.reply) = (state, reply)
        }

        public static func == (a: Saved, b: Saved) -> Bool {
            a.state == b.state && a.reply?.round == b.reply?.round && a.reply?.bytes == b.reply?.bytes
        }
    }

    /// Opens (creating it when missing) the state directory of the job whose configuration text
    /// is `job`; refuses a directory that holds another job's state.
    public init(directory: String, job: String) throws(CheckpointError) {
        self.directory = directory
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw CheckpointError("--state \(directory): cannot create the directory (\(error.localizedDescription))")
        }
        do { lock = try DirectoryLock(directory, busy: "is in use by another fedtrain client") } catch {
            throw CheckpointError("--state \(error.description)")
        }
        let jobPath = "\(directory)/job.yaml"
        if FileManager.default.fileExists(atPath: jobPath) {
            let saved: [UInt8]
            do { saved = try AtomicFile.read(jobPath) } catch { throw CheckpointError("--state \(directory): \(error.description)") }
            if saved != Array(job.utf8) {
                // A restarted server may change what does not change results (rounds, threads,
                // deadlines), as its own resume allows; anything else is another job.
                do {
                    let before = try ConfigurationFile.decode(String(decoding: saved, as: UTF8.self), source: jobPath)
                    try ConfigurationFile.decode(job, source: "the server's job").checkResumable(from: before, finishedRounds: 0, directory: directory)
                } catch {
                    throw CheckpointError("--state \(directory) holds the state of another job (\(error)): give an empty directory")
                }
                do { try AtomicFile.write(Array(job.utf8), to: jobPath) } catch { throw CheckpointError("--state \(directory): \(error.description)") }
            }
        } else {
            do { try AtomicFile.write(Array(job.utf8), to: jobPath) } catch { throw CheckpointError("--state \(directory): \(error.description)") }
        }
    }

    private func path(_ client: Int) -> String { "\(directory)/client-\(client).state" }

    /// Writes `client`'s state and last reply.
    public func save(client: Int, _ saved: Saved) throws(CheckpointError) {
        let reply = saved.reply ?? (round: 0, bytes: [])
        var writer = ByteWriter()
        writer.append(contentsOf: Self.magic)
        writer.append(UInt64(reply.round))
        writer.append(UInt64(reply.bytes.count))
        writer.append(contentsOf: reply.bytes)
        writer.append(contentsOf: CheckpointStore.encode(saved.state.vectors))
        do { try AtomicFile.write(writer.bytes, to: path(client)) } catch { throw CheckpointError("cannot save client \(client)'s state: \(error.description)") }
    }

    /// The saved state of each of `clients` that has a file (those without are new).
    public func load(clients: [Int]) throws(CheckpointError) -> [Int: Saved] {
        var saved: [Int: Saved] = [:]
        for client in clients where FileManager.default.fileExists(atPath: path(client)) {
            let bytes: [UInt8]
            do { bytes = try AtomicFile.read(path(client)) } catch { throw CheckpointError("cannot read client \(client)'s state: \(error.description)") }
            saved[client] = try Self.decode(bytes, name: path(client))
        }
        return saved
    }

    static func decode(_ bytes: [UInt8], name: String) throws(CheckpointError) -> Saved {
        guard bytes.starts(with: magic) else { throw CheckpointError("\(name) is not a fedtrain client state") }
        var reader = ByteReader(bytes, from: magic.count)
        guard let round = try? reader.read(UInt64.self), let length = try? reader.read(UInt64.self),
              round <= UInt64(Int32.max), length <= UInt64(reader.remaining) else {
            throw CheckpointError("\(name) is truncated or corrupt")
        }
        let header = reader.offset, replyEnd = header + Int(length)
        let vectors: [String: [Float]]
        do { vectors = try Safetensors.tensors(Array(bytes[replyEnd...]), path: name).mapValues(\.values) } catch {
            throw CheckpointError("\(name): \(error.description)")
        }
        guard let state = ClientState(vectors: vectors) else { throw CheckpointError("\(name) holds an unknown state vector") }
        return Saved(state: state, reply: length == 0 ? nil : (Int(round), Array(bytes[header..<replyEnd])))
    }
}
