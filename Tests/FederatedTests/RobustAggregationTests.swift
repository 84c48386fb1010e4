import Engine
@testable import Federated
import Testing

/// Updates from literal rows; sample counts differ so that a rule that used them would show it.
func updates(_ rows: [[Float]]) -> [ClientUpdate] {
    rows.enumerated().map { ClientUpdate(client: $0, samples: 10 * ($0 + 1), steps: 1, delta: $1, trainLoss: 0) }
}

func aggregated(_ aggregator: any Aggregator, _ rows: [[Float]], round: Int = 1) -> Aggregate {
    var aggregator = aggregator
    return aggregator.aggregate(updates(rows), round: round)
}

func close(_ a: [Float], _ b: [Double], _ tolerance: Double = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs(Double($0) - $1) <= tolerance * max(1, abs($1)) }
}

/// Gaussian rows: `count` × `length`, scaled.
func gaussianRows(_ count: Int, _ length: Int, seed: UInt64, scale: Double = 1) -> [[Float]] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in (0..<length).map { _ in Float(scale * generator.nextGaussian()) } }
}

@Suite struct RobustAggregationTests {
    // MARK: Rules on literal arrays, against answers worked out by hand

    @Test func medianTakesTheMiddleValueOrTheMeanOfTheTwoMiddleOnes() {
        #expect(aggregated(CoordinateMedian(), [[1, 5], [3, 2], [2, 9]]).direction == [2, 5])
        #expect(aggregated(CoordinateMedian(), [[1], [4], [2], [10]]).direction == [3])
    }

    @Test func trimmedMeanDropsExactlyBPerSide() {
        // Sorted: −50 1 3 5 100; b = 1 keeps 1 3 5, b = 2 keeps 3, b = 0 is the mean.
        let rows: [[Float]] = [[1], [100], [3], [-50], [5]]
        #expect(aggregated(TrimmedMean(trim: 1), rows).direction == [3])
        #expect(aggregated(TrimmedMean(trim: 2), rows).direction == [3])
        #expect(aggregated(TrimmedMean(trim: 0), rows).direction == [11.8])
        #expect(TrimmedMean(trim: 2).minimumUpdates == 5)
        // Dropping 1 from each side of 1 2 3 4 100 200 leaves 2 3 4 100.
        #expect(aggregated(TrimmedMean(trim: 1), [[200], [1], [3], [100], [2], [4]]).direction == [27.25])
    }

    /// Squared distances (hand-computed): d01 41, d02 85, d03 130, d04 65, d12 8, d13 29, d14 52,
    /// d23 9, d24 68, d34 65. With n − f − 2 = 2 neighbours the scores are 106 37 17 38 117 and
    /// Krum picks row 2; byzfl's n − f − 1 = 3 would give 191 78 85 103 182 and row 1.
    @Test func krumCountsNMinusFMinusTwoNeighbours() {
        let rows: [[Float]] = [[4, 2], [0, -3], [-2, -5], [-5, -5], [-4, 3]]
        let distances = PairwiseDistances(rows)
        #expect(close(Krum.scores(distances, members: Array(0..<5), byzantine: 1).map { Float($0) }, [106, 37, 17, 38, 117], 1e-12))
        let krum = aggregated(Krum(byzantine: 1), rows)
        #expect(krum.direction == [-2, -5])
        #expect(krum.selected == [2])
        // Multi-Krum with m = 2: the mean of rows 2 and 1 (scores 17 and 37).
        let multi = aggregated(Krum(byzantine: 1, selecting: 2), rows)
        #expect(multi.direction == [-1, -4])
        #expect(multi.selected == [2, 1])
        // Default m = n − f = 4: rows 2, 1, 3, 0.
        #expect(aggregated(Krum(byzantine: 1, selecting: nil), rows).selected == [2, 1, 3, 0])
    }

    /// Krum needs n > 2f + 2; Multi-Krum with m given also m ≤ n − f, refused when the job
    /// cannot feed it (averaging more would take in updates the rule must assume hostile).
    @Test func multiKrumIsRefusedWhenItWouldAverageMoreThanNMinusF() throws {
        #expect(Krum(byzantine: 2).minimumUpdates == 7)
        #expect(Krum(byzantine: 2, selecting: nil).minimumUpdates == 7)
        #expect(Krum(byzantine: 2, selecting: 9).minimumUpdates == 11)
        let spec = try AggregatorSpec(parsing: "multi-krum:2:9")
        #expect(throws: ConfigurationError.self) { try spec.make(parameterCount: 4, seed: 0, expectedUpdates: 10) }
        #expect((try? spec.make(parameterCount: 4, seed: 0, expectedUpdates: 11)) != nil)
    }

    /// n = 7, f = 1: recursive Krum picks 3, 1, 6, 0, 2 (θ = 5); per coordinate the β = 3 values
    /// closest to the median: {1.2, 1.1, 1.9} → 1.4 and {1.3, 1.05, 2.2} → 1.51667.
    @Test func bulyanSelectsRecursivelyThenAveragesAroundTheMedian() {
        let rows: [[Float]] = [[0, 1.3], [1.1, 2.2], [2.5, 0.1], [1.2, 1.05], [3.1, 2.9], [100, -100], [1.9, 2.45]]
        #expect(Bulyan.select(PairwiseDistances(rows), byzantine: 1) == [3, 1, 6, 0, 2])
        let result = aggregated(Bulyan(byzantine: 1), rows)
        #expect(close(result.direction, [1.4, 1.5166666666666668]))
        #expect(result.selected == [3, 1, 6, 0, 2])
    }

    /// Ties: of 0 0 0 2 4 4 4 (median 2) the three closest, ties to the smaller value, are 2 0 0.
    @Test func bulyanAveragesTheValuesClosestToTheMedianWithTies() {
        #expect(close(Bulyan.closestToMedianMean([[0], [4], [0], [2], [4], [0], [4]], keep: 3), [2.0 / 3]))
        #expect(Bulyan.closestToMedianMean([[1], [9], [5]], keep: 3) == [5])
        #expect(Bulyan.closestToMedianMean([[1], [9], [5], [6]], keep: 1) == [5])  // median 5.5: 5 and 6 tie, the smaller wins
    }

    @Test func bulyanIsRefusedBelowFourFPlusThree() throws {
        #expect(Bulyan(byzantine: 2).minimumUpdates == 11)
        var configuration = SimulationConfiguration()
        configuration.federation.clients = 10
        configuration.robustness.aggregator = "bulyan:2"
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
        configuration.federation.clients = 11
        try configuration.validate()
    }

    @Test func geometricMedianOfAnEquilateralTriangleIsItsCentroid() {
        let h = Float(3).squareRoot()
        let result = aggregated(GeometricMedian(), [[0, 0], [2, 0], [1, h]])
        #expect(close(result.direction, [1, Double(h) / 3], 1e-5))
        // In one dimension the geometric median is the median.
        #expect(close(aggregated(GeometricMedian(), [[0], [1], [10]]).direction, [1], 1e-4))
    }

    /// τ = 1, one iteration from v = 0: (3, 4) is clipped to (0.6, 0.8), (0.3, 0.4) is kept; v =
    /// (0.45, 0.6). The next round starts from there: (1.45, 0.6) is 1 away and kept, (−0.55, 0.6)
    /// is 1 away and kept: v = (0.45, 0.6) + ((1, 0) + (−1, 0))/2 = (0.45, 0.6).
    @Test func centeredClippingClipsAroundThePreviousAggregate() throws {
        var rule = CenteredClipping(radius: 1, iterations: 1, parameterCount: 2)
        #expect(close(rule.aggregate(updates([[3, 4], [0.3, 0.4]]), round: 1).direction, [0.45, 0.6]))
        #expect(close(rule.center, [0.45, 0.6]))
        #expect(close(rule.aggregate(updates([[1.45, 0.6], [-0.55, 0.6]]), round: 2).direction, [0.45, 0.6]))
        var restored = CenteredClipping(radius: 1, iterations: 1, parameterCount: 2)
        try restored.restore(rule.state)
        #expect(restored.center == rule.center)
    }

    @Test func normBoundingClipsEachUpdateBeforeTheRule() {
        let rule = NormBounding(bound: 1, inner: UniformMean())
        // (3, 4) → (0.6, 0.8); (0, 0.5) is inside the bound.
        #expect(close(aggregated(rule, [[3, 4], [0, 0.5]]).direction, [0.3, 0.65]))
    }

    @Test func bucketingAveragesShuffledGroupsThenAppliesTheRule() {
        var generator = SeededGenerator.derived(seed: 4, RandomStream.bucketing.rawValue, 7)
        let groups = Bucketing.buckets(count: 7, size: 2, generator: &generator)
        #expect(groups.map(\.count) == [2, 2, 2, 1])
        #expect(groups.flatMap { $0 }.sorted() == Array(0..<7))
        let rows: [[Float]] = [[1], [2], [4], [8], [16], [32], [64]]
        let means = groups.map { group in group.reduce(0.0) { $0 + Double(rows[$1][0]) } / Double(group.count) }.sorted()
        let expected = (means[1] + means[2]) / 2
        let result = aggregated(Bucketing(size: 2, seed: 4, inner: CoordinateMedian()), rows, round: 7)
        #expect(close(result.direction, [expected]))
        // Krum inside buckets reports the members of the bucket it selected.
        let krum = aggregated(Bucketing(size: 2, seed: 4, inner: Krum(byzantine: 0)), rows, round: 7)
        #expect(krum.selected.map { groups.contains($0.sorted()) || groups.contains($0) } == true)
        #expect(Bucketing(size: 2, seed: 4, inner: Krum(byzantine: 1)).minimumUpdates == 9)
    }

    /// Three updates point one way, two the other. The norm history's median is the last
    /// update's √8.84; the longer [3, 4] of the majority is scaled down to it, the minority dropped.
    @Test func clippedClusteringAveragesTheClippedMajorityCluster() throws {
        let rows: [[Float]] = [[3, 4], [0.6, 0.8], [0.8, 0.6], [-3, -3], [-2, -2.2]]
        var rule = ClippedClustering()
        let first = rule.aggregate(updates(rows), round: 1)
        let median = 8.84.squareRoot()
        #expect(close(first.direction, [(0.6 * median + 1.4) / 3, (0.8 * median + 1.4) / 3]))
        #expect(first.selected == [0, 1, 2])
        // Round two's updates are ten times shorter. With the history, the median is (0.5 + 1) / 2
        // and nothing is clipped; a fresh rule's median (0.297) would clip [0.3, 0.4].
        let small = rows.map { $0.map { $0 / 10 } }
        var restored = ClippedClustering()
        try restored.restore(rule.state)
        let second = rule.aggregate(updates(small), round: 2)
        #expect(close(second.direction, [0.44 / 3, 0.54 / 3]))
        #expect(restored.aggregate(updates(small), round: 2).direction == second.direction)
        #expect(!close(aggregated(ClippedClustering(), small).direction, [0.44 / 3, 0.54 / 3]))
        #expect(rule.norms.count == 10 && rule.state[ClippedClustering.stateName] == rule.norms)
    }

    @Test func cosineDistancesAreZeroForParallelTwoForOppositeOrZeroUpdates() {
        let distances = ClippedClustering.cosineDistances([[1, 0], [5, 0], [0, 2], [-1, 0], [0, 0]])
        let expected: [[Double]] = [[0, 0, 1, 2, 2], [0, 0, 1, 2, 2], [1, 1, 0, 1, 2], [2, 2, 1, 0, 2], [2, 2, 2, 2, 0]]
        #expect(close(distances.map(Float.init), expected.flatMap { $0 }, 1e-12))
    }

    /// Points on a line (distance |x − y|). At 0, 1, 3, 7, 13 average linkage merges {0, 1},
    /// then 3 (2.5), then 7 (17/3 < 6): the majority is the first four, where complete linkage
    /// would join 7 to 13 (6 < 7). At 0, 1, 3, 7, 12 it joins 7 to 12 (5 < 17/3) and keeps the
    /// first three, where single linkage would take 7 (4 < 5). Equal clusters: the first update's.
    @Test func clusteringUsesAverageLinkageAndBreaksTiesTowardTheFirstUpdate() {
        func line(_ points: [Double]) -> [Double] { points.flatMap { x in points.map { abs(x - $0) } } }
        #expect(ClippedClustering.majorityCluster(line([0, 1, 3, 7, 13])) == [0, 1, 2, 3])
        #expect(ClippedClustering.majorityCluster(line([13, 0, 1, 3, 7])) == [1, 2, 3, 4])
        #expect(ClippedClustering.majorityCluster(line([0, 1, 3, 7, 12])) == [0, 1, 2])
        #expect(ClippedClustering.majorityCluster(line([0, 1, 10, 11])) == [0, 1])
        #expect(ClippedClustering.majorityCluster(line([10, 11, 0, 1])) == [0, 1])
        #expect(ClippedClustering.majorityCluster(line([7])) == [0])
    }

    /// Nine honest updates around a common direction and three colluders sending the opposite of
    /// it, twice as long: the colluders form the minority cluster, and the result is near the
    /// honest mean while the plain mean points elsewhere.
    @Test func clippedClusteringDropsColludersPointingAway() {
        var generator = SeededGenerator(seed: 25)
        let common = (0..<50).map { _ in Float(generator.nextGaussian()) }
        let honest = gaussianRows(9, 50, seed: 26, scale: 0.3).map { zip($0, common).map { $0 + $1 } }
        let rows = honest + [[Float]](repeating: common.map { -2 * $0 }, count: 3)
        let result = aggregated(ClippedClustering(), rows)
        #expect(result.selected == Array(0..<9))
        let honestMean = Aggregation.mean(inDouble: honest)
        let cosine = zip(result.direction, honestMean).reduce(0) { $0 + Double($1.0) * $1.1 }
            / (L2Clip.norm(result.direction) * honestMean.reduce(0) { $0 + $1 * $1 }.squareRoot())
        #expect(cosine > 0.99)
    }

    /// Two rows spread along x, two close to the origin along y: the top direction is x, and
    /// each score is the squared projection on it.
    @Test func divideAndConquerScoresAreSquaredProjectionsOnTheTopDirection() {
        #expect(close(DivideAndConquer.scores([[1, 0], [-1, 0], [0, 0.1], [0, -0.1]]).map(Float.init), [1, 1, 0, 0], 1e-12))
        let pair = LAPACK.largestEigenpair(symmetric: [2, 1, 1, 2], n: 2)
        #expect(abs(pair.value - 3) < 1e-12 && close(pair.vector.map(Float.init), [Double(0.5).squareRoot(), Double(0.5).squareRoot()], 1e-7))
        let algebraic = LAPACK.largestEigenpair(symmetric: [1, 0, 0, -5], n: 2)  // the largest, not the largest in magnitude
        #expect(algebraic.value == 1 && algebraic.vector == [1, 0])
        #expect(DivideAndConquer.scores([[1, 2], [1, 2], [1, 2]]) == [0, 0, 0])
    }

    /// f = 1: [5, 1] lies far along the direction the updates spread in, so it is dropped and the
    /// other three are averaged.
    @Test func divideAndConquerDropsTheFHighestScores() {
        let result = aggregated(DivideAndConquer(byzantine: 1, seed: 0), [[0, 1], [0.2, 1], [-0.2, 1.1], [5, 1]])
        #expect(result.selected == [0, 1, 2])
        #expect(close(result.direction, [0, 3.1 / 3]))
        #expect(DivideAndConquer(byzantine: 1, seed: 0).minimumUpdates == 2)
        #expect(DivideAndConquer(byzantine: 3, iterations: 3, seed: 0).minimumUpdates == 10)
    }

    /// Nine honest updates around a common direction and three identical colluders at the honest
    /// mean pushed back past zero (min-max's shape): each of 3 subsamples of 20 coordinates drops them.
    @Test func divideAndConquerDropsColludersInEverySubsample() {
        var generator = SeededGenerator(seed: 27)
        let common = (0..<200).map { _ in Float(generator.nextGaussian()) }
        let honest = gaussianRows(9, 200, seed: 28, scale: 0.5).map { zip($0, common).map { $0 + $1 } }
        let rows = honest + [[Float]](repeating: common.map { -1.5 * $0 }, count: 3)
        let rule = DivideAndConquer(byzantine: 3, iterations: 3, dimensions: 20, seed: 5)
        #expect(aggregated(rule, rows).selected == Array(0..<9))
        #expect(close(aggregated(rule, rows).direction, Aggregation.mean(inDouble: honest), 1e-6))
    }

    @Test func divideAndConquerSamplesDistinctCoordinatesFromTheSeed() {
        var generator = SeededGenerator(seed: 3), again = SeededGenerator(seed: 3), other = SeededGenerator(seed: 4)
        let sample = DivideAndConquer.sample(100, of: 1000, generator: &generator)
        #expect(sample.count == 100 && Set(sample).count == 100 && sample == sample.sorted() && sample.allSatisfy { (0..<1000).contains($0) })
        #expect(DivideAndConquer.sample(100, of: 1000, generator: &again) == sample)
        #expect(DivideAndConquer.sample(100, of: 1000, generator: &other) != sample)
        #expect(DivideAndConquer.sample(10, of: 4, generator: &other) == [0, 1, 2, 3])
    }

    // MARK: Properties

    static let allRules: [(String, any Aggregator)] = [
        ("median", CoordinateMedian()), ("trimmed-mean", TrimmedMean(trim: 2)), ("krum", Krum(byzantine: 2)),
        ("multi-krum", Krum(byzantine: 2, selecting: nil)), ("bulyan", Bulyan(byzantine: 2)), ("geomedian", GeometricMedian()),
        ("centered-clip", CenteredClipping(radius: 1, iterations: 3, parameterCount: 6)), ("uniform-mean", UniformMean()),
        ("clipped-clustering", ClippedClustering()), ("dnc", DivideAndConquer(byzantine: 2, dimensions: 4, seed: 1)),
        ("afa", AdaptiveFederatedAveraging()),
    ]

    @Test(arguments: allRules.map(\.0))
    func rulesIgnoreTheOrderOfUpdates(_ name: String) {
        let rule = Self.allRules.first { $0.0 == name }!.1
        let rows = gaussianRows(11, 6, seed: 21)
        let permuted = [3, 7, 0, 10, 5, 1, 9, 2, 8, 4, 6].map { rows[$0] }
        #expect(close(aggregated(rule, rows).direction, aggregated(rule, permuted).direction.map(Double.init), 1e-5))
    }

    @Test(arguments: ["median", "trimmed-mean", "krum", "multi-krum", "bulyan", "geomedian", "dnc"])
    func rulesMoveWithACommonShift(_ name: String) {
        let rule = Self.allRules.first { $0.0 == name }!.1
        let rows = gaussianRows(11, 6, seed: 22)
        let shift: [Float] = [5, -3, 0.5, 100, -7, 2]
        let shifted = rows.map { zip($0, shift).map { $0 + $1 } }
        let expected = zip(aggregated(rule, rows).direction, shift).map { Double($0 + $1) }
        #expect(close(aggregated(rule, shifted).direction, expected, 1e-4))
    }

    /// f = 2 of 11 rows at ±1e6: the robust rules stay inside the honest range, Krum picks an
    /// honest row, and the mean is dragged far outside.
    @Test func robustRulesSurviveHugeOutliersAndTheMeanDoesNot() {
        let honest = gaussianRows(9, 6, seed: 23)
        let rows = honest + [[Float](repeating: 1e6, count: 6), [Float](repeating: -1e6, count: 3) + [Float](repeating: 1e6, count: 3)]
        let low = (0..<6).map { k in honest.map { $0[k] }.min()! }, high = (0..<6).map { k in honest.map { $0[k] }.max()! }
        for rule in [CoordinateMedian(), TrimmedMean(trim: 2), Bulyan(byzantine: 2)] as [any Aggregator] {
            let result = aggregated(rule, rows).direction
            #expect((0..<6).allSatisfy { result[$0] >= low[$0] && result[$0] <= high[$0] }, "\(rule)")
        }
        #expect(aggregated(Krum(byzantine: 2), rows).selected!.allSatisfy { $0 < 9 })
        #expect(aggregated(Krum(byzantine: 2, selecting: nil), rows).selected!.allSatisfy { $0 < 9 })
        #expect(aggregated(UniformMean(), rows).direction.contains { abs($0) > 1e4 })
    }

    /// Updates of 1e-4 per coordinate on top of a shared part 1e4 times larger (what full model
    /// weights look like): Float Gram distances lose them, the centered Double ones do not. The
    /// reference sums (xᵢ − xⱼ)² directly in Double.
    @Test func krumPicksTheRightUpdateWhenUpdatesAreTiny() {
        var generator = SeededGenerator(seed: 24)
        let common = (0..<20_000).map { _ in Float(generator.nextGaussian()) }
        for trial in 0..<5 {
            let rows = gaussianRows(10, 20_000, seed: 100 + UInt64(trial), scale: 1e-4).map { zip($0, common).map { $0 + $1 } }
            let distances = PairwiseDistances(rows)
            func exact(_ i: Int, _ j: Int) -> Double {
                var sum = 0.0
                for k in rows[i].indices {
                    let difference = Double(rows[i][k]) - Double(rows[j][k])
                    sum += difference * difference
                }
                return sum
            }
            for i in 0..<10 {
                for j in 0..<10 where i != j { #expect(abs(distances[i, j] - exact(i, j)) <= 1e-9 * exact(i, j)) }
            }
            let exactScores = (0..<10).map { i -> Double in
                let nearest = (0..<10).filter { $0 != i }.map { exact(i, $0) }.sorted()
                return nearest.prefix(10 - 2 - 2).reduce(0, +)
            }
            let exactPick = exactScores.indices.min { exactScores[$0] < exactScores[$1] }!
            #expect(Krum.select(distances, byzantine: 2, count: 1) == [exactPick])
        }
    }

    // MARK: Adaptive federated averaging

    /// Four updates along x, one against: the mean is [0.6, 0], the similarities 1, 1, 1, 1, −1
    /// (mean 0.6 < median 1, σ = 0.8), so below 1 − 2·0.8 is out; the four left agree (σ = 0), and
    /// nothing else leaves. Round 2 shows the reputation weights: client 4 now weighs 3/7, the
    /// others 4/7, so [2, 0] among four [1, 0] gives (16/7 + 6/7) / (19/7) = 22/19, not 6/5.
    @Test func adaptiveAveragingDropsTheOutlierSideAndWeighsByReputation() {
        var rule = AdaptiveFederatedAveraging()
        let first = rule.aggregate(updates([[1, 0], [1, 0], [1, 0], [1, 0], [-1, 0]]), round: 1)
        #expect(first.direction == [1, 0] && first.selected == [0, 1, 2, 3])
        #expect(rule.reputations[0] == .init(good: 4, bad: 3) && rule.reputations[4] == .init(good: 3, bad: 4))
        let second = rule.aggregate(updates([[1, 0], [1, 0], [1, 0], [1, 0], [2, 0]]), round: 2)
        #expect(close(second.direction, [22.0 / 19, 0]) && second.selected == [0, 1, 2, 3, 4])
    }

    /// Low outliers when the mean is below the median, high ones otherwise (σ of the population).
    @Test func adaptiveAveragingFlagsTheSideTheMeanLeansTo() {
        // Mean 0.6, median 1, σ 0.8: below −0.6 only.
        #expect(AdaptiveFederatedAveraging.outliers([1, 1, 1, 1, -1], slack: 2) == [false, false, false, false, true])
        #expect(AdaptiveFederatedAveraging.outliers([1, 1, 1, 1, -1], slack: 2.5) == [false, false, false, false, false])
        // Mean 0.26 ≥ median 0.1, σ 0.32: above 0.74 only.
        #expect(AdaptiveFederatedAveraging.outliers([0.1, 0.1, 0.9, 0.1, 0.1], slack: 2) == [false, false, true, false, false])
    }

    /// `P(p < ½)` under Beta(α, β), against SciPy 1.17.1's `beta.cdf(0.5, α, β)`.
    @Test func adaptiveAveragingBlockingProbabilityMatchesTheBetaDistribution() {
        let golden: [(Int, Int, Double)] = [(3, 3, 0.5), (3, 8, 0.9453125), (3, 9, 0.96728515625), (4, 9, 0.927001953125),
                                           (10, 3, 0.019287109375), (3, 20, 0.9999394416809082)]
        for (a, b, p) in golden {
            #expect(abs(AdaptiveFederatedAveraging.probabilityBad(good: a, bad: b) - p) <= 1e-13, "Beta(\(a), \(b))")
        }
    }

    /// A client flagged every round from the Beta(3, 3) prior is blocked by its sixth flag
    /// (I₀.₅(3, 9) = 0.967 ≥ 0.95; after five, 0.945), and its later updates, however honest,
    /// are ignored. The reputations survive a checkpoint: a restored rule continues identically.
    @Test func adaptiveAveragingBlocksARepeatOffenderAndCheckpointsReputations() throws {
        var rule = AdaptiveFederatedAveraging()
        let attacked: [[Float]] = [[1, 0.1], [1, -0.1], [0.9, 0], [1.1, 0], [-1, 0]]
        for round in 1...5 { #expect(rule.aggregate(updates(attacked), round: round).selected == [0, 1, 2, 3]) }
        #expect(rule.reputations[4] == .init(good: 3, bad: 8, blocked: false))
        var restored = AdaptiveFederatedAveraging()
        try restored.restore(rule.state)
        #expect(restored.reputations == rule.reputations)
        let sixth = rule.aggregate(updates(attacked), round: 6)
        #expect(restored.aggregate(updates(attacked), round: 6).direction == sixth.direction)
        #expect(rule.reputations[4] == .init(good: 3, bad: 9, blocked: true) && restored.reputations == rule.reputations)
        let honest = rule.aggregate(updates([[1, 0], [1, 0], [1, 0], [1, 0], [1, 0]]), round: 7)
        #expect(honest.selected == [0, 1, 2, 3] && rule.reputations[4] == .init(good: 3, bad: 9, blocked: true))
        #expect(rule.state[AdaptiveFederatedAveraging.stateName]?.count == 20)
        for bad: [Float] in [[1, 3, 3], [1, 2, 3, 0], [1, 3, 3, 2], [-1, 3, 3, 0], [1.5, 3, 3, 0], [.nan, 3, 3, 0]] {
            var fresh = AdaptiveFederatedAveraging()
            #expect(throws: CheckpointError.self) { try fresh.restore([AdaptiveFederatedAveraging.stateName: bad]) }
        }
    }

    /// Forty honest updates around a common direction that is small beside each one's own part
    /// (pairwise cosines about 0.08), and ten that send the negation of an update of the same
    /// kind (sign flipping): every flipped one is dropped, no honest one.
    @Test func adaptiveAveragingDropsSignFlippedUpdatesAmongNearlyOrthogonalHonestOnes() {
        var generator = SeededGenerator(seed: 31)
        let common = (0..<200).map { _ in Float(0.3 * generator.nextGaussian()) }
        let rows = gaussianRows(50, 200, seed: 32).enumerated().map { index, noise in
            zip(noise, common).map { index < 40 ? $0 + $1 : -($0 + $1) }
        }
        #expect(aggregated(AdaptiveFederatedAveraging(), rows).selected == Array(0..<40))
    }

    // MARK: Configuration

    @Test func specsParseAndBadOnesAreRefusedWithOneLine() throws {
        #expect(try AggregatorSpec(parsing: "multi-krum:2:5").rule == .multiKrum(2, 5))
        #expect(try AggregatorSpec(parsing: "centered-clip:0.5").rule == .centeredClip(0.5, 3))
        #expect(try AggregatorSpec(parsing: "mean").isPlainMean)
        #expect(try AggregatorSpec(parsing: "clipped-clustering").rule == .clippedClustering)
        #expect(try AggregatorSpec(parsing: "afa").rule == .adaptiveFederatedAveraging)
        #expect(throws: ConfigurationError.self) { try AggregatorSpec(parsing: "afa", bucketing: 2) }  // reputations are per client
        #expect(try AggregatorSpec(parsing: "dnc:10").rule == .divideAndConquer(10, 1, 10_000))
        #expect(try AggregatorSpec(parsing: "dnc:2:3:500").rule == .divideAndConquer(2, 3, 500))
        for bad in ["krum", "krum:x", "trimmed-mean:-1", "median:3", "clipped-clustering:2", "afa:1", "dnc", "dnc:1:0", "dnc:1:1:0", "dnc:1:1:1:1", "centered-clip:0", "multi-krum:1:0", "avg", "krum:5000000000000000000", "bulyan:1000001"] {
            #expect(throws: ConfigurationError.self) { try AggregatorSpec(parsing: bad) }
        }
        #expect(throws: ConfigurationError.self) { try AggregatorSpec(parsing: "median", bucketing: 1) }
        #expect(throws: ConfigurationError.self) { try AggregatorSpec(parsing: "median", bucketing: Int.max) }
        #expect(throws: ConfigurationError.self) { try AggregatorSpec(parsing: "median", normBound: 0) }
        var configuration = SimulationConfiguration()
        configuration.robustness.aggregator = "krum:4"
        #expect(throws: ConfigurationError.self) { try configuration.validate() }  // 10 clients ≤ 2·4 + 2
        configuration.federation.clients = 50
        #expect(try configuration.requiredReplies() == 11)  // a networked server waits for 2f + 3
        configuration.robustness.bucketing = 2
        #expect(try configuration.requiredReplies() == 21)
        configuration.robustness.aggregator = "median"
        configuration.federation.strategy = "fednova"
        #expect(throws: ConfigurationError.self) { try configuration.validate() }
    }

    /// A robust rule composes with a server optimizer, and its state (centered clipping's center)
    /// is checkpointed with the strategy's.
    @Test func robustRulesComposeWithServerOptimizersAndCheckpoint() throws {
        var federation = FederationSection()
        federation.clients = 5
        federation.strategy = "fedavgm:0.9"
        var robustness = RobustnessSection()
        robustness.aggregator = "centered-clip:1:1"
        var strategy = try StrategyFactory(federation: federation, training: LocalTrainingSection(), robustness: robustness).make(parameterCount: 2)
        #expect(Set(strategy.state.keys) == ["server.velocity", CenteredClipping.stateName])
        let next = strategy.aggregate(round: 1, global: [0, 0], results: updates([[3, 4], [0.3, 0.4]]), failures: [])!
        #expect(close(next, [0.45, 0.6]))  // first momentum step: v = aggregate
        var restored = try StrategyFactory(federation: federation, training: LocalTrainingSection(), robustness: robustness).make(parameterCount: 2)
        try restored.restore(strategy.state)
        #expect(restored.state == strategy.state)
    }
}
