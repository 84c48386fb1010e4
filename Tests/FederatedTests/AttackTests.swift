import Datasets
import Engine
@testable import Federated
import Testing

@Suite struct AttackTests {
    /// The paper's z: s = ⌊n/2 + 1⌋ − f supporters, z = Φ⁻¹((n − s)/n) (scipy's norm.ppf values).
    @Test func alieZFollowsThePaper() {
        #expect(abs(OmniscientAttacks.alieZ(updates: 10, hostile: 2) - 0.253347) < 1e-5)  // Φ⁻¹(0.6); the common code gives 0
        #expect(abs(OmniscientAttacks.alieZ(updates: 50, hostile: 10) - 0.467699) < 1e-5)  // Φ⁻¹(0.68)
        #expect(abs(OmniscientAttacks.alieZ(updates: 100, hostile: 20) - 0.495850) < 1e-5)  // Φ⁻¹(0.69)
        #expect(abs(OmniscientAttacks.inverseNormal(0.975) - 1.959964) < 1e-6)
    }

    /// Honest rows (1, 2), (3, 2), (5, 8): μ = (3, 4), σ (n − 1) = (2, √12).
    @Test func alieAndIPMFollowTheirDefinitions() {
        let honest: [[Float]] = [[1, 2], [3, 2], [5, 8]]
        #expect(close(OmniscientAttacks.alie(honest, z: 1), [1, 4 - 12.0.squareRoot()]))
        #expect(OmniscientAttacks.ipm(honest, epsilon: 10) == [-30, -40])
    }

    /// Honest 0 and 2 in one dimension: μ = 1, p = μ/‖μ‖ = 1, largest squared pairwise distance 4.
    /// Min-max needs max((1 − γ)², (1 + γ)²) ≤ 4, so γ = 1 and the crafted update is 0. Min-sum
    /// needs (1 − γ)² + (1 + γ)² ≤ min over honest of the summed distances = 4: again γ = 1.
    /// With honest 0, 1 and 5 (μ = 2), min-sum's bound is min(26, 17, 41) = 17 and
    /// Σ(2 − γ − xᵢ)² = 14 + 3γ² ≤ 17 gives γ = 1; min-max's bound 25 and (3 + γ)² ≤ 25 give γ = 2.
    @Test func minMaxAndMinSumFindTheLargestFittingStep() {
        #expect(abs(OmniscientAttacks.minMax([[0], [2]], deviation: .unit)[0]) < 1e-4)
        #expect(abs(OmniscientAttacks.minSum([[0], [2]], deviation: .unit)[0]) < 1e-4)
        #expect(abs(OmniscientAttacks.minSum([[0], [1], [5]], deviation: .unit)[0] - 1) < 1e-4)
        #expect(abs(OmniscientAttacks.minMax([[0], [1], [5]], deviation: .unit)[0] - 0) < 1e-4)
        // p = σ: honest 0 and 2 have σ = √2; (1 + γ√2)² ≤ 4 gives γ√2 = 1, the crafted update 0 again.
        #expect(abs(OmniscientAttacks.minMax([[0], [2]], deviation: .std)[0]) < 1e-4)
    }

    @Test func updateAttacksChangeOnlyTheAttackersUpdates() {
        var generator = SeededGenerator(seed: 1)
        func applied(_ kind: AttackSpec.Kind, client: Int) -> [Float] {
            var update: [Float] = [1, -2, 3]
            UpdateAttack(kind: kind, attackers: [4]).apply(to: &update, round: 1, client: client, generator: &generator)
            return update
        }
        #expect(applied(.signFlip, client: 4) == [-1, 2, -3])
        #expect(applied(.signFlip, client: 3) == [1, -2, 3])
        #expect(applied(.scaling(gamma: 10), client: 4) == [10, -20, 30])
        #expect(applied(.backdoor(target: 0, boost: 5, fraction: 0.5), client: 4) == [5, -10, 15])
        #expect(applied(.labelFlip, client: 4) == [1, -2, 3])
        var noise = [Float](repeating: 7, count: 100_000)
        UpdateAttack(kind: .gaussian(std: 2), attackers: [4]).apply(to: &noise, round: 1, client: 4, generator: &generator)
        let mean = noise.reduce(0.0) { $0 + Double($1) } / 100_000
        let std = (noise.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / 100_000).squareRoot()
        #expect(abs(mean) < 0.03 && abs(std - 2) < 0.03)
    }

    @Test func attackersAreChosenOnceFromTheSeed() {
        let attackers = Attackers.choose(fraction: 0.2, clients: 50, seed: 3)
        #expect(attackers.count == 10 && attackers.allSatisfy { (0..<50).contains($0) })
        #expect(Attackers.choose(fraction: 0.2, clients: 50, seed: 3) == attackers)
        #expect(Attackers.choose(fraction: 0.2, clients: 50, seed: 4) != attackers)
    }

    @Test func dataAttacksPoisonOnlyTheAttackersSamples() {
        let data = syntheticImages(count: 40, seed: 2)
        let flipped = DataPoisoning.labelFlipped(data, at: [0, 5])
        #expect(flipped.labels[0] == 9 - data.labels[0] && flipped.labels[5] == 9 - data.labels[5])
        #expect(flipped.labels[1...4] == data.labels[1...4] && flipped.pixels == data.pixels)
        var generator = SeededGenerator(seed: 3)
        let backdoored = DataPoisoning.backdoored(data, at: Array(0..<20), target: 7, fraction: 1, generator: &generator)
        #expect(backdoored.labels[0..<20].allSatisfy { $0 == 7 } && backdoored.labels[20...] == data.labels[20...])
        // The trigger: a 4×4 checkerboard whose corner is one pixel in from the bottom-right.
        #expect(backdoored.pixels[23 * 28 + 23] == 255 && backdoored.pixels[23 * 28 + 24] == 0 && backdoored.pixels[26 * 28 + 26] == 255)
        #expect(backdoored.pixels[20 * 784..<40 * 784] == data.pixels[20 * 784..<40 * 784])
        let test = DataPoisoning.triggeredTest(data, target: 7)
        #expect(test.count == data.labels.filter { $0 != 7 }.count && test.labels.allSatisfy { $0 == 7 })
    }

    @Test func attackSpecsParseAndBadOnesAreRefused() throws {
        #expect(try AttackSpec(parsing: "ipm:10").kind == .ipm(epsilon: 10))
        #expect(try AttackSpec(parsing: "alie").kind == .alie(z: nil))
        #expect(try AttackSpec(parsing: "min-max:std").kind == .minMax(.std))
        #expect(try AttackSpec(parsing: "backdoor:3").kind == .backdoor(target: 3, boost: 5, fraction: 0.5))
        for bad in ["ipm:-1", "min-max:cosine", "backdoor:1.5", "backdoor:1:2:0", "sign-flip:2", "poison", "backdoor:1e20"] {
            #expect(throws: ConfigurationError.self) { try AttackSpec(parsing: bad) }
        }
        var configuration = SimulationConfiguration()
        configuration.robustness.attack = "sign-flip"
        #expect(throws: ConfigurationError.self) { try configuration.validate() }  // no attackers
        configuration.robustness.attackers = 0.2
        try configuration.validate()
        #expect(throws: ConfigurationError.self) { try configuration.checkNetworked() }
        // The target class is checked against the data's classes when the run loads them.
        #expect(throws: ConfigurationError.self) { try AttackSpec(parsing: "backdoor:10").validate(classes: 10) }
        try AttackSpec(parsing: "backdoor:9").validate(classes: 10)
    }

    /// An omniscient attacker's reply carries the crafted update through the job's codec, and a
    /// whole attacked run is bit-identical whatever the thread count.
    @Test func attackedRunsAreDeterministicAndForgeThroughTheCodec() throws {
        func run(threads: Int) throws -> (Simulation, [RoundMetrics]) {
            let simulation = try smallSimulation {
                $0.federation.clients = 8
                $0.federation.fraction = 1
                $0.compression.codec = "fp16"
                $0.robustness.attack = "ipm:10"
                $0.robustness.attackers = 0.25
                $0.robustness.aggregator = "trimmed-mean:2"
                $0.run.threads = threads
            }
            return (simulation, (0..<3).map { _ in simulation.runRound() })
        }
        let (one, metrics) = try run(threads: 1)
        let (two, _) = try run(threads: 2)
        #expect(one.global == two.global)
        #expect(metrics.allSatisfy { $0.attackersSampled?.count == 2 && $0.honestDistance != nil && $0.rejected == 0 })
        // The crafted update, re-checked by hand: the forged replies decode to −10·μ of the honest ones.
        let simulation = try smallSimulation {
            $0.federation.clients = 8
            $0.federation.fraction = 1
            $0.robustness.attack = "ipm:10"
            $0.robustness.attackers = 0.25
        }
        let inProcess = simulation.inProcess!, adversary = simulation.adversary!
        var coordinator = simulation.coordinator
        let tasks = coordinator.begin(available: Array(0..<8))
        let replies = adversary.forge(inProcess.exchange(tasks, clientDone: nil), runtime: inProcess.runtime)
        let decoded = try replies.map { ($0.client, try Adversary.update(in: $0.bytes, layout: inProcess.runtime.layout)) }
        let honest = decoded.filter { !adversary.attackers.contains($0.0) }.map(\.1)
        let expected = OmniscientAttacks.ipm(honest, epsilon: 10)
        #expect(decoded.filter { adversary.attackers.contains($0.0) }.allSatisfy { $0.1 == expected })
    }
}
