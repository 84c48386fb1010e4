import Foundation

/// An asynchronous run in simulated time: up to `concurrency` clients are on a trip (task down,
/// local training, reply up, timed by the `SimulatedClock`; fewer when no other client may train
/// at the current version or is online), and every trip's end is an event the `AsyncCoordinator`
/// handles. Events are processed in (time, dispatch order); all events
/// at one instant are processed before free slots are refilled, so clients that finish together
/// are replaced from the model they produced.
///
/// Training runs as fast as the cores allow, ahead of simulated time: a dispatched client's
/// reply is computed only when its arrival could come next, that is when its earliest possible
/// arrival (its task and its compute, no reply bytes yet) is not after the earliest known one,
/// and then every untrained trip is trained at once, in parallel. A reply depends only on its
/// task and its client's state, so the run is the same for any batching and any `threads`.
public struct AsyncSchedule: Sendable, Codable, Equatable {
    struct Trip: Sendable, Codable, Equatable {
        var client: Int
        var sequence: Int
        var start: Double
        /// The task, until the client has trained.
        var task: Data?
        /// The reply (nil once trained: the client failed).
        var reply: Data?
        var arrival: Double?
    }

    /// Simulated seconds since the run began.
    public private(set) var now = 0.0
    private var sequence = 0
    private var trips: [Trip] = []
    private var lastStep = 0.0
    private var completedTrips = 0

    public init() {}

    /// Whether a restored schedule fits the coordinator it continues with: its trips are the
    /// clients in flight (ids of the federation, each once), untrained with a task or trained
    /// with an arrival not before `now`, none started after `now`.
    public func fits(_ coordinator: AsyncCoordinator, clients: Int) -> Bool {
        let ids = trips.map(\.client)
        return Set(ids).count == ids.count && Set(ids) == Set(coordinator.inFlight.keys) && ids.allSatisfy { (0..<clients).contains($0) }
            && trips.allSatisfy { ($0.task == nil) != ($0.arrival == nil) && $0.start <= now && $0.start.isFinite && ($0.arrival ?? now) >= now
                && $0.sequence < sequence }
            && now.isFinite && now >= 0 && lastStep <= now && completedTrips >= 0
    }

    /// What the clients' side needs: the clock, each client's sample count, local epochs, and the
    /// trainer (tasks in, replies of the clients that did not fail out).
    public struct Clients {
        public var clock: SimulatedClock
        public var samples: (Int) -> Int
        public var epochs: Int
        public var train: ([ClientMessage]) -> [ClientMessage]
    }

    /// A server step, the simulated seconds since the previous one, and the trips that ended
    /// in between.
    public struct StepEvent: Sendable {
        public var step: AsyncCoordinator.Step
        public var seconds: Double
        public var trips: Int
    }

    /// Processes events until the coordinator steps: when its buffer fills, or when nothing is
    /// in flight and no client can be dispatched at this version (a partial step).
    public mutating func runUntilStep(_ coordinator: inout AsyncCoordinator, concurrency: Int, available: [Int],
                                      clients: Clients) -> StepEvent {
        precondition(concurrency >= 1)
        while true {
            train(clients)
            if let next = nextTrip(), trips[next].arrival! <= now {
                let trip = trips.remove(at: next)
                completedTrips += 1
                if let reply = trip.reply { _ = coordinator.accept([UInt8](reply), from: trip.client) } else { coordinator.fail(trip.client) }
                if coordinator.bufferIsFull { return stepped(&coordinator) }
                continue
            }
            if trips.count < concurrency {
                let online = available.filter { clients.clock.isOnline($0, at: now) }
                for task in coordinator.dispatch(concurrency - trips.count, available: online) {
                    trips.append(Trip(client: task.client, sequence: sequence, start: now, task: Data(task.bytes)))
                    sequence += 1
                }
            }
            if trips.isEmpty {
                // Nobody out and nobody online to send: wait for a client that may train at this version.
                if let next = clients.clock.firstOnline(available.filter(coordinator.mayDispatch), from: now), next > now {
                    now = next
                    continue
                }
                return stepped(&coordinator)
            }
            train(clients)
            now = trips[nextTrip()!].arrival!
        }
    }

    private mutating func stepped(_ coordinator: inout AsyncCoordinator) -> StepEvent {
        let event = StepEvent(step: coordinator.step(), seconds: now - lastStep, trips: completedTrips)
        (lastStep, completedTrips) = (now, 0)
        return event
    }

    /// The trained trip that ends first, ties to the earliest dispatched.
    private func nextTrip() -> Int? {
        trips.indices.filter { trips[$0].arrival != nil }.min { (trips[$0].arrival!, trips[$0].sequence) < (trips[$1].arrival!, trips[$1].sequence) }
    }

    /// Trains every untrained trip when one of them could end no later than the first known end.
    private mutating func train(_ clients: Clients) {
        let untrained = trips.indices.filter { trips[$0].arrival == nil }
        guard !untrained.isEmpty else { return }
        let firstKnown = nextTrip().map { trips[$0].arrival! }
        func earliest(_ trip: Trip) -> Double {
            min(trip.start + clients.clock.duration(client: trip.client, samples: clients.samples(trip.client), epochs: clients.epochs,
                                                    bytesDown: trip.task!.count, bytesUp: 0),
                clients.clock.windowEnd(trip.client, at: trip.start))
        }
        if let firstKnown, !untrained.contains(where: { earliest(trips[$0]) <= firstKnown }) { return }
        let replies = clients.train(untrained.map { ClientMessage(client: trips[$0].client, bytes: [UInt8](trips[$0].task!)) })
        var byClient: [Int: [UInt8]] = [:]
        for reply in replies { byClient[reply.client] = reply.bytes }
        for index in untrained {
            let trip = trips[index], reply = byClient[trip.client]
            let seconds = clients.clock.duration(client: trip.client, samples: clients.samples(trip.client), epochs: clients.epochs,
                                                 bytesDown: trip.task!.count, bytesUp: reply?.count ?? 0)
            // A client whose online window closes first fails then; its reply never leaves.
            let end = clients.clock.tripEnd(trip.client, start: trip.start, seconds: seconds)
            trips[index].arrival = end.time
            trips[index].reply = end.failed ? nil : reply.map { Data($0) }
            trips[index].task = nil
        }
    }
}
