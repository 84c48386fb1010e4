import Engine
import Foundation

/// The server side of asynchronous federated learning, pure like the `RoundCoordinator` whose
/// model, strategy and downlink it steps: clients are dispatched from the current model version
/// whenever a slot is free, each reply is weighted by its staleness τ (versions since its base)
/// and buffered, and the server steps once `updatesPerStep` updates are in.
///
/// - FedBuff (Nguyen et al. 2022): buffered deltas are `s(τ)·Δ`, and the strategy (its aggregator,
///   then its server optimizer) turns the buffer, in arrival order, into the step.
/// - FedAsync (Xie et al. 2019): one update per step, rebased on the current model:
///   `s(τ)·(Δ + x_base − x) = s(τ)·(x_client − x)`, then a plain step of α, which is
///   `x ← (1 − α·s(τ))·x + α·s(τ)·x_client`.
///
/// A client trains at most once per model version (so no two of its trips share a seed), and
/// a reply is checked against its own trip's version, never the current one.
public struct AsyncCoordinator: Sendable {
    public struct Settings: Sendable {
        public var updatesPerStep: Int
        public var staleness: Staleness
        /// Replies older than this many versions are refused (`stale_model`).
        public var maxStaleness: Int?
        /// FedAsync: rebase each update on the current model.
        public var rebases: Bool

        public init(updatesPerStep: Int, staleness: Staleness, maxStaleness: Int?, rebases: Bool) {
            precondition(updatesPerStep >= 1)
            (self.updatesPerStep, self.staleness, self.maxStaleness, self.rebases) = (updatesPerStep, staleness, maxStaleness, rebases)
        }
    }

    /// A buffered update (already weighted and, for FedAsync, rebased) and its staleness.
    public struct BufferedUpdate: Sendable {
        public var update: ClientUpdate
        public var staleness: Int
    }

    /// What a server step did: the round coordinator's outcome (its `failures` and `rejections`
    /// count every trip since the previous step) and the staleness of each aggregated update.
    public struct Step: Sendable {
        public var outcome: RoundCoordinator.Outcome
        public var staleness: [Int]
    }

    public let asyncSettings: Settings
    public private(set) var rounds: RoundCoordinator
    /// Clients training now, and the model version each trains from.
    public private(set) var inFlight: [Int: Int] = [:]
    /// Clients dispatched from the current version.
    public private(set) var dispatchedAtVersion: Set<Int> = []
    /// Draws of clients made at the current version (each from its own generator).
    private var draws = 0
    public private(set) var buffer: [BufferedUpdate] = []
    /// FedAsync: the models clients in flight started from, by version.
    private var bases: [Int: [Float]] = [:]
    /// Traffic, failures and rejections since the last step.
    private var window = Window()

    struct Window: Sendable, Codable, Equatable {
        var bytesUp = 0, bytesDown = 0, denseBytesUp = 0, denseBytesDown = 0, failures = 0
        var rejections: [RejectionReason: Int] = [:]
    }

    public init(rounds: RoundCoordinator, settings: Settings) {
        precondition(rounds.settings.poissonRate == nil)
        (self.rounds, self.asyncSettings) = (rounds, settings)
    }

    /// Server steps so far: the version new tasks carry.
    public var version: Int { rounds.completedRounds }
    public var global: [Float] { rounds.global }
    public var bufferIsFull: Bool { buffer.count >= asyncSettings.updatesPerStep }

    /// Dispatches up to `count` clients drawn from `available` (id order) among those neither in
    /// flight nor dispatched at this version, and returns their tasks in drawn order. The first
    /// draw at version v uses the generator of synchronous round v + 1, so a wave of the round
    /// size from an idle federation samples what `RoundCoordinator.begin` would.
    public mutating func dispatch(_ count: Int, available: [Int],
                                  parallelFor: RoundCoordinator.ParallelFor = RoundCoordinator.serially) -> [ClientMessage] {
        let eligible = available.filter { inFlight[$0] == nil && !dispatchedAtVersion.contains($0) }
        let drawn = min(count, eligible.count)
        guard drawn > 0 else { return [] }
        let round = UInt64(version + 1), sampling = RandomStream.sampling.rawValue, seed = rounds.settings.seed
        var generator = draws == 0 ? SeededGenerator.derived(seed: seed, sampling, round)
            : SeededGenerator.derived(seed: seed, sampling, round, UInt64(draws))
        draws += 1
        return dispatch(clients: RoundCoordinator.draw(drawn, from: eligible, generator: &generator), parallelFor: parallelFor)
    }

    /// Whether `client` may be dispatched now: a client of the federation, neither in flight nor
    /// dispatched at this version.
    public func mayDispatch(_ client: Int) -> Bool {
        (0..<rounds.settings.clients).contains(client) && inFlight[client] == nil && !dispatchedAtVersion.contains(client)
    }

    /// Dispatches exactly `clients` (each must satisfy `mayDispatch`): what `fedtrain replay`
    /// does with a logged run's choices.
    public mutating func dispatch(clients chosen: [Int], parallelFor: RoundCoordinator.ParallelFor = RoundCoordinator.serially) -> [ClientMessage] {
        precondition(chosen.allSatisfy(mayDispatch) && Set(chosen).count == chosen.count)
        let built = rounds.tasks(for: chosen, parallelFor: parallelFor)
        precondition(built.instructions.serverControl == nil, "control variates need synchronous rounds")
        window.bytesDown += built.bytes
        window.denseBytesDown += built.denseBytes
        for client in chosen {
            inFlight[client] = version
            dispatchedAtVersion.insert(client)
        }
        if asyncSettings.rebases { bases[version] = global }
        return built.messages
    }

    /// Checks a reply from `client` against its trip's version, weights it by its staleness and
    /// buffers it, or says why not. Never traps on hostile bytes.
    public mutating func accept(_ bytes: [UInt8], from client: Int) -> RoundCoordinator.Verdict {
        window.bytesUp += bytes.count
        guard let base = inFlight.removeValue(forKey: client) else {
            window.denseBytesUp += bytes.count
            return reject(.unexpected)
        }
        defer { pruneBases() }
        let check = rounds.replyCheck(version: base, instructions: RoundInstructions())
        switch check.check(bytes, from: client) {
        case .failure(let reason):
            window.denseBytesUp += bytes.count
            return reject(reason)
        case .success(let (update, envelope)):
            window.denseBytesUp += envelope.denseLength(encodedLength: bytes.count, parameterCount: rounds.settings.layout.count)
            let staleness = version - base
            if let limit = asyncSettings.maxStaleness, staleness > limit { return reject(.staleModel) }
            var weighted = update
            let weight = Float(asyncSettings.staleness.weight(staleness))
            if asyncSettings.rebases, let start = bases[base] {
                let global = self.global
                for i in weighted.delta.indices { weighted.delta[i] = weight * (weighted.delta[i] + (start[i] - global[i])) }
            } else if weight != 1 {
                for i in weighted.delta.indices { weighted.delta[i] *= weight }
            }
            buffer.append(BufferedUpdate(update: weighted, staleness: staleness))
            return .accepted
        }
    }

    private mutating func reject(_ reason: RejectionReason) -> RoundCoordinator.Verdict {
        window.rejections[reason, default: 0] += 1
        return .rejected(reason)
    }

    /// A trip that ended without a reply (the client failed): frees its slot.
    public mutating func fail(_ client: Int) {
        guard inFlight.removeValue(forKey: client) != nil else { return }
        window.failures += 1
        pruneBases()
    }

    /// Steps the server with the buffer (full, or partial when nobody else can contribute to
    /// this version): through `RoundCoordinator.commit`, so a step below the minimum or with a
    /// non-finite result keeps the model. Starts the next version.
    public mutating func step() -> Step {
        let results = buffer.map(\.update)
        let round = version + 1
        let (committed, aggregate) = rounds.commit(round: round, results: results, failures: [])
        let samples = results.reduce(0) { $0 + $1.samples }
        let outcome = RoundCoordinator.Outcome(
            round: round, accepted: results.count, failures: window.failures, rejections: window.rejections, committed: committed,
            bytesUp: window.bytesUp, bytesDown: window.bytesDown, denseBytesUp: window.denseBytesUp, denseBytesDown: window.denseBytesDown,
            trainLoss: results.isEmpty ? nil : results.reduce(0.0) { $0 + $1.trainLoss * Double($1.samples) } / Double(samples),
            samples: samples, updates: results, aggregate: aggregate)
        let step = Step(outcome: outcome, staleness: buffer.map(\.staleness))
        (buffer, window, dispatchedAtVersion, draws) = ([], Window(), [], 0)
        return step
    }

    /// Drops base models no client in flight trains from.
    private mutating func pruneBases() {
        guard asyncSettings.rebases else { return }
        let used = Set(inFlight.values)
        bases = bases.filter { used.contains($0.key) }
    }

    // MARK: Checkpoint state

    /// Everything besides the round coordinator's model, strategy and mirrors that a resumed
    /// run needs to continue bit-identically.
    public struct State: Sendable, Codable, Equatable {
        var inFlight: [Int: Int]
        var dispatchedAtVersion: [Int]
        var draws: Int
        var buffer: [SavedUpdate]
        var bases: [Int: Data]
        var window: Window
    }

    struct SavedUpdate: Sendable, Codable, Equatable {
        var client: Int, samples: Int, steps: Int, trainLoss: Double, staleness: Int
        var delta: Data
    }

    public var state: State {
        State(inFlight: inFlight, dispatchedAtVersion: dispatchedAtVersion.sorted(), draws: draws,
              buffer: buffer.map { SavedUpdate(client: $0.update.client, samples: $0.update.samples, steps: $0.update.steps,
                                               trainLoss: $0.update.trainLoss, staleness: $0.staleness, delta: FloatBytes.data($0.update.delta)) },
              bases: bases.mapValues(FloatBytes.data), window: window)
    }

    /// Restores the round coordinator's part (`RoundCoordinator.restore`) and then this state.
    public mutating func restore(round: Int, global: [Float], strategyState: [String: [Float]], mirrors: [Int: DownlinkMirror],
                                 state: State) throws(CheckpointError) {
        let count = rounds.settings.layout.count, clients = rounds.settings.clients
        func vector(_ data: Data) throws(CheckpointError) -> [Float] {
            guard let values = FloatBytes.floats(data), values.count == count else {
                throw CheckpointError("checkpoint: an asynchronous update or base model does not fit the model")
            }
            return values
        }
        let ids = Array(state.inFlight.keys) + state.dispatchedAtVersion + state.buffer.map(\.client)
        guard ids.allSatisfy({ (0..<clients).contains($0) }), state.inFlight.values.allSatisfy({ (0...round).contains($0) }),
              state.buffer.allSatisfy({ $0.staleness >= 0 && $0.samples >= 1 && $0.steps >= 1 }), state.draws >= 0,
              !asyncSettings.rebases || Set(state.inFlight.values).isSubset(of: state.bases.keys) else {
            throw CheckpointError("checkpoint: the asynchronous state does not fit this run")
        }
        var buffer: [BufferedUpdate] = []
        for saved in state.buffer {
            buffer.append(BufferedUpdate(update: ClientUpdate(client: saved.client, samples: saved.samples, steps: saved.steps,
                                                              delta: try vector(saved.delta), trainLoss: saved.trainLoss),
                                         staleness: saved.staleness))
        }
        var bases: [Int: [Float]] = [:]
        for (version, data) in state.bases { bases[version] = try vector(data) }
        try rounds.restore(round: round, global: global, strategyState: strategyState, mirrors: mirrors)
        (inFlight, dispatchedAtVersion, draws, window) = (state.inFlight, Set(state.dispatchedAtVersion), state.draws, state.window)
        (self.buffer, self.bases) = (buffer, bases)
    }

    public mutating func markMirrorsSaved() { rounds.markMirrorsSaved() }
}

/// Float vectors as little-endian bytes (exact, compact) for JSON checkpoint records.
enum FloatBytes {
    static func data(_ values: [Float]) -> Data {
        var data = Data(capacity: values.count * 4)
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    /// nil when the byte count is not a multiple of 4 or a value is not finite.
    static func floats(_ data: Data) -> [Float]? {
        guard data.count % 4 == 0 else { return nil }
        let bytes = [UInt8](data)
        var values: [Float] = []
        values.reserveCapacity(bytes.count / 4)
        for i in stride(from: 0, to: bytes.count, by: 4) {
            let bits = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            let value = Float(bitPattern: bits)
            guard value.isFinite else { return nil }
            values.append(value)
        }
        return values
    }
}
