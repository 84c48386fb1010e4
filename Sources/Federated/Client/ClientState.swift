/// Everything one client keeps between rounds, owned by the client side (never by the server):
/// its error-feedback residual, its uplink codec's state (PowerSGD's warm start), its copy of
/// the global model (with a compressing downlink), and its SCAFFOLD control variate `cᵢ`.
///
/// Error feedback (Karimireddy et al. 2019): the client adds `residual` to each update and keeps
/// what the codec dropped this time, so after any number of rounds Σ sent + residual = Σ updates
/// exactly (up to float rounding).
public struct ClientState: Sendable, Equatable {
    public var residual: [Float]?
    public var uplinkState: [Float] = []
    /// The client's copy of the global model, brought up to date by each downlink message.
    public var copy: [Float]?
    public var control: [Float]?
    /// The momentum of the client's updates (`client_momentum`).
    public var momentum: [Float]?
    /// The client's own values of its local entries (`local_batchnorm`), concatenated in
    /// `ClientRuntime.localRanges` order; nil before its first round.
    public var local: [Float]?

    public init() {}

    /// The non-empty state vectors by name, for checkpoints.
    public var vectors: [String: [Float]] {
        var named: [String: [Float]] = [:]
        if let residual { named["residual"] = residual }
        if !uplinkState.isEmpty { named["uplink_state"] = uplinkState }
        if let copy { named["copy"] = copy }
        if let control { named["control"] = control }
        if let momentum { named["momentum"] = momentum }
        if let local { named["local"] = local }
        return named
    }

    /// Rebuilds a state from `vectors`; nil for an unknown name.
    public init?(vectors: [String: [Float]]) {
        for (name, vector) in vectors {
            switch name {
            case "residual": residual = vector
            case "uplink_state": uplinkState = vector
            case "copy": copy = vector
            case "control": control = vector
            case "momentum": momentum = vector
            case "local": local = vector
            default: return nil
            }
        }
    }
}
