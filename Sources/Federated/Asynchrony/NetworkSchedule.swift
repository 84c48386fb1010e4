import Engine

/// An asynchronous run with clients in other processes: `concurrency` trips are kept out over
/// the `AsyncClientTransport`, trips end in real time, and every decision and end is appended to
/// the `AsyncEventLog` before the coordinator acts on it, which makes the run replayable
/// (`ReplaySchedule`). The log is flushed at each step, before the step's checkpoint.
public final class NetworkSchedule {
    public let transport: any AsyncClientTransport
    public let log: AsyncEventLog
    /// Ends received but not yet processed (the buffer filled before them).
    private var pending: [TripEnd] = []
    private var trips = 0
    /// Set when the log could not be written at a step: the run must stop before its checkpoint.
    public private(set) var writeError: FileError?

    public init(transport: any AsyncClientTransport, log: AsyncEventLog) { (self.transport, self.log) = (transport, log) }

    /// Processes trip ends, dispatching to the live clients of `all` as slots free up, until the
    /// coordinator steps (or, when no trip is out and no live client may be dispatched, steps
    /// with what it has). Returns the step and the trips that ended since the previous one.
    public func runUntilStep(_ coordinator: inout AsyncCoordinator, concurrency: Int, all: [Int]) -> (step: AsyncCoordinator.Step, trips: Int) {
        while true {
            while !pending.isEmpty {
                let end = pending.removeFirst()
                trips += 1
                switch end {
                case .replied(let reply):
                    log.append(.reply(client: reply.client))
                    _ = coordinator.accept(reply.bytes, from: reply.client)
                case .failed(let client):
                    log.append(.fail(client: client))
                    coordinator.fail(client)
                }
                if coordinator.bufferIsFull { return step(&coordinator) }
            }
            let free = concurrency - coordinator.inFlight.count
            if free > 0 {
                // With trips out, never block on `min_clients`: their ends must keep being processed.
                let live = coordinator.inFlight.isEmpty ? transport.available(from: all) : transport.liveClients(from: all)
                let tasks = coordinator.dispatch(free, available: live)
                for task in tasks { log.append(.dispatch(client: task.client, version: coordinator.version)) }
                transport.dispatch(tasks)
            }
            if coordinator.inFlight.isEmpty { return step(&coordinator) }
            pending = transport.awaitEnds()
        }
    }

    /// After a restart from a checkpoint: the trips that were out are lost (their tasks were
    /// not kept), so they end as failures, logged like any other.
    public func abandonTrips(_ coordinator: inout AsyncCoordinator) {
        for client in coordinator.inFlight.keys.sorted() {
            trips += 1
            log.append(.fail(client: client))
            coordinator.fail(client)
        }
    }

    private func step(_ coordinator: inout AsyncCoordinator) -> (step: AsyncCoordinator.Step, trips: Int) {
        let step = coordinator.step()
        log.append(.step(version: coordinator.version))
        do { try log.flush() } catch { writeError = error }
        defer { trips = 0 }
        return (step, trips)
    }
}
