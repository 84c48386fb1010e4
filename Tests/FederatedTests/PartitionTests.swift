import Datasets
import Engine
import Testing

@Suite struct PartitionTests {
    /// 10 classes, 100 samples each, in class order.
    let labels: [UInt16] = (0..<1000).map { UInt16($0 / 100) }

    func split(_ scheme: PartitionScheme, clients: Int, seed: UInt64 = 1, minimumSize: Int = 10) throws -> [[Int]] {
        var generator = SeededGenerator(seed: seed)
        return try Partitioner(scheme: scheme, clients: clients, minimumSize: minimumSize).split(labels: labels, classes: 10, generator: &generator)
    }

    func classes(_ part: [Int]) -> Set<UInt16> { Set(part.map { labels[$0] }) }

    @Test(arguments: [PartitionScheme.iid, .dirichlet(alpha: 0.5), .labels(perClient: 2), .labels(perClient: 3), .quantity(beta: 1)])
    func everySampleExactlyOnce(scheme: PartitionScheme) throws {
        let parts = try split(scheme, clients: 10)
        #expect(parts.count == 10)
        let all = parts.flatMap { $0 }
        #expect(all.count == labels.count)
        #expect(Set(all).count == labels.count)
        #expect(try split(scheme, clients: 10) == parts, "same seed, same partition")
    }

    @Test func iidSharesAreEqual() throws {
        #expect(try split(.iid, clients: 7).map(\.count).sorted() == [142, 143, 143, 143, 143, 143, 143])
    }

    @Test(arguments: [1, 2, 3])
    func labelSkewGivesEachClientExactlyKClasses(k: Int) throws {
        let parts = try split(.labels(perClient: k), clients: 10)
        for (client, part) in parts.enumerated() {
            #expect(classes(part).count == k)
            #expect(classes(part).contains(UInt16(client % 10)), "NIID-Bench: client i holds class i mod 10")
        }
    }

    @Test func shardsGiveAtMostSClassesPerClient() throws {
        let parts = try split(.shards(perClient: 2), clients: 10)
        #expect(parts.allSatisfy { $0.count == 100 && classes($0).count <= 2 })
        #expect(Set(parts.flatMap { $0 }).count == 1000)
    }

    /// Large alpha approaches IID; small alpha concentrates each client on few classes.
    @Test func dirichletConcentrationFollowsAlpha() throws {
        func meanTopClassShare(_ alpha: Double) throws -> Double {
            var total = 0.0, count = 0.0
            for seed in 1...5 {
                for part in try split(.dirichlet(alpha: alpha), clients: 5, seed: UInt64(seed), minimumSize: 1) {
                    var histogram = [Int](repeating: 0, count: 10)
                    for index in part { histogram[Int(labels[index])] += 1 }
                    total += Double(histogram.max()!) / Double(part.count)
                    count += 1
                }
            }
            return total / count
        }
        let iidLike = try meanTopClassShare(1000), skewed = try meanTopClassShare(0.1)
        #expect(iidLike < 0.15, "alpha 1000: top class near 10% (\(iidLike))")
        #expect(skewed > 0.35, "alpha 0.1: a few whole classes per client (\(skewed))")
    }

    /// Dir(alpha·1) over n categories has mean 1/n and variance (n−1)/(n²(nα+1)).
    @Test func dirichletSamplesHaveTheRightMoments() {
        var generator = SeededGenerator(seed: 9)
        let n = 4, alpha = 0.5, draws = 20_000
        var sum = 0.0, squares = 0.0
        for _ in 0..<draws {
            let p = generator.nextDirichlet(alpha: alpha, count: n)
            #expect(abs(p.reduce(0, +) - 1) < 1e-9)
            sum += p[0]
            squares += p[0] * p[0]
        }
        let mean = sum / Double(draws), variance = squares / Double(draws) - mean * mean
        let expectedVariance = Double(n - 1) / (Double(n * n) * (Double(n) * alpha + 1))
        #expect(abs(mean - 0.25) < 0.01)
        #expect(abs(variance - expectedVariance) < 0.1 * expectedVariance)
    }

    @Test func unsatisfiableDirichletFailsAfterResampling() {
        do {
            _ = try split(.dirichlet(alpha: 0.01), clients: 100, minimumSize: 10)
            Issue.record("expected failure")
        } catch {
            #expect("\(error)".contains("fewer than 10 samples in 10 draws"))
            #expect("\(error)".contains("--min-partition-size"))
        }
    }

    @Test func schemesParseAndRejectBadValues() throws {
        #expect(try PartitionScheme(parsing: "dirichlet:0.5") == .dirichlet(alpha: 0.5))
        #expect(try PartitionScheme(parsing: "labels:2") == .labels(perClient: 2))
        for bad in ["dirichlet:0", "dirichlet:-1", "dirichlet", "labels:x", "shards:0", "zipf:2", "iid:3"] {
            #expect(throws: PartitionError.self, "\(bad)") { try PartitionScheme(parsing: bad) }
        }
    }
}
