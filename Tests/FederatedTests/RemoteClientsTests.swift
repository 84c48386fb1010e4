import Engine
import Foundation
@testable import Federated
import TestSupport
import Testing

/// The networked server's transport without a network: tasks offered, polled, replies delivered
/// from other threads, rounds closed by completion, departure or deadline.
@Suite struct RemoteClientsTests {
    func task(client: Int, round: Int) -> ClientMessage {
        var envelope = Envelope(kind: .train, client: client, round: round, modelVersion: round - 1)
        envelope.payloads[.model] = [UInt8](repeating: UInt8(client), count: 8)
        return ClientMessage(client: client, bytes: envelope.bytes)
    }

    func reply(client: Int, round: Int, kind: Envelope.Kind = .update) -> [UInt8] {
        var envelope = Envelope(kind: kind, client: client, round: round, modelVersion: round - 1)
        envelope.samples = 10 + client
        return envelope.bytes
    }

    func settings(deadline: Duration = .seconds(30), minSurvivors: Int = 1, underflow: UnderflowPolicy = .skip) -> RemoteClients.Settings {
        .init(minClients: 3, minSurvivors: minSurvivors, roundDeadline: deadline, underflow: underflow, livenessTimeout: .seconds(30))
    }

    func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("fedtrain-journal-\(UUID().uuidString)").path
    }

    /// Runs `exchange` on its own thread (it blocks, as on the server's round thread).
    func exchangeInBackground(_ clients: RemoteClients, _ tasks: [ClientMessage]) -> () -> [ClientMessage] {
        let box = ResultBox(), done = DispatchSemaphore(value: 0)
        Thread {
            box.replies = clients.exchange(tasks, clientDone: nil)
            done.signal()
        }.start()
        // Replies count once the round is open.
        while clients.progress() == nil { usleep(1000) }
        return {
            done.wait()
            return box.replies
        }
    }

    final class ResultBox: @unchecked Sendable { var replies: [ClientMessage] = [] }

    @Test(.dedicatedThread) func roundClosesWhenEverySampledClientReplied() async {
        let clients = RemoteClients(settings: settings(), journal: nil)
        clients.join([0, 1, 2])
        #expect(clients.available(from: [0, 1, 2, 3]) == [0, 1, 2])
        let tasks = [task(client: 2, round: 1), task(client: 0, round: 1)]
        let wait = exchangeInBackground(clients, tasks)
        guard case .tasks(let received) = await clients.poll([0, 1, 2], timeout: .seconds(5)) else {
            Issue.record("no tasks")
            return
        }
        #expect(received == [tasks[1], tasks[0]], "tasks in client order")
        #expect(clients.deliver(reply(client: 1, round: 1)) { _ in true } == .rejected("client 1 was not sampled in round 1"))
        #expect(clients.deliver(reply(client: 2, round: 1)) { $0 != 2 } == .rejected("not allowed to reply for client 2"))
        #expect(clients.deliver(reply(client: 2, round: 2)) { _ in true } == .stale)
        #expect(clients.deliver([1, 2, 3]) { _ in true } == .rejected(MessageError.truncated(3).description))
        #expect(clients.deliver(task(client: 2, round: 1).bytes) { _ in true } == .rejected("not a reply to a training task"))
        #expect(clients.deliver(reply(client: 2, round: 1)) { _ in true } == .accepted)
        #expect(clients.deliver(reply(client: 2, round: 1)) { _ in true } == .duplicate)
        guard case .tasks(let rest) = await clients.poll([0], timeout: .seconds(5)) else {
            Issue.record("client 0's task is no longer offered")
            return
        }
        #expect(rest == [tasks[1]])
        #expect(clients.deliver(reply(client: 0, round: 1)) { _ in true } == .accepted)
        let replies = wait()
        #expect(replies.map(\.client) == [2, 0], "replies in task order, whatever the arrival order")
        #expect(clients.deliver(reply(client: 0, round: 1)) { _ in true } == .stale, "the round is closed")
    }

    @Test(.dedicatedThread) func pollWaitsThenAnswersWaitAndDoneAfterFinish() async {
        let clients = RemoteClients(settings: settings(), journal: nil)
        let start = ContinuousClock.now
        #expect(await clients.poll([4], timeout: .milliseconds(200)) == .wait)
        #expect(ContinuousClock.now - start >= .milliseconds(200), "a long poll, not an immediate answer")
        clients.finish()
        #expect(await clients.poll([4], timeout: .seconds(5)) == .done)
        #expect(clients.everyoneToldDone)
    }

    @Test func deadlineClosesTheRoundWithTheRepliesItHas() {
        let clients = RemoteClients(settings: settings(deadline: .milliseconds(300)), journal: nil)
        clients.join([0, 1])
        let wait = exchangeInBackground(clients, [task(client: 0, round: 1), task(client: 1, round: 1)])
        #expect(clients.deliver(reply(client: 1, round: 1)) { _ in true } == .accepted)
        let start = ContinuousClock.now
        #expect(wait().map(\.client) == [1])
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(!clients.stopRequested)
    }

    /// A round waits for `minClients` live clients; when they do not come within the deadline,
    /// the job stops with the reason, rather than waiting forever.
    @Test func tooFewClientsForTooLongStopTheJob() {
        var waiting = settings()
        waiting.availableDeadline = .milliseconds(300)
        let clients = RemoteClients(settings: waiting, journal: nil)
        clients.join([0, 1])
        let start = ContinuousClock.now
        #expect(clients.available(from: [0, 1, 2, 3]) == [0, 1])
        #expect(ContinuousClock.now - start >= .milliseconds(300))
        #expect(clients.stopReason == "only 2 of the 3 clients min_available requires were connected for 0.3 s (available_deadline)")
        let enough = RemoteClients(settings: waiting, journal: nil)
        enough.join([0, 1, 3])
        #expect(enough.available(from: [0, 1, 2, 3]) == [0, 1, 3])
        #expect(!enough.stopRequested)
    }

    @Test func underflowPolicies() throws {
        for (policy, stops) in [(UnderflowPolicy.stop, true), (.skip, false), (.extend(2), false)] {
            let clients = RemoteClients(settings: settings(deadline: .milliseconds(100), minSurvivors: 2, underflow: policy), journal: nil)
            let start = ContinuousClock.now
            #expect(clients.exchange([task(client: 0, round: 1), task(client: 1, round: 1)], clientDone: nil).isEmpty)
            let waited = ContinuousClock.now - start
            #expect(clients.stopRequested == stops, "\(policy)")
            if case .extend = policy { #expect(waited >= .milliseconds(300), "three deadlines: the first and two extensions") }
        }
        #expect(throws: ConfigurationError.self) { try UnderflowPolicy(parsing: "extend:0") }
        #expect(try UnderflowPolicy(parsing: "extend:4") == .extend(4))
    }

    @Test func aClientThatLeavesClosesTheRoundEarly() {
        let clients = RemoteClients(settings: settings(), journal: nil)
        clients.join([0, 1])
        let wait = exchangeInBackground(clients, [task(client: 0, round: 1), task(client: 1, round: 1)])
        #expect(clients.deliver(reply(client: 0, round: 1)) { _ in true } == .accepted)
        clients.leave([1])
        let start = ContinuousClock.now
        #expect(wait().map(\.client) == [0])
        #expect(ContinuousClock.now - start < .seconds(10), "did not wait for the 30 s deadline")
    }

    @Test func journaledRepliesSurviveARestart() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = RemoteClients(settings: settings(deadline: .milliseconds(100)), journal: ReplyJournal(directory: directory))
        let wait = exchangeInBackground(first, [task(client: 0, round: 3), task(client: 1, round: 3)])
        #expect(first.deliver(reply(client: 1, round: 3)) { _ in true } == .accepted)
        _ = wait()
        // A new server on the same journal: client 1's reply counts, and a retry of it is a duplicate.
        let restarted = RemoteClients(settings: settings(deadline: .seconds(30)), journal: ReplyJournal(directory: directory))
        let again = exchangeInBackground(restarted, [task(client: 0, round: 3), task(client: 1, round: 3)])
        #expect(restarted.deliver(reply(client: 1, round: 3)) { _ in true } == .duplicate)
        #expect(restarted.deliver(reply(client: 0, round: 3)) { _ in true } == .accepted)
        #expect(again().map(\.bytes) == [reply(client: 0, round: 3), reply(client: 1, round: 3)])
        restarted.checkpointed(round: 3)
        #expect(ReplyJournal(directory: directory).replies(round: 3).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/free").count == 2, "round 3's files kept for reuse")
        restarted.finish()
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/free").isEmpty, "none left once the job is over")
    }

    /// Only a reply the open round awaits gets a journal spool: the server writes nothing to
    /// disk for one it will refuse or answer as stale or duplicate.
    @Test func onlyAnAwaitedReplyIsSpooled() {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clients = RemoteClients(settings: settings(), journal: ReplyJournal(directory: directory))
        clients.join([0, 1, 2])
        let wait = exchangeInBackground(clients, [task(client: 0, round: 2), task(client: 1, round: 2)])
        func spooled(_ bytes: [UInt8], mayAct: (Int) -> Bool = { _ in true }) -> Bool {
            clients.spool(forReplyBeginning: bytes, mayAct: mayAct) != nil
        }
        #expect(spooled(reply(client: 0, round: 2)))
        #expect(spooled(Array(reply(client: 0, round: 2).prefix(Envelope.headerSize + Envelope.checksumSize))), "the routing header is enough")
        #expect(!spooled(reply(client: 0, round: 2), mayAct: { $0 != 0 }), "identity may not act as client 0")
        #expect(!spooled(reply(client: 0, round: 1)), "stale")
        #expect(!spooled(reply(client: 2, round: 2)), "not sampled")
        #expect(!spooled(task(client: 0, round: 2).bytes), "not a reply")
        #expect(!spooled([UInt8](repeating: 7, count: 64)), "no envelope")
        #expect(clients.deliver(reply(client: 0, round: 2)) { _ in true } == .accepted)
        #expect(!spooled(reply(client: 0, round: 2)), "duplicate")
        #expect(RemoteClients(settings: settings(), journal: nil).spool(forReplyBeginning: reply(client: 1, round: 2)) { _ in true } == nil, "no journal")
        #expect(clients.deliver(reply(client: 1, round: 2)) { _ in true } == .accepted)
        #expect(wait().count == 2)
    }

    @Test func journalIgnoresTornOrCorruptReplies() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = ReplyJournal(directory: directory)
        try journal.append([1, 2, 3], round: 1)
        try journal.append([4, 5], round: 1)
        #expect(ReplyJournal(directory: directory).replies(round: 1) == [[1, 2, 3], [4, 5]])
        let path = "\(directory)/round-1/2.wal"
        let whole = try AtomicFile.read(path)
        // The record is the header (12 bytes) and the reply; the page's padding after it is not read.
        for cut in 1..<(12 + 2) {
            try AtomicFile.write(Array(whole.prefix(12 + 2 - cut)), to: path)
            #expect(ReplyJournal(directory: directory).replies(round: 1) == [[1, 2, 3]], "cut \(cut)")
        }
        try AtomicFile.write(Array(whole.prefix(12 + 2)), to: path)
        #expect(ReplyJournal(directory: directory).replies(round: 1) == [[1, 2, 3], [4, 5]], "without padding")
        var flipped = whole
        flipped[12 + 1] ^= 1
        try AtomicFile.write(flipped, to: path)
        #expect(ReplyJournal(directory: directory).replies(round: 1) == [[1, 2, 3]], "bad CRC")
        // After a restart, new replies follow what is there, valid or not.
        let reopened = ReplyJournal(directory: directory)
        try reopened.append([6], round: 1)
        #expect(ReplyJournal(directory: directory).replies(round: 1) == [[1, 2, 3], [6]])
    }

    /// A reply spooled in pieces and committed reads back whole; a spool never committed leaves nothing.
    @Test func journalSpools() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = ReplyJournal(directory: directory)
        let reply: [UInt8] = Array(0..<200)
        let spool = try journal.spool()
        try spool.write(reply[..<150])
        try spool.write(reply[150...])
        try journal.commit(spool, round: 4, length: reply.count, checksum: UpdateMessage.checksum(reply[...]))
        do {
            let abandoned = try journal.spool()
            try abandoned.write(reply[...])
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/incoming").isEmpty)
        #expect(ReplyJournal(directory: directory).replies(round: 4) == [reply])
        journal.discard(through: 4)
        #expect(ReplyJournal(directory: directory).replies(round: 4).isEmpty)
    }

    /// The files of a checkpointed round are written over by the next round's replies (shorter,
    /// longer, split at any offset), which read back whole, also after a restart; the files a
    /// round leaves unused are removed at the next checkpoint.
    @Test func journalRecyclesCheckpointedFiles() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var generator = SeededGenerator(seed: 5)
        func reply(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        func free() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: "\(directory)/free").sorted() }
        func spooled(_ reply: [UInt8], round: Int, pieces: Int, into journal: ReplyJournal) throws {
            let spool = try journal.spool()
            let size = reply.count / pieces + 1
            for start in stride(from: 0, to: reply.count, by: size) { try spool.write(reply[start..<min(start + size, reply.count)]) }
            try journal.commit(spool, round: round, length: reply.count, checksum: UpdateMessage.checksum(reply[...]))
        }
        let journal = ReplyJournal(directory: directory)
        let first = [reply(50_000), reply(9_000), reply(7)]
        for (index, bytes) in first.enumerated() { try spooled(bytes, round: 1, pieces: 3 + index, into: journal) }
        journal.discard(through: 1)
        #expect(try free().count == 3)
        let second = [reply(10_001), reply(70_000)]
        for bytes in second { try spooled(bytes, round: 2, pieces: 7, into: journal) }
        #expect(try free().count == 1, "two of the three files reused")
        #expect(journal.replies(round: 2) == second)
        for (index, bytes) in second.enumerated() {
            let size = try FileManager.default.attributesOfItem(atPath: "\(directory)/round-2/\(index + 1).wal")[.size] as? Int
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            #expect(size == (12 + bytes.count + page - 1) / page * page, "a file holds its record in whole pages, nothing of the reply it replaced")
        }
        let restarted = ReplyJournal(directory: directory)
        #expect(restarted.replies(round: 2) == second)
        let third = reply(4_097)
        try spooled(third, round: 3, pieces: 2, into: restarted)
        #expect(try free().isEmpty, "the restarted journal reuses the file left free")
        #expect(restarted.replies(round: 3) == [third])
        restarted.discard(through: 2)
        #expect(try free().count == 2)
        #expect(restarted.replies(round: 2).isEmpty)
        restarted.discard(through: 3)
        #expect(try free().count == 1, "the two files round 3 did not reuse are removed")
        restarted.releaseRecycled()
        #expect(try free().isEmpty, "the job is over")
    }

    /// A reply of several sync strides, synced in the background while it is written, reads back
    /// whole; an abandoned one is removed once the background thread lets it go.
    @Test func journalSpoolsPastSyncStrides() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = ReplyJournal(directory: directory)
        var generator = SeededGenerator(seed: 3)
        let reply = (0..<(3 * ReplyJournal.Spool.syncStride + 12_345)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let spool = try journal.spool()
        for start in stride(from: 0, to: reply.count, by: 1 << 20) { try spool.write(reply[start..<min(start + (1 << 20), reply.count)]) }
        try journal.commit(spool, round: 2, length: reply.count, checksum: UpdateMessage.checksum(reply[...]))
        do {
            let abandoned = try journal.spool()
            try abandoned.write(reply[...])
        }
        #expect(journal.replies(round: 2) == [reply])
        let deadline = ContinuousClock.now + .seconds(10)
        while try !FileManager.default.contentsOfDirectory(atPath: "\(directory)/incoming").isEmpty, ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/incoming").isEmpty)
    }
}

@Suite struct EnvelopeBatchTests {
    @Test func roundTripAndHostileBytes() throws {
        let envelopes: [[UInt8]] = [[1, 2, 3], [], [9]]
        let bytes = EnvelopeBatch.encode(envelopes)
        #expect(bytes.count == 10 + 3 * 4 + 4)
        #expect(try EnvelopeBatch.decode(bytes) == envelopes)
        for length in 0..<bytes.count {
            #expect(throws: MessageError.self, "prefix \(length)") { try EnvelopeBatch.decode(Array(bytes.prefix(length))) }
        }
        #expect(throws: MessageError.self) { try EnvelopeBatch.decode(bytes + [0]) }
        var huge = bytes
        huge.replaceSubrange(6..<10, with: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: MessageError.badField("batch declares 4294967295 envelopes in 16 bytes")) { try EnvelopeBatch.decode(huge) }
    }

    @Test func headerMatchesTheFullDecode() throws {
        var envelope = Envelope(kind: .diverged, client: 70000, round: 12, modelVersion: 11)
        envelope.metrics = ["loss": 1]
        let bytes = envelope.bytes
        let header = try Envelope.header(of: bytes)
        #expect(header == Envelope.Header(kind: .diverged, client: 70000, round: 12, modelVersion: 11))
        for length in 0..<Envelope.headerSize + Envelope.checksumSize {
            #expect(throws: MessageError.self) { try Envelope.header(of: Array(bytes.prefix(length))) }
        }
    }
}
