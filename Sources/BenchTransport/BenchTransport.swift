import Federated
import FederatedRPC
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

// `make bench-transport`: one large update over loopback through the server's real path (the gRPC
// service, streamed in `ChunkedBytes`, the size limit, routing, the fsync'd reply journal), server and client in separate
// processes. Prints the upload rate and the server's peak RSS.
//
//   bench-transport [MEGABYTES] [REPEATS] [--no-journal] [--download]   (default 100 MB, 5 pushes;
//   the journal left out shows what its fsync costs; --download also sends each round's task with
//   a model of the same size and times its poll, from its first chunk to its last)

@main
struct BenchTransport {
    static func main() async throws {
        let arguments = CommandLine.arguments
        MessageMemory.keepChunkBuffers()
        if arguments.count > 1, arguments[1] == "serve" {
            return try await serve(parameters: Int(arguments[2])!, journal: arguments[3] == "-" ? nil : arguments[3], download: arguments[4] == "download")
        }
        let journaled = !arguments.contains("--no-journal"), download = arguments.contains("--download")
        let megabytes = arguments.count > 1 ? Int(arguments[1]) ?? 100 : 100, repeats = arguments.count > 2 ? Int(arguments[2]) ?? 5 : 5
        let parameters = megabytes * 1_000_000 / 4
        let journal = FileManager.default.temporaryDirectory.appendingPathComponent("bench-transport-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: journal) }
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        server.arguments = ["serve", "\(parameters)", journaled ? journal : "-", download ? "download" : "upload"]
        let pipe = Pipe()
        server.standardOutput = pipe
        try server.run()
        let port = Int(String(decoding: pipe.fileHandleForReading.readLine(), as: UTF8.self))!

        // A reply envelope with an update of `parameters` fp32 values (the bytes a dense update has).
        var reply = Envelope(kind: .update, client: 0, round: 1, modelVersion: 0)
        reply.samples = 1
        reply.steps = 1
        reply.payloads[.update] = [UInt8](repeating: 0x3F, count: UpdateMessage.denseSize(count: parameters))
        let bytes = reply.bytes
        let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext,
                                                       config: FederationClient.transportConfiguration)
        var seconds: [Double] = [], downloadSeconds: [Double] = []
        try await withGRPCClient(transport: transport) { client in
            var options = CallOptions.defaults
            options.timeout = .seconds(120)
            (options.maxRequestMessageBytes, options.maxResponseMessageBytes) = (ChunkedBytes.maxMessageBytes, ChunkedBytes.maxMessageBytes)
            for round in 1...repeats {
                if download {
                    let poll = Array(#"{"clients":[0]}"#.utf8)
                    let (task, elapsed) = try await client.serverStreaming(
                        request: ClientRequest(message: poll[...]), descriptor: FederationProtocol.poll,
                        serializer: RawSerializer(), deserializer: InPlaceDeserializer(), options: options) { response in
                        var assembler = ChunkedBytes.Assembler(limit: 2 * bytes.count)
                        var first: ContinuousClock.Instant?
                        for try await chunk in response.messages {
                            first = first ?? .now
                            try assembler.append(chunk)
                        }
                        return (try assembler.finished(), first.map { (ContinuousClock.now - $0).seconds } ?? 0)
                    }
                    precondition(task.first == 0 && task.count > bytes.count, "poll \(round): \(task.count) bytes")
                    downloadSeconds.append(elapsed)
                }
                var envelope = reply
                envelope.round = round
                let message = round == 1 ? bytes : envelope.bytes
                let start = ContinuousClock.now
                let answer = try await client.clientStreaming(
                    request: StreamingClientRequest { try await ChunkedBytes.write(message, to: $0) }, descriptor: FederationProtocol.push,
                    serializer: RawSerializer(), deserializer: RawDeserializer(), options: options) { try $0.message }
                seconds.append((ContinuousClock.now - start).seconds)
                let receipt = try JSONDecoder().decode(FederationProtocol.PushReceipt.self, from: Data(answer))
                precondition(receipt.receipt == "accepted", "push \(round): \(receipt)")
            }
        }
        server.terminate()
        let rss = Int(String(decoding: pipe.fileHandleForReading.readLine(), as: UTF8.self)) ?? -1
        server.waitUntilExit()
        let sorted = seconds.sorted(), median = sorted[sorted.count / 2], size = Double(bytes.count)
        print("push of \(bytes.count) bytes x \(repeats) (loopback, plaintext, \(journaled ? "journal fsync'd" : "no journal")): median \(String(format: "%.3f", median)) s = "
            + "\(String(format: "%.0f", size / median / 1e6)) MB/s (best \(String(format: "%.0f", size / sorted[0] / 1e6)) MB/s)")
        if journaled {
            print("first push (into a new journal file; later ones overwrite the files of checkpointed rounds): \(String(format: "%.3f", seconds[0])) s = "
                + "\(String(format: "%.0f", size / seconds[0] / 1e6)) MB/s")
        }
        if download {
            let sorted = downloadSeconds.sorted(), median = sorted[sorted.count / 2]
            print("task download of \(bytes.count)-byte models x \(repeats) (first chunk to last): median \(String(format: "%.3f", median)) s = "
                + "\(String(format: "%.0f", size / median / 1e6)) MB/s (best \(String(format: "%.0f", size / sorted[0] / 1e6)) MB/s)")
        }
        print("server peak RSS \(rss / 1024) MB = \(String(format: "%.2f", Double(rss) * 1024 / size))x the update")
    }

    /// The server side: the real service over `RemoteClients` with one open round per push.
    static func serve(parameters: Int, journal: String?, download: Bool) async throws {
        let clients = RemoteClients(settings: .init(minClients: 1, minSurvivors: 1, roundDeadline: .seconds(600), underflow: .skip,
                                                    livenessTimeout: .seconds(600)), journal: journal.map { ReplyJournal(directory: $0) })
        let service = FederationService(clients: clients, authenticator: Authenticator(mode: .open),
                                        job: .init(configuration: "", rounds: 1000, jobClients: 1,
                                                             maxReplyBytes: FederationServer.maxReplyBytes(parameters: parameters), completedRounds: { 0 }),
                                        log: EventLog(component: "bench"), wire: WireCounter())
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext,
            config: FederationServer.transportConfiguration)
        let server = GRPCServer(transport: transport, services: [service])
        signal(SIGTERM, SIG_IGN)
        let terminate = DispatchSource.makeSignalSource(signal: SIGTERM)
        terminate.setEventHandler {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            print(usage.ru_maxrss)
            fflush(nil)
            exit(0)
        }
        terminate.resume()
        // Rounds open one after another on their own thread, as on the server's round thread.
        Thread {
            for round in 1... {
                var task = Envelope(kind: .train, client: 0, round: round, modelVersion: round - 1)
                task.payloads[.model] = download ? [UInt8](repeating: 0x3F, count: UpdateMessage.denseSize(count: parameters)) : [0]
                _ = clients.exchange([ClientMessage(client: 0, bytes: task.bytes)], clientDone: nil)
                clients.checkpointed(round: round)
            }
        }.start()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve() }
            if let port = try await server.listeningAddress?.ipv4?.port {
                print(port)
                fflush(nil)
            }
        }
    }
}

extension FileHandle {
    func readLine() -> [UInt8] {
        var line: [UInt8] = []
        while let byte = try? read(upToCount: 1), let first = byte.first, first != UInt8(ascii: "\n") { line.append(first) }
        return line
    }
}
