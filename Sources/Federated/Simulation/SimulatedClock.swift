import Engine
import Foundation

/// Simulated time for synchronous rounds: every client has a speed (seconds per training sample)
/// and a link (bytes per second), drawn once from (seed, clock) or read from a trace; a client's
/// round takes `task bytes / link + samples · epochs · seconds per sample + reply bytes / link`.
/// A round closes when its last reply arrives, when the first `target` replies have arrived
/// (over-selection), or at the deadline, whichever comes first; later replies are dropped.
public struct SimulatedClock: Sendable {
    public struct Profile: Sendable, Equatable {
        public var secondsPerSample: Double
        public var bytesPerSecond: Double
        public init(secondsPerSample: Double, bytesPerSecond: Double) { (self.secondsPerSample, self.bytesPerSecond) = (secondsPerSample, bytesPerSecond) }
    }

    /// Online windows: client c is online at t when frac(t / period + phases[c]) < fraction.
    public struct Availability: Sendable, Equatable {
        public var fraction: Double
        public var period: Double
        public var phases: [Double]
        public init(fraction: Double, period: Double, phases: [Double]) { (self.fraction, self.period, self.phases) = (fraction, period, phases) }
    }

    public let profiles: [Profile]
    public let deadline: Double?
    /// nil: every client is always online.
    public let availability: Availability?

    public init(profiles: [Profile], deadline: Double?, availability: Availability? = nil) {
        (self.profiles, self.deadline, self.availability) = (profiles, deadline, availability)
    }

    /// The job's clock: its trace, or profiles drawn from (seed, clock): speed = median ·
    /// exp(spread · N(0,1)), times `slow_factor` for the `slow_fraction` of clients drawn slow;
    /// link = median · exp(spread · N(0,1)).
    public init(section: ClockSection, clients: Int, seed: UInt64) throws(ConfigurationError) {
        deadline = section.deadline > 0 ? section.deadline : nil
        // Phases have their own generator, so the profiles do not depend on availability.
        var phases = SeededGenerator.derived(seed: seed, RandomStream.clock.rawValue, 1)
        availability = section.availability < 1
            ? Availability(fraction: section.availability, period: section.availabilityPeriod, phases: (0..<clients).map { _ in phases.nextUnitDouble() })
            : nil
        if let trace = section.clockTrace {
            profiles = try Self.readTrace(trace, clients: clients)
            return
        }
        var generator = SeededGenerator.derived(seed: seed, RandomStream.clock.rawValue)
        profiles = (0..<clients).map { _ in
            let speed = section.sampleSeconds * exp(section.speedSpread * generator.nextGaussian())
            let slow = generator.nextUnitDouble() < section.slowFraction
            let link = section.bandwidth * 1e6 * exp(section.bandwidthSpread * generator.nextGaussian())
            return Profile(secondsPerSample: slow ? speed * section.slowFactor : speed, bytesPerSecond: link)
        }
    }

    /// One profile per line, `SECONDS_PER_SAMPLE MB_PER_SECOND`, blank lines and `#` comments
    /// skipped; exactly `clients` profiles, every number positive and finite.
    public static func readTrace(_ path: String, clients: Int) throws(ConfigurationError) -> [Profile] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError("clock_trace \(path): cannot read it as UTF-8 text")
        }
        var profiles: [Profile] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let fields = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count == 2, let seconds = Double(fields[0]), let megabytes = Double(fields[1]),
                  seconds > 0, seconds.isFinite, megabytes > 0, megabytes.isFinite else {
                throw ConfigurationError("clock_trace \(path) line \(number + 1): expected SECONDS_PER_SAMPLE MB_PER_SECOND, two positive numbers")
            }
            profiles.append(Profile(secondsPerSample: seconds, bytesPerSecond: megabytes * 1e6))
        }
        guard profiles.count == clients else {
            throw ConfigurationError("clock_trace \(path): \(profiles.count) clients, the job has \(clients)")
        }
        return profiles
    }

    /// Whether `client` is online at `time`.
    public func isOnline(_ client: Int, at time: Double) -> Bool {
        guard let availability else { return true }
        let position = time / availability.period + availability.phases[client]
        return position - position.rounded(.down) < availability.fraction
    }

    /// When the online window `client` is in at `time` closes (infinity without availability).
    public func windowEnd(_ client: Int, at time: Double) -> Double {
        guard let availability else { return .infinity }
        let position = time / availability.period + availability.phases[client]
        return (position.rounded(.down) + availability.fraction - availability.phases[client]) * availability.period
    }

    /// The first time after `time` at which `client`, offline at `time`, comes online: one at
    /// which `isOnline` holds (rounding can put the window's exact start a few ulps early).
    public func nextOnline(_ client: Int, after time: Double) -> Double {
        guard let availability else { return time }
        let position = time / availability.period + availability.phases[client]
        var start = (position.rounded(.down) + 1 - availability.phases[client]) * availability.period
        while !isOnline(client, at: start) { start = start.nextUp }
        return start
    }

    /// The first time at or after `time` at which one of `clients` is online (nil for none).
    public func firstOnline(_ clients: [Int], from time: Double) -> Double? {
        clients.map { isOnline($0, at: time) ? time : nextOnline($0, after: time) }.min()
    }

    /// When a trip of `client` that starts at `start` and needs `seconds` ends, and whether it
    /// ends by the client going offline first (a failure at its window's end).
    public func tripEnd(_ client: Int, start: Double, seconds: Double) -> (time: Double, failed: Bool) {
        let end = windowEnd(client, at: start)
        return start + seconds > end ? (end, true) : (start + seconds, false)
    }

    /// Simulated seconds `client` takes from its task's first byte to its reply's last.
    public func duration(client: Int, samples: Int, epochs: Int, bytesDown: Int, bytesUp: Int) -> Double {
        let profile = profiles[client]
        return Double(bytesDown + bytesUp) / profile.bytesPerSecond + Double(samples * epochs) * profile.secondsPerSample
    }

    /// The replies of a round (to `tasks`, begun at `start`) that make it, and the round's
    /// simulated seconds: each reply arrives after its task's and its own bytes over the client's
    /// link and `samples(client)` · `epochs` samples of training, unless the client goes offline
    /// first (then it fails at that moment); then `close`.
    public func closeRound(tasks: [ClientMessage], replies: [ClientMessage], samples: (Int) -> Int, epochs: Int,
                           target: Int, start: Double = 0) -> (replies: [ClientMessage], seconds: Double) {
        let taskBytes = Dictionary(uniqueKeysWithValues: tasks.map { ($0.client, $0.count) })
        var arrivals: [(client: Int, seconds: Double)] = [], failures: [Double] = []
        for reply in replies {
            let seconds = duration(client: reply.client, samples: samples(reply.client), epochs: epochs,
                                   bytesDown: taskBytes[reply.client] ?? 0, bytesUp: reply.bytes.count)
            let end = tripEnd(reply.client, start: start, seconds: seconds)
            if end.failed { failures.append(end.time - start) } else { arrivals.append((reply.client, seconds)) }
        }
        let closed = close(arrivals: arrivals, target: target, failures: failures)
        let kept = Set(closed.kept)
        return (replies.filter { kept.contains($0.client) }, closed.seconds)
    }

    /// The replies that make the round, by arrival (ties by client id), and the round's length:
    /// the `target` first arrivals within the deadline; the round ends at the last kept arrival,
    /// or, when fewer than `target` made it, at the deadline, or without one when the last client
    /// has replied or failed (`failures`: when clients went offline). `arrivals` are (client, seconds).
    public func close(arrivals: [(client: Int, seconds: Double)], target: Int, failures: [Double] = []) -> (kept: [Int], seconds: Double) {
        let ordered = arrivals.sorted { ($0.seconds, $0.client) < ($1.seconds, $1.client) }
        let inTime = ordered.filter { deadline == nil || $0.seconds <= deadline! }
        let kept = Array(inTime.prefix(target))
        let last = max(kept.last?.seconds ?? 0, failures.max() ?? 0)
        let seconds = kept.count < target ? (deadline ?? last) : (kept.last?.seconds ?? 0)
        return (kept.map(\.client), seconds)
    }
}
