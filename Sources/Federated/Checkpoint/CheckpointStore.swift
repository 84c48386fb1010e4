import Engine
import Foundation

/// Everything a run needs to continue after `round`, as the checkpoint stores it.
public struct CheckpointSnapshot: Sendable {
    public var round: Int
    public var global: [Float]
    public var strategyState: [String: [Float]]
    /// Client states that changed since the last save (the others are on disk already).
    public var changedClients: [Int: ClientState]
    /// Server-side downlink mirrors that changed since the last save.
    public var changedMirrors: [Int: DownlinkMirror]
    public var metrics: [RoundMetrics]
    public var configuration: SimulationConfiguration
    /// An asynchronous run's buffer, trips in flight and simulated time.
    public var asynchrony: AsyncCheckpoint?
}

/// What an asynchronous run adds to its checkpoint (`async-ROUND.json`).
public struct AsyncCheckpoint: Sendable, Codable, Equatable {
    public var coordinator: AsyncCoordinator.State
    public var schedule: AsyncSchedule
    /// A networked run: the events its log held at this checkpoint.
    public var events: Int?
}

/// A run's checkpoint directory, versioned. After every round: the model and the server state
/// under round-numbered names, one file per client whose state (or whose server-side downlink
/// mirror) changed in the round, then `checkpoint.json` naming all current files (the atomic
/// commit point), then removal of files nothing names any more. A crash at any point leaves the
/// previous checkpoint or the new one, never a mix; bytes written per round follow the clients
/// that took part, not all clients.
public struct CheckpointStore: Sendable {
    public static let format = 2
    public let directory: String
    public let layout: ParameterLayout
    private var clientFiles: [Int: String] = [:]
    private var mirrorFiles: [Int: String] = [:]

    public init(directory: String, layout: ParameterLayout) {
        (self.directory, self.layout) = (directory, layout)
    }

    /// `checkpoint.json`: the commit record.
    public struct Record: Codable, Sendable {
        public var format: Int
        public var round: Int
        public var model: String
        public var server: String?
        /// An asynchronous run's `AsyncCheckpoint`.
        public var asynchrony: String?
        public var clients: [String: String]
        public var mirrors: [String: String]
        public var configuration: SimulationConfiguration
        public var metrics: [RoundMetrics]
    }

    public var recordPath: String { "\(directory)/checkpoint.json" }

    public mutating func save(_ snapshot: CheckpointSnapshot) throws(CheckpointError) {
        let round = snapshot.round
        func write(_ bytes: [UInt8], _ name: String) throws(CheckpointError) {
            do { try AtomicFile.write(bytes, to: "\(directory)/\(name)") } catch { throw CheckpointError("cannot write checkpoint: \(error.description)") }
        }
        let modelName = "model-\(round).safetensors"
        try write(Safetensors.encode(snapshot.global, layout: layout), modelName)
        var serverName: String?
        if !snapshot.strategyState.isEmpty {
            serverName = "server-\(round).safetensors"
            try write(Self.encode(snapshot.strategyState), serverName!)
        }
        var asyncName: String?
        if let asynchrony = snapshot.asynchrony {
            asyncName = "async-\(round).json"
            let data: Data
            do { data = try JSONEncoder().encode(asynchrony) } catch { throw CheckpointError("cannot encode checkpoint: \(error)") }
            try write(Array(data), asyncName!)
        }
        for (client, state) in snapshot.changedClients.sorted(by: { $0.key < $1.key }) {
            let name = "client-\(client)-r\(round).safetensors"
            try write(Self.encode(state.vectors), name)
            clientFiles[client] = name
        }
        for (client, mirror) in snapshot.changedMirrors.sorted(by: { $0.key < $1.key }) {
            let name = "mirror-\(client)-r\(round).safetensors"
            try write(Self.encode(mirror.vectors), name)
            mirrorFiles[client] = name
        }
        let record = Record(format: Self.format, round: round, model: modelName, server: serverName, asynchrony: asyncName,
                            clients: Dictionary(uniqueKeysWithValues: clientFiles.map { (String($0.key), $0.value) }),
                            mirrors: Dictionary(uniqueKeysWithValues: mirrorFiles.map { (String($0.key), $0.value) }),
                            configuration: snapshot.configuration, metrics: snapshot.metrics)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json: Data
        do { json = try encoder.encode(record) } catch { throw CheckpointError("cannot encode checkpoint: \(error)") }
        try write(Array(json), "checkpoint.json")
        removeUnreferenced(keeping: Set([modelName, serverName, asyncName].compactMap { $0 } + clientFiles.values + mirrorFiles.values))
    }

    private func removeUnreferenced(keeping current: Set<String>) {
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for file in files where (file.hasSuffix(".safetensors") || file.hasPrefix("async-")) && !current.contains(file) {
            try? FileManager.default.removeItem(atPath: "\(directory)/\(file)")
        }
    }

    /// Reads `checkpoint.json` alone (to compare configurations before anything is loaded).
    public func record() throws(CheckpointError) -> Record {
        let bytes: [UInt8]
        do { bytes = try AtomicFile.read(recordPath) } catch { throw CheckpointError("cannot resume: \(error.description)") }
        struct Version: Decodable { var format: Int? }
        let version = try? JSONDecoder().decode(Version.self, from: Data(bytes))
        guard let format = version?.format else {
            throw CheckpointError("cannot resume from \(directory): checkpoint.json is not a fedtrain checkpoint of format \(Self.format) (an older fedtrain wrote it, or it is corrupt)")
        }
        guard format == Self.format else { throw CheckpointError("cannot resume from \(directory): checkpoint format \(format), this fedtrain reads \(Self.format)") }
        do { return try JSONDecoder().decode(Record.self, from: Data(bytes)) } catch {
            throw CheckpointError("cannot resume from \(directory): checkpoint.json is corrupt: \(error)")
        }
    }

    /// Loads the files `record` names: the model, the server state, client states and mirrors.
    /// What `load` reads.
    public typealias Loaded = (global: [Float], strategyState: [String: [Float]], clients: [Int: ClientState], mirrors: [Int: DownlinkMirror],
                               asynchrony: AsyncCheckpoint?)

    public mutating func load(_ record: Record) throws(CheckpointError) -> Loaded {
        guard record.round == record.metrics.count else { throw CheckpointError("cannot resume from \(directory): checkpoint round \(record.round) has \(record.metrics.count) rounds of metrics") }
        let global: [Float]
        guard !record.model.contains("/") else { throw CheckpointError("checkpoint: \(record.model) is not a file name") }
        do { global = try Safetensors.load("\(directory)/\(record.model)", layout: layout) } catch { throw CheckpointError(error.description) }
        let strategyState = try record.server.map { name throws(CheckpointError) in try vectors(name) } ?? [:]
        var clients: [Int: ClientState] = [:], mirrors: [Int: DownlinkMirror] = [:]
        var clientFiles: [Int: String] = [:], mirrorFiles: [Int: String] = [:]
        for (key, name) in record.clients {
            guard let client = Self.client(key), let state = ClientState(vectors: try vectors(name)) else {
                throw CheckpointError("checkpoint: \(key): \(name) is not a client state")
            }
            (clients[client], clientFiles[client]) = (state, name)
        }
        for (key, name) in record.mirrors {
            guard let client = Self.client(key), let mirror = DownlinkMirror(vectors: try vectors(name)) else {
                throw CheckpointError("checkpoint: \(key): \(name) is not a downlink state")
            }
            (mirrors[client], mirrorFiles[client]) = (mirror, name)
        }
        var asynchrony: AsyncCheckpoint?
        if let name = record.asynchrony {
            guard !name.contains("/") else { throw CheckpointError("checkpoint: \(name) is not a file name") }
            do {
                asynchrony = try JSONDecoder().decode(AsyncCheckpoint.self, from: Data(try AtomicFile.read("\(directory)/\(name)")))
            } catch { throw CheckpointError("cannot resume from \(directory): \(name) is missing or corrupt (\(error))") }
        }
        (self.clientFiles, self.mirrorFiles) = (clientFiles, mirrorFiles)
        return (global, strategyState, clients, mirrors, asynchrony)
    }

    /// A client id as `save` writes it (canonical decimal, non-negative), nil otherwise.
    private static func client(_ key: String) -> Int? {
        guard let client = Int(key), client >= 0, String(client) == key else { return nil }
        return client
    }

    /// The file's vectors; the name must be a plain file name in the checkpoint directory.
    private func vectors(_ name: String) throws(CheckpointError) -> [String: [Float]] {
        guard !name.contains("/"), name != "..", name != "." else { throw CheckpointError("checkpoint: \(name) is not a file name") }
        do {
            return try Safetensors.tensors(try AtomicFile.read("\(directory)/\(name)"), path: name).mapValues(\.values)
        } catch let error as SafetensorsError {
            throw CheckpointError(error.description)
        } catch {
            throw CheckpointError("\(directory)/\(name): \(error)")
        }
    }

    /// Named 1-D vectors as one safetensors file (names sorted).
    static func encode(_ vectors: [String: [Float]]) -> [UInt8] {
        var layout = ParameterLayout()
        var values: [Float] = []
        for (name, vector) in vectors.sorted(by: { $0.key < $1.key }) {
            _ = layout.append(name: name, shape: [vector.count])
            values += vector
        }
        return Safetensors.encode(values, layout: layout)
    }
}
