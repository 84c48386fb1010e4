import Federated
import Foundation
import GRPCCore

/// The service `fedtrain.v1.Federation`: hand-written over raw bytes, no protobuf. Tasks and
/// replies are fedtrain's own checked envelopes (`Envelope`, `EnvelopeBatch`), so the bytes
/// counted are the simulator's; small control messages are JSON.
///
/// | method    | request                      | response                                        |
/// |-----------|------------------------------|-------------------------------------------------|
/// | Join      | `JoinRequest` (JSON)         | `JoinReply` (JSON): the job's configuration      |
/// | Poll      | `ClientList` (JSON)          | chunked: status byte (0 tasks, 1 wait, 2 done) + batch |
/// | Push      | chunked: a reply envelope    | `PushReceipt` (JSON)                             |
/// | Heartbeat | `ClientList` (JSON)          | empty                                            |
/// | Leave     | `ClientList` (JSON)          | empty                                            |
/// | Status    | empty                        | `ServerStatus` (JSON)                            |
///
/// "Chunked": a stream of `ChunkedBytes` messages. Every call names the clients it speaks for;
/// the server checks them against the caller's identity (certificate name or token) before
/// anything else.
public enum FederationProtocol {
    public static let service = "fedtrain.v1.Federation"
    public static let join = MethodDescriptor(fullyQualifiedService: service, method: "Join")
    public static let poll = MethodDescriptor(fullyQualifiedService: service, method: "Poll")
    public static let push = MethodDescriptor(fullyQualifiedService: service, method: "Push")
    public static let heartbeat = MethodDescriptor(fullyQualifiedService: service, method: "Heartbeat")
    public static let leave = MethodDescriptor(fullyQualifiedService: service, method: "Leave")
    public static let status = MethodDescriptor(fullyQualifiedService: service, method: "Status")
    /// Bumped when a message changes; a client of another version is refused at `Join`.
    public static let version = 2
    /// How long a poll waits for tasks before answering "wait".
    public static let pollSeconds = 20.0
    /// Control messages are small: anything larger is refused before decoding.
    public static let maxControlBytes = 1 << 20

    public struct JoinRequest: Codable, Sendable {
        public var version: Int
        public var clients: [Int]
    }

    public struct JoinReply: Codable, Sendable {
        /// The job's configuration in its YAML file form (every key).
        public var configuration: String
        public var rounds: Int
        public var completedRounds: Int
    }

    public struct ClientList: Codable, Sendable {
        public var clients: [Int]
    }

    public struct PushReceipt: Codable, Sendable {
        /// accepted, duplicate, stale or rejected.
        public var receipt: String
        public var reason: String?
    }

    public struct ServerStatus: Codable, Sendable {
        public var round: Int
        public var rounds: Int
        public var completedRounds: Int
        public var replied: Int
        public var sampled: Int
        public var clients: [RemoteClients.ClientStatus]
    }

    enum PollStatus: UInt8 {
        case tasks = 0, wait = 1, done = 2
    }

    static func encodeJSON(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { preconditionFailure("control message does not encode") }
        return Array(data)
    }

    /// Decodes a control message from a peer; a clear `invalidArgument` when it is not one.
    static func decodeJSON<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        guard bytes.count <= maxControlBytes else {
            throw RPCError(code: .resourceExhausted, message: "control message of \(bytes.count) bytes (at most \(maxControlBytes))")
        }
        do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch {
            throw RPCError(code: .invalidArgument, message: "malformed \(type) message")
        }
    }
}
