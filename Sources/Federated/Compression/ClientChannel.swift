import Engine

/// The compressed link between the server and one client, with the state both ends keep across
/// rounds. In a real deployment each end holds its half; the simulation holds both, and a
/// checkpoint saves them (`vectors`), so a resumed run continues bit-identically.
///
/// Uplink: with error feedback (Karimireddy et al. 2019) the client adds the `residual` of what
/// its codec has dropped so far to each update, and keeps what the codec dropped this time:
/// after any number of rounds, Σ sent + residual = Σ updates exactly (up to float rounding).
///
/// Downlink: with a compressing codec the client trains from its own `copy` of the global
/// model. The server sends the compressed change `global − copy` (it tracks the same copy), so
/// what compression dropped stays in the next change: the server's residual is implicit. A
/// client without a copy receives the full model (fp32).
public struct ClientChannel: Sendable, Equatable {
    public var residual: [Float]?
    public var uplinkState: [Float] = []
    public var copy: [Float]?
    public var downlinkState: [Float] = []

    public init() {}

    /// Brings `copy` up to `global` through one downlink message; returns the message's length.
    public mutating func receive(
        global: [Float], round: Int, layout: ParameterLayout, codec: any UpdateCodec, generator: inout SeededGenerator
    ) -> Int {
        if let copy {
            let change = zip(global, copy).map { $0 - $1 }
            let message = change.withUnsafeBufferPointer {
                UpdateMessage.encode($0, kind: .modelChange, round: round, layout: layout, codec: codec,
                                     state: &downlinkState, generator: &generator)
            }
            if let decoded = try? UpdateMessage.decode(message, layout: layout) {
                self.copy = zip(copy, decoded.values).map { $0 + $1 }
                return message.count
            }
        }
        // First contact, or a change the codec could not carry (non-finite): the full model.
        let message = UpdateMessage.encodeDense(global, kind: .model, round: round, layout: layout)
        copy = global
        return message.count
    }

    /// Encodes `delta` (plus the residual with error feedback) as an update message, keeping the
    /// residual of what the message does not carry. Returns nil for a non-finite update, which
    /// leaves the state untouched (a diverged client must not poison later rounds).
    public mutating func send(
        _ delta: [Float], round: Int, layout: ParameterLayout, codec: any UpdateCodec, errorFeedback: Bool,
        generator: inout SeededGenerator
    ) -> [UInt8]? {
        var corrected = delta
        if errorFeedback, let residual {
            for i in corrected.indices { corrected[i] += residual[i] }
        }
        guard corrected.allSatisfy(\.isFinite) else { return nil }
        var state = uplinkState
        let message = corrected.withUnsafeBufferPointer {
            UpdateMessage.encode($0, kind: .update, round: round, layout: layout, codec: codec, state: &state, generator: &generator)
        }
        guard let sent = try? UpdateMessage.decode(message, layout: layout) else { return nil }
        uplinkState = state
        if errorFeedback { residual = zip(corrected, sent.values).map { $0 - $1 } }
        return message
    }

    /// The non-empty state vectors by name, for checkpoints.
    public var vectors: [String: [Float]] {
        var named: [String: [Float]] = [:]
        if let residual { named["residual"] = residual }
        if !uplinkState.isEmpty { named["uplink_state"] = uplinkState }
        if let copy { named["copy"] = copy }
        if !downlinkState.isEmpty { named["downlink_state"] = downlinkState }
        return named
    }

    /// Rebuilds a channel from `vectors`; nil for an unknown name.
    public init?(vectors: [String: [Float]]) {
        for (name, vector) in vectors {
            switch name {
            case "residual": residual = vector
            case "uplink_state": uplinkState = vector
            case "copy": copy = vector
            case "downlink_state": downlinkState = vector
            default: return nil
            }
        }
    }
}
