import Datasets
import Engine
import Federated
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import ServiceLifecycle
import Synchronization

/// `fedtrain client`: joins a server, receives the job's configuration, then long-polls for
/// tasks, trains them with a `ClientHost` on dedicated threads (heartbeating meanwhile), and
/// pushes the replies. It rides out a server restart: any failed call is retried with
/// exponential backoff and jitter (0.2 s doubling to 5 s, ±25%), and it joins again. It ends
/// with the job (exit 0), on SIGTERM or SIGINT (it leaves first), or when the server stays
/// unreachable for `giveUpAfter`.
public enum FederationClient {
    public struct Settings: Sendable {
        public var server: ServerAddress
        public var security: TransportSecurity
        /// Bearer token (with a server that takes `--tokens`).
        public var token: String?
        public var clients: [Int]
        /// The client's own data (one client; all of it is its partition); nil: partition K of
        /// the job's data set, as `simulate` splits it.
        public var dataDirectory: String?
        public var threads: Int
        public var giveUpAfter: Duration
        /// Fault injection for tests: exit abruptly (status 3, no reply) on receiving a task of this round.
        public var crashInRound: Int?
        /// Fault injection for tests: exit abruptly (status 3) after training this round's tasks
        /// (their replies and states saved with `stateDirectory`), before sending any reply.
        public var crashAfterTraining: Int?
        /// Waited after each batch of tasks before replying (a slow device, for experiments).
        public var slowDown: Duration = .zero
        /// Benchmark: reply with the model unchanged instead of training (`ClientHost.echo`).
        public var echo = false
        /// Where the hosted clients' states and last replies persist across restarts (`ClientStateStore`).
        public var stateDirectory: String?

        public init(server: ServerAddress, security: TransportSecurity, token: String?, clients: [Int], dataDirectory: String?,
                    threads: Int, giveUpAfter: Duration, crashInRound: Int?) {
            (self.server, self.security, self.token, self.clients, self.dataDirectory) = (server, security, token, clients, dataDirectory)
            (self.threads, self.giveUpAfter, self.crashInRound) = (threads, giveUpAfter, crashInRound)
        }
    }

    public enum Ending: Sendable, Equatable {
        case jobDone
        case signalled
        case failed(String)
    }

    /// The client transport's frames, keepalive and reconnection backoff (`make bench-transport`'s
    /// client connects with the same).
    public static var transportConfiguration: HTTP2ClientTransport.Posix.Config {
        .defaults { config in
            config.http2.maxFrameSize = ChunkedBytes.http2FrameBytes
            config.channelDebuggingCallbacks.onCreateTCPConnection = ChunkedBytes.readWholeFrames
            config.connection.keepalive = .init(time: .seconds(30), timeout: .seconds(10), allowWithoutCalls: true)
            config.backoff = .init(initial: .milliseconds(200), max: .seconds(5), multiplier: 2, jitter: 0.25)
        }
    }

    /// Runs the client process until the job ends; tunes the process's allocator for large
    /// messages first (`MessageMemory`).
    public static func run(settings: Settings, log: EventLog) -> Ending {
        MessageMemory.keepChunkBuffers()
        let transport: HTTP2ClientTransport.Posix
        do {
            transport = try HTTP2ClientTransport.Posix(
                target: settings.server.target,
                transportSecurity: try clientSecurity(settings.security, server: settings.server),
                config: transportConfiguration)
        } catch {
            return .failed("\(error)")
        }
        let client = GRPCClient(transport: transport)
        return blocking {
            let session = Session(settings: settings, client: client, log: log)
            let ending = LockedValue<Ending?>(nil)
            let group = ServiceGroup(configuration: .init(
                services: [
                    .init(service: ConnectionService(client: client)),
                    .init(service: SessionService(session: session, ending: ending), successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: .init(label: "fedtrain")))
            do { try await group.run() } catch { return .failed("\(error)") }
            return ending.value ?? .signalled
        }
    }

    static func clientSecurity(_ security: TransportSecurity, server: ServerAddress) throws(ConfigurationError) -> HTTP2ClientTransport.Posix.TransportSecurity {
        switch security {
        case .insecure:
            guard server.isLoopback else { throw ConfigurationError("--insecure talks plaintext, only to a loopback address (127.0.0.1), not \(server.host)") }
            return .plaintext
        case .tls(let certificate, let key, let ca):
            for path in [certificate, key, ca].compactMap({ $0 }) where !FileManager.default.isReadableFile(atPath: path) {
                throw ConfigurationError("\(path): no such readable file")
            }
            guard let ca else { throw ConfigurationError("TLS needs --ca (the federation's CA certificate) or --insecure on loopback") }
            if let certificate, let key {
                return .mTLS(certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: key, format: .pem)) {
                    $0.trustRoots = .certificates([.file(path: ca, format: .pem)])
                }
            }
            return .tls { $0.trustRoots = .certificates([.file(path: ca, format: .pem)]) }
        }
    }
}

private struct ConnectionService: Service {
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    func run() async throws {
        try await withGracefulShutdownHandler { try await client.runConnections() } onGracefulShutdown: { client.beginGracefulShutdown() }
    }
}

private struct SessionService: Service {
    let session: Session
    let ending: LockedValue<FederationClient.Ending?>
    func run() async throws {
        let result = await cancelWhenGracefulShutdown { await session.run() }
        ending.set(result)
        if result == nil { await session.leave() }
    }
}

/// One client process's conversation with the server.
private final class Session: Sendable {
    let settings: FederationClient.Settings
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    let log: EventLog
    private let host = LockedValue<(ClientHost, configuration: String, maxTaskBytes: Int, heartbeat: Double)?>(nil)

    init(settings: FederationClient.Settings, client: GRPCClient<HTTP2ClientTransport.Posix>, log: EventLog) {
        (self.settings, self.client, self.log) = (settings, client, log)
    }

    private var clientList: [UInt8] { FederationProtocol.encodeJSON(FederationProtocol.ClientList(clients: settings.clients)) }

    /// nil when cancelled (a signal), otherwise how the job ended for this process.
    func run() async -> FederationClient.Ending? {
        var failingSince: ContinuousClock.Instant?
        var backoff = 0.2
        var joined = false
        while !Task.isCancelled {
            do {
                if !joined {
                    try await join()
                    joined = true
                }
                switch try await poll() {
                case .done:
                    log.log("job_done", ["clients": ClientIDs.format(settings.clients)])
                    return .jobDone
                case .wait: break
                case .tasks(let tasks): try await serve(tasks)
                }
                if failingSince != nil { log.log("reconnected", ["server": settings.server.description]) }
                (failingSince, backoff) = (nil, 0.2)
            } catch let error as FatalClientError {
                return .failed(error.message)
            } catch let error as RPCError where [.unauthenticated, .permissionDenied, .invalidArgument, .failedPrecondition].contains(error.code) {
                return .failed("server refused: \(error.message)")
            } catch {
                if Task.isCancelled { return nil }
                if let refusal = Self.tlsRefusal(error) { return .failed("TLS handshake with \(settings.server) failed: \(refusal)") }
                let now = ContinuousClock.now
                if failingSince == nil {
                    failingSince = now
                    log.log("server_unreachable", ["server": settings.server.description, "reason": "\(error)"])
                }
                if now - failingSince! > settings.giveUpAfter {
                    let hint = settings.security.isInsecure ? " (a TLS server closes plaintext connections: is --insecure right?)" : ""
                    return .failed("server \(settings.server) unreachable for \(Int(settings.giveUpAfter.seconds)) s\(hint): \(error)")
                }
                joined = false
                try? await Task.sleep(for: .milliseconds(Int64(1000 * backoff * Double.random(in: 0.75...1.25))))
                backoff = min(5, backoff * 2)
            }
        }
        return nil
    }

    /// A TLS failure that retrying cannot fix, in words; nil for other errors.
    static func tlsRefusal(_ error: any Error) -> String? {
        let text = "\(error)"
        guard text.contains("sslError") || text.contains("handshakeFailed") else { return nil }
        if text.contains("CERTIFICATE_REQUIRED") { return "the server requires a client certificate (--tls-cert and --tls-key)" }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's certificate is not signed by --ca or is not for this address"
        }
        if text.contains("DECRYPT_ERROR") || text.contains("BAD_CERTIFICATE") || text.contains("UNKNOWN_CA") || text.contains("CERTIFICATE_UNKNOWN") {
            return "the server refused this client's certificate (not signed by the federation's CA)"
        }
        return text.split(separator: "error:").last.map { "TLS error " + $0.prefix(120) } ?? "TLS error"
    }

    private var metadata: Metadata {
        var metadata = Metadata()
        if let token = settings.token { metadata.addString("Bearer \(token)", forKey: "authorization") }
        return metadata
    }

    private func options(timeout: Duration) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        // Every message is a control message or a chunk (this transport applies
        // `maxRequestMessageBytes` to what the server sends back).
        options.maxRequestMessageBytes = ChunkedBytes.maxMessageBytes
        options.maxResponseMessageBytes = ChunkedBytes.maxMessageBytes
        return options
    }

    private func call(_ method: MethodDescriptor, _ message: [UInt8], timeout: Duration = .seconds(30)) async throws -> [UInt8] {
        try await client.unary(request: ClientRequest(message: message[...], metadata: metadata), descriptor: method,
                               serializer: RawSerializer(), deserializer: RawDeserializer(), options: options(timeout: timeout)) { try $0.message }
    }

    /// A unary request answered by a `ChunkedBytes` stream of at most `limit` bytes.
    private func callChunkedResponse(_ method: MethodDescriptor, _ message: [UInt8], limit: Int, timeout: Duration) async throws -> [UInt8] {
        try await client.serverStreaming(request: ClientRequest(message: message[...], metadata: metadata), descriptor: method,
                                         serializer: RawSerializer(), deserializer: InPlaceDeserializer(), options: options(timeout: timeout)) { response in
            var assembler = ChunkedBytes.Assembler(limit: limit)
            do {
                for try await chunk in response.messages { try assembler.append(chunk) }
                return try assembler.finished()
            } catch let problem as ChunkedBytes.Problem {
                throw FatalClientError(message: "the server sent \(problem)")
            }
        }
    }

    /// A `ChunkedBytes` request answered by one message.
    private func callChunkedRequest(_ method: MethodDescriptor, _ message: [UInt8], timeout: Duration) async throws -> [UInt8] {
        try await client.clientStreaming(request: StreamingClientRequest(metadata: metadata) { writer in
            try await ChunkedBytes.write(message, to: writer)
        }, descriptor: method, serializer: RawSerializer(), deserializer: RawDeserializer(), options: options(timeout: timeout)) { try $0.message }
    }

    /// Joins; the first time, builds the host from the job's configuration (a later join must
    /// find the same job).
    private func join() async throws {
        let reply = try FederationProtocol.decodeJSONFromServer(FederationProtocol.JoinReply.self, try await call(
            FederationProtocol.join,
            FederationProtocol.encodeJSON(FederationProtocol.JoinRequest(version: FederationProtocol.version, clients: settings.clients))))
        if let existing = host.value?.configuration {
            guard existing == reply.configuration else { throw FatalClientError(message: "the server now runs another job (its configuration changed)") }
            return
        }
        let configuration: SimulationConfiguration
        do { configuration = try ConfigurationFile.decode(reply.configuration, source: "the server's job") } catch {
            throw FatalClientError(message: error.description)
        }
        let built = try await onDedicatedThread { () throws(FatalClientError) -> ClientHost in
            try self.makeHost(configuration, text: reply.configuration)
        }
        built.echo = settings.echo
        let perTask = FederationServer.maxReplyBytes(parameters: built.network.layout.count)
        host.set((built, reply.configuration, settings.clients.count * perTask + (1 << 20), configuration.network.heartbeat))
        log.log("joined", ["server": settings.server.description, "clients": ClientIDs.format(settings.clients),
                           "rounds": reply.rounds, "completed_rounds": reply.completedRounds])
    }

    /// `text`: the job's configuration as the server sent it (a state directory belongs to one job).
    private func makeHost(_ configuration: SimulationConfiguration, text: String) throws(FatalClientError) -> ClientHost {
        do {
            let store = try settings.stateDirectory.map { directory throws(CheckpointError) in try ClientStateStore(directory: directory, job: text) }
            if let directory = settings.dataDirectory {
                guard settings.clients.count == 1 else { throw ConfigurationError("--data holds one client's own data: give one --client-id") }
                let train = try DataSource.load(directory, folder: configuration.data.folderOptions(seed: configuration.federation.seed)).train
                var partitions = Array(repeating: [Int](), count: configuration.federation.clients)
                partitions[settings.clients[0]] = Array(0..<train.count)
                return try ClientHost(configuration: configuration, train: train, partitions: partitions, clients: settings.clients,
                                      threads: settings.threads, store: store)
            }
            guard configuration.data.directory != nil else { throw ConfigurationError("the job names no data set: give --data") }
            let train = try configuration.data.load(seed: configuration.federation.seed).train
            return try ClientHost(configuration: configuration, train: train,
                                  partitions: try Simulation.partitions(configuration: configuration, train: train),
                                  clients: settings.clients, threads: settings.threads, store: store)
        } catch let error as ConfigurationError {
            throw FatalClientError(message: error.description)
        } catch let error as JobError {
            throw FatalClientError(message: error.description)
        } catch let error as CheckpointError {
            throw FatalClientError(message: error.description)
        } catch let error as DatasetError {
            throw FatalClientError(message: error.description)
        } catch {
            throw FatalClientError(message: "\(error)")
        }
    }

    /// What a poll brought: tasks (envelope bytes), nothing yet, or the end of the job.
    private enum PollAnswer {
        case tasks([[UInt8]])
        case wait
        case done
    }

    private func poll() async throws -> PollAnswer {
        guard let limit = host.value?.maxTaskBytes else { preconditionFailure("polled before joining") }
        let bytes = try await callChunkedResponse(FederationProtocol.poll, clientList, limit: limit, timeout: .seconds(FederationProtocol.pollSeconds + 15))
        guard let status = bytes.first.flatMap(FederationProtocol.PollStatus.init) else {
            throw FatalClientError(message: "the server sent a malformed poll answer")
        }
        switch status {
        case .wait: return .wait
        case .done: return .done
        case .tasks:
            do { return .tasks(try EnvelopeBatch.decode(Array(bytes.dropFirst()))) } catch {
                throw FatalClientError(message: "the server sent malformed tasks: \(error)")
            }
        }
    }

    /// Trains the tasks on dedicated threads while heartbeating, then pushes every reply
    /// until the server has it.
    private func serve(_ tasks: [[UInt8]]) async throws {
        guard let (host, _, _, interval) = host.value else { return }
        let rounds = tasks.compactMap { try? Envelope.header(of: $0).round }
        if let crash = settings.crashInRound, rounds.contains(crash) {
            log.log("crashing", ["round": crash])
            _exit(3)
        }
        let heartbeat = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
                _ = try? await call(FederationProtocol.heartbeat, clientList, timeout: .seconds(10))
            }
        }
        let replies = try await onDedicatedThread { () throws(FatalClientError) -> [[UInt8]] in
            do { return try host.run(tasks) } catch { throw FatalClientError(message: "\(error)") }
        }
        if let crash = settings.crashAfterTraining, rounds.contains(crash) {
            log.log("crashing", ["round": crash, "trained": true])
            _exit(3)
        }
        if settings.slowDown > .zero { try? await Task.sleep(for: settings.slowDown) }
        // Heartbeats go on while the replies upload: a long push must not look like a dead client.
        defer { heartbeat.cancel() }
        for reply in replies {
            let receipt = try FederationProtocol.decodeJSONFromServer(FederationProtocol.PushReceipt.self,
                                                                      try await callChunkedRequest(FederationProtocol.push, reply, timeout: .seconds(120)))
            if receipt.receipt == "rejected" {
                log.log("reply_rejected", ["reason": receipt.reason ?? "-"])
            }
        }
    }

    func leave() async {
        _ = try? await call(FederationProtocol.leave, clientList, timeout: .seconds(3))
        log.log("left", ["clients": ClientIDs.format(settings.clients)])
    }
}

struct FatalClientError: Error {
    var message: String
}

extension FederationProtocol {
    /// Decodes a control message from the server; a malformed one ends the client.
    static func decodeJSONFromServer<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch {
            throw FatalClientError(message: "the server sent a malformed \(type) message")
        }
    }
}

/// Runs `body` on a new thread, outside Swift concurrency's cooperative pool (training blocks).
func onDedicatedThread<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: Result { () throws(E) -> T in try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
    return try result.get()
}

/// `fedtrain status`: the server's round and its clients' last signs of life.
public enum FederationStatus {
    public static func fetch(server: ServerAddress, security: TransportSecurity, token: String?) throws(ConfigurationError) -> FederationProtocol.ServerStatus {
        let transport: HTTP2ClientTransport.Posix
        do {
            transport = try HTTP2ClientTransport.Posix(target: server.target,
                                                       transportSecurity: try FederationClient.clientSecurity(security, server: server))
        } catch let error as ConfigurationError { throw error } catch { throw ConfigurationError("\(error)") }
        let result: Result<FederationProtocol.ServerStatus, ConfigurationError> = blocking {
            do {
                return .success(try await withGRPCClient(transport: transport) { client in
                    var metadata = Metadata()
                    if let token { metadata.addString("Bearer \(token)", forKey: "authorization") }
                    var options = CallOptions.defaults
                    options.timeout = .seconds(10)
                    options.maxRequestMessageBytes = 64 << 20
                    let bytes = try await client.unary(request: ClientRequest(message: [UInt8]()[...], metadata: metadata),
                                                       descriptor: FederationProtocol.status, serializer: RawSerializer(),
                                                       deserializer: RawDeserializer(), options: options) { try $0.message }
                    return try FederationProtocol.decodeJSONFromServer(FederationProtocol.ServerStatus.self, bytes)
                })
            } catch let error as RPCError {
                return .failure(ConfigurationError("server \(server): \(error.code): \(error.message)"))
            } catch let error as FatalClientError {
                return .failure(ConfigurationError(error.message))
            } catch {
                return .failure(ConfigurationError("server \(server): \(error)"))
            }
        }
        return try result.get()
    }
}
