/// Asynchronous federated learning under the simulated clock: FedBuff (Nguyen et al. 2022) or
/// FedAsync (Xie et al. 2019) instead of synchronous rounds. Each server step is then one row of
/// `metrics.jsonl`, and `rounds` counts server steps.
public struct AsyncSection: Sendable, Equatable, Codable {
    public enum Mode: String, Sendable, Codable, CaseIterable { case sync, fedbuff, fedasync }

    public var mode = Mode.sync
    /// FedBuff: the server steps once `buffer` updates have arrived (K).
    public var buffer = 10
    /// Clients training at any time (C); 0: the synchronous round size.
    public var concurrency = 0
    /// The staleness weight s(τ), `Staleness.help`.
    public var staleness = "poly:0.5"
    /// Updates more than this many versions old are refused (nil: any age).
    public var maxStaleness: Int?
    /// FedAsync's α: x ← x + α·s(τ)·(x_client − x).
    public var mixing = 0.5

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case mode, buffer, concurrency, staleness, maxStaleness = "max_staleness", mixing
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        mode = try c.decodeIfPresent(Mode.self, forKey: .mode) ?? d.mode
        buffer = try c.decodeIfPresent(Int.self, forKey: .buffer) ?? d.buffer
        concurrency = try c.decodeIfPresent(Int.self, forKey: .concurrency) ?? d.concurrency
        staleness = try c.decodeIfPresent(String.self, forKey: .staleness) ?? d.staleness
        maxStaleness = try c.decodeIfPresent(Int.self, forKey: .maxStaleness)
        mixing = try c.decodeIfPresent(Double.self, forKey: .mixing) ?? d.mixing
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mode, forKey: .mode)
        try c.encode(buffer, forKey: .buffer)
        try c.encode(concurrency, forKey: .concurrency)
        try c.encode(staleness, forKey: .staleness)
        try c.encodeIfPresent(maxStaleness, forKey: .maxStaleness)
        try c.encodeDecimal(mixing, forKey: .mixing)
    }

    public var isAsynchronous: Bool { mode != .sync }

    /// Updates per server step: `buffer` for FedBuff, 1 for FedAsync.
    public var updatesPerStep: Int { mode == .fedbuff ? buffer : 1 }

    /// Clients training at once: `concurrency`, or the synchronous round size.
    public func clientsInFlight(federation: FederationSection) -> Int { concurrency > 0 ? concurrency : federation.sampledPerRound }

    func validate(federation: FederationSection, clock: ClockSection, privacy: PrivacySection, robustness: RobustnessSection) throws(ConfigurationError) {
        let d = Self()
        guard isAsynchronous else {
            guard buffer == d.buffer, concurrency == d.concurrency, staleness == d.staleness, maxStaleness == nil, mixing == d.mixing else {
                throw ConfigurationError("buffer, concurrency, staleness, max_staleness and mixing need mode fedbuff or fedasync (--mode)")
            }
            return
        }
        _ = try Staleness(parsing: staleness)
        guard (1...federation.clients).contains(buffer) else {
            throw ConfigurationError("buffer must be in 1...clients (\(federation.clients)): a client trains once per model version (got \(buffer))")
        }
        guard (0...federation.clients).contains(concurrency) else { throw ConfigurationError("concurrency must be in 0...clients (got \(concurrency))") }
        guard mixing > 0, mixing <= 1 else { throw ConfigurationError("mixing must be in (0, 1] (got \(mixing))") }
        if let maxStaleness, maxStaleness < 0 { throw ConfigurationError("max_staleness must be at least 0 (got \(maxStaleness))") }
        let mode = self.mode.rawValue
        guard clock.deadline == 0, clock.overSelection == 0 else {
            throw ConfigurationError("deadline and over_selection close synchronous rounds; mode \(mode) has none")
        }
        guard federation.poissonRate == nil else { throw ConfigurationError("mode \(mode) keeps `concurrency` clients training; client_sampling must be fixed") }
        guard privacy.dp == "off" else {
            throw ConfigurationError("mode \(mode) with dp is not supported yet (the accountant composes synchronous rounds of Poisson sampling)")
        }
        guard robustness.attack == "none" else { throw ConfigurationError("mode \(mode) with an attack is not supported yet (attacks act on synchronous rounds)") }
        if federation.strategy.hasPrefix("scaffold") {
            throw ConfigurationError("mode \(mode) with scaffold is not supported (its control variates assume synchronous rounds)")
        }
        let ownStep = ["fedavgm", "fedadam", "fedyogi", "fedadagrad"]
        if self.mode == .fedasync, ownStep.contains(where: { federation.strategy.hasPrefix($0) }) {
            throw ConfigurationError("mode fedasync steps by mixing (\(mixing)); strategy \(federation.strategy) sets its own server step")
        }
        if self.mode == .fedasync, federation.serverOptimizer != nil {
            throw ConfigurationError("mode fedasync steps by mixing (\(mixing)); remove server_optimizer")
        }
    }
}
