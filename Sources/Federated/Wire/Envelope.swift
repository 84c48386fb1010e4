import Engine

/// The one wire format between server and clients around `UpdateMessage` payloads: a task
/// (server → client: train or evaluate from this model) or a reply (client → server: the
/// update or the evaluation), versioned and CRC-checked. The simulator passes these bytes too,
/// so byte counts in metrics are envelope lengths and simulation exercises what the network
/// carries.
///
/// Layout (little-endian):
///
///     offset  size  field
///     0       4     magic "FTEV"
///     4       2     format version (1)
///     6       1     kind (`Envelope.Kind`)
///     7       1     metric count m
///     8       4     client id
///     12      4     round
///     16      4     model version (task: the server's completed rounds; reply: the one trained from)
///     20      4     samples (reply: training or evaluation samples)
///     24      4     local steps
///     28      8     train loss (f64; NaN when none)
///     36      4     FedProx mu the client must apply (f32, task)
///     40      1     payload count n
///     41      ...   m metrics: name length (1), UTF-8 name, value (f64); names ascending
///     ...     ...   n payloads: role (1), length (4), bytes (an `UpdateMessage`)
///     end-4   4     CRC-32 (zlib) of every byte before it
///
/// Decoding checks every field and declared length against the bytes present and throws a
/// typed `MessageError`; the payloads themselves are decoded (and checked) by their consumer.
public struct Envelope: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        /// Task: train from the model and reply with an update.
        case train = 0
        /// Task: evaluate the model on the client's own data.
        case evaluate = 1
        /// Reply to `train`: the update (and SCAFFOLD's control change).
        case update = 2
        /// Reply to `evaluate`: metrics only.
        case evaluation = 3
        /// Reply to `train` when local training diverged (non-finite): no payload.
        case diverged = 4

        public var isTask: Bool { self == .train || self == .evaluate }
        /// A reply to a training task.
        public var isTrainingReply: Bool { self == .update || self == .diverged }
    }

    /// What a payload is for; each role appears at most once.
    public enum Role: UInt8, Sendable, CaseIterable {
        /// The global model (`UpdateMessage.Kind.model`) or its change since the client's copy.
        case model = 0
        /// SCAFFOLD's server control variate `c`.
        case serverControl = 1
        /// The client's update `Δ`.
        case update = 2
        /// SCAFFOLD's change of the client's control variate `Δcᵢ`.
        case controlChange = 3
    }

    public static let magic: [UInt8] = Array("FTEV".utf8)
    public static let version: UInt16 = 1
    public static let headerSize = 41
    public static let checksumSize = 4

    public var kind: Kind
    public var client: Int
    public var round: Int
    public var modelVersion: Int
    public var samples = 0
    public var steps = 0
    public var trainLoss = Double.nan
    public var proximalMu: Float = 0
    /// Named values (evaluation accuracy and loss...), written in name order.
    public var metrics: [String: Double] = [:]
    public var payloads: [Role: [UInt8]] = [:]

    public init(kind: Kind, client: Int, round: Int, modelVersion: Int) {
        (self.kind, self.client, self.round, self.modelVersion) = (kind, client, round, modelVersion)
    }

    public static func == (a: Envelope, b: Envelope) -> Bool {
        a.kind == b.kind && a.client == b.client && a.round == b.round && a.modelVersion == b.modelVersion
            && a.samples == b.samples && a.steps == b.steps && a.trainLoss.bitPattern == b.trainLoss.bitPattern
            && a.proximalMu.bitPattern == b.proximalMu.bitPattern && a.metrics == b.metrics && a.payloads == b.payloads
    }

    /// The byte form. Integer fields must fit in 32 bits, names in 255 UTF-8 bytes (programmer
    /// errors: they come from the engine, not from peers).
    public var bytes: [UInt8] {
        for value in [client, round, modelVersion, samples, steps] { precondition(value >= 0 && value <= Int(UInt32.max)) }
        precondition(metrics.count <= 255)
        var writer = ByteWriter(capacity: Self.headerSize + payloads.values.reduce(0) { $0 + 5 + $1.count } + Self.checksumSize)
        writer.append(contentsOf: Self.magic)
        writer.append(Self.version)
        writer.append(kind.rawValue)
        writer.append(UInt8(metrics.count))
        for value in [client, round, modelVersion, samples, steps] { writer.append(UInt32(value)) }
        writer.append(trainLoss.bitPattern)
        writer.append(proximalMu)
        writer.append(UInt8(payloads.count))
        for (name, value) in metrics.sorted(by: { $0.key < $1.key }) {
            let utf8 = Array(name.utf8)
            precondition(!utf8.isEmpty && utf8.count <= 255)
            writer.append(UInt8(utf8.count))
            writer.append(contentsOf: utf8)
            writer.append(value.bitPattern)
        }
        for role in Role.allCases {
            guard let payload = payloads[role] else { continue }
            precondition(payload.count <= Int(UInt32.max))
            writer.append(role.rawValue)
            writer.append(UInt32(payload.count))
            writer.append(contentsOf: payload)
        }
        writer.append(UpdateMessage.checksum(writer.bytes[...]))
        return writer.bytes
    }

    /// The bytes of an encoded envelope between its fixed header and its checksum: what every
    /// task of a round shares when the same model goes to each client (`readdressed`).
    public static func body(of bytes: [UInt8]) -> ArraySlice<UInt8> {
        precondition(bytes.count >= headerSize + checksumSize, "not an encoded envelope")
        return bytes[headerSize..<(bytes.count - checksumSize)]
    }

    /// `bytes` (an encoded envelope) for `client` instead, as parts one after another: its fixed
    /// header with the client id replaced, its `body` (shared, not copied) and the new checksum,
    /// combined from the header's and `bodyChecksum` (the body's, computed once for all clients).
    /// Joined, they are the envelope `bytes` encodes with `client` in place of its own.
    public static func readdressed(_ bytes: [UInt8], to client: Int, bodyChecksum: UInt32) -> [ArraySlice<UInt8>] {
        precondition(client >= 0 && client <= Int(UInt32.max))
        var header = Array(bytes[..<headerSize])
        withUnsafeBytes(of: UInt32(client).littleEndian) { header.replaceSubrange(8..<12, with: $0) }
        let body = body(of: bytes)
        let crc = UpdateMessage.checksum(combining: UpdateMessage.checksum(header[...]), bodyChecksum, secondLength: body.count)
        return [header[...], body, withUnsafeBytes(of: crc.littleEndian) { Array($0) }[...]]
    }

    /// Parses and checks `bytes`.
    public init(decoding bytes: [UInt8]) throws(MessageError) {
        guard bytes.count >= Self.headerSize + Self.checksumSize else { throw .truncated(bytes.count) }
        guard Array(bytes[0..<4]) == Self.magic else { throw .badMagic }
        var reader = ByteReader(bytes, from: 4, to: bytes.count - Self.checksumSize)
        let version: UInt16 = try reader.read()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        var trailer = ByteReader(bytes, from: bytes.count - Self.checksumSize)
        guard try trailer.read(UInt32.self) == UpdateMessage.checksum(bytes[..<(bytes.count - Self.checksumSize)]) else {
            throw .badChecksum
        }
        guard let kind = Kind(rawValue: try reader.read()) else { throw .badField("envelope kind") }
        let metricCount = Int(try reader.read(UInt8.self))
        self.init(kind: kind, client: Int(try reader.read(UInt32.self)), round: Int(try reader.read(UInt32.self)),
                  modelVersion: Int(try reader.read(UInt32.self)))
        samples = Int(try reader.read(UInt32.self))
        steps = Int(try reader.read(UInt32.self))
        trainLoss = Double(bitPattern: try reader.read(UInt64.self))
        proximalMu = Float(bitPattern: try reader.read(UInt32.self))
        let payloadCount = Int(try reader.read(UInt8.self))
        var previous = ""
        for _ in 0..<metricCount {
            let length = Int(try reader.read(UInt8.self))
            guard length > 0 else { throw .badField("empty metric name") }
            let utf8 = try reader.readBytes(count: length) { Array($0) }
            guard let name = String(validating: utf8, as: UTF8.self) else { throw .badField("metric name is not UTF-8") }
            guard name > previous else { throw .badField("metric \(name) out of order or repeated") }
            previous = name
            metrics[name] = Double(bitPattern: try reader.read(UInt64.self))
        }
        for _ in 0..<payloadCount {
            guard let role = Role(rawValue: try reader.read()) else { throw .badField("payload role") }
            guard payloads[role] == nil else { throw .badField("payload \(role) appears twice") }
            let length = Int(try reader.read(UInt32.self))
            guard length <= reader.remaining else {
                throw .badField("payload \(role) declares \(length) bytes, \(reader.remaining) remain")
            }
            payloads[role] = try reader.readBytes(count: length) { Array($0) }
        }
        guard reader.remaining == 0 else { throw .badField("envelope has \(reader.remaining) trailing bytes") }
        guard proximalMu.isFinite, proximalMu >= 0 else { throw .badField("proximal mu \(proximalMu)") }
    }

    /// The routing fields of an envelope, read without checking its checksum or payloads: for
    /// a transport to route and deduplicate bytes it passes on. Whoever uses the content decodes
    /// it in full.
    public struct Header: Sendable, Equatable {
        public var kind: Kind
        public var client: Int
        public var round: Int
        public var modelVersion: Int
    }

    public static func header(of bytes: [UInt8]) throws(MessageError) -> Header {
        guard bytes.count >= headerSize + checksumSize else { throw .truncated(bytes.count) }
        guard Array(bytes[0..<4]) == magic else { throw .badMagic }
        var reader = ByteReader(bytes, from: 4, to: headerSize)
        let version: UInt16 = try reader.read()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        guard let kind = Kind(rawValue: try reader.read()) else { throw .badField("envelope kind") }
        _ = try reader.read(UInt8.self)
        return Header(kind: kind, client: Int(try reader.read(UInt32.self)), round: Int(try reader.read(UInt32.self)),
                      modelVersion: Int(try reader.read(UInt32.self)))
    }

    /// The length this envelope would have, given its encoded length, with every payload
    /// replaced by an uncompressed (fp32) message of `parameterCount` values: the reference for
    /// compression ratios.
    public func denseLength(encodedLength: Int, parameterCount: Int) -> Int {
        encodedLength - payloads.values.reduce(0) { $0 + $1.count } + payloads.count * UpdateMessage.denseSize(count: parameterCount)
    }
}
