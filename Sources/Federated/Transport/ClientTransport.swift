/// Carries a round's task envelopes to clients and their reply envelopes back, as bytes. The
/// coordinator never knows how: in process across cores (`InProcessTransport`), or over the
/// network in separate processes.
public protocol ClientTransport: AnyObject {
    /// Delivers every task and returns the replies that arrived, each with the client the
    /// transport vouches sent it. A client that failed sends nothing. `clientDone(done, total)`
    /// reports progress on the calling thread.
    func exchange(_ tasks: [ClientMessage], clientDone: ((Int, Int) -> Void)?) -> [ClientMessage]

    /// The clients of `all` a round may sample now (in id order); may wait until enough are.
    func available(from all: [Int]) -> [Int]

    /// The checkpoint after `round` is on disk.
    func checkpointed(round: Int)

    /// Set when the transport ended the job early (a networked round's underflow policy, or too
    /// few clients for too long).
    var stopRequested: Bool { get }
}

extension ClientTransport {
    public func available(from all: [Int]) -> [Int] { all }
    public func checkpointed(round: Int) {}
    public var stopRequested: Bool { false }
}

/// A transport whose clients work asynchronously: tasks go out one by one and each trip ends
/// on its own (a networked server's `RemoteClients`).
public protocol AsyncClientTransport: ClientTransport {
    /// Offers each task to its client without waiting for replies.
    func dispatch(_ tasks: [ClientMessage])
    /// The live clients among `all` now, without waiting for any.
    func liveClients(from all: [Int]) -> [Int]
    /// Waits until at least one trip has ended and returns every ended trip (replies in arrival
    /// order); empty when no trip is out.
    func awaitEnds() -> [TripEnd]
}

/// How an asynchronous trip ended.
public enum TripEnd: Sendable, Equatable {
    case replied(ClientMessage)
    /// The client left, went silent, or did not reply within the deadline.
    case failed(client: Int)
}

/// Envelope bytes to or from one client: one array, or parts one after another (a task sharing
/// its model with the round's other tasks, `Envelope.readdressed`).
public struct ClientMessage: Sendable, Equatable {
    public var client: Int
    private var storage: Storage

    private enum Storage: Sendable {
        case whole([UInt8])
        case parts([ArraySlice<UInt8>])
    }

    public init(client: Int, bytes: [UInt8]) { (self.client, storage) = (client, .whole(bytes)) }
    public init(client: Int, parts: [ArraySlice<UInt8>]) { (self.client, storage) = (client, .parts(parts)) }

    /// The envelope in one array: a copy when it is in parts.
    public var bytes: [UInt8] {
        get {
            switch storage {
            case .whole(let bytes): bytes
            case .parts(let parts): parts.joinedBytes()
            }
        }
        set { storage = .whole(newValue) }
    }

    /// The envelope as consecutive parts, none copied.
    public var parts: [ArraySlice<UInt8>] {
        switch storage {
        case .whole(let bytes): [bytes[...]]
        case .parts(let parts): parts
        }
    }

    public var count: Int { parts.reduce(0) { $0 + $1.count } }

    /// The envelope's first `count` bytes at most (its routing header), without joining it.
    public func prefix(_ count: Int) -> [UInt8] {
        var prefix: [UInt8] = []
        for part in parts where prefix.count < count { prefix += part.prefix(count - prefix.count) }
        return prefix
    }

    public static func == (a: ClientMessage, b: ClientMessage) -> Bool { a.client == b.client && a.bytes == b.bytes }
}
