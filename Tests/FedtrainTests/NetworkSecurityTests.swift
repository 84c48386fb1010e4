@testable import FederatedRPC
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import TestSupport
import Testing

/// Refusals: each with a clear error, and the federation keeps serving the clients it should.
@Suite(.serialized) struct NetworkSecurityTests {
    static let job = NetworkTests.smallJob.replacingOccurrences(of: "rounds: 3", with: "rounds: 2")

    @Test func plaintextOnlyOnLoopback() throws {
        let fixture = try FederationFixture(job: Self.job)
        let server = try fixture.start(["server", "--config", "job.yaml", "--listen", "0.0.0.0:0", "--state", "state", "--insecure"], name: "server")
        #expect(server.wait(timeout: .seconds(30)) == 1)
        #expect(server.error.contains("--insecure serves plaintext, only on a loopback address"), "\(server.error)")
        let client = try fixture.start(["client", "--server", "192.0.2.1:7000", "--client-id", "0", "--insecure"], name: "client")
        #expect(client.wait(timeout: .seconds(30)) == 1)
        #expect(client.error.contains("--insecure talks plaintext, only to a loopback address"), "\(client.error)")
        let noTLS = try fixture.start(["server", "--config", "job.yaml", "--listen", "127.0.0.1:0", "--state", "state"], name: "no-tls")
        #expect(noTLS.wait(timeout: .seconds(30)) == 1)
        #expect(noTLS.error.contains("needs --tls-cert and --tls-key"), "\(noTLS.error)")
    }

    @Test func tokensIdentifyClients() throws {
        let fixture = try FederationFixture(job: Self.job)
        for (name, clients) in [("site-a", "0-9"), ("site-b", "10-19"), ("other", "0-19")] {
            let issued = try fixture.start(["ca", "token", "--dir", "tokens", "--name", name, "--clients", clients], name: "token-\(name)")
            #expect(issued.wait(timeout: .seconds(30)) == 0)
        }
        // The server knows site-a and site-b only; "other" has a well-formed token it never issued.
        let lines = try String(contentsOfFile: "\(fixture.directory)/tokens/tokens.txt", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.allSatisfy { $0.split(separator: " ").last?.count == 64 }, "hashes: \(lines)")
        let secret = try String(contentsOfFile: "\(fixture.directory)/tokens/site-a.token", encoding: .utf8)
        #expect(!lines.joined().contains(secret.trimmingCharacters(in: .whitespacesAndNewlines)), "the server's file holds no token")
        try lines.prefix(2).joined(separator: "\n").write(toFile: "\(fixture.directory)/server-tokens.txt", atomically: true, encoding: .utf8)
        let (server, port) = try fixture.startServer(["--insecure", "--tokens", "server-tokens.txt"])
        let stranger = try fixture.startClients(port: port, groups: ["0-9"], extra: ["--insecure", "--token-file", "tokens/other.token"],
                                                name: "stranger")[0]
        expectRefused(stranger, "server refused: unknown token")
        let overreach = try fixture.startClients(port: port, groups: ["8-12"], extra: ["--insecure", "--token-file", "tokens/site-a.token"],
                                                 name: "overreach")[0]
        expectRefused(overreach, "site-a may not act as client 10")
        let a = try fixture.startClients(port: port, groups: ["0-9"], extra: ["--insecure", "--token-file", "tokens/site-a.token"], name: "a")[0]
        let b = try fixture.startClients(port: port, groups: ["10-19"], extra: ["--insecure", "--token-file", "tokens/site-b.token"], name: "b")[0]
        #expect(server.wait(timeout: .seconds(240)) == 0, "server: \(server.error)")
        for client in [a, b] { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
        #expect(server.error.contains("\"refused\""), "refusals are logged")
    }

    @Test func mutualTLSWithTheFederationsCA() throws {
        let fixture = try FederationFixture(job: Self.job)
        let steps: [[String]] = [
            ["ca", "init", "--dir", "ca"],
            ["ca", "issue", "--dir", "ca", "--name", "server", "--hosts", "127.0.0.1,localhost"],
            ["ca", "issue", "--dir", "ca", "--name", "site-a", "--clients", "0-9"],
            ["ca", "issue", "--dir", "ca", "--name", "site-b", "--clients", "10-19"],
            ["ca", "init", "--dir", "rogue"],
            ["ca", "issue", "--dir", "rogue", "--name", "site-a", "--clients", "0-19"],
        ]
        for (index, step) in steps.enumerated() {
            let status = try fixture.start(step, name: "ca-\(index)").wait(timeout: .seconds(30))
            #expect(status == 0, "\(step)")
        }
        let allowList = try String(contentsOfFile: "\(fixture.directory)/ca/allow.txt", encoding: .utf8)
        #expect(allowList == "site-a 0-9\nsite-b 10-19\n")
        let tls = ["--tls-cert", "ca/server.pem", "--tls-key", "ca/server.key", "--client-ca", "ca/ca.pem", "--allow", "ca/allow.txt"]
        let (server, port) = try fixture.startServer(tls)
        func client(_ name: String, _ ids: String, _ credentials: [String]) throws -> FedtrainProcess {
            try fixture.startClients(port: port, groups: [ids], extra: credentials + ["--give-up", "3"], name: name)[0]
        }
        let rogue = try client("rogue", "0-9", ["--ca", "ca/ca.pem", "--tls-cert", "rogue/site-a.pem", "--tls-key", "rogue/site-a.key"])
        let anonymous = try client("anonymous", "0-9", ["--ca", "ca/ca.pem"])
        let plaintext = try client("plaintext", "0-9", ["--insecure"])
        expectRefused(rogue, "the server refused this client's certificate")
        expectRefused(anonymous, "the server requires a client certificate")
        expectRefused(plaintext, "a TLS server closes plaintext connections")
        let impostor = try client("impostor", "0-9", ["--ca", "rogue/ca.pem", "--tls-cert", "ca/site-a.pem", "--tls-key", "ca/site-a.key"])
        expectRefused(impostor, "the server's certificate is not signed by --ca")
        let a = try client("a", "0-9", ["--ca", "ca/ca.pem", "--tls-cert", "ca/site-a.pem", "--tls-key", "ca/site-a.key"])
        let b = try client("b", "10-19", ["--ca", "ca/ca.pem", "--tls-cert", "ca/site-b.pem", "--tls-key", "ca/site-b.key"])
        let status = try statusOnceAClientIsLive(fixture, port: port)
        #expect(status.contains("clients connected"), "\(status)")
        #expect(status.contains(": live, last seen"), "\(status)")
        #expect(server.wait(timeout: .seconds(240)) == 0, "server: \(server.error)")
        for client in [a, b] { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
        // The server logged the rogue certificate it refused, by name and reason.
        let refusals = server.error.split(separator: "\n").filter { $0.contains("\"tls_refused\"") }
        #expect(refusals.contains { $0.contains("\"certificate\":\"site-a\"") && $0.contains("\"reason\"") }, "\(server.error)")
    }

    func expectRefused(_ intruder: FedtrainProcess, _ message: String) {
        let status = intruder.wait(timeout: .seconds(60)), error = intruder.error
        #expect(status == 1, "\(message)")
        #expect(error.contains("fedtrain: error:"), "\(error)")
        #expect(error.contains(message), "\(error)")
    }

    /// `fedtrain status` over mutual TLS, asked until a client has joined (they start together).
    func statusOnceAClientIsLive(_ fixture: FederationFixture, port: Int) throws -> String {
        var output = ""
        for attempt in 0..<50 {
            let arguments = ["status", "--server", "127.0.0.1:\(port)", "--ca", "ca/ca.pem", "--tls-cert", "ca/site-a.pem", "--tls-key", "ca/site-a.key"]
            let asked = try fixture.start(arguments, name: "status-\(attempt)")
            let status = asked.wait(timeout: .seconds(30))
            #expect(status == 0, "status: \(asked.error)")
            output = asked.output
            if output.contains(": live, last seen") { break }
            usleep(100_000)
        }
        return output
    }

    /// Garbage on the port, an oversized message, a malformed reply and malformed control
    /// messages: each refused, and the job still runs to its end.
    @Test func hostileBytesLeaveTheServerServing() async throws {
        let fixture = try FederationFixture(job: Self.job)
        let (server, port) = try fixture.startServer()
        sendGarbage(port: port)
        let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
        // The calls' 20 s deadlines are for the server's answers, not for the cooperative pool, which sibling tests may hold that long.
        try await withTaskExecutorPreference(DedicatedThreadExecutor.shared) { try await withGRPCClient(transport: transport) { client in
            // A gRPC message larger than a chunk: refused by the transport before it is buffered.
            await #expect(throws: RPCError.self) { try await Self.push(client, [[UInt8](repeating: 7, count: 4 << 20)[...]]) }
            // A reply declaring more bytes than any reply of this model: refused before anything is reserved.
            let declared = await #expect(throws: RPCError.self) { try await Self.push(client, ChunkedBytes.chunks(of: [1, 2, 3]).map { chunk in
                var first = Array(chunk)
                first.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1) << 40) { Array($0) })
                return first[...]
            }) }
            #expect(declared?.code == .resourceExhausted)
            // More bytes than declared, and fewer.
            let longer = await #expect(throws: RPCError.self) { try await Self.push(client, ChunkedBytes.chunks(of: [1, 2, 3]) + [[4][...]]) }
            #expect(longer?.code == .invalidArgument)
            let shorter = await #expect(throws: RPCError.self) { try await Self.push(client, [ChunkedBytes.chunks(of: [1, 2, 3])[0].dropLast()]) }
            #expect(shorter?.code == .invalidArgument)
            let answer = try await Self.push(client, ChunkedBytes.chunks(of: Array("FTEVxx".utf8)))
            let receipt = try JSONDecoder().decode(FederationProtocol.PushReceipt.self, from: Data(answer))
            #expect(receipt.receipt == "rejected")
            let malformed = await #expect(throws: RPCError.self) { try await Self.call(client, FederationProtocol.poll, Array("{not json".utf8)) }
            #expect(malformed?.code == .invalidArgument)
            let join = FederationProtocol.encodeJSON(FederationProtocol.JoinRequest(version: FederationProtocol.version, clients: [20]))
            let outside = await #expect(throws: RPCError.self) { try await Self.call(client, FederationProtocol.join, join) }
            #expect(outside?.code == .invalidArgument)
        } }
        let clients = try fixture.startClients(port: port, groups: NetworkTests.fiveProcesses)
        #expect(server.wait(timeout: .seconds(240)) == 0, "server: \(server.error)")
        for client in clients { #expect(client.wait(timeout: .seconds(30)) == 0, "client: \(client.error)") }
    }

    static func call(_ client: GRPCClient<HTTP2ClientTransport.Posix>, _ method: MethodDescriptor, _ bytes: [UInt8]) async throws -> [UInt8] {
        var options = CallOptions.defaults
        options.timeout = .seconds(20)
        return try await client.unary(request: ClientRequest(message: bytes[...]), descriptor: method, serializer: RawSerializer(),
                                      deserializer: RawDeserializer(), options: options) { try $0.message }
    }

    /// A push made of exactly these gRPC messages.
    static func push(_ client: GRPCClient<HTTP2ClientTransport.Posix>, _ messages: [ArraySlice<UInt8>]) async throws -> [UInt8] {
        var options = CallOptions.defaults
        options.timeout = .seconds(20)
        (options.maxRequestMessageBytes, options.maxResponseMessageBytes) = (8 << 20, 8 << 20)
        return try await client.clientStreaming(request: StreamingClientRequest { try await $0.write(contentsOf: messages) },
                                                descriptor: FederationProtocol.push, serializer: RawSerializer(),
                                                deserializer: RawDeserializer(), options: options) { try $0.message }
    }

    /// 4 KiB of random bytes to the port over raw TCP.
    func sendGarbage(port: Int) {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        let garbage = (0..<4096).map { _ in UInt8.random(in: 0...255) }
        let sent = garbage.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, 0) }
        #expect(sent == 4096)
    }
}
