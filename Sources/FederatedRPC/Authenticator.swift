import Crypto
import Engine
import Federated
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import X509

/// Who may speak for which clients: every call's identity (its TLS certificate's common name,
/// or its bearer token) maps to the client ids it may act as. Without TLS and tokens
/// (`--insecure`, loopback only) every caller may act as every client.
///
/// Security assumptions: certificate names are only trusted when the transport verified the
/// chain against the federation's CA (mutual TLS); tokens are 256-bit random secrets, stored as
/// SHA-256 hashes and compared in constant time; a token travels only over TLS or loopback.
public struct Authenticator: Sendable {
    public enum Mode: Sendable {
        /// Anyone reaching the (loopback) port may act as any client.
        case open
        /// The verified client certificate's common name → client ids.
        case certificates([String: Set<Int>])
        /// SHA-256 of a bearer token → (name, client ids).
        case tokens([(hash: [UInt8], name: String, clients: Set<Int>)])
    }

    public let mode: Mode

    public init(mode: Mode) { self.mode = mode }

    /// The caller's name and the clients it may act as; throws `unauthenticated` otherwise.
    public func identify(metadata: Metadata, context: ServerContext) throws -> (name: String, clients: Set<Int>?) {
        switch mode {
        case .open:
            return ("anonymous", nil)
        case .certificates(let allowed):
            guard let certificate = (context.transportSpecific as? HTTP2ServerTransport.Posix.Context)?.peerCertificate,
                  let name = Self.commonName(of: certificate) else {
                throw RPCError(code: .unauthenticated, message: "no client certificate")
            }
            guard let clients = allowed[name] else { throw RPCError(code: .permissionDenied, message: "certificate \(name) is not on the allow-list") }
            return (name, clients)
        case .tokens(let entries):
            guard let header = metadata[stringValues: "authorization"].first(where: { _ in true }), header.hasPrefix("Bearer ") else {
                throw RPCError(code: .unauthenticated, message: "no bearer token")
            }
            let hash = Array(SHA256.hash(data: Array(header.utf8.dropFirst(7))))
            // Every entry is compared in full, so the time taken does not tell which one matched.
            var found: (String, Set<Int>)?
            for entry in entries where Self.constantTimeEqual(entry.hash, hash) { found = (entry.name, entry.clients) }
            guard let found else { throw RPCError(code: .unauthenticated, message: "unknown token") }
            return found
        }
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func commonName(of certificate: Certificate) -> String? {
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return String(attribute.value) ?? attribute.value.description
            }
        }
        return nil
    }

    /// Reads an allow-list: lines `NAME CLIENT-IDS` (`#` comments).
    public static func allowList(path: String) throws(ConfigurationError) -> [String: Set<Int>] {
        var allowed: [String: Set<Int>] = [:]
        for fields in try lines(path) {
            guard fields.count == 2 else { throw ConfigurationError("\(path): expected lines of NAME CLIENT-IDS") }
            allowed[fields[0], default: []].formUnion(try ClientIDs.parse(fields[1]))
        }
        return allowed
    }

    /// Reads a token file: lines `NAME CLIENT-IDS SHA256-HEX` (`#` comments).
    public static func tokenList(path: String) throws(ConfigurationError) -> [(hash: [UInt8], name: String, clients: Set<Int>)] {
        var entries: [(hash: [UInt8], name: String, clients: Set<Int>)] = []
        for fields in try lines(path) {
            guard fields.count == 3, let hash = hexBytes(fields[2]), hash.count == 32 else {
                throw ConfigurationError("\(path): expected lines of NAME CLIENT-IDS SHA256-HEX (64 hex digits)")
            }
            entries.append((hash, fields[0], Set(try ClientIDs.parse(fields[1]))))
        }
        return entries
    }

    static func lines(_ path: String) throws(ConfigurationError) -> [[String]] {
        let bytes: [UInt8]
        do { bytes = try AtomicFile.read(path) } catch { throw ConfigurationError(error.description) }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ConfigurationError("\(path): not UTF-8 text") }
        return text.split(whereSeparator: \.isNewline).map { $0.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0] }
            .map { $0.split(whereSeparator: \.isWhitespace).map(String.init) }.filter { !$0.isEmpty }
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
