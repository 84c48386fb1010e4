import Crypto
import Foundation
import Testing

/// A `fedtrain` process of the build under test, its output captured in files (no pipe to fill).
final class FedtrainProcess: @unchecked Sendable {
    let process = Process()
    let outputPath: String, errorPath: String

    init(_ arguments: [String], in directory: String, name: String) throws {
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("fedtrain")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        (outputPath, errorPath) = ("\(directory)/\(name).out", "\(directory)/\(name).err")
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errorPath))
        try process.run()
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }
    var error: String { (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "" }

    /// The exit status, or nil when still running after `timeout` (the process is then killed).
    func wait(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
        if process.isRunning {
            kill9()
            return nil
        }
        return process.terminationStatus
    }

    func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// A directory for one networked test, with its job file; removed (and its processes killed) at the end.
final class FederationFixture: @unchecked Sendable {
    let directory = temporaryPath("federation")
    var processes: [FedtrainProcess] = []

    init(job: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try job.write(toFile: "\(directory)/job.yaml", atomically: true, encoding: .utf8)
    }

    deinit {
        for process in processes { process.kill9() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    @discardableResult
    func start(_ arguments: [String], name: String) throws -> FedtrainProcess {
        let process = try FedtrainProcess(arguments, in: directory, name: name)
        processes.append(process)
        return process
    }

    /// Starts a server on a free loopback port (or `port`) and returns it with its port.
    func startServer(_ extra: [String] = ["--insecure"], state: String = "state", port: Int = 0, name: String = "server") throws -> (FedtrainProcess, Int) {
        let portFile = "\(directory)/\(name).port"
        try? FileManager.default.removeItem(atPath: portFile)
        let server = try start(["server", "--config", "job.yaml", "--listen", "127.0.0.1:\(port)", "--state", state, "--port-file", portFile] + extra,
                               name: name)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return (server, port)
            }
            if !server.process.isRunning { break }
            usleep(50_000)
        }
        Issue.record("server did not listen: \(server.error)")
        throw CancellationError()
    }

    func startClients(port: Int, groups: [String], extra: [String] = ["--insecure"], name: String = "client") throws -> [FedtrainProcess] {
        try groups.enumerated().map { index, ids in
            try start(["client", "--server", "127.0.0.1:\(port)", "--client-ids", ids, "--threads", "1", "--give-up", "60"] + extra,
                      name: "\(name)-\(index)")
        }
    }

    func simulate(_ extra: [String] = [], out: String = "simulated") throws -> FedtrainProcess {
        try start(["simulate", "--config", "job.yaml", "--out", out, "--threads", "2"] + extra, name: out)
    }

    func sha256(_ path: String) -> String {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(path)") else { return "missing \(path)" }
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    func summary(_ run: String) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: "\(directory)/\(run)/summary.json"),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return object
    }

    /// Test accuracy of every evaluated round, from metrics.jsonl.
    func accuracies(_ run: String) -> [Double] {
        let text = (try? String(contentsOfFile: "\(directory)/\(run)/metrics.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["test_accuracy"] as? Double
        }
    }
}

/// Server and clients as separate processes on loopback, against `fedtrain simulate` with the
/// same configuration: the same final model bit for bit, and the same byte counts.
@Suite(.serialized) struct NetworkTests {
    static let smallJob = """
        clients: 20
        fraction: 0.25
        rounds: 3
        partition: dirichlet:0.5
        batch_size: 32
        round_deadline: 60
        """
    static let fiveProcesses = ["0-3", "4-7", "8-11", "12-15", "16-19"]

    func expectSameRun(_ fixture: FederationFixture, server: String = "state", simulated: String = "simulated") {
        #expect(fixture.sha256("\(server)/model.safetensors") == fixture.sha256("\(simulated)/model.safetensors"))
        let networked = fixture.summary(server), local = fixture.summary(simulated)
        for key in ["bytes_up", "bytes_down", "rounds", "final_accuracy"] {
            #expect("\(networked[key] ?? "none")" == "\(local[key] ?? "none")", "\(key)")
        }
        #expect(fixture.accuracies(server) == fixture.accuracies(simulated))
        #expect(!fixture.accuracies(server).isEmpty)
    }

    /// A described model, read by the server from its own file: its clients get the description
    /// with the job.
    static let describedModel = """
        layers:
          - conv: {out: 8, kernel: 5, stride: 2, padding: 2}
          - relu
          - avgpool: 2
          - flatten
          - dense: classes
        """

    @Test(arguments: [[String](), ["--codec", "topk:0.1", "--error-feedback", "--down-codec", "fp16", "--model", "model.yaml"]])
    func fiveClientProcessesEqualSimulate(flags: [String]) throws {
        let fixture = try FederationFixture(job: Self.smallJob)
        try Self.describedModel.write(toFile: "\(fixture.directory)/model.yaml", atomically: true, encoding: .utf8)
        let simulation = try fixture.simulate(flags)
        let (server, port) = try fixture.startServer(["--insecure"] + flags)
        let clients = try fixture.startClients(port: port, groups: Self.fiveProcesses)
        #expect(server.wait(timeout: .seconds(240)) == 0, "server: \(server.error)")
        for client in clients { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
        #expect(simulation.wait(timeout: .seconds(120)) == 0)
        #expect(server.output.contains("done: final accuracy"))
        expectSameRun(fixture)
    }

    @Test func hundredClientsOnFourProcessesEqualSimulate() throws {
        let fixture = try FederationFixture(job: Self.smallJob.replacingOccurrences(of: "clients: 20\nfraction: 0.25", with: "clients: 100\nfraction: 0.1"))
        let simulation = try fixture.simulate()
        let (server, port) = try fixture.startServer()
        let clients = try fixture.startClients(port: port, groups: ["0-24", "25-49", "50-74", "75-99"])
        #expect(server.wait(timeout: .seconds(240)) == 0, "server: \(server.error)")
        for client in clients { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
        #expect(simulation.wait(timeout: .seconds(120)) == 0)
        expectSameRun(fixture)
    }

    /// The process hosting clients 0-9 dies on receiving round 2's tasks: the round closes at its
    /// deadline without them, equal to `simulate --drop` of the clients it missed; restarted, the
    /// process rejoins and round 3 has every client again.
    @Test func crashedClientRoundClosesAtDeadlineAndEqualsDrop() throws {
        let fixture = try FederationFixture(job: Self.smallJob.replacingOccurrences(of: "fraction: 0.25", with: "fraction: 0.5")
            .replacingOccurrences(of: "round_deadline: 60", with: "round_deadline: 8"))
        let (server, port) = try fixture.startServer()
        let crashing = try fixture.startClients(port: port, groups: ["0-9"], extra: ["--insecure", "--crash-in-round", "2"], name: "crashing")[0]
        let others = try fixture.startClients(port: port, groups: ["10-14", "15-19"])
        #expect(crashing.wait(timeout: .seconds(120)) == 3, "the crash hook: \(crashing.error)")
        // Restarted within round 2's deadline, the process would still answer round 2 (its tasks wait for it).
        let deadline = ContinuousClock.now + .seconds(60)
        while !server.error.contains("\"missing\"") || !server.error.contains("\"round\":2") {
            if ContinuousClock.now > deadline { break }
            usleep(20_000)
        }
        let restarted = try fixture.startClients(port: port, groups: ["0-9"], name: "restarted")[0]
        #expect(server.wait(timeout: .seconds(240)) == 0, "server: \(server.error)")
        for client in others + [restarted] { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
        // Each round's missing clients, from the server's log (under load a slow client may miss a deadline too).
        var missing: [Int: [Int]] = [:]
        for line in server.error.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object["event"] as? String == "round_closed", let round = object["round"] as? Int, let ids = object["missing"] as? String else { continue }
            missing[round] = ids.split(separator: ",").flatMap { part -> [Int] in
                let bounds = part.split(separator: "-").compactMap { Int($0) }
                return bounds.count == 2 ? Array(bounds[0]...bounds[1]) : bounds
            }
        }
        let crashed = missing[2] ?? []
        #expect(!crashed.isEmpty && crashed.filter { (0...9).contains($0) }.count >= 1, "round 2 missed \(crashed)")
        let dropped = missing.sorted { $0.key < $1.key }.flatMap { round, clients in clients.map { "\(round):\($0)" } }
        let simulation = try fixture.simulate(["--drop", dropped.joined(separator: ",")])
        #expect(simulation.wait(timeout: .seconds(120)) == 0)
        expectSameRun(fixture)
    }

    /// A client process with `--state DIR` dies on receiving round 2's tasks, or after training
    /// them but before replying, and is started again on the same directory: its clients'
    /// error-feedback residuals come back from disk, round 2 waits for it, and the run equals an
    /// uninterrupted `simulate` bit for bit. (Without the directory the restarted clients would
    /// start from empty residuals; after training, they must send the saved replies rather than
    /// train round 2 again from states that already include it.)
    @Test(arguments: ["--crash-in-round", "--crash-after-training"])
    func restartedClientContinuesFromItsStateDirectory(crash: String) throws {
        let flags = ["--codec", "topk:0.1", "--error-feedback"]
        let fixture = try FederationFixture(job: Self.smallJob.replacingOccurrences(of: "fraction: 0.25", with: "fraction: 0.5"))
        let simulation = try fixture.simulate(flags)
        let (server, port) = try fixture.startServer(["--insecure"] + flags)
        let crashing = try fixture.startClients(port: port, groups: ["0-9"], extra: ["--insecure", "--state", "client-state", crash, "2"],
                                                name: "crashing")[0]
        let others = try fixture.startClients(port: port, groups: ["10-14", "15-19"])
        #expect(crashing.wait(timeout: .seconds(120)) == 3, "the crash hook: \(crashing.error)")
        let saved = (try? FileManager.default.contentsOfDirectory(atPath: "\(fixture.directory)/client-state")) ?? []
        #expect(saved.contains("job.yaml") && saved.contains { $0.hasPrefix("client-") && $0.hasSuffix(".state") }, "\(saved)")
        let restarted = try fixture.startClients(port: port, groups: ["0-9"], extra: ["--insecure", "--state", "client-state"], name: "restarted")[0]
        #expect(server.wait(timeout: .seconds(240)) == 0, "server: \(server.error)")
        for client in others + [restarted] { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
        #expect(simulation.wait(timeout: .seconds(120)) == 0)
        expectSameRun(fixture)
    }

    /// A server whose clients do not come stops at `--available-deadline` with a one-line reason
    /// (exit 1), instead of waiting forever; then, with its clients, the same command runs the job.
    @Test func serverWithoutItsClientsStopsAtTheAvailableDeadline() throws {
        let fixture = try FederationFixture(job: Self.smallJob)
        let (alone, port) = try fixture.startServer(["--insecure", "--available-deadline", "3"])
        #expect(alone.wait(timeout: .seconds(60)) == 1)
        #expect(alone.error.contains("min_available requires were connected for 3 s (available_deadline); the same command continues"), "\(alone.error)")
        let (server, _) = try fixture.startServer(["--insecure", "--available-deadline", "30"], port: port, name: "again")
        let clients = try fixture.startClients(port: port, groups: Self.fiveProcesses)
        #expect(server.wait(timeout: .seconds(240)) == 0, "server: \(server.error)")
        for client in clients { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
    }

    /// `kill -9` of the server after its first round, then the same command again: the clients
    /// reconnect and the run ends with the uninterrupted run's model.
    @Test func killedServerRestartsToTheSameModel() throws {
        let fixture = try FederationFixture(job: Self.smallJob.replacingOccurrences(of: "rounds: 3", with: "rounds: 4"))
        let simulation = try fixture.simulate()
        let (first, port) = try fixture.startServer()
        let clients = try fixture.startClients(port: port, groups: Self.fiveProcesses)
        let deadline = ContinuousClock.now + .seconds(120)
        while !first.error.contains("\"round_done\"") && ContinuousClock.now < deadline { usleep(20_000) }
        usleep(300_000)
        first.kill9()
        let (second, _) = try fixture.startServer(port: port, name: "restarted")
        #expect(second.wait(timeout: .seconds(240)) == 0, "restarted server: \(second.error)")
        #expect(second.output.contains("resumed after round"))
        for client in clients { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
        #expect(simulation.wait(timeout: .seconds(120)) == 0)
        expectSameRun(fixture)
    }

    /// FedBuff over 10 client processes, two slowed down (their updates arrive stale), with the
    /// server killed after its first step and restarted on its state: the trips it had out are
    /// logged as failed, and `fedtrain replay` re-runs the logged order to the identical model.
    @Test func networkedFedBuffReplaysToTheSameModel() throws {
        let fixture = try FederationFixture(job: """
            clients: 10
            rounds: 5
            partition: dirichlet:0.5
            batch_size: 32
            round_deadline: 60
            mode: fedbuff
            buffer: 3
            concurrency: 5
            """)
        let (first, port) = try fixture.startServer(["--insecure", "--threads", "1"])
        let clients = try (0..<10).map { client in
            try fixture.start(["client", "--server", "127.0.0.1:\(port)", "--client-id", "\(client)", "--threads", "1", "--give-up", "60", "--insecure"]
                              + (client < 2 ? ["--slow-down", "2"] : []), name: "client-\(client)")
        }
        let deadline = ContinuousClock.now + .seconds(120)
        while !first.error.contains("\"round_done\"") && ContinuousClock.now < deadline { usleep(20_000) }
        first.kill9()
        let (second, _) = try fixture.startServer(["--insecure", "--threads", "1"], port: port, name: "restarted")
        #expect(second.wait(timeout: .seconds(240)) == 0, "restarted server: \(second.error)")
        #expect(second.output.contains("resumed after round"))
        for client in clients { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
        let events = (try? String(contentsOfFile: "\(fixture.directory)/state/events.jsonl", encoding: .utf8)) ?? ""
        #expect(events.contains("\"fail\""), "the restart abandons the trips that were out")
        let metrics = ((try? String(contentsOfFile: "\(fixture.directory)/state/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n")
        let staleness = metrics.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["staleness_max"] as? Int }
        #expect(metrics.count == 5 && staleness.count == 5)
        #expect(staleness.contains { $0 > 0 }, "slow clients reply from older versions: \(staleness)")
        let replay = try fixture.start(["replay", "state", "--threads", "2", "--save", "replayed.safetensors"], name: "replay")
        #expect(replay.wait(timeout: .seconds(240)) == 0, "replay: \(replay.error)")
        #expect(replay.output.contains("the model is identical"), "\(replay.output)")
        #expect(fixture.sha256("replayed.safetensors") != "missing replayed.safetensors")
    }
}
