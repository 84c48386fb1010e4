/// Re-runs a networked asynchronous run from its `AsyncEventLog` in this process: the same
/// clients dispatched at the same versions, their replies (trained here, by the same
/// `ClientRuntime` on the same partitions) processed in the logged order, the same steps, so the
/// run ends with the same model. Replies are trained ahead, every dispatched trip at once, in
/// parallel. The log does not say how far a failed trip got in the real run: here its task was
/// trained if a reply was needed before its failure was logged, and dropped untrained otherwise.
/// Clients that keep state between trips (error feedback, stateful codecs, a compressed
/// downlink's model copy, client momentum) can then differ from the real ones, and the replay
/// with them; stateless clients replay exactly.
public struct ReplaySchedule: Sendable {
    public let events: [AsyncEvent]
    public private(set) var position = 0
    private var tasks: [Int: ClientMessage] = [:]
    private var replies: [Int: [UInt8]] = [:]

    public init(events: [AsyncEvent]) { self.events = events }

    public var isFinished: Bool { position == events.count }

    /// Replays events through the next step; an event the run could not have produced is an
    /// error naming it.
    public mutating func runUntilStep(_ coordinator: inout AsyncCoordinator,
                                      train: ([ClientMessage]) -> [ClientMessage]) throws(ConfigurationError) -> (step: AsyncCoordinator.Step, trips: Int) {
        var trips = 0
        while position < events.count {
            let event = events[position]
            position += 1
            func refuse(_ why: String) -> ConfigurationError { ConfigurationError("event \(position) (\(event)): \(why)") }
            switch event {
            case .dispatch(let client, let version):
                guard version == coordinator.version else { throw refuse("the model is at version \(coordinator.version)") }
                guard coordinator.mayDispatch(client) else { throw refuse("client \(client) cannot be dispatched now") }
                tasks[client] = coordinator.dispatch(clients: [client])[0]
            case .reply(let client):
                if replies[client] == nil, tasks[client] != nil {
                    for reply in train(tasks.keys.sorted().map { tasks[$0]! }) { replies[reply.client] = reply.bytes }
                    for client in tasks.keys where replies[client] == nil { replies[client] = [] }  // failed here: an empty reply is rejected
                    tasks = [:]
                }
                guard let reply = replies.removeValue(forKey: client) else { throw refuse("client \(client) has no trip out") }
                trips += 1
                _ = coordinator.accept(reply, from: client)
            case .fail(let client):
                guard tasks.removeValue(forKey: client) != nil || replies.removeValue(forKey: client) != nil else {
                    throw refuse("client \(client) has no trip out")
                }
                trips += 1
                coordinator.fail(client)
            case .step(let version):
                let step = coordinator.step()
                guard coordinator.version == version else { throw refuse("the step makes version \(coordinator.version)") }
                return (step, trips)
            }
        }
        throw ConfigurationError("the event log ends before a step (\(events.count) events)")
    }
}
