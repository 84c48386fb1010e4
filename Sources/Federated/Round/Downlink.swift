import Engine

/// The server's end of one client's compressed downlink: the copy of the model the client holds
/// (the server tracks it to send only the change, so what compression dropped stays in the next
/// change) and the downlink codec's sender state.
public struct DownlinkMirror: Sendable, Equatable {
    public var copy: [Float]?
    public var codecState: [Float] = []

    public init() {}

    public var vectors: [String: [Float]] {
        var named: [String: [Float]] = [:]
        if let copy { named["copy"] = copy }
        if !codecState.isEmpty { named["downlink_state"] = codecState }
        return named
    }

    public init?(vectors: [String: [Float]]) {
        for (name, vector) in vectors {
            switch name {
            case "copy": copy = vector
            case "downlink_state": codecState = vector
            default: return nil
            }
        }
    }
}

/// What the server sends each client as its model. Uncompressed (fp32), every client gets the
/// same full-model message. With a compressing codec a client receives the compressed change
/// `global − copy` of its copy (the full model on first contact, or when the change cannot be
/// encoded), and the server keeps a `DownlinkMirror` per client that has taken part.
public struct Downlink: Sendable {
    public let codec: any UpdateCodec
    public let layout: ParameterLayout
    let seed: UInt64
    public private(set) var mirrors: [Int: DownlinkMirror] = [:]
    /// Clients whose mirror changed since `markSaved`.
    public private(set) var changed: Set<Int> = []

    public init(codec: any UpdateCodec, layout: ParameterLayout, seed: UInt64) {
        (self.codec, self.layout, self.seed) = (codec, layout, seed)
    }

    public var compresses: Bool { !codec.isDense }

    /// The mirrors of `clients` (a fresh one for a client without), to pass to `message` and
    /// hand back through `store`. Only a compressed downlink has mirrors (an uncompressed one
    /// sends every client `fullModel`).
    func mirrors(for clients: [Int]) -> [DownlinkMirror] {
        precondition(compresses, "an uncompressed downlink keeps no mirrors")
        return clients.map { mirrors[$0] ?? initialMirror(client: $0) }
    }

    mutating func store(_ updated: [DownlinkMirror], for clients: [Int]) {
        for (client, mirror) in zip(clients, updated) {
            mirrors[client] = mirror
            changed.insert(client)
        }
    }

    /// The model payload for `client` in `round` over a compressed downlink, updating its
    /// `mirror`; `fullModel` is `global` as a dense model message of this round (built once and
    /// shared). Reads only its arguments: calls for different clients may run in parallel.
    func message(for client: Int, mirror: inout DownlinkMirror, global: [Float], round: Int, fullModel: [UInt8]) -> [UInt8] {
        if let copy = mirror.copy {
            let change = zip(global, copy).map { $0 - $1 }
            var generator = SeededGenerator.derived(seed: seed, RandomStream.downlink.rawValue, UInt64(round), UInt64(client))
            let message = change.withUnsafeBufferPointer {
                UpdateMessage.encode($0, kind: .modelChange, round: round, layout: layout, codec: codec, state: &mirror.codecState,
                                     generator: &generator)
            }
            if let decoded = try? UpdateMessage.decode(message, layout: layout) {
                mirror.copy = zip(copy, decoded.values).map { $0 + $1 }
                return message
            }
        }
        // First contact, or a change the codec could not carry (non-finite): the full model.
        mirror.copy = global
        return fullModel
    }

    private func initialMirror(client: Int) -> DownlinkMirror {
        var mirror = DownlinkMirror()
        var generator = SeededGenerator.derived(seed: seed, RandomStream.downlinkState.rawValue, UInt64(client))
        mirror.codecState = codec.initialState(layout: layout, generator: &generator)
        return mirror
    }

    mutating func markSaved() { changed = [] }

    /// Restores mirrors from a checkpoint, checking their clients and lengths.
    mutating func restore(_ restored: [Int: DownlinkMirror], clients: Int) throws(CheckpointError) {
        // The codec's state has the same length for every client: build one to know it.
        let codecStateCount = initialMirror(client: 0).codecState.count
        for (client, mirror) in restored {
            guard (0..<clients).contains(client), (mirror.copy?.count ?? layout.count) == layout.count,
                  mirror.codecState.count == codecStateCount else {
                throw CheckpointError("checkpoint: downlink state of client \(client) does not fit the model and codec")
            }
        }
        mirrors = restored
        changed = []
    }
}
