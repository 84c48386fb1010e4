import Engine

/// Divide-and-conquer (DnC; Shejwalkar and Houmansadr, NDSS 2021, the defense they propose
/// beside the min-max and min-sum attacks; Blades' `Dnc` for the defaults). `iterations` times:
/// draw `dimensions` coordinates without replacement, center the updates' values there on their
/// mean, and score each update by its squared projection on the top singular direction of that
/// centered matrix; the `f` highest scores are dropped. The result is the unweighted mean of the
/// updates no iteration dropped (with one iteration, the default, Blades' union and an
/// intersection agree; more iterations here keep only updates that look honest in every
/// subsample).
///
/// Colluders far out along one shared direction (min-max) dominate the spread of the
/// round's updates there, so they score highest; min-sum's, kept close to every honest update,
/// do not (docs/robustness.md). The
/// projection scores come from the `n × n` Gram matrix `G` of the centered rows: with `u` its
/// top unit eigenvector and `λ` the eigenvalue, `⟨cᵢ, v⟩² = λ·uᵢ²`. The coordinates come from
/// (seed, round, iteration), so a run is reproducible. Unweighted.
public struct DivideAndConquer: Aggregator {
    public let byzantine: Int
    public let iterations: Int
    public let dimensions: Int
    public let seed: UInt64

    /// Blades' default subsample size.
    public static let defaultDimensions = 10_000

    public init(byzantine: Int, iterations: Int = 1, dimensions: Int = Self.defaultDimensions, seed: UInt64) {
        precondition(byzantine >= 0 && iterations >= 1 && dimensions >= 1)
        (self.byzantine, self.iterations, self.dimensions, self.seed) = (byzantine, iterations, dimensions, seed)
    }

    /// Each iteration drops at most `f` updates, so this many always leave at least one.
    public var minimumUpdates: Int { iterations * byzantine + 1 }

    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        let rows = results.map(\.delta)
        var kept = Set(rows.indices)
        for iteration in 0..<iterations {
            var generator = SeededGenerator.derived(seed: seed, RandomStream.divideAndConquer.rawValue, UInt64(round), UInt64(iteration))
            let coordinates = Self.sample(dimensions, of: rows[0].count, generator: &generator)
            let scores = Self.scores(rows.map { row in coordinates.map { row[$0] } })
            kept.formIntersection(Self.lowest(scores, keeping: rows.count - byzantine))
        }
        let chosen = kept.sorted()
        return Aggregate(direction: Aggregation.weightedMean(chosen.map { rows[$0] }, weights: [Double](repeating: 1, count: chosen.count)),
                         selected: chosen.map { results[$0].client })
    }

    /// `⟨rowᵢ − μ, v⟩²` for each row, with μ the rows' mean and v the top right singular vector of
    /// the centered rows (zero scores when all rows are equal).
    public static func scores(_ rows: [[Float]]) -> [Double] {
        // `gram` fills the upper triangle, the one `largestEigenpair` reads.
        let gram = PairwiseDistances.gram(rows, centeredOn: Aggregation.mean(inDouble: rows))
        let (value, vector) = LAPACK.largestEigenpair(symmetric: gram, n: rows.count)
        return vector.map { max(0, value) * $0 * $0 }
    }

    /// The indices of the `keeping` lowest scores (ties to the earlier index).
    static func lowest(_ scores: [Double], keeping: Int) -> [Int] {
        Array(scores.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }.prefix(keeping))
    }

    /// `count` distinct indices below `length` (all of them when `count >= length`), ascending:
    /// a partial Fisher-Yates shuffle.
    static func sample(_ count: Int, of length: Int, generator: inout SeededGenerator) -> [Int] {
        guard count < length else { return Array(0..<length) }
        var order = Array(0..<length)
        for i in 0..<count { order.swapAt(i, i + Int(generator.next(upperBound: UInt64(length - i)))) }
        return order[0..<count].sorted()
    }
}
