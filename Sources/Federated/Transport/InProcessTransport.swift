import Datasets
import Engine
import Synchronization

/// Simulated failures: each training task's client drops out with probability `dropout` (drawn
/// from (seed, dropout, round, client)) or when (round, client) is in `scheduled`. A dropped
/// client has received its task (its downlink copy is up to date) and fails before replying.
public struct FaultPlan: Sendable {
    public var dropout: Double
    public var scheduled: Set<ScheduledDrop>
    public var seed: UInt64

    public init(dropout: Double = 0, scheduled: Set<ScheduledDrop> = [], seed: UInt64) {
        (self.dropout, self.scheduled, self.seed) = (dropout, scheduled, seed)
    }

    public func drops(round: Int, client: Int) -> Bool {
        if scheduled.contains(ScheduledDrop(round: round, client: client)) { return true }
        guard dropout > 0 else { return false }
        var generator = SeededGenerator.derived(seed: seed, RandomStream.dropout.rawValue, UInt64(round), UInt64(client))
        return generator.nextUnitDouble() < dropout
    }
}

/// All clients in this process: each task runs the `ClientRuntime` for its client on a worker
/// thread (one single-threaded trainer per worker, see `Parallelism`), with the client's data and
/// its `ClientState`, which this transport keeps on the clients' behalf.
///
/// Deterministic: a client's reply depends only on its task, state and data, never on which
/// worker ran it or when, so a round is bit-identical for any number of workers.
public final class InProcessTransport: ClientTransport {
    public let runtime: ClientRuntime
    public let data: LabeledImages
    public let partitions: [[Int]]
    public var faults: FaultPlan
    /// A data attack: these clients train on this copy of `data` (their samples poisoned).
    public let poisoned: (clients: Set<Int>, data: LabeledImages)?
    /// State of every client that keeps some (codec state, residual, model copy, control variate).
    public private(set) var states: [Int: ClientState] = [:]
    /// Clients whose state changed since `markSaved`.
    public private(set) var changed: Set<Int> = []
    private let workers: [SupervisedTraining]

    /// `workers` trainers of `network`, each sized for the largest batch that can occur among
    /// the clients it serves (`serving`, or all; no client holds more samples than its
    /// partition); refused when they would not fit in memory.
    public init(runtime: ClientRuntime, network: Sequential, data: LabeledImages, partitions: [[Int]], serving: [Int]? = nil,
                faults: FaultPlan, workers: Int, poisoned: (clients: Set<Int>, data: LabeledImages)? = nil) throws(ConfigurationError) {
        precondition(workers >= 1)
        (self.runtime, self.data, self.partitions, self.faults, self.poisoned) = (runtime, data, partitions, faults, poisoned)
        let batch = Self.batchCapacity(batchSize: runtime.training.batchSize, partitions: serving.map { $0.map { partitions[$0] } } ?? partitions)
        try ConfigurationError.checkMemory(workers * Trainer.byteCount(network: network, batchCapacity: batch, chunks: 1),
                                           for: "batch_size \(runtime.training.batchSize) on \(workers) worker threads")
        let optimizer = runtime.training.optimizer
        self.workers = (0..<workers).map { _ in
            SupervisedTraining(network: network, optimizer: optimizer, batchSize: batch, chunks: 1, threads: 1)
        }
    }

    /// The largest batch that can occur: the batch size, or the largest client if smaller
    /// (a batch never holds more samples than its client has).
    public static func batchCapacity(batchSize: Int, partitions: [[Int]]) -> Int {
        min(batchSize, max(1, partitions.map(\.count).max() ?? 1))
    }

    public func exchange(_ tasks: [ClientMessage], clientDone: ((Int, Int) -> Void)?) -> [ClientMessage] {
        guard !tasks.isEmpty else { return [] }
        // Raw per-slot buffers: workers fill disjoint slots (see `Parallelism.run`'s contract).
        let slots = UnsafeMutableBufferPointer<Slot>.allocate(capacity: tasks.count)
        _ = slots.initialize(from: tasks.map { task in
            let state = states[task.client] ?? runtime.initialState(client: task.client)
            return Slot(before: state, state: state)
        })
        defer {
            slots.deinitialize()
            slots.deallocate()
        }
        InProcessTransport.serveAll(tasks, slots: slots, runtime: runtime, faults: faults, data: data, poisoned: poisoned, partitions: partitions,
                                    workers: workers, clientDone: clientDone)
        var arrived: [ClientMessage] = []
        for (index, task) in tasks.enumerated() {
            let slot = slots[index]
            if slot.state != slot.before {
                states[task.client] = slot.state
                changed.insert(task.client)
            }
            if let reply = slot.reply { arrived.append(ClientMessage(client: task.client, bytes: reply)) }
        }
        return arrived
    }

    /// A task's client state going in and reply coming out.
    private struct Slot {
        let before: ClientState
        var state: ClientState
        var reply: [UInt8]?
    }

    /// Runs every task on the workers, each worker taking the next slot until none is left.
    private static func serveAll(_ tasks: [ClientMessage], slots: UnsafeMutableBufferPointer<Slot>, runtime: ClientRuntime, faults: FaultPlan,
                                 data: LabeledImages, poisoned: (clients: Set<Int>, data: LabeledImages)?, partitions: [[Int]],
                                 workers: [SupervisedTraining], clientDone: ((Int, Int) -> Void)?) {
        let done = Atomic<Int>(0)
        Parallelism.forEach(count: tasks.count, workers: workers.count) { slot, worker in
            let client = tasks[slot].client
            let own = poisoned.flatMap { $0.clients.contains(client) ? $0.data : nil } ?? data
            serve(tasks[slot], runtime: runtime, faults: faults, data: own, partitions: partitions, slot: &slots[slot], worker: workers[worker])
            let finished = done.add(1, ordering: .relaxed).newValue
            if worker == 0 { clientDone?(finished, tasks.count) }
        }
    }

    /// One client's task: receive, then (unless it drops out) run; no reply when it drops out.
    private static func serve(_ task: ClientMessage, runtime: ClientRuntime, faults: FaultPlan, data: LabeledImages,
                              partitions: [[Int]], slot: inout Slot, worker: SupervisedTraining) {
        let received: ReceivedTask
        do { received = try runtime.receive(task.bytes, client: task.client, state: &slot.state) } catch { return }
        if received.envelope.kind == .train && faults.drops(round: received.envelope.round, client: task.client) { return }
        slot.reply = runtime.run(received, data: ClientData(data: data, indices: partitions[task.client]), state: &slot.state, worker: worker)
    }

    public func markSaved() { changed = [] }

    /// Restores client states from a checkpoint, checking their lengths.
    public func restore(_ restored: [Int: ClientState]) throws(CheckpointError) {
        // The codec's state has the same length for every client: build one to know it.
        let count = runtime.layout.count, codecStateCount = runtime.initialState(client: 0).uplinkState.count
        for (client, state) in restored {
            guard (0..<partitions.count).contains(client), (state.residual?.count ?? count) == count, (state.copy?.count ?? count) == count,
                  (state.control?.count ?? count) == count, (state.momentum?.count ?? count) == count,
                  (state.local?.count ?? runtime.localCount) == runtime.localCount,
                  state.uplinkState.count == codecStateCount else {
                throw CheckpointError("checkpoint: state of client \(client) does not fit the model and codecs")
            }
        }
        states = restored
        changed = []
    }
}
