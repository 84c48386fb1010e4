import ArgumentParser
import Engine
import Federated
import FederatedRPC
import Foundation
import Synchronization

/// How a client-side command (`client`, `status`) reaches the server.
struct ClientConnectionOptions: ParsableArguments {
    @Option(help: "The server's HOST:PORT.") var server: String
    @Option(help: "The federation's CA certificate (PEM): the server's certificate must be signed by it.") var ca: String?
    @Option(name: .customLong("tls-cert"), help: "This client's certificate (PEM), for mutual TLS.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "This client's private key (PEM), for mutual TLS.") var tlsKey: String?
    @Option(name: .customLong("token-file"), help: "A file holding this client's bearer token (with a server that takes --tokens).")
    var tokenFile: String?
    @Flag(help: "Plaintext, without TLS: only to a loopback address.") var insecure = false

    func resolved() throws(ConfigurationError) -> (ServerAddress, TransportSecurity, String?) {
        let address = try ServerAddress(parsing: server)
        if insecure && (ca != nil || tlsCert != nil || tlsKey != nil) { throw ConfigurationError("--insecure does not go with --ca, --tls-cert or --tls-key") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ConfigurationError("--tls-cert and --tls-key go together") }
        var token: String?
        if let tokenFile {
            let bytes: [UInt8]
            do { bytes = try AtomicFile.read(tokenFile) } catch { throw ConfigurationError(error.description) }
            token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let token, !token.isEmpty, token.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw ConfigurationError("\(tokenFile): expected one token")
            }
        }
        return (address, insecure ? .insecure : .tls(certificate: tlsCert, key: tlsKey, peerCA: ca), token)
    }
}

struct Server: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a federated job to client processes over gRPC (mutual TLS by default).",
        discussion: "Same configuration keys as simulate, plus the network ones. --state DIR holds what simulate --out writes and the "
            + "reply journal; the same command again on the same DIR continues an interrupted run.")

    @OptionGroup var jobOptions: JobOptions
    @Option(help: "HOST:PORT to listen on (port 0: any free port, see --port-file).") var listen: String
    @Option(help: "State directory: config.yaml, metrics, summary.json, model.safetensors, checkpoint/, journal/.") var state: String
    @Option(name: .customLong("tls-cert"), help: "The server's certificate (PEM).") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "The server's private key (PEM).") var tlsKey: String?
    @Option(name: .customLong("client-ca"), help: "CA certificate (PEM) that signs client certificates: mutual TLS.") var clientCA: String?
    @Option(help: "Allow-list of client certificate names: lines NAME CLIENT-IDS (fedtrain ca issue writes allow.txt).") var allow: String?
    @Option(help: "Bearer tokens instead of client certificates: lines NAME CLIENT-IDS SHA256-HEX (fedtrain ca token writes tokens.txt).")
    var tokens: String?
    @Flag(help: "Plaintext, without TLS: only on a loopback address.") var insecure = false
    @Option(name: .customLong("port-file"), help: "Write the port listened on to this file once listening.") var portFile: String?
    @OptionGroup(title: "Network") var network: NetworkOptions
    @OptionGroup(title: "Asynchronous modes") var asynchrony: AsyncOptions
    @OptionGroup(title: "Run") var runOptions: RunOptions

    func resolved() throws(ConfigurationError) -> SimulationConfiguration {
        try jobOptions.resolve(file: jobOptions.config, run: runOptions, asynchrony: asynchrony, network: network)
    }

    func security() throws(ConfigurationError) -> (TransportSecurity, Authenticator) {
        if insecure && (tlsCert != nil || tlsKey != nil || clientCA != nil) {
            throw ConfigurationError("--insecure does not go with --tls-cert, --tls-key or --client-ca")
        }
        if !insecure && (tlsCert == nil || tlsKey == nil) {
            throw ConfigurationError("the server needs --tls-cert and --tls-key (and --client-ca for mutual TLS), or --insecure on loopback")
        }
        let security: TransportSecurity = insecure ? .insecure : .tls(certificate: tlsCert, key: tlsKey, peerCA: clientCA)
        if let tokens { return (security, Authenticator(mode: .tokens(try Authenticator.tokenList(path: tokens)))) }
        if clientCA != nil {
            guard let allow else { throw ConfigurationError("mutual TLS needs --allow FILE (certificate names and their client ids)") }
            return (security, Authenticator(mode: .certificates(try Authenticator.allowList(path: allow))))
        }
        if insecure { return (security, Authenticator(mode: .open)) }
        throw ConfigurationError("TLS without --client-ca identifies no client: add --client-ca and --allow, or --tokens")
    }

    func run() throws {
        let configuration: SimulationConfiguration, settings: FederationServer.Settings
        do {
            configuration = try resolved()
            let (security, authenticator) = try security()
            settings = .init(listen: try ServerAddress(parsing: listen), security: security, authenticator: authenticator, portFile: portFile)
        } catch { fail(error.description) }
        var job = SimulationJob(configuration: configuration, outputDirectory: state, saveModel: nil)
        job.inputConfig = jobOptions.config
        let log = EventLog(component: "server")
        let rounds = configuration.federation.rounds
        let progress = Mutex(ProgressLine())
        let ending: FederationServer.Ending
        do {
            ending = try FederationServer.run(job: job, settings: settings, log: log) { event in
                switch event {
                case .started(let simulation):
                    let f = configuration.federation
                    print("fedtrain server: \(configuration.data.model), \(f.clients) clients (\(f.sampledPerRound) per round), "
                        + "\(f.partition), \(simulation.coordinator.strategy.spec), \(plural(rounds, "round")), seed \(f.seed), listening on \(listen)")
                    if simulation.completedRounds > 0 { print("resumed after round \(simulation.completedRounds)") }
                    log.log("job_started", ["completed_rounds": simulation.completedRounds, "rounds": rounds])
                case .clientDone(let round, let done, let total, let seconds):
                    progress.withLock {
                        $0.update("round \(round)/\(rounds) \(ProgressLine.bar(Double(done) / Double(total))) replied \(done)/\(total) \(format(seconds, 1)) s")
                    }
                case .checkpointed: break
                case .roundDone(let metrics):
                    progress.withLock { $0.finish(roundLine(metrics, rounds: rounds)) }
                    log.log("round_done", ["round": metrics.round, "clients": metrics.clients, "failures": metrics.failures,
                                           "committed": metrics.committed, "accuracy": metrics.testAccuracy ?? -1])
                }
            }
        } catch {
            fail(error.description)
        }
        switch ending {
        case .finished(let summary):
            print(doneLine(summary))
            print("results in \(state)")
        case .stoppedByPolicy(let summary, let reason):
            print(doneLine(summary))
            fail("stopped after round \(summary.rounds): \(reason); the same command continues the run from \(state)")
        case .stopped(let completed):
            print("fedtrain server: stopped after round \(completed); the same command continues the run from \(state)")
        }
    }
}

struct Client: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join a federation: train the server's tasks for one or more clients on this machine.",
        discussion: "Without --data, client K trains on partition K of the job's data set (the same numbering as simulate).")

    @OptionGroup var connection: ClientConnectionOptions
    @Option(name: .customLong("client-id"), help: "The client this process is (0-based).") var clientID: Int?
    @Option(name: .customLong("client-ids"), help: "Several clients in this process, trained in parallel: e.g. 0-24 or 0,3,7.") var clientIDs: String?
    @Option(help: "This client's own data directory (one client); default: its partition of the job's data set.") var data: String?
    @Option(parsing: .unconditional, help: "Worker threads (default: all cores, \(Parallelism.availableCores) here).") var threads: Int?
    @Option(name: .customLong("give-up"), parsing: .unconditional, help: "Seconds without reaching the server before giving up (default: 300).")
    var giveUp: Double = 300
    @Option(name: .customLong("crash-in-round"), help: .hidden) var crashInRound: Int?
    @Option(name: .customLong("crash-after-training"), help: .hidden) var crashAfterTraining: Int?
    @Option(name: .customLong("slow-down"), parsing: .unconditional,
            help: "Wait this many seconds after each task before replying: a slow device, for experiments (default: 0).")
    var slowDown: Double = 0
    @Flag(help: "Benchmark only: reply with the model unchanged, without training (measures the federation's own cost).") var echo = false
    @Option(help: "Keep the clients' states (error-feedback residuals, control variates, model copies) and last replies in this directory, so a restarted client continues where it was (default: in memory only).")
    var state: String?

    func run() throws {
        var settings: FederationClient.Settings
        do throws(ConfigurationError) {
            let (address, security, token) = try connection.resolved()
            guard (clientID == nil) != (clientIDs == nil) else { throw ConfigurationError("give --client-id K or --client-ids LIST") }
            let clients = try clientIDs.map { text throws(ConfigurationError) in try ClientIDs.parse(text) } ?? [clientID!]
            guard clients.allSatisfy({ $0 >= 0 }) else { throw ConfigurationError("client ids start at 0") }
            let threads = self.threads ?? Parallelism.availableCores
            guard threads >= 1 else { throw ConfigurationError("--threads must be at least 1") }
            guard giveUp > 0 else { throw ConfigurationError("--give-up must be positive seconds") }
            guard slowDown >= 0, slowDown.isFinite else { throw ConfigurationError("--slow-down must be seconds >= 0") }
            settings = .init(server: address, security: security, token: token, clients: clients, dataDirectory: data, threads: threads,
                             giveUpAfter: .milliseconds(Int64(giveUp * 1000)), crashInRound: crashInRound)
            settings.echo = echo
            settings.stateDirectory = state
            settings.crashAfterTraining = crashAfterTraining
            settings.slowDown = .milliseconds(Int64(slowDown * 1000))
        } catch { fail(error.description) }
        switch FederationClient.run(settings: settings, log: EventLog(component: "client")) {
        case .jobDone, .signalled: return
        case .failed(let message): fail(message)
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a federation server's round and its clients' last heartbeats.")

    @OptionGroup var connection: ClientConnectionOptions

    func run() throws {
        let status: FederationProtocol.ServerStatus
        do {
            let (address, security, token) = try connection.resolved()
            status = try FederationStatus.fetch(server: address, security: security, token: token)
        } catch { fail(error.description) }
        let round = status.round > 0 ? "round \(status.round)/\(status.rounds): \(status.replied)/\(status.sampled) replied"
            : "between rounds (\(status.completedRounds)/\(status.rounds) done)"
        print("\(round); \(plural(status.clients.filter(\.live).count, "client")) connected")
        for client in status.clients {
            print("  client \(client.client): \(client.live ? "live" : "gone"), last seen \(format(client.secondsSinceSeen, 1)) s ago")
        }
    }
}

struct CertificateAuthorityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca", abstract: "The federation's own certificate authority: keys, certificates, allow-list, tokens.",
        subcommands: [Initialize.self, Issue.self, Token.self])

    struct Initialize: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "init", abstract: "Create the CA (ca.pem, ca.key) in a directory.")
        @Option(help: "The CA's directory.") var dir: String
        func run() throws {
            do { try CertificateAuthority(directory: dir).initialize() } catch { fail(error.description) }
            print("CA created: \(dir)/ca.pem (copy it to the server and every client), \(dir)/ca.key (keep it here)")
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue NAME.pem and NAME.key, signed by the CA.")
        @Option(help: "The CA's directory.") var dir: String
        @Option(help: "The certificate's name (its common name: a client's identity).") var name: String
        @Option(help: "Client ids this name may act as, added to allow.txt (e.g. 0-24).") var clients: String?
        @Option(help: "Host names and IPv4 addresses a server certificate answers for, comma-separated (default: 127.0.0.1,localhost).")
        var hosts: String = "127.0.0.1,localhost"
        func run() throws {
            do {
                let ids = try clients.map { text throws(ConfigurationError) in try ClientIDs.parse(text) }
                try CertificateAuthority(directory: dir).issue(name: name, hosts: hosts.split(separator: ",").map(String.init), clients: ids)
            } catch { fail(error.description) }
            print("issued \(dir)/\(name).pem and \(dir)/\(name).key\(clients.map { "; \(name) may act as clients \($0) (\(dir)/allow.txt)" } ?? "")")
        }
    }

    struct Token: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a bearer token NAME.token; tokens.txt gets its hash.")
        @Option(help: "The directory for NAME.token and tokens.txt.") var dir: String
        @Option(help: "The token's name.") var name: String
        @Option(help: "Client ids the token may act as (e.g. 0-24).") var clients: String
        func run() throws {
            do { try CertificateAuthority(directory: dir).issueToken(name: name, clients: try ClientIDs.parse(clients)) } catch { fail(error.description) }
            print("token \(dir)/\(name).token (give it to the client); its hash is in \(dir)/tokens.txt (for the server)")
        }
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-run a networked asynchronous run from its state directory's event log, in this process, and compare the final models.",
        discussion: "The clients are trained here on their partitions of the job's data set, in the order the server logged in events.jsonl.")

    @Argument(help: "The state directory of a `fedtrain server --mode fedbuff|fedasync` run.") var state: String
    @Option(help: "Also save the replayed model to this safetensors file.") var save: String?
    @Option(parsing: .unconditional, help: "Worker threads (default: all cores, \(Parallelism.availableCores) here); results do not depend on it.")
    var threads: Int?

    func run() throws {
        if let threads, threads < 1 { fail("--threads must be at least 1") }
        if let save {
            do { try AtomicFile.checkWritable(save) } catch { fail("--save \(error.description)") }
        }
        let result: ReplayJob.Result
        do {
            result = try ReplayJob(state: state, threads: threads).run { metrics in
                print("step \(metrics.round): clients \(metrics.clients), trips \(metrics.trips ?? 0)"
                    + (metrics.testAccuracy.map { ", accuracy \(format(100 * $0, 2))%" } ?? ""))
            }
        } catch { fail(error.description) }
        if let save {
            do { try Safetensors.save(result.global, layout: result.layout, to: save, metadata: ["format": "pt", "producer": "fedtrain replay"]) } catch {
                fail(error.description)
            }
        }
        switch result.matchesRun {
        case true?: print("replayed \(plural(result.steps, "step")): the model is identical to \(state)/model.safetensors")
        case false?: fail("replayed \(plural(result.steps, "step")): the model differs from \(state)/model.safetensors")
        case nil: print("replayed \(plural(result.steps, "step")); \(state) has no final model to compare with (the run is unfinished)")
        }
    }
}
