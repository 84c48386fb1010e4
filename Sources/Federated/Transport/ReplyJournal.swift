import Engine
import Foundation

/// The networked server's write-ahead log of accepted replies: a reply is on disk before the
/// client is told it was accepted, so a server killed at any moment restarts with every
/// acknowledged reply of the open round and never asks for it again.
///
/// A reply is written as it arrives, into a `Spool` (`incoming/UUID.part`), so a large reply
/// is already in the page cache, its write-back started, when its last byte comes; accepting
/// it (`Spool.commit`) writes its header, fsyncs it and renames it to `round-R/N.wal` (N: its
/// place in the round's arrival order), then fsyncs the directory. A file is: length (UInt64),
/// CRC-32 of the reply (UInt32), the reply envelope. A file shorter than its length or failing
/// its CRC is ignored when read; an uncommitted spool is removed. A round's directory is removed
/// once the checkpoint after that round is on disk.
///
/// Not thread-safe: `RemoteClients` calls `commit`, `append`, `replies` and `discard` under its
/// lock; a spool is written by one handler at a time.
public final class ReplyJournal: @unchecked Sendable {
    public let directory: String
    private static let headerBytes = 12
    /// The round last committed to and the index its next file takes.
    private var next: (round: Int, index: Int)?

    /// The directory is created with the first reply; spools a stopped server left are removed.
    public init(directory: String) {
        self.directory = directory
        try? FileManager.default.removeItem(atPath: "\(directory)/incoming")
    }

    private func roundDirectory(_ round: Int) -> String { "\(directory)/round-\(round)" }

    /// The committed files of `round`, in arrival order.
    private func files(round: Int) -> [(index: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: roundDirectory(round))) ?? []
        return names.compactMap { name in
            guard name.hasSuffix(".wal"), let index = Int(name.dropLast(4)) else { return nil }
            return (index, "\(roundDirectory(round))/\(name)")
        }.sorted { $0.index < $1.index }
    }

    /// The replies journaled for `round`, in the order they were accepted.
    public func replies(round: Int) -> [[UInt8]] {
        files(round: round).compactMap { file in
            guard let bytes = try? AtomicFile.read(file.path), bytes.count >= Self.headerBytes else { return nil }
            var reader = ByteReader(bytes)
            guard let length = try? reader.read(UInt64.self), let crc = try? reader.read(UInt32.self),
                  length == UInt64(bytes.count - Self.headerBytes) else { return nil }
            let reply = Array(bytes[Self.headerBytes...])
            return UpdateMessage.checksum(reply[...]) == crc ? reply : nil
        }
    }

    /// A new spool for a reply about to arrive.
    public func spool() throws(FileError) -> Spool {
        let incoming = "\(directory)/incoming"
        do { try FileManager.default.createDirectory(atPath: incoming, withIntermediateDirectories: true) } catch {
            throw FileError(path: incoming, problem: "cannot create the reply journal directory")
        }
        return try Spool(path: "\(incoming)/\(UUID().uuidString).part")
    }

    /// Journals a whole reply at once (a spool written in one piece and committed).
    public func append(_ reply: [UInt8], round: Int, checksum: UInt32? = nil) throws(FileError) {
        let spool = try spool()
        try spool.write(reply[...])
        try commit(spool, round: round, length: reply.count, checksum: checksum ?? UpdateMessage.checksum(reply[...]))
    }

    /// Makes `spool` (`length` bytes with CRC `checksum`) the next accepted reply of `round`.
    public func commit(_ spool: Spool, round: Int, length: Int, checksum: UInt32) throws(FileError) {
        let destination = roundDirectory(round)
        do { try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true) } catch {
            throw FileError(path: destination, problem: "cannot create the reply journal directory")
        }
        let index = next?.round == round ? next!.index : (files(round: round).last?.index ?? 0) + 1
        try spool.commit(to: "\(destination)/\(index).wal", length: length, checksum: checksum)
        next = (round, index + 1)
        AtomicFile.syncDirectory(destination)
    }

    /// Removes the replies of `round` and every earlier round: their checkpoint is on disk.
    public func discard(through round: Int) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix("round-") {
            if let number = Int(name.dropFirst(6)), number <= round { try? FileManager.default.removeItem(atPath: "\(directory)/\(name)") }
        }
    }

    /// A reply being received, in its own file: written as it arrives, removed unless committed.
    public final class Spool: @unchecked Sendable {
        private var path: String
        private let descriptor: Int32
        private var committed = false
        /// Reply bytes written so far.
        public private(set) var written = 0

        init(path: String) throws(FileError) {
            descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else { throw FileError(path: path, problem: "cannot create: \(String(cString: strerror(errno)))") }
            self.path = path
            // The header's place; its values are written by `commit`.
            try write([UInt8](repeating: 0, count: ReplyJournal.headerBytes)[...])
            written = 0
        }

        deinit {
            close(descriptor)
            if !committed { unlink(path) }
        }

        /// Appends the next bytes of the reply and starts their write-back, so that the fsync
        /// of `commit` finds little left to do.
        public func write(_ bytes: ArraySlice<UInt8>) throws(FileError) {
            var done = 0
            while done < bytes.count {
                let result = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + done, bytes.count - done) }
                if result < 0, errno == EINTR { continue }
                guard result > 0 else { throw FileError(path: path, problem: "cannot write a reply (disk full?): \(String(cString: strerror(errno)))") }
                done += result
            }
            // Starts the write-back of what was just written (Linux's POSIX_FADV_DONTNEED writes
            // dirty pages back before dropping the clean ones; the journal is read only after a crash).
            posix_fadvise(descriptor, off_t(ReplyJournal.headerBytes + written), off_t(bytes.count), POSIX_FADV_DONTNEED)
            written += bytes.count
        }

        fileprivate func commit(to destination: String, length: Int, checksum: UInt32) throws(FileError) {
            precondition(length == written, "committing \(length) bytes, \(written) written")
            var header = ByteWriter(capacity: ReplyJournal.headerBytes)
            header.append(UInt64(length))
            header.append(checksum)
            let wrote = header.bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
            guard wrote == ReplyJournal.headerBytes, fsync(descriptor) == 0 else {
                throw FileError(path: path, problem: "cannot write a reply (disk full?): \(String(cString: strerror(errno)))")
            }
            guard rename(path, destination) == 0 else { throw FileError(path: destination, problem: "cannot rename \(path) to it") }
            (path, committed) = (destination, true)
        }
    }
}
