/// The simulated clock of `fedtrain simulate`: how long each client takes in simulated time, and
/// the synchronous round's deadline and over-selection under it. Training still runs as fast as
/// the cores allow; only the time is simulated.
public struct ClockSection: Sendable, Equatable, Codable {
    /// Whether rounds are timed (and closed) by the simulated clock.
    public var simulatedClock = false
    /// Median seconds one client takes per training sample (per epoch).
    public var sampleSeconds = 0.001
    /// σ of the log-normal spread of client speeds (0: all equal).
    public var speedSpread = 0.5
    /// The fraction of clients that are `slow_factor` times slower besides.
    public var slowFraction = 0.0
    public var slowFactor = 5.0
    /// Median link speed, in MB/s (10⁶ bytes), up and down alike.
    public var bandwidth = 1.0
    /// σ of the log-normal spread of link speeds.
    public var bandwidthSpread = 0.5
    /// A file of one line per client, `SECONDS_PER_SAMPLE MB_PER_SECOND`, replacing the drawn profiles.
    public var clockTrace: String?
    /// Simulated seconds after which a round closes with the replies it has (0: no deadline).
    public var deadline = 0.0
    /// Sample this fraction more clients than a round needs and close on the first ones.
    public var overSelection = 0.0
    /// The fraction of time a client is online: each client is online for `availability` of
    /// every `availability_period` seconds, from a phase drawn from the seed (1: always online).
    /// A client is sampled only while online, and a trip still running when its window closes fails then.
    public var availability = 1.0
    public var availabilityPeriod = 3600.0

    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case simulatedClock = "simulated_clock", sampleSeconds = "sample_seconds", speedSpread = "speed_spread"
        case slowFraction = "slow_fraction", slowFactor = "slow_factor", bandwidth, bandwidthSpread = "bandwidth_spread"
        case clockTrace = "clock_trace", deadline, overSelection = "over_selection"
        case availability, availabilityPeriod = "availability_period"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self), d = Self()
        simulatedClock = try c.decodeIfPresent(Bool.self, forKey: .simulatedClock) ?? d.simulatedClock
        sampleSeconds = try c.decodeIfPresent(Double.self, forKey: .sampleSeconds) ?? d.sampleSeconds
        speedSpread = try c.decodeIfPresent(Double.self, forKey: .speedSpread) ?? d.speedSpread
        slowFraction = try c.decodeIfPresent(Double.self, forKey: .slowFraction) ?? d.slowFraction
        slowFactor = try c.decodeIfPresent(Double.self, forKey: .slowFactor) ?? d.slowFactor
        bandwidth = try c.decodeIfPresent(Double.self, forKey: .bandwidth) ?? d.bandwidth
        bandwidthSpread = try c.decodeIfPresent(Double.self, forKey: .bandwidthSpread) ?? d.bandwidthSpread
        clockTrace = try c.decodeIfPresent(String.self, forKey: .clockTrace)
        deadline = try c.decodeIfPresent(Double.self, forKey: .deadline) ?? d.deadline
        overSelection = try c.decodeIfPresent(Double.self, forKey: .overSelection) ?? d.overSelection
        availability = try c.decodeIfPresent(Double.self, forKey: .availability) ?? d.availability
        availabilityPeriod = try c.decodeIfPresent(Double.self, forKey: .availabilityPeriod) ?? d.availabilityPeriod
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(simulatedClock, forKey: .simulatedClock)
        try c.encodeDecimal(sampleSeconds, forKey: .sampleSeconds)
        try c.encodeDecimal(speedSpread, forKey: .speedSpread)
        try c.encodeDecimal(slowFraction, forKey: .slowFraction)
        try c.encodeDecimal(slowFactor, forKey: .slowFactor)
        try c.encodeDecimal(bandwidth, forKey: .bandwidth)
        try c.encodeDecimal(bandwidthSpread, forKey: .bandwidthSpread)
        try c.encodeIfPresent(clockTrace, forKey: .clockTrace)
        try c.encodeDecimal(deadline, forKey: .deadline)
        try c.encodeDecimal(overSelection, forKey: .overSelection)
        try c.encodeDecimal(availability, forKey: .availability)
        try c.encodeDecimal(availabilityPeriod, forKey: .availabilityPeriod)
    }

    func validate(federation: FederationSection) throws(ConfigurationError) {
        func positive(_ value: Double, _ key: CodingKeys) throws(ConfigurationError) {
            guard value > 0, value.isFinite else { throw ConfigurationError("\(key.rawValue) must be a positive number (got \(value))") }
        }
        func nonNegative(_ value: Double, _ key: CodingKeys) throws(ConfigurationError) {
            guard value >= 0, value.isFinite else { throw ConfigurationError("\(key.rawValue) must be a number >= 0 (got \(value))") }
        }
        try positive(sampleSeconds, .sampleSeconds)
        try positive(bandwidth, .bandwidth)
        try positive(slowFactor, .slowFactor)
        try nonNegative(speedSpread, .speedSpread)
        try nonNegative(bandwidthSpread, .bandwidthSpread)
        try nonNegative(deadline, .deadline)
        try nonNegative(overSelection, .overSelection)
        try positive(availabilityPeriod, .availabilityPeriod)
        guard (0...1).contains(slowFraction) else { throw ConfigurationError("slow_fraction must be in [0, 1] (got \(slowFraction))") }
        guard availability > 0, availability <= 1 else { throw ConfigurationError("availability must be in (0, 1] (got \(availability))") }
        guard simulatedClock || (deadline == 0 && overSelection == 0 && clockTrace == nil && availability == 1) else {
            throw ConfigurationError("deadline, over_selection, clock_trace and availability need simulated_clock: true (--simulated-clock)")
        }
        if overSelection > 0, federation.poissonRate != nil {
            throw ConfigurationError("over_selection needs client_sampling fixed (Poisson sampling has no round size to over-select)")
        }
    }

    /// Clients a round samples: `needed`, or with over-selection ⌈needed · (1 + over_selection)⌉,
    /// at most `clients`.
    public func sampled(needed: Int, clients: Int) -> Int {
        guard simulatedClock, overSelection > 0 else { return needed }
        return Int(min(Double(clients), (Double(needed) * (1 + overSelection)).rounded(.up)))
    }
}
