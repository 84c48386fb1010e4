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

    public let profiles: [Profile]
    public let deadline: Double?

    public init(profiles: [Profile], deadline: Double?) { (self.profiles, self.deadline) = (profiles, deadline) }

    /// The job's clock: its trace, or profiles drawn from (seed, clock): speed = median ·
    /// exp(spread · N(0,1)), times `slow_factor` for the `slow_fraction` of clients drawn slow;
    /// link = median · exp(spread · N(0,1)).
    public init(section: ClockSection, clients: Int, seed: UInt64) throws(ConfigurationError) {
        deadline = section.deadline > 0 ? section.deadline : nil
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

    /// Simulated seconds `client` takes from its task's first byte to its reply's last.
    public func duration(client: Int, samples: Int, epochs: Int, bytesDown: Int, bytesUp: Int) -> Double {
        let profile = profiles[client]
        return Double(bytesDown + bytesUp) / profile.bytesPerSecond + Double(samples * epochs) * profile.secondsPerSample
    }

    /// The replies of a round (to `tasks`) that make it, and the round's simulated seconds: each
    /// reply arrives after its task's and its own bytes over the client's link and `samples(client)`
    /// · `epochs` samples of training; then `close`.
    public func closeRound(tasks: [ClientMessage], replies: [ClientMessage], samples: (Int) -> Int, epochs: Int,
                           target: Int) -> (replies: [ClientMessage], seconds: Double) {
        let taskBytes = Dictionary(uniqueKeysWithValues: tasks.map { ($0.client, $0.bytes.count) })
        let arrivals = replies.map { reply in
            (client: reply.client, seconds: duration(client: reply.client, samples: samples(reply.client), epochs: epochs,
                                                     bytesDown: taskBytes[reply.client] ?? 0, bytesUp: reply.bytes.count))
        }
        let closed = close(arrivals: arrivals, target: target)
        let kept = Set(closed.kept)
        return (replies.filter { kept.contains($0.client) }, closed.seconds)
    }

    /// The replies that make the round, by arrival (ties by client id), and the round's length:
    /// the `target` first arrivals within the deadline; the round ends at the last kept arrival,
    /// or at the deadline when fewer than `target` made it. `arrivals` are (client, seconds).
    public func close(arrivals: [(client: Int, seconds: Double)], target: Int) -> (kept: [Int], seconds: Double) {
        let ordered = arrivals.sorted { ($0.seconds, $0.client) < ($1.seconds, $1.client) }
        let inTime = ordered.filter { deadline == nil || $0.seconds <= deadline! }
        let kept = Array(inTime.prefix(target))
        let seconds = kept.count < target ? (deadline ?? kept.last?.seconds ?? 0) : (kept.last?.seconds ?? 0)
        return (kept.map(\.client), seconds)
    }
}
