import Foundation

/// What the server does when a round's deadline passes with fewer than `min_survivors` replies.
public enum UnderflowPolicy: Sendable, Equatable, CustomStringConvertible {
    /// Wait one more deadline, at most this many times, then skip.
    case extend(Int)
    /// Close the round without a new model (it counts as a round).
    case skip
    /// Close the round without a new model and end the job.
    case stop

    public init(parsing text: String) throws(ConfigurationError) {
        switch text {
        case "skip": self = .skip
        case "stop": self = .stop
        default:
            guard text.hasPrefix("extend:"), let count = Int(text.dropFirst(7)), count >= 1 else {
                throw ConfigurationError("on_underflow \(text): expected skip, stop or extend:N (N >= 1)")
            }
            self = .extend(count)
        }
    }

    public var description: String {
        switch self {
        case .extend(let count): return "extend:\(count)"
        case .skip: return "skip"
        case .stop: return "stop"
        }
    }
}

/// The server's side of a networked federation, whatever carries the bytes: which clients are
/// connected, the tasks out to them (one per client: a synchronous round's, or asynchronous
/// trips of several model versions), and the replies that came back. Network handlers call
/// `join`, `poll`, `deliver`, `heartbeat` and `leave` from any thread; the round loop calls
/// `available` and `exchange` (or `dispatch` and `awaitEnds`) on its own thread, which they block.
///
/// A round closes when every sampled client has replied or left, or at its deadline with at
/// least `minSurvivors` replies; otherwise `underflow` decides. An asynchronous trip ends with its
/// reply, or fails when its client leaves, goes silent or passes the deadline. It never waits
/// forever for a reply. Replies are checked for routing (kind, round, client, duplicates) here and in full by
/// the coordinator; every accepted reply is in the `journal` before `deliver` returns.
public final class RemoteClients: AsyncClientTransport, @unchecked Sendable {
    public struct Settings: Sendable {
        /// Clients that must be connected before a round starts.
        public var minClients: Int
        public var minSurvivors: Int
        public var roundDeadline: Duration
        public var underflow: UnderflowPolicy
        /// A client that has neither polled nor sent a heartbeat for this long is gone.
        public var livenessTimeout: Duration
        /// How long a round waits for `minClients` live clients before the job stops.
        public var availableDeadline: Duration = .seconds(3600)

        public init(minClients: Int, minSurvivors: Int, roundDeadline: Duration, underflow: UnderflowPolicy, livenessTimeout: Duration) {
            (self.minClients, self.minSurvivors, self.roundDeadline, self.underflow, self.livenessTimeout) =
                (minClients, minSurvivors, roundDeadline, underflow, livenessTimeout)
        }
    }

    /// The answer to a poll.
    public enum PollResult: Sendable, Equatable {
        /// Tasks for some of the polled clients, in client order.
        case tasks([ClientMessage])
        /// Nothing yet: poll again.
        case wait
        /// The job is over.
        case done
    }

    /// The answer to a delivered reply.
    public enum Receipt: Sendable, Equatable {
        case accepted
        /// Already received from this client this round (a retry after a lost acknowledgement).
        case duplicate
        /// For a round that is not open (finished, or not started).
        case stale
        case rejected(String)
    }

    /// What the server knows of one client, for `status`.
    public struct ClientStatus: Sendable, Codable, Equatable {
        public var client: Int
        public var secondsSinceSeen: Double
        public var live: Bool
    }

    public let settings: Settings
    private let journal: ReplyJournal?
    private let lock = NSCondition()
    private let clock = ContinuousClock()
    private var lastSeen: [Int: ContinuousClock.Instant] = [:]
    private var polling: [Int: Int] = [:]
    private var left: Set<Int> = []
    /// Every task out, by client: the open round's (synchronous), or trips of different model
    /// versions at once (asynchronous).
    private var trips: [Int: Trip] = [:]
    private var arrivals = 0
    private var waiters: [UInt64: Waiter] = [:]
    private var nextWaiter: UInt64 = 0
    private var finished = false
    /// Clients answered `.done` (the job is over and they know it).
    private var toldDone: Set<Int> = []
    /// Set by `releasePolls`: the server is going away; polls answer `.wait` at once.
    private var released = false
    /// Why the transport ended the job (the underflow policy, or too few clients for too long).
    public private(set) var stopReason: String?
    public var stopRequested: Bool { stopReason != nil }
    /// The sampled clients that did not reply in the last closed round (failed, left or late).
    public private(set) var lastMissing: [Int] = []

    private struct Trip {
        var round: Int
        var task: ClientMessage
        var sent: ContinuousClock.Instant
        var reply: [UInt8]?
        /// The reply's place in arrival order.
        var arrival = 0
    }

    private struct Waiter {
        var clients: Set<Int>
        var continuation: CheckedContinuation<PollResult, Never>
    }

    public init(settings: Settings, journal: ReplyJournal?) {
        (self.settings, self.journal) = (settings, journal)
    }

    // MARK: Network side

    /// Marks `clients` connected (again): a restarted client process joins with the same ids.
    public func join(_ clients: [Int]) {
        lock.withLock {
            let now = clock.now
            for client in clients {
                lastSeen[client] = now
                left.remove(client)
            }
            lock.broadcast()
        }
    }

    public func heartbeat(_ clients: [Int]) {
        lock.withLock {
            let now = clock.now
            for client in clients where !left.contains(client) { lastSeen[client] = now }
        }
    }

    /// `clients` leave: a sampled one that has not replied counts as failed at once.
    public func leave(_ clients: [Int]) {
        lock.withLock {
            left.formUnion(clients)
            lock.broadcast()
        }
    }

    /// The tasks out to those of `clients` that have not replied yet, as soon as there
    /// are some, or `.wait` after `timeout` (a long poll: no client sleeps between polls), or
    /// `.done` once the job is over. Cancelling the calling task answers `.wait`.
    public func poll(_ clients: [Int], timeout: Duration) async -> PollResult {
        let key: UInt64 = lock.withLock {
            for client in clients {
                lastSeen[client] = clock.now
                left.remove(client)
                polling[client, default: 0] += 1
            }
            lock.broadcast()
            nextWaiter += 1
            return nextWaiter
        }
        defer {
            lock.withLock {
                for client in clients {
                    polling[client, default: 1] -= 1
                    lastSeen[client] = clock.now
                }
            }
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<PollResult, Never>) in
                let immediate: PollResult? = lock.withLock {
                    if finished {
                        toldDone.formUnion(clients)
                        return .done
                    }
                    if released { return .wait }
                    let tasks = pendingTasks(for: Set(clients))
                    if !tasks.isEmpty { return .tasks(tasks) }
                    waiters[key] = Waiter(clients: Set(clients), continuation: continuation)
                    return nil
                }
                if let immediate {
                    continuation.resume(returning: immediate)
                    return
                }
                Task {
                    try? await Task.sleep(for: timeout)
                    self.resumeWaiter(key, with: .wait)
                }
            }
        } onCancel: {
            self.resumeWaiter(key, with: .wait)
        }
    }

    private func resumeWaiter(_ key: UInt64, with result: PollResult) {
        let waiter = lock.withLock { waiters.removeValue(forKey: key) }
        waiter?.continuation.resume(returning: result)
    }

    /// Caller holds the lock.
    private func pendingTasks(for clients: Set<Int>) -> [ClientMessage] {
        trips.filter { clients.contains($0.key) && $0.value.reply == nil }.sorted { $0.key < $1.key }.map(\.value.task)
    }

    /// Takes a reply from a sender allowed to speak for the clients `mayAct(client)` accepts;
    /// journals it before answering `.accepted`. `checksum`: the reply's `UpdateMessage.checksum`,
    /// when the transport computed it as the bytes arrived; `spool`: the journal's spool (from
    /// `spool(forReplyBeginning:mayAct:)`) the transport wrote them to meanwhile.
    public func deliver(_ bytes: [UInt8], checksum: UInt32? = nil, spool: ReplyJournal.Spool? = nil, mayAct: (Int) -> Bool) -> Receipt {
        let header: Envelope.Header
        do { header = try Envelope.header(of: bytes) } catch { return .rejected(error.description) }
        if let refusal = Self.senderRefusal(header, mayAct: mayAct) { return refusal }
        return lock.withLock {
            lastSeen[header.client] = clock.now
            if let refusal = roundRefusal(header) { return refusal }
            do {
                if let spool, let checksum {
                    try journal?.commit(spool, round: header.round, length: bytes.count, checksum: checksum)
                } else {
                    try journal?.append(bytes, round: header.round, checksum: checksum)
                }
            } catch { return .rejected("server cannot journal the reply: \(error)") }
            arrivals += 1
            (trips[header.client]!.reply, trips[header.client]!.arrival) = (bytes, arrivals)
            lock.broadcast()
            return .accepted
        }
    }

    /// A journal spool for a reply whose first bytes (at least its envelope's routing header)
    /// are `prefix`, if the open round awaits it: nil for a reply `deliver` would refuse as it
    /// stands (unreadable header, not a reply, a client `mayAct` refuses, stale, not sampled,
    /// already replied), without a journal, or when the spool cannot be created (`deliver` then
    /// journals the whole reply, or says why it cannot).
    public func spool(forReplyBeginning prefix: [UInt8], mayAct: (Int) -> Bool) -> ReplyJournal.Spool? {
        guard let journal, let header = try? Envelope.header(of: prefix), Self.senderRefusal(header, mayAct: mayAct) == nil,
              lock.withLock({ roundRefusal(header) == nil }) else { return nil }
        return try? journal.spool()
    }

    /// Why a reply with `header` is refused whatever the rounds: not a reply to a training task,
    /// or for a client its sender may not act as. Nil when neither.
    private static func senderRefusal(_ header: Envelope.Header, mayAct: (Int) -> Bool) -> Receipt? {
        guard header.kind.isTrainingReply else { return .rejected("not a reply to a training task") }
        guard mayAct(header.client) else { return .rejected("not allowed to reply for client \(header.client)") }
        return nil
    }

    /// Why the rounds cannot take a reply with `header` now (its client was not sampled in that
    /// open round, the round is over, or it already replied); nil when the open round awaits it.
    /// Called with `lock` held.
    private func roundRefusal(_ header: Envelope.Header) -> Receipt? {
        guard let trip = trips[header.client], trip.round == header.round else {
            let roundIsOpen = trips.values.contains { $0.round == header.round }
            return roundIsOpen ? .rejected("client \(header.client) was not sampled in round \(header.round)") : .stale
        }
        return trip.reply == nil ? nil : .duplicate
    }

    /// The connected clients, their last sign of life and whether they count as live.
    public func status() -> [ClientStatus] {
        lock.withLock {
            let now = clock.now
            return lastSeen.keys.sorted().map { client in
                ClientStatus(client: client, secondsSinceSeen: (now - lastSeen[client]!).seconds, live: isLive(client, now: now))
            }
        }
    }

    /// The open round and how many of its sampled clients replied.
    public func progress() -> (round: Int, replied: Int, sampled: Int)? {
        lock.withLock {
            guard let round = trips.values.map(\.round).max() else { return nil }
            return (round, trips.values.filter { $0.reply != nil }.count, trips.count)
        }
    }

    /// Caller holds the lock.
    private func isLive(_ client: Int, now: ContinuousClock.Instant) -> Bool {
        guard !left.contains(client), let seen = lastSeen[client] else { return false }
        return polling[client, default: 0] > 0 || now - seen < settings.livenessTimeout
    }

    // MARK: Round side

    /// The live clients among `all`, once at least `minClients` of them are live; waits until
    /// then, or until `availableDeadline` passes, which stops the job (`stopReason`).
    public func available(from all: [Int]) -> [Int] {
        let deadline = clock.now + settings.availableDeadline, required = min(settings.minClients, all.count)
        return lock.withLock {
            while true {
                let now = clock.now
                let live = all.filter { isLive($0, now: now) }
                if live.count >= required { return live }
                if now >= deadline {
                    stopReason = "only \(live.count) of the \(required) clients min_available requires were connected for "
                        + "\(String(format: "%g", settings.availableDeadline.seconds)) s (available_deadline)"
                    return live
                }
                _ = lock.wait(until: Date().addingTimeInterval(min(0.2, (deadline - now).seconds)))
            }
        }
    }

    /// Offers the tasks to their clients and returns the replies, in task order, when the round
    /// closes (see the type's contract). Replies journaled for this round before a restart count
    /// as received.
    public func exchange(_ tasks: [ClientMessage], clientDone: ((Int, Int) -> Void)?) -> [ClientMessage] {
        guard let first = tasks.first, let round = Self.round(of: first) else { return [] }
        let sampled = Set(tasks.map(\.client))
        lock.withLock {
            precondition(trips.isEmpty, "a round is already open")
            open(tasks, round: { _ in round })
            for reply in journal?.replies(round: round) ?? [] {
                if let header = try? Envelope.header(of: reply), sampled.contains(header.client) { trips[header.client]!.reply = reply }
            }
            handOutTasks()
        }
        var deadline = clock.now + settings.roundDeadline, extensions = 0
        return lock.withLock {
            var reported = -1
            while true {
                let replied = trips.values.filter { $0.reply != nil }.count
                if replied != reported {
                    reported = replied
                    clientDone?(reported, tasks.count)
                }
                let outstanding = sampled.filter { trips[$0]!.reply == nil && !left.contains($0) }
                if outstanding.isEmpty { break }
                if clock.now >= deadline {
                    if replied >= settings.minSurvivors { break }
                    if case .extend(let limit) = settings.underflow, extensions < limit {
                        extensions += 1
                        deadline = clock.now + settings.roundDeadline
                        continue
                    }
                    if settings.underflow == .stop {
                        stopReason = "round \(round)'s deadline passed with \(replied) of the \(settings.minSurvivors) replies min_survivors requires (on_underflow stop)"
                    }
                    break
                }
                let remaining = (deadline - clock.now).seconds
                _ = lock.wait(until: Date().addingTimeInterval(min(remaining, 0.5)))
            }
            let replies = tasks.compactMap { task in trips[task.client]!.reply.map { ClientMessage(client: task.client, bytes: $0) } }
            lastMissing = tasks.map(\.client).filter { trips[$0]!.reply == nil }.sorted()
            trips = [:]
            return replies
        }
    }

    /// The round a task's envelope header names.
    private static func round(of task: ClientMessage) -> Int? {
        try? Envelope.header(of: task.prefix(Envelope.headerSize + Envelope.checksumSize)).round
    }

    /// Caller holds the lock. Opens a trip per task (its round from `round(task)`).
    private func open(_ tasks: [ClientMessage], round: (ClientMessage) -> Int) {
        let now = clock.now
        for task in tasks {
            precondition(trips[task.client] == nil, "client \(task.client) already has a task out")
            trips[task.client] = Trip(round: round(task), task: task, sent: now)
        }
    }

    /// Caller holds the lock. Hands waiting polls the tasks of their clients not yet replied to.
    private func handOutTasks() {
        for (key, waiter) in waiters {
            let pending = pendingTasks(for: waiter.clients)
            guard !pending.isEmpty else { continue }
            waiters[key] = nil
            waiter.continuation.resume(returning: .tasks(pending))
        }
    }

    // MARK: Asynchronous trips

    /// Offers each task to its client (none may have a task out) without waiting for replies.
    public func dispatch(_ tasks: [ClientMessage]) {
        lock.withLock {
            open(tasks) { Self.round(of: $0) ?? 0 }
            handOutTasks()
        }
    }

    public func liveClients(from all: [Int]) -> [Int] {
        lock.withLock {
            let now = clock.now
            return all.filter { isLive($0, now: now) }
        }
    }

    /// Waits until at least one trip has ended (replied; or its client left, went silent or
    /// exceeded `roundDeadline` since its task went out) and returns every ended trip, replies in
    /// arrival order then failures by client id, forgetting them. Empty when no trip is out.
    public func awaitEnds() -> [TripEnd] {
        lock.withLock {
            while !trips.isEmpty {
                let now = clock.now
                let replied = trips.filter { $0.value.reply != nil }.sorted { $0.value.arrival < $1.value.arrival }
                let failed = trips.filter { $0.value.reply == nil && (left.contains($0.key) || !isLive($0.key, now: now)
                                                                      || now - $0.value.sent >= settings.roundDeadline) }.keys.sorted()
                if !replied.isEmpty || !failed.isEmpty {
                    for client in replied.map(\.key) + failed { trips[client] = nil }
                    return replied.map { .replied(ClientMessage(client: $0.key, bytes: $0.value.reply!)) } + failed.map { .failed(client: $0) }
                }
                _ = lock.wait(until: Date().addingTimeInterval(0.2))
            }
            return []
        }
    }

    public func checkpointed(round: Int) { journal?.discard(through: round) }

    /// Ends the job: every poll, waiting or to come, answers `.done`; the journal's recycled
    /// files are removed.
    public func finish() {
        journal?.releaseRecycled()
        let resumed: [Waiter] = lock.withLock {
            finished = true
            defer { waiters = [:] }
            for waiter in waiters.values { toldDone.formUnion(waiter.clients) }
            return Array(waiters.values)
        }
        for waiter in resumed { waiter.continuation.resume(returning: .done) }
    }

    /// The server is shutting down (not the job): waiting polls answer `.wait` now, so the
    /// transport can drain, and clients come back to a restarted server.
    public func releasePolls() {
        let resumed: [Waiter] = lock.withLock {
            released = true
            defer { waiters = [:] }
            return Array(waiters.values)
        }
        for waiter in resumed { waiter.continuation.resume(returning: .wait) }
    }

    /// Whether every client that has been seen and has not left was told the job is over.
    public var everyoneToldDone: Bool {
        lock.withLock { lastSeen.keys.allSatisfy { left.contains($0) || toldDone.contains($0) } }
    }
}
