import Crypto
import Engine
import Federated
@testable import FederatedRPC
import Foundation
import Testing
import X509

@Suite struct FederatedRPCUnitTests {
    @Test func clientIDsParseAndFormat() throws {
        #expect(try ClientIDs.parse("7") == [7])
        #expect(try ClientIDs.parse("0-3,2,10-11") == [0, 1, 2, 3, 10, 11])
        #expect(ClientIDs.format([0, 1, 2, 3, 10, 11, 13]) == "0-3,10-11,13")
        for bad in ["", "-1", "3-1", "a", "1,,2", "1-2-3", "0-99999999999"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try ClientIDs.parse(bad) }
        }
    }

    @Test func serverAddresses() throws {
        let address = try ServerAddress(parsing: "127.0.0.1:7443")
        #expect(address.host == "127.0.0.1" && address.port == 7443 && address.isLoopback)
        #expect(try !ServerAddress(parsing: "10.1.2.3:1").isLoopback)
        #expect(try ServerAddress(parsing: "localhost:0").isLoopback)
        for bad in ["7443", ":7443", "host:", "host:70000", "host:x"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try ServerAddress(parsing: bad) }
        }
    }

    /// Messages of every size around the chunk boundaries come back whole, with the CRC-32 of the
    /// whole message computed chunk by chunk.
    @Test func chunkedBytesRoundTrip() throws {
        let chunk = ChunkedBytes.chunkBytes
        var generator = SeededGenerator(seed: 5)
        for count in [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5] {
            let message = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let chunks = ChunkedBytes.chunks(of: message)
            #expect(chunks.count == max(1, (count + chunk - 1) / chunk), "\(count)")
            #expect(chunks.allSatisfy { $0.count <= ChunkedBytes.maxMessageBytes })
            var assembler = ChunkedBytes.Assembler(limit: count)
            for part in chunks { try assembler.append(InPlaceDeserializer().deserialize(Array(part))) }
            #expect(try assembler.finished() == message, "\(count)")
            #expect(assembler.checksum == UpdateMessage.checksum(message[...]), "\(count)")
        }
    }

    /// A message given in parts (a poll answer: the batch's own bytes between the envelopes it
    /// streams without copying) is chunked exactly as the same bytes in one array.
    @Test func chunkedBytesFromParts() {
        let chunk = ChunkedBytes.chunkBytes
        var generator = SeededGenerator(seed: 9)
        for sizes in [[], [0], [1], [3, chunk - 3], [1, 14, 2 * chunk + 7], [chunk, chunk], [chunk + 1, 5, chunk - 6, 0, 2 * chunk], [7, 0, 9]] {
            let parts = sizes.map { size in (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }[...] }
            let whole = parts.reduce(into: [UInt8]()) { $0 += $1 }
            #expect(ChunkedBytes.chunks(of: parts).map { Array($0) } == ChunkedBytes.chunks(of: whole).map { Array($0) }, "\(sizes)")
        }
        // The batch layout: magic, version 1, count, then each envelope's length and bytes.
        #expect(EnvelopeBatch.encode([[1, 2, 3], []]) == EnvelopeBatch.magic + [1, 0, 2, 0, 0, 0] + [3, 0, 0, 0, 1, 2, 3] + [0, 0, 0, 0])
        #expect(EnvelopeBatch.encode([]) == EnvelopeBatch.magic + [1, 0, 0, 0, 0, 0])
        #expect(EnvelopeBatch.parts([[[1, 2][...], [3][...]], [[4][...]]]).reduce(into: [UInt8]()) { $0 += $1 } == EnvelopeBatch.encode([[1, 2, 3], [4]]),
                "an envelope in parts is batched as one")
        let large = [UInt8](repeating: 4, count: chunk + 2)
        let storage = large.withUnsafeBufferPointer { $0.baseAddress }
        #expect(EnvelopeBatch.parts([[[1]], [large[...]]]).contains { part in part.withUnsafeBufferPointer { $0.baseAddress } == storage },
                "the envelope is not copied")
    }

    @Test func chunkedBytesRefuseWhatWasNotDeclared() throws {
        let message = [UInt8](repeating: 9, count: ChunkedBytes.chunkBytes + 10)
        let chunks = try ChunkedBytes.chunks(of: message).map { try InPlaceDeserializer().deserialize(Array($0)) }
        var small = ChunkedBytes.Assembler(limit: message.count - 1)
        #expect(throws: ChunkedBytes.Problem.tooLarge(declared: UInt64(message.count), limit: message.count - 1)) { try small.append(chunks[0]) }
        var longer = ChunkedBytes.Assembler(limit: message.count)
        try longer.append(chunks[0])
        #expect(throws: ChunkedBytes.Problem.moreThanDeclared(message.count)) {
            try longer.append(InPlaceDeserializer().deserialize(chunks[1].array + [0]))
        }
        var shorter = ChunkedBytes.Assembler(limit: message.count)
        try shorter.append(chunks[0])
        #expect(throws: ChunkedBytes.Problem.fewerThanDeclared(received: ChunkedBytes.chunkBytes, declared: message.count)) { try shorter.finished() }
        var empty = ChunkedBytes.Assembler(limit: 10)
        #expect(throws: ChunkedBytes.Problem.noLength) { try empty.finished() }
        #expect(throws: ChunkedBytes.Problem.noLength) { try empty.append(InPlaceDeserializer().deserialize([UInt8]([1, 2, 3]))) }
    }

    @Test func constantTimeComparison() {
        #expect(Authenticator.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!Authenticator.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!Authenticator.constantTimeEqual([1, 2, 3], [1, 2]))
    }

    @Test func certificateAuthorityIssuesVerifiableCertificates() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fedtrain-ca-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let ca = CertificateAuthority(directory: directory)
        try ca.initialize()
        #expect(throws: ConfigurationError.self) { try ca.initialize() }
        try ca.issue(name: "site-3", hosts: ["127.0.0.1", "fed.example.org"], clients: [3, 4, 5])
        #expect(throws: ConfigurationError.self) { try ca.issue(name: "../evil", hosts: [], clients: nil) }
        let root = try Certificate(pemEncoded: String(contentsOfFile: "\(directory)/ca.pem", encoding: .utf8))
        let leaf = try Certificate(pemEncoded: String(contentsOfFile: "\(directory)/site-3.pem", encoding: .utf8))
        #expect(Authenticator.commonName(of: leaf) == "site-3")
        var verifier = Verifier(rootCertificates: CertificateStore([root])) { RFC5280Policy(validationTime: Date()) }
        guard case .validCertificate = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) else {
            Issue.record("the issued certificate does not chain to the CA")
            return
        }
        let key = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: "\(directory)/site-3.key", encoding: .utf8))
        #expect(Certificate.PublicKey(key.publicKey) == leaf.publicKey)
        let attributes = try FileManager.default.attributesOfItem(atPath: "\(directory)/site-3.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try Authenticator.allowList(path: "\(directory)/allow.txt") == ["site-3": [3, 4, 5]])
        try ca.issueToken(name: "t", clients: [1])
        let token = try String(contentsOfFile: "\(directory)/t.token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let entries = try Authenticator.tokenList(path: "\(directory)/tokens.txt")
        #expect(entries.count == 1 && entries[0].hash == Array(SHA256.hash(data: Array(token.utf8))) && entries[0].clients == [1])
    }
}
