import Engine
import Foundation
import Synchronization

/// The networked server's write-ahead log of accepted replies: a reply is on disk before the
/// client is told it was accepted, so a server killed at any moment restarts with every
/// acknowledged reply of the open round and never asks for it again.
///
/// A reply is written as it arrives, into a `Spool` (`incoming/UUID.part`); every
/// `Spool.syncStride` bytes, a background thread fdatasyncs what has come, so a large reply is
/// mostly on the disk when its last byte comes. Accepting it (`Spool.commit`) writes its header,
/// fsyncs it (the tail) and renames it to `round-R/N.wal` (N: its place in the round's arrival
/// order), then fsyncs the directory. The background syncs matter on a virtual disk: there a
/// write-back reaches the host's cache quickly and the fsync's cache flush is what takes the
/// time (about 0.12 s for 100 MB on the 2-core VM of docs/performance.md, however early the
/// write-back started), so the flush has to run while the reply is still arriving.
///
/// A file is: length (UInt64), CRC-32 of the reply (UInt32), the reply envelope, then anything up
/// to the file's end (ignored). A file shorter than its length or failing its CRC is ignored when
/// read; an uncommitted spool is removed.
///
/// Once the checkpoint after a round is on disk, the round's files are kept in `free/` for the
/// next round's replies, and the files the round before left unused are removed (at most one
/// round's files wait there). A reply written over a recycled file is a pure overwrite: its blocks
/// are allocated and written already, so its fdatasyncs need no ext4 journal commit (block
/// allocation, file size), and they take a fraction of a new file's (PostgreSQL recycles its WAL
/// segments for the same reason). A spool therefore writes whole pages only, so that a page of a
/// recycled file, not in the page cache, is never read back to be partly overwritten.
///
/// Not thread-safe: `RemoteClients` calls `commit`, `append` and `replies` under its lock, and
/// `discard` from the round thread after a checkpoint; `spool` may run on any thread (the free
/// files are behind their own lock); a spool is written by one handler at a time.
public final class ReplyJournal: @unchecked Sendable {
    public let directory: String
    private static let headerBytes = 12
    /// The round last committed to and the index its next file takes.
    private var next: (round: Int, index: Int)?
    private let syncer = BackgroundSync()
    /// The files in `free/`: journal files of checkpointed rounds, reused by the next spools.
    private let recycled: Mutex<[String]>

    /// The directory is created with the first reply; spools a stopped server left are removed,
    /// the files it had recycled are kept for reuse.
    public init(directory: String) {
        self.directory = directory
        try? FileManager.default.removeItem(atPath: "\(directory)/incoming")
        let free = "\(directory)/free"
        recycled = Mutex(((try? FileManager.default.contentsOfDirectory(atPath: free)) ?? []).sorted().map { "\(free)/\($0)" })
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
                  length <= UInt64(bytes.count - Self.headerBytes) else { return nil }
            let reply = Array(bytes[Self.headerBytes..<(Self.headerBytes + Int(length))])
            return UpdateMessage.checksum(reply[...]) == crc ? reply : nil
        }
    }

    /// A new spool for a reply about to arrive: a recycled file when one is free, else a new one.
    public func spool() throws(FileError) -> Spool {
        let incoming = "\(directory)/incoming"
        do { try FileManager.default.createDirectory(atPath: incoming, withIntermediateDirectories: true) } catch {
            throw FileError(path: incoming, problem: "cannot create the reply journal directory")
        }
        let path = "\(incoming)/\(UUID().uuidString).part"
        if let free = recycled.withLock({ $0.popLast() }) {
            if rename(free, path) == 0, let spool = try? Spool(path: path, recycled: true, syncer: syncer) { return spool }
            // A free file that cannot be taken is dropped; the reply goes to a new one.
            unlink(free)
            unlink(path)
        }
        return try Spool(path: path, recycled: false, syncer: syncer)
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

    /// Drops the replies of `round` and every earlier round (their checkpoint is on disk): their
    /// files become the free ones, those still free are removed.
    public func discard(through round: Int) {
        let free = "\(directory)/free"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let rounds = names.compactMap { $0.hasPrefix("round-") ? Int($0.dropFirst(6)) : nil }.filter { $0 <= round }
        try? FileManager.default.createDirectory(atPath: free, withIntermediateDirectories: true)
        replaceRecycled(with: rounds.flatMap { files(round: $0) }.compactMap { file in
            let path = "\(free)/\(UUID().uuidString).wal"
            return rename(file.path, path) == 0 ? path : nil
        })
        for number in rounds { try? FileManager.default.removeItem(atPath: roundDirectory(number)) }
    }

    /// Removes the files kept for reuse: the job is over, and a finished state directory holds no
    /// replies.
    public func releaseRecycled() { replaceRecycled(with: []) }

    /// Makes `files` the free ones, removing those free until now.
    private func replaceRecycled(with files: [String]) {
        for path in recycled.withLock({ unused in defer { unused = files }; return unused }) { unlink(path) }
    }

    /// A reply being received, in its own file: written as it arrives, removed unless committed.
    /// The file is written in whole pages: the first (the header's) by `commit`, the others as
    /// they fill, the last padded by `commit`.
    public final class Spool: @unchecked Sendable {
        /// Bytes written between two background syncs.
        static let syncStride = 4 << 20
        private static let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
        private var path: String
        private let descriptor: Int32
        private var committed = false
        private let syncer: BackgroundSync
        /// Whether the spool waits in the syncer's queue (it is queued once at a time).
        fileprivate let queued = Atomic<Bool>(false)
        /// `written` when the last background sync was asked for.
        private var syncRequested = 0
        /// The file's first page: the header's place, then the first reply bytes.
        private var head: [UInt8]
        /// The reply bytes past the last whole page written, and that page's end in the file.
        private var tail: [UInt8] = []
        private var pagesEnd: Int
        /// Reply bytes taken so far.
        public private(set) var written = 0
        /// The file's size when opened (a recycled file's old size; 0 for a new one).
        private let initialSize: Int
        /// Set by the background thread when an fdatasync failed: Linux reports a write-back
        /// error to one fsync of the file only, so `commit`'s own fsync could pass without it.
        private let syncFailed = Atomic<Bool>(false)

        /// Opens `path`: a new file, or a recycled one to write over.
        init(path: String, recycled: Bool, syncer: BackgroundSync) throws(FileError) {
            descriptor = open(path, O_WRONLY | O_CLOEXEC | (recycled ? 0 : O_CREAT | O_EXCL), 0o600)
            guard descriptor >= 0 else { throw FileError(path: path, problem: "cannot create: \(String(cString: strerror(errno)))") }
            (self.path, self.syncer) = (path, syncer)
            initialSize = recycled ? max(0, Int(lseek(descriptor, 0, SEEK_END))) : 0
            head = [UInt8](repeating: 0, count: ReplyJournal.headerBytes)
            head.reserveCapacity(Self.pageBytes)
            tail.reserveCapacity(Self.pageBytes)
            pagesEnd = Self.pageBytes
        }

        deinit {
            close(descriptor)
            if !committed { unlink(path) }
        }

        /// Takes the next bytes of the reply, writing the pages they complete; past every
        /// `syncStride` bytes, asks the background thread to put them on the disk, so that the
        /// fsync of `commit` finds little left to do.
        public func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
            var rest = bytes[...]
            let intoHead = min(Self.pageBytes - head.count, rest.count)
            head.append(contentsOf: rest.prefix(intoHead))
            rest = rest.dropFirst(intoHead)
            if !tail.isEmpty {
                let intoTail = min(Self.pageBytes - tail.count, rest.count)
                tail.append(contentsOf: rest.prefix(intoTail))
                rest = rest.dropFirst(intoTail)
                if tail.count == Self.pageBytes {
                    try withRawBytes(tail) { (page) throws(FileError) in try writePages(page[...]) }
                    tail.removeAll(keepingCapacity: true)
                }
            }
            let whole = rest.count - rest.count % Self.pageBytes
            try writePages(rest.prefix(whole))
            tail.append(contentsOf: rest.dropFirst(whole))
            written += bytes.count
            if written - syncRequested >= Self.syncStride {
                syncRequested = written
                syncer.request(self)
            }
        }

        public func write(_ bytes: ArraySlice<UInt8>) throws(FileError) {
            try withRawBytes(bytes) { (raw) throws(FileError) in try write(raw) }
        }

        /// Writes `bytes` (whole pages) at `pagesEnd`.
        private func writePages(_ bytes: Slice<UnsafeRawBufferPointer>) throws(FileError) {
            try write(bytes, at: pagesEnd)
            pagesEnd += bytes.count
        }

        private func write(_ bytes: Slice<UnsafeRawBufferPointer>, at offset: Int) throws(FileError) {
            var done = 0
            while done < bytes.count {
                let result = pwrite(descriptor, bytes.base.baseAddress! + bytes.startIndex + done, bytes.count - done, off_t(offset + done))
                if result < 0, errno == EINTR { continue }
                guard result > 0 else { throw FileError(path: path, problem: "cannot write a reply (disk full?): \(String(cString: strerror(errno)))") }
                done += result
            }
        }

        /// Puts what was written on the disk, then drops it from the page cache (the journal is
        /// read only after a crash). Runs on the background thread; a failure is kept for
        /// `commit` to report.
        fileprivate func syncWritten() {
            guard fdatasync(descriptor) == 0 else {
                syncFailed.store(true, ordering: .releasing)
                return
            }
            posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
        }

        fileprivate func commit(to destination: String, length: Int, checksum: UInt32) throws(FileError) {
            precondition(length == written, "committing \(length) bytes, \(written) written")
            if !tail.isEmpty {
                tail += repeatElement(0, count: Self.pageBytes - tail.count)
                try withRawBytes(tail) { (page) throws(FileError) in try writePages(page[...]) }
            }
            var header = ByteWriter(capacity: ReplyJournal.headerBytes)
            header.append(UInt64(length))
            header.append(checksum)
            head.replaceSubrange(0..<ReplyJournal.headerBytes, with: header.bytes)
            head += repeatElement(0, count: Self.pageBytes - head.count)
            try withRawBytes(head) { (page) throws(FileError) in try write(page[...], at: 0) }
            // A recycled file longer than this reply is cut to it: no other reply's bytes stay
            // behind it, and a restart reads no more than the record (a rare metadata change:
            // a round's replies are usually the same size).
            if initialSize > pagesEnd, ftruncate(descriptor, off_t(pagesEnd)) != 0 {
                throw FileError(path: path, problem: "cannot shorten a recycled journal file: \(String(cString: strerror(errno)))")
            }
            guard fsync(descriptor) == 0 else {
                throw FileError(path: path, problem: "cannot write a reply (disk full?): \(String(cString: strerror(errno)))")
            }
            guard !syncFailed.load(ordering: .acquiring) else { throw FileError(path: path, problem: "cannot write a reply: an fdatasync failed") }
            guard rename(path, destination) == 0 else { throw FileError(path: destination, problem: "cannot rename \(path) to it") }
            (path, committed) = (destination, true)
        }
    }
}

/// `bytes.withUnsafeBytes(body)` for a body that throws only `FileError`.
private func withRawBytes<Value>(_ bytes: some ContiguousBytes, _ body: (UnsafeRawBufferPointer) throws(FileError) -> Value) throws(FileError) -> Value {
    try bytes.withUnsafeBytes { raw in Result { () throws(FileError) in try body(raw) } }.get()
}

/// The thread that fdatasyncs spools while they are written. It runs while spools wait for a
/// sync and ends after a second without any, so an idle journal holds no thread.
final class BackgroundSync: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [ReplyJournal.Spool] = []
    private var running = false

    /// Queues `spool` for a sync unless it already waits for one.
    func request(_ spool: ReplyJournal.Spool) {
        guard !spool.queued.exchange(true, ordering: .acquiringAndReleasing) else { return }
        condition.lock()
        defer { condition.unlock() }
        pending.append(spool)
        if running { condition.signal() } else {
            running = true
            Thread { self.drain() }.start()
        }
    }

    private func drain() {
        condition.lock()
        while true {
            if pending.isEmpty, !condition.wait(until: Date(timeIntervalSinceNow: 1)), pending.isEmpty {
                running = false
                condition.unlock()
                return
            }
            guard !pending.isEmpty else { continue }
            let spool = pending.removeFirst()
            condition.unlock()
            // Cleared before the sync: bytes written during it are asked for again.
            spool.queued.store(false, ordering: .releasing)
            spool.syncWritten()
            condition.lock()
        }
    }
}
