import Datasets
import Engine

/// The clients one process hosts in a networked federation: the same `ClientRuntime` and
/// in-process scheduling as `fedtrain simulate` (each task on its own single-threaded worker,
/// across the machine's cores), so a client's reply is bit-identical to the simulator's for the
/// same task, state and data.
///
/// It keeps each client's last reply: a task it has already answered (the server restarted, or
/// the acknowledgement was lost) gets the same reply again, never a second training run, which
/// would advance the client's state twice.
public final class ClientHost: @unchecked Sendable {
    public let clients: [Int]
    /// The job's model, built for the hosted clients' data.
    public let network: Sequential
    public let transport: InProcessTransport
    /// Reply with the model unchanged instead of training (`ClientRuntime.echo`): a benchmark of
    /// the federation's own cost.
    public var echo = false
    private var echoStates: [Int: ClientState] = [:]
    private var lastReplies: [Int: (round: Int, bytes: [UInt8])] = [:]
    private let store: ClientStateStore?

    /// Hosts `clients` of the job in `configuration`. `partitions`: each client's sample indices
    /// in `train` (the job's partitioner over a shared data set, or all of a client's own data).
    /// `store`: where the hosted clients' states and last replies persist (`--state DIR`); what
    /// it holds is restored here, and every training reply is saved before it is returned.
    public init(configuration: SimulationConfiguration, train: LabeledImages, partitions: [[Int]], clients: [Int],
                threads: Int, store: ClientStateStore? = nil) throws(JobError) {
        precondition(!clients.isEmpty && threads >= 1)
        for client in clients where !partitions.indices.contains(client) {
            throw .configuration(ConfigurationError("client \(client) is not in this job (it has \(partitions.count) clients)"))
        }
        self.clients = clients
        do {
            network = try configuration.data.model.network(for: train)
            let runtime = try Simulation.clientRuntime(configuration: try configuration.resolvingExampleNoise(partitions: partitions),
                                                       network: network, secureNoise: true)
            transport = try InProcessTransport(runtime: runtime, network: network, data: train, partitions: partitions,
                                               serving: clients, faults: FaultPlan(seed: configuration.federation.seed),
                                               workers: min(threads, clients.count))
        } catch { throw .configuration(error) }
        self.store = store
        do {
            if let saved = try store?.load(clients: clients), !saved.isEmpty {
                try transport.restore(saved.mapValues(\.state))
                lastReplies = saved.compactMapValues(\.reply)
            }
        } catch { throw .checkpoint(error) }
    }

    /// Runs `tasks` (envelopes addressed to hosted clients) and returns the replies, in task
    /// order. A task that is not valid for its client (or names a client not hosted here) gets
    /// no reply. With a `store`, each training reply is saved with its client's state before
    /// any reply is returned; a failed save throws (a reply whose state is not on disk could
    /// be trained again after a restart).
    public func run(_ tasks: [[UInt8]]) throws(CheckpointError) -> [[UInt8]] {
        var replies: [Int: [UInt8]] = [:]
        var fresh: [ClientMessage] = []
        var order: [Int] = []
        let hosted = Set(clients)
        for task in tasks {
            guard let header = try? Envelope.header(of: task), header.kind.isTask, hosted.contains(header.client) else { continue }
            order.append(header.client)
            if let last = lastReplies[header.client], last.round == header.round, header.kind == .train {
                replies[header.client] = last.bytes
            } else {
                fresh.append(ClientMessage(client: header.client, bytes: task))
            }
        }
        for reply in echo ? fresh.compactMap(echoReply) : transport.exchange(fresh, clientDone: nil) {
            replies[reply.client] = reply.bytes
            if let header = try? Envelope.header(of: reply.bytes), header.kind != .evaluation {
                lastReplies[reply.client] = (header.round, reply.bytes)
                let state = transport.states[reply.client] ?? transport.runtime.initialState(client: reply.client)
                try store?.save(client: reply.client, .init(state: state, reply: (header.round, reply.bytes)))
            }
        }
        return order.compactMap { replies[$0] }
    }

    private func echoReply(_ task: ClientMessage) -> ClientMessage? {
        let runtime = transport.runtime
        var state = echoStates[task.client] ?? runtime.initialState(client: task.client)
        guard let received = try? runtime.receive(task.bytes, client: task.client, state: &state), received.envelope.kind == .train else { return nil }
        let reply = runtime.echo(received, samples: transport.partitions[task.client].count, state: &state)
        echoStates[task.client] = state
        return ClientMessage(client: task.client, bytes: reply)
    }
}
