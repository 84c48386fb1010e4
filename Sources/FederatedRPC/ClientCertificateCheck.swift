import Federated
import Foundation
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// The server's check of a client's certificate chain in the TLS handshake: the RFC 5280 chain
/// validation the transport would do against the federation's CA, done here so that a refused
/// certificate is logged on the server (`tls_refused`, with the certificate's name and the
/// reason) and not only seen by the client.
///
/// Security assumptions: the CA file is the only trust root (no system roots); validity periods
/// are checked against the current time. A client that presents no certificate at all is refused
/// by the handshake before this check runs, and that refusal is not logged.
struct ClientCertificateCheck: Sendable {
    let roots: [Certificate]
    let log: EventLog

    init(caPath: String, log: EventLog) throws(ConfigurationError) {
        let text: String
        do { text = try String(contentsOfFile: caPath, encoding: .utf8) } catch { throw ConfigurationError("\(caPath): cannot be read") }
        do { roots = try PEMDocument.parseMultiple(pemString: text).map { try Certificate(pemDocument: $0) } } catch {
            throw ConfigurationError("\(caPath): not a PEM certificate (\(error))")
        }
        guard !roots.isEmpty else { throw ConfigurationError("\(caPath): holds no certificate") }
        self.log = log
    }

    /// The transport's verification callback: answers `promise` with the validated chain, or
    /// `.failed` after logging why.
    func verify(_ chain: [NIOSSLCertificate], _ promise: EventLoopPromise<NIOSSLVerificationResultWithMetadata>) {
        let presented: [Certificate]
        do { presented = try chain.map { try Certificate(derEncoded: $0.toDERBytes()) } } catch {
            refuse(name: "-", reason: "a certificate that does not parse", promise)
            return
        }
        guard let leaf = presented.first else {
            refuse(name: "-", reason: "no certificate", promise)
            return
        }
        let roots = self.roots
        Task {
            var verifier = Verifier(rootCertificates: CertificateStore(roots)) { RFC5280Policy() }
            switch await verifier.validate(leaf: leaf, intermediates: CertificateStore(presented.dropFirst())) {
            case .validCertificate(let validated):
                do {
                    let certificates = try validated.map { certificate in
                        var serializer = DER.Serializer()
                        try serializer.serialize(certificate)
                        return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
                    }
                    promise.succeed(.certificateVerified(VerificationMetadata(ValidatedCertificateChain(certificates))))
                } catch {
                    refuse(name: Authenticator.commonName(of: leaf) ?? "-", reason: "its chain does not re-encode", promise)
                }
            case .couldNotValidate(let failures):
                let reason = failures.first.map { "\($0.policyFailureReason)" } ?? "not signed by the federation's CA"
                refuse(name: Authenticator.commonName(of: leaf) ?? "-", reason: reason, promise)
            }
        }
    }

    private func refuse(name: String, reason: String, _ promise: EventLoopPromise<NIOSSLVerificationResultWithMetadata>) {
        log.log("tls_refused", ["certificate": name, "reason": reason])
        promise.succeed(.failed)
    }
}
