import Engine
import Foundation

/// The networked server's write-ahead log of accepted replies: a reply is appended and flushed
/// to disk before the client is told it was accepted, so a server killed at any moment restarts
/// with every acknowledged reply of the open round and never asks for it again.
///
/// One file per round, `round-R.wal` in `directory`: records of length (4), CRC-32 of the bytes
/// (4), then the reply envelope. A torn last record (the server died while writing it, before it
/// acknowledged) is dropped when the file is read. A round's file is removed once the checkpoint
/// after that round is on disk.
public final class ReplyJournal: @unchecked Sendable {
    public let directory: String
    private var file: (round: Int, descriptor: Int32)?

    /// The directory is created with the first reply.
    public init(directory: String) {
        self.directory = directory
    }

    deinit { if let file { close(file.descriptor) } }

    private func path(round: Int) -> String { "\(directory)/round-\(round).wal" }

    /// The replies journaled for `round`, in the order they were accepted.
    public func replies(round: Int) -> [[UInt8]] {
        guard let bytes = try? AtomicFile.read(path(round: round)) else { return [] }
        var replies: [[UInt8]] = []
        var reader = ByteReader(bytes)
        while reader.remaining >= 8, let length = try? Int(reader.read(UInt32.self)), let crc = try? reader.read(UInt32.self),
              length <= reader.remaining {
            let reply = (try? reader.readBytes(count: length) { Array($0) }) ?? []
            guard UpdateMessage.checksum(reply[...]) == crc else { break }
            replies.append(reply)
        }
        return replies
    }

    /// Appends `reply` to `round`'s file and flushes it to disk. `checksum`: the reply's
    /// `UpdateMessage.checksum` when the caller has it already (computed as it arrived).
    public func append(_ reply: [UInt8], round: Int, checksum: UInt32? = nil) throws(FileError) {
        if file?.round != round {
            do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                throw FileError(path: directory, problem: "cannot create the reply journal directory")
            }
            if let file { close(file.descriptor) }
            file = nil
            // A torn tail would hide what follows it: rewrite the file with its valid records first.
            let valid = replies(round: round)
            try AtomicFile.write(valid.flatMap(Self.record), to: path(round: round))
            let descriptor = open(path(round: round), O_WRONLY | O_APPEND | O_CLOEXEC)
            guard descriptor >= 0 else { throw FileError(path: path(round: round), problem: "cannot open for appending") }
            file = (round, descriptor)
        }
        // The header and the reply go out in one gather write: the reply is not copied.
        var header = Self.header(reply, checksum: checksum)
        let complete = header.withUnsafeMutableBytes { head in
            reply.withUnsafeBytes { body in
                var parts = [iovec(iov_base: head.baseAddress, iov_len: head.count),
                             iovec(iov_base: UnsafeMutableRawPointer(mutating: body.baseAddress), iov_len: body.count)]
                return Self.writeAll(file!.descriptor, &parts)
            }
        }
        guard complete, fsync(file!.descriptor) == 0 else {
            throw FileError(path: path(round: round), problem: "cannot append a reply (disk full?)")
        }
    }

    private static func header(_ reply: [UInt8], checksum: UInt32?) -> [UInt8] {
        var writer = ByteWriter(capacity: 8)
        writer.append(UInt32(reply.count))
        writer.append(checksum ?? UpdateMessage.checksum(reply[...]))
        return writer.bytes
    }

    private static func record(_ reply: [UInt8]) -> [UInt8] { header(reply, checksum: nil) + reply }

    /// `writev` until every byte of `parts` is written (a regular file may take fewer at a time).
    private static func writeAll(_ descriptor: Int32, _ parts: inout [iovec]) -> Bool {
        var first = 0
        while first < parts.count {
            let written = parts[first...].withUnsafeBufferPointer { writev(descriptor, $0.baseAddress, Int32($0.count)) }
            guard written > 0 else { return false }
            var left = written
            while first < parts.count, left >= parts[first].iov_len {
                left -= parts[first].iov_len
                first += 1
            }
            if left > 0 {
                parts[first].iov_base += left
                parts[first].iov_len -= left
            }
        }
        return true
    }

    /// Removes the files of `round` and every earlier round: their checkpoint is on disk.
    public func discard(through round: Int) {
        if let file, file.round <= round {
            close(file.descriptor)
            self.file = nil
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasPrefix("round-") && name.hasSuffix(".wal") {
            if let number = Int(name.dropFirst(6).dropLast(4)), number <= round { try? FileManager.default.removeItem(atPath: "\(directory)/\(name)") }
        }
    }
}
