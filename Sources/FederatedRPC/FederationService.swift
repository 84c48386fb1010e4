import Federated
import Foundation
import GRPCCore
import Synchronization

/// The server's handlers of `FederationProtocol`: each one identifies the caller, checks that
/// it may act as the clients it names, then hands the request to `RemoteClients`. Handlers
/// only route bytes and wait; training, decoding and aggregation run on the round thread.
public struct FederationService: RegistrableRPCService {
    let clients: RemoteClients
    let authenticator: Authenticator
    let job: JobInfo
    let log: EventLog
    let wire: WireCounter

    public init(clients: RemoteClients, authenticator: Authenticator, job: JobInfo, log: EventLog, wire: WireCounter) {
        (self.clients, self.authenticator, self.job, self.log, self.wire) = (clients, authenticator, job, log, wire)
    }

    /// What `Join` and `Status` tell about the job; `completedRounds` is read when asked.
    public struct JobInfo: Sendable {
        var configuration: String
        var rounds: Int
        var jobClients: Int
        /// The largest reply a client may push (`FederationServer.maxReplyBytes`).
        var maxReplyBytes: Int
        var completedRounds: @Sendable () -> Int

        public init(configuration: String, rounds: Int, jobClients: Int, maxReplyBytes: Int, completedRounds: @escaping @Sendable () -> Int) {
            (self.configuration, self.rounds, self.jobClients) = (configuration, rounds, jobClients)
            (self.maxReplyBytes, self.completedRounds) = (maxReplyBytes, completedRounds)
        }
    }

    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        register(FederationProtocol.join, with: &router) { bytes, _, identity in
            let request = try FederationProtocol.decodeJSON(FederationProtocol.JoinRequest.self, bytes)
            guard request.version == FederationProtocol.version else {
                throw RPCError(code: .failedPrecondition, message: "client speaks protocol \(request.version), server \(FederationProtocol.version)")
            }
            let ids = try checked(request.clients, identity)
            clients.join(ids)
            log.log("client_joined", ["clients": ClientIDs.format(ids), "identity": identity.name])
            return [FederationProtocol.encodeJSON(FederationProtocol.JoinReply(
                configuration: job.configuration, rounds: job.rounds, completedRounds: job.completedRounds()))[...]]
        }
        register(FederationProtocol.poll, with: &router, response: .chunked) { bytes, _, identity in
            let ids = try checked(try FederationProtocol.decodeJSON(FederationProtocol.ClientList.self, bytes).clients, identity)
            switch await clients.poll(ids, timeout: .seconds(FederationProtocol.pollSeconds)) {
            // The tasks are streamed from the envelopes `clients` holds, not copied into an answer.
            case .tasks(let tasks): return [[FederationProtocol.PollStatus.tasks.rawValue]] + EnvelopeBatch.parts(tasks.map(\.parts))
            case .wait: return [[FederationProtocol.PollStatus.wait.rawValue]]
            case .done: return [[FederationProtocol.PollStatus.done.rawValue]]
            }
        }
        register(FederationProtocol.push, with: &router, request: .chunked(limit: job.maxReplyBytes)) { bytes, spooled, identity in
            let receipt = clients.deliver(bytes, checksum: spooled?.checksum, spool: spooled?.spool, mayAct: Self.mayAct(identity))
            let (name, reason): (String, String?) = switch receipt {
            case .accepted: ("accepted", nil)
            case .duplicate: ("duplicate", nil)
            case .stale: ("stale", nil)
            case .rejected(let why): ("rejected", why)
            }
            if receipt != .accepted {
                log.log("reply_\(name)", ["identity": identity.name, "bytes": bytes.count, "reason": reason ?? "-"])
            }
            return [FederationProtocol.encodeJSON(FederationProtocol.PushReceipt(receipt: name, reason: reason))[...]]
        }
        register(FederationProtocol.heartbeat, with: &router) { bytes, _, identity in
            clients.heartbeat(try checked(try FederationProtocol.decodeJSON(FederationProtocol.ClientList.self, bytes).clients, identity))
            return []
        }
        register(FederationProtocol.leave, with: &router) { bytes, _, identity in
            let ids = try checked(try FederationProtocol.decodeJSON(FederationProtocol.ClientList.self, bytes).clients, identity)
            clients.leave(ids)
            log.log("client_left", ["clients": ClientIDs.format(ids), "identity": identity.name])
            return []
        }
        register(FederationProtocol.status, with: &router) { _, _, _ in
            let progress = clients.progress()
            return [FederationProtocol.encodeJSON(FederationProtocol.ServerStatus(
                round: progress?.round ?? 0, rounds: job.rounds, completedRounds: job.completedRounds(),
                replied: progress?.replied ?? 0, sampled: progress?.sampled ?? 0, clients: clients.status()))[...]]
        }
    }

    typealias Identity = (name: String, clients: Set<Int>?)

    /// Whether `identity` may act as a client (an identity without a client list may act as any).
    static func mayAct(_ identity: Identity) -> (Int) -> Bool {
        { identity.clients?.contains($0) ?? true }
    }

    /// The clients named, if the caller may act as all of them and they are in the job.
    private func checked(_ ids: [Int], _ identity: Identity) throws -> [Int] {
        guard !ids.isEmpty, ids.count <= job.jobClients else {
            throw RPCError(code: .invalidArgument, message: "name between 1 and \(job.jobClients) clients")
        }
        for id in ids {
            guard (0..<job.jobClients).contains(id) else { throw RPCError(code: .invalidArgument, message: "client \(id) is not in this job") }
            guard identity.clients?.contains(id) ?? true else {
                log.log("refused", ["identity": identity.name, "reason": "may not act as client \(id)"])
                throw RPCError(code: .permissionDenied, message: "\(identity.name) may not act as client \(id)")
            }
        }
        return ids
    }

    /// How a request crosses: one gRPC message, or `ChunkedBytes` declaring at most `limit` bytes
    /// (a reply: written to a journal spool as it arrives).
    enum RequestFraming {
        case single
        case chunked(limit: Int)
    }

    /// How a response crosses: one gRPC message, or `ChunkedBytes`.
    enum ResponseFraming {
        case single, chunked
    }

    /// A raw-bytes handler behind the authenticator (which runs before any message is read);
    /// refusals are logged. The handler gets the request, its CRC-32 and journal spool when it
    /// came chunked, and the caller's identity; it answers with the parts of its answer, one after another.
    private func register<Transport: ServerTransport>(
        _ method: MethodDescriptor, with router: inout RPCRouter<Transport>, request framing: RequestFraming = .single, response: ResponseFraming = .single,
        handler: @escaping @Sendable (_ request: [UInt8], _ spooled: (checksum: UInt32, spool: ReplyJournal.Spool?)?, _ identity: Identity) async throws -> [ArraySlice<UInt8>]
    ) {
        let authenticator = self.authenticator, log = self.log, wire = self.wire, clients = self.clients
        router.registerHandler(forMethod: method, deserializer: InPlaceDeserializer(), serializer: RawSerializer()) { request, context in
            let identity: Identity
            do { identity = try authenticator.identify(metadata: request.metadata, context: context) } catch {
                log.log("refused", ["method": method.method, "peer": context.remotePeer, "reason": "\(error)"])
                throw error
            }
            let message: [UInt8], spooled: (checksum: UInt32, spool: ReplyJournal.Spool?)?
            switch framing {
            case .single:
                (message, spooled) = (try await ServerRequest(stream: request).message.array, nil)
                wire.received.add(message.count, ordering: .relaxed)
            case .chunked(let limit):
                var assembler = ChunkedBytes.Assembler(limit: limit)
                // Decided once the reply's routing header has arrived: only a reply the open round
                // awaits is spooled (a stale, duplicate or foreign one is never written to disk).
                var spool: ReplyJournal.Spool?, spoolDecided = false
                do {
                    for try await chunk in request.messages {
                        wire.received.add(chunk.count, ordering: .relaxed)
                        let data = try assembler.append(chunk)
                        // A spool that cannot be written is dropped: `deliver` journals the whole reply (or says why it cannot).
                        if spoolDecided {
                            do { try assembler.bytes.withUnsafeBytes { try spool?.write(UnsafeRawBufferPointer(rebasing: $0[data])) } } catch { spool = nil }
                        } else if assembler.bytes.count >= Envelope.headerSize + Envelope.checksumSize {
                            spoolDecided = true
                            spool = clients.spool(forReplyBeginning: assembler.bytes, mayAct: Self.mayAct(identity))
                            do { try spool?.write(assembler.bytes[...]) } catch { spool = nil }
                        }
                    }
                    message = try assembler.finished()
                } catch let problem as ChunkedBytes.Problem {
                    log.log("refused", ["method": method.method, "identity": identity.name, "reason": problem.description])
                    let tooLarge = if case .tooLarge = problem { true } else { false }
                    throw RPCError(code: tooLarge ? .resourceExhausted : .invalidArgument, message: problem.description)
                }
                spooled = (assembler.checksum, spool)
            }
            let answer = try await handler(message, spooled, identity)
            wire.calls.add(1, ordering: .relaxed)
            switch response {
            case .single:
                let message = answer.joinedBytes()
                wire.sent.add(message.count, ordering: .relaxed)
                return StreamingServerResponse(single: ServerResponse(message: message[...]))
            case .chunked:
                return StreamingServerResponse { writer in
                    try await ChunkedBytes.write(answer, to: writer) { wire.sent.add($0, ordering: .relaxed) }
                    return [:]
                }
            }
        }
    }
}

/// Bytes of every gRPC message the server received and sent (envelopes, task batches and control
/// messages; gRPC's 5-byte message prefix, HTTP/2 frames and TLS records come on top).
public final class WireCounter: Sendable {
    let received = Atomic<Int>(0), sent = Atomic<Int>(0), calls = Atomic<Int>(0)

    public init() {}

    struct Totals: Codable {
        var received: Int
        var sent: Int
        var calls: Int
        enum CodingKeys: String, CodingKey { case received = "received_bytes", sent = "sent_bytes", calls }
    }

    var totals: Totals { Totals(received: received.load(ordering: .relaxed), sent: sent.load(ordering: .relaxed), calls: calls.load(ordering: .relaxed)) }
}
