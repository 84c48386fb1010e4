import Crypto
import Engine
import Federated
import Foundation
import SwiftASN1
import X509

/// A federation's own certificate authority, in a directory: `ca.pem` and `ca.key`, then per
/// issued name `NAME.pem` and `NAME.key` (P-256, ECDSA with SHA-256), and the lists the server
/// reads: `allow.txt` (certificate name → client ids) and `tokens.txt` (token hash → client ids).
///
/// Security assumptions: `ca.key` never leaves the machine that issues certificates (only
/// `ca.pem` is copied to servers and clients); keys are written readable by their owner only.
public struct CertificateAuthority {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    var caCertificatePath: String { "\(directory)/ca.pem" }
    var caKeyPath: String { "\(directory)/ca.key" }

    /// Creates the CA's key and self-signed certificate; refuses to replace an existing one.
    public func initialize(name: String = "fedtrain CA", years: Int = 10) throws(ConfigurationError) {
        guard !FileManager.default.fileExists(atPath: caKeyPath) else {
            throw ConfigurationError("\(caKeyPath) exists: this directory already holds a CA")
        }
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw ConfigurationError("cannot create \(directory)")
        }
        let key = P256.Signing.PrivateKey()
        let now = Date()
        do {
            let subject = try DistinguishedName { CommonName(name) }
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Double(years) * 365 * 86400),
                issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                    Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                },
                issuerPrivateKey: .init(key))
            try write(key.pemRepresentation, to: caKeyPath, private: true)
            try write(try certificate.serializeAsPEM().pemString, to: caCertificatePath, private: false)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError("cannot create the CA: \(error)")
        }
    }

    /// Issues `NAME.pem`/`NAME.key`, valid for client and server authentication. `hosts`: the
    /// DNS names and IP addresses a server certificate answers for (clients check them).
    /// `clients`: the client ids the name may act as, added to `allow.txt`.
    public func issue(name: String, hosts: [String], clients: [Int]?, days: Int = 825) throws(ConfigurationError) {
        try Self.checkName(name)
        let (caCertificate, caKey) = try loadCA()
        let key = P256.Signing.PrivateKey()
        let now = Date()
        do {
            var alternativeNames: [GeneralName] = []
            for host in hosts {
                if let address = Self.ipv4Bytes(host) {
                    alternativeNames.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(address))))
                } else {
                    alternativeNames.append(.dnsName(host))
                }
            }
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Double(days) * 86400),
                issuer: caCertificate.subject, subject: try DistinguishedName { CommonName(name) }, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([.clientAuth, .serverAuth])
                    if !alternativeNames.isEmpty { SubjectAlternativeNames(alternativeNames) }
                },
                issuerPrivateKey: .init(caKey))
            try write(key.pemRepresentation, to: "\(directory)/\(name).key", private: true)
            try write(try certificate.serializeAsPEM().pemString, to: "\(directory)/\(name).pem", private: false)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw ConfigurationError("cannot issue \(name): \(error)")
        }
        if let clients { try appendLine("\(name) \(ClientIDs.format(clients))", to: "\(directory)/allow.txt") }
    }

    /// Creates a random 256-bit bearer token for `name`: `NAME.token` (the secret, for the
    /// client) and a line in `tokens.txt` with its SHA-256 (for the server).
    public func issueToken(name: String, clients: [Int]) throws(ConfigurationError) {
        try Self.checkName(name)
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw ConfigurationError("cannot create \(directory)")
        }
        var secret = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in secret.indices { secret[index] = UInt8.random(in: .min ... .max, using: &generator) }
        let token = Data(secret).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        try write(token + "\n", to: "\(directory)/\(name).token", private: true)
        let hash = SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
        try appendLine("\(name) \(ClientIDs.format(clients)) \(hash)", to: "\(directory)/tokens.txt")
    }

    private func loadCA() throws(ConfigurationError) -> (Certificate, P256.Signing.PrivateKey) {
        do {
            let certificate = try Certificate(pemEncoded: String(decoding: try AtomicFile.read(caCertificatePath), as: UTF8.self))
            let key = try P256.Signing.PrivateKey(pemRepresentation: String(decoding: try AtomicFile.read(caKeyPath), as: UTF8.self))
            return (certificate, key)
        } catch {
            throw ConfigurationError("\(directory) holds no usable CA (run fedtrain ca init --dir \(directory)): \(error)")
        }
    }

    static func checkName(_ name: String) throws(ConfigurationError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard !name.isEmpty, name.count <= 64, name.allSatisfy(allowed.contains), !name.hasPrefix("."), name != "ca" else {
            throw ConfigurationError("name \(name): use 1-64 letters, digits, '-', '_' or '.' (not 'ca')")
        }
    }

    static func ipv4Bytes(_ host: String) -> [UInt8]? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let bytes = parts.compactMap { UInt8($0) }
        return bytes.count == 4 ? bytes : nil
    }

    private func write(_ text: String, to path: String, private isPrivate: Bool) throws(ConfigurationError) {
        do { try AtomicFile.write(Array(text.utf8), to: path) } catch { throw ConfigurationError(error.description) }
        if isPrivate { chmod(path, 0o600) }
    }

    private func appendLine(_ line: String, to path: String) throws(ConfigurationError) {
        let existing = (try? AtomicFile.read(path)) ?? []
        do { try AtomicFile.write(existing + Array((line + "\n").utf8), to: path) } catch { throw ConfigurationError(error.description) }
    }
}
