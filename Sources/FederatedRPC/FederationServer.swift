import Engine
import Federated
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import ServiceLifecycle
import Synchronization

/// How a server or client protects its connection.
public enum TransportSecurity: Sendable {
    /// Plaintext: only on a loopback address (`--insecure`).
    case insecure
    /// TLS with this certificate and key; with `peerCA`, the peer must present a certificate
    /// that CA signed (mutual TLS), and a client checks the server's against it.
    case tls(certificate: String?, key: String?, peerCA: String?)

    var isInsecure: Bool { if case .insecure = self { true } else { false } }
}

/// `HOST:PORT` of a server.
public struct ServerAddress: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(parsing text: String) throws(ConfigurationError) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port),
              colon != text.startIndex else {
            throw ConfigurationError("address \(text): expected HOST:PORT")
        }
        (host, self.port) = (String(text[..<colon]), port)
    }

    public var description: String { "\(host):\(port)" }

    /// 127.0.0.0/8, ::1 or localhost.
    public var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }

    /// The IPv4 address to bind or reach (`localhost` is 127.0.0.1).
    var ipv4: String { host == "localhost" ? "127.0.0.1" : host }

    /// What a client connects to: the IPv4 address, or the host name resolved by DNS (TLS then
    /// checks the server's certificate for that name).
    var target: any ResolvableTarget {
        CertificateAuthority.ipv4Bytes(ipv4) != nil ? ResolvableTargets.IPv4.ipv4(address: ipv4, port: port)
            : ResolvableTargets.DNS.dns(host: host, port: port)
    }
}

/// `fedtrain server`: runs a job's rounds for clients in other processes. The round loop is
/// `SimulationJob` (the simulator's coordinator, strategy, evaluation, outputs and checkpoints)
/// on a dedicated thread, with `RemoteClients` as its transport; gRPC handlers run on Swift
/// concurrency's threads and never train, decode models or aggregate.
///
/// Durability: the state directory is a `simulate --out` directory plus the reply journal; a
/// server started again on it (after `kill -9` too) restores the last checkpoint and the open
/// round's journaled replies before it listens.
public enum FederationServer {
    public struct Settings: Sendable {
        public var listen: ServerAddress
        public var security: TransportSecurity
        public var authenticator: Authenticator
        /// Written with the bound port once listening (for `--listen HOST:0`).
        public var portFile: String?

        public init(listen: ServerAddress, security: TransportSecurity, authenticator: Authenticator, portFile: String?) {
            (self.listen, self.security, self.authenticator, self.portFile) = (listen, security, authenticator, portFile)
        }
    }

    /// How the server ended.
    public enum Ending: Sendable {
        case finished(SimulationJob.Summary)
        /// SIGTERM or SIGINT: the last checkpoint and the journal are on disk.
        case stopped(completedRounds: Int)
        /// The transport ended the job: `reason` (the underflow policy, or too few clients).
        case stoppedByPolicy(SimulationJob.Summary, reason: String)
    }

    /// The server transport's limits and windows (`make bench-transport` serves with the same).
    public static var transportConfiguration: HTTP2ServerTransport.Posix.Config {
        .defaults { config in
            config.rpc.maxRequestPayloadSize = ChunkedBytes.maxMessageBytes
            config.http2.targetWindowSize = 8 << 20
            config.http2.maxFrameSize = ChunkedBytes.http2FrameBytes
            config.connection.keepalive = .init(
                time: .seconds(30), timeout: .seconds(10),
                clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(5), allowWithoutCalls: true))
            config.channelDebuggingCallbacks.onAcceptTCPConnection = ChunkedBytes.readWholeFrames
        }
    }

    /// Runs `job` (its output directory is the state directory; resumed when it holds a
    /// checkpoint). `events` come from the round thread. Tunes the process's allocator for large
    /// messages (`MessageMemory`).
    public static func run(job: SimulationJob, settings: Settings, log: EventLog,
                           events: @escaping @Sendable (SimulationJob.Event) -> Void) throws(JobError) -> Ending {
        MessageMemory.keepChunkBuffers()
        var job = job
        let configuration = job.configuration
        do {
            try configuration.validate()
            try configuration.checkNetworked()
        } catch { throw .configuration(error) }
        if case .insecure = settings.security, !settings.listen.isLoopback {
            throw .configuration(ConfigurationError("--insecure serves plaintext, only on a loopback address (127.0.0.1), not \(settings.listen.host)"))
        }
        guard let state = job.outputDirectory else { throw .configuration(ConfigurationError("the server needs --state DIR")) }
        let network = configuration.network, federation = configuration.federation
        let survivors: Int
        do { survivors = try configuration.requiredReplies() } catch { throw .configuration(error) }
        var remoteSettings = RemoteClients.Settings(
            minClients: network.requiredClients(of: federation.clients), minSurvivors: survivors,
            roundDeadline: .milliseconds(Int64(network.roundDeadline * 1000)),
            underflow: (try? UnderflowPolicy(parsing: network.onUnderflow)) ?? .skip,
            livenessTimeout: .milliseconds(Int64(3 * network.heartbeat * 1000) + 1000))
        remoteSettings.availableDeadline = .milliseconds(Int64(network.availableDeadline * 1000))
        let remote = RemoteClients(settings: remoteSettings, journal: ReplyJournal(directory: "\(state)/journal"))
        job.remote = remote
        let resume = FileManager.default.fileExists(atPath: "\(state)/checkpoint/checkpoint.json")
        let completed = Atomic<Int>(0), parameterCount = Atomic<Int>(0), wire = WireCounter()
        let started = DispatchSemaphore(value: 0)
        let outcome = LockedValue<Result<SimulationJob.Summary, JobError>?>(nil)
        let roundThread = Thread { [job] in
            let result = Result { () throws(JobError) -> SimulationJob.Summary in
                try job.run(resume: resume) { event in
                    switch event {
                    case .started(let simulation):
                        completed.store(simulation.completedRounds, ordering: .relaxed)
                        parameterCount.store(simulation.network.parameterCount, ordering: .relaxed)
                        started.signal()
                    case .roundDone(let metrics):
                        completed.store(metrics.round, ordering: .relaxed)
                        let totals = wire.totals
                        log.log("round_closed", ["round": metrics.round, "missing": ClientIDs.format(remote.lastMissing),
                                                 "wire_received_bytes": totals.received, "wire_sent_bytes": totals.sent])
                    case .clientDone, .checkpointed: break
                    }
                    events(event)
                }
            }
            outcome.set(result)
            started.signal()
            remote.finish()
        }
        roundThread.stackSize = 8 << 20
        roundThread.start()
        started.wait()
        if case .failure(let error)? = outcome.value { throw error }

        let parameters = parameterCount.load(ordering: .relaxed)
        let service = FederationService(
            clients: remote, authenticator: settings.authenticator,
            job: .init(configuration: ConfigurationFile.encode(configuration), rounds: federation.rounds, jobClients: federation.clients,
                       maxReplyBytes: Self.maxReplyBytes(parameters: parameters), completedRounds: { completed.load(ordering: .relaxed) }),
            log: log, wire: wire)
        let transport: HTTP2ServerTransport.Posix
        do {
            transport = HTTP2ServerTransport.Posix(
                address: .ipv4(host: settings.listen.ipv4, port: settings.listen.port),
                transportSecurity: try serverSecurity(settings.security, log: log),
                config: transportConfiguration)
        } catch { throw .configuration(error) }
        let server = GRPCServer(transport: transport, services: [service])
        blocking {
            let group = ServiceGroup(configuration: .init(
                services: [
                    .init(service: ServerService(server: server)),
                    .init(service: JobWatcher(remote: remote, outcome: outcome, server: server, settings: settings, log: log),
                          successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: .init(label: "fedtrain")))
            do { try await group.run() } catch { log.log("server_error", ["reason": "\(error)"]) }
        }
        // What crossed the wire, beside summary.json's payload bytes (which equal the simulator's).
        try? AtomicFile.writeJSON(wire.totals, to: "\(state)/wire.json")
        switch outcome.value {
        case .success(let summary)?: return remote.stopReason.map { .stoppedByPolicy(summary, reason: $0) } ?? .finished(summary)
        case .failure(let error)?: throw error
        case nil: return .stopped(completedRounds: completed.load(ordering: .relaxed))
        }
    }

    /// The largest reply a client may send: an update and a control change of `parameters`
    /// fp32 values each, with room for headers and metrics.
    public static func maxReplyBytes(parameters: Int) -> Int { 2 * UpdateMessage.denseSize(count: parameters) + (64 << 10) }

    /// `log`: where refused client certificates are reported.
    static func serverSecurity(_ security: TransportSecurity, log: EventLog) throws(ConfigurationError) -> HTTP2ServerTransport.Posix.TransportSecurity {
        switch security {
        case .insecure: return .plaintext
        case .tls(let certificate?, let key?, let clientCA):
            for path in [certificate, key] + (clientCA.map { [$0] } ?? []) where !FileManager.default.isReadableFile(atPath: path) {
                throw ConfigurationError("\(path): no such readable file")
            }
            if let clientCA {
                let check = try ClientCertificateCheck(caPath: clientCA, log: log)
                return .mTLS(certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: key, format: .pem)) {
                    $0.trustRoots = .certificates([.file(path: clientCA, format: .pem)])
                    $0.customVerificationCallback = check.verify
                }
            }
            return .tls(certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: key, format: .pem))
        case .tls:
            throw ConfigurationError("TLS needs the server's --tls-cert and --tls-key (or --insecure on loopback)")
        }
    }
}

/// The gRPC server as a lifecycle service: graceful shutdown drains in-flight calls.
private struct ServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    func run() async throws {
        try await withGracefulShutdownHandler { try await server.serve() } onGracefulShutdown: { server.beginGracefulShutdown() }
    }
}

/// Writes the port file once listening, then returns when the job is over and its clients
/// have been told (or a few seconds passed), which shuts the group down.
private struct JobWatcher: Service {
    let remote: RemoteClients
    let outcome: LockedValue<Result<SimulationJob.Summary, JobError>?>
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let settings: FederationServer.Settings
    let log: EventLog

    func run() async throws {
        if let address = try await server.listeningAddress {
            let port = address.ipv4?.port ?? address.ipv6?.port ?? settings.listen.port
            log.log("listening", ["address": "\(settings.listen.host):\(port)"])
            if let portFile = settings.portFile { try? AtomicFile.write(Array("\(port)\n".utf8), to: portFile) }
        }
        while outcome.value == nil {
            if Task.isShuttingDownGracefully || Task.isCancelled {
                remote.releasePolls()
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while !remote.everyoneToldDone && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
    }
}

/// Runs `body` on Swift concurrency's threads and waits for it on this (non-cooperative) thread.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let result = LockedValue<T?>(nil), done = DispatchSemaphore(value: 0)
    Task {
        result.set(await body())
        done.signal()
    }
    done.wait()
    return result.value!
}
