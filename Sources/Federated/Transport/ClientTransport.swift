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

/// Envelope bytes to or from one client.
public struct ClientMessage: Sendable, Equatable {
    public var client: Int
    public var bytes: [UInt8]
    public init(client: Int, bytes: [UInt8]) { (self.client, self.bytes) = (client, bytes) }
}
