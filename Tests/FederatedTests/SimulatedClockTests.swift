import Engine
@testable import Federated
import Foundation
import Testing

@Suite struct SimulatedClockTests {
    let clock = SimulatedClock(profiles: [.init(secondsPerSample: 0.01, bytesPerSecond: 1e6), .init(secondsPerSample: 0.002, bytesPerSecond: 5e5),
                                          .init(secondsPerSample: 0.001, bytesPerSecond: 2e6)], deadline: nil)

    /// Task bytes / link + samples · epochs · seconds per sample + reply bytes / link.
    @Test func durationsFollowTheDefinition() {
        #expect(clock.duration(client: 0, samples: 100, epochs: 2, bytesDown: 250_000, bytesUp: 250_000) == 0.5 + 2)
        #expect(clock.duration(client: 1, samples: 100, epochs: 1, bytesDown: 100_000, bytesUp: 50_000) == 0.3 + 0.2)
    }

    /// Arrivals in time order (ties by client id); the round ends at the last kept arrival, or at
    /// the deadline when fewer than the target made it.
    @Test func roundsCloseOnTheFirstArrivalsOrTheDeadline() {
        let arrivals = [(client: 4, seconds: 3.0), (client: 1, seconds: 2.0), (client: 7, seconds: 2.0), (client: 2, seconds: 9.0)]
        let all = clock.close(arrivals: arrivals, target: 4)
        #expect(all.kept == [1, 7, 4, 2] && all.seconds == 9)
        let first = clock.close(arrivals: arrivals, target: 2)
        #expect(first.kept == [1, 7] && first.seconds == 2)
        let timed = SimulatedClock(profiles: clock.profiles, deadline: 5)
        let late = timed.close(arrivals: arrivals, target: 4)
        #expect(late.kept == [1, 7, 4] && late.seconds == 5)
        #expect(timed.close(arrivals: [], target: 3).seconds == 5)
        #expect(clock.close(arrivals: [], target: 0).kept.isEmpty)  // a Poisson round that sampled nobody
        var section = ClockSection()
        section.simulatedClock = true
        section.overSelection = 1e19
        #expect(section.sampled(needed: 10, clients: 50) == 50)
    }

    @Test func profilesAreDrawnOnceFromTheSeed() throws {
        var section = ClockSection()
        section.simulatedClock = true
        section.slowFraction = 0.2
        let a = try SimulatedClock(section: section, clients: 1000, seed: 3), b = try SimulatedClock(section: section, clients: 1000, seed: 3)
        #expect(a.profiles == b.profiles)
        #expect(try SimulatedClock(section: section, clients: 1000, seed: 4).profiles != a.profiles)
        section.speedSpread = 0
        section.bandwidthSpread = 0
        let flat = try SimulatedClock(section: section, clients: 1000, seed: 3).profiles
        let slow = flat.filter { $0.secondsPerSample == section.sampleSeconds * section.slowFactor }.count
        #expect(flat.allSatisfy { $0.secondsPerSample == section.sampleSeconds || $0.secondsPerSample == section.sampleSeconds * section.slowFactor })
        #expect((150...250).contains(slow), "\(slow) slow clients of 1000 at 20%")
        #expect(flat.allSatisfy { $0.bytesPerSecond == 1e6 })
    }

    @Test func tracesAreReadAndHostileOnesRefused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fedtrain-trace-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func write(_ text: String) -> String {
            let path = "\(directory)/\(UUID().uuidString).txt"
            FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            return path
        }
        let good = write("# seconds per sample, MB/s\n0.001 2\n\n0.005\t0.5  # a slow phone\n")
        #expect(try SimulatedClock.readTrace(good, clients: 2) == [.init(secondsPerSample: 0.001, bytesPerSecond: 2e6), .init(secondsPerSample: 0.005, bytesPerSecond: 5e5)])
        for bad in ["0.001 2\n", "0.001 2\n0.002\n", "0.001 2\n-1 2\n", "0.001 2\nnan 1\n", "0.001 2\n1 2 3\n", "0.001 2\n0 1\n", "a b\nc d\n"] {
            #expect(throws: ConfigurationError.self) { try SimulatedClock.readTrace(write(bad), clients: 2) }
        }
        #expect(throws: ConfigurationError.self) { try SimulatedClock.readTrace("\(directory)/missing.txt", clients: 2) }
        FileManager.default.createFile(atPath: "\(directory)/binary.txt", contents: Data([0xff, 0xfe, 0x00, 0x80]))
        #expect(throws: ConfigurationError.self) { try SimulatedClock.readTrace("\(directory)/binary.txt", clients: 2) }
    }

    /// Over-selection samples ⌈m(1 + o)⌉ and aggregates the first m; time accumulates over rounds.
    @Test func overSelectedRoundsKeepTheFirstArrivals() throws {
        let simulation = try smallSimulation {
            $0.federation.clients = 6
            $0.federation.fraction = 0.5
            $0.clock.simulatedClock = true
            $0.clock.overSelection = 0.5
        }
        let first = simulation.runRound(), second = simulation.runRound()
        #expect(first.clients == 3 && first.failures == 2 && second.clients == 3)
        #expect(second.simulatedTime! == first.simulatedSeconds! + second.simulatedSeconds! && first.simulatedSeconds! > 0)
        var configuration = SimulationConfiguration()
        configuration.clock.deadline = 10
        #expect(throws: ConfigurationError.self) { try configuration.validate() }  // needs simulated_clock
        configuration.clock.simulatedClock = true
        try configuration.validate()
        #expect(throws: ConfigurationError.self) { try configuration.checkNetworked() }
    }
}

@Suite struct AvailabilityTests {
    /// Client 0 (phase 0.25) is online while frac(t / 100 + 0.25) < 0.5: t in [0, 25) and [75, 125)...
    let clock = SimulatedClock(profiles: [.init(secondsPerSample: 0.01, bytesPerSecond: 1e6), .init(secondsPerSample: 0.01, bytesPerSecond: 1e6)],
                               deadline: nil, availability: .init(fraction: 0.5, period: 100, phases: [0.25, 0.9]))

    @Test func windowsFollowTheirDefinition() {
        #expect(clock.isOnline(0, at: 0) && clock.isOnline(0, at: 24.9) && !clock.isOnline(0, at: 25) && !clock.isOnline(0, at: 74.9))
        #expect(clock.isOnline(0, at: 75) && clock.windowEnd(0, at: 80) == 125 && clock.windowEnd(0, at: 10) == 25)
        #expect(clock.nextOnline(0, after: 30) == 75)
        // Client 1 (phase 0.9): online for t in [10, 60).
        #expect(!clock.isOnline(1, at: 5) && clock.isOnline(1, at: 10) && clock.windowEnd(1, at: 10) == 60)
        #expect(clock.firstOnline([0, 1], from: 30) == 30 && clock.firstOnline([0], from: 30) == 75 && clock.firstOnline([], from: 3) == nil)
        // A trip that outlasts its window fails when the window closes.
        #expect(clock.tripEnd(0, start: 20, seconds: 4) == (24, false) && clock.tripEnd(0, start: 20, seconds: 6) == (25, true))
        // Without availability everyone is always online.
        let always = SimulatedClock(profiles: clock.profiles, deadline: nil)
        #expect(always.isOnline(1, at: 5) && always.tripEnd(1, start: 3, seconds: 1e9) == (1e9 + 3, false))
    }

    /// Rounds sample only online clients; trips cut by a window's end fail; asynchronous runs wait
    /// for a client to come online rather than stepping on nothing.
    @Test func onlineWindowsShapeRounds() throws {
        for mode in [AsyncSection.Mode.sync, .fedbuff] {
            let simulation = try smallSimulation {
                $0.federation.clients = 12
                $0.federation.fraction = 0.25
                $0.federation.rounds = 8
                $0.clock.simulatedClock = true
                $0.clock.availability = 0.3
                $0.clock.availabilityPeriod = 2
                $0.asynchrony.mode = mode
                if mode != .sync { $0.asynchrony.buffer = 2 }
            }
            var failures = 0
            for _ in 0..<8 {
                let before = simulation.metrics.last?.simulatedTime ?? 0
                let metrics = simulation.runRound()
                failures += metrics.failures
                #expect(metrics.simulatedTime! > before)
            }
            #expect(failures > 0, "\(mode): windows of 0.6 s cut some trips")
            #expect(simulation.metrics.contains { $0.clients > 0 && $0.committed })
        }
    }
}
