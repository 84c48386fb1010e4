/// Clipped clustering (Li, Xie and Lu, "An Experimental Study of Byzantine-Robust Aggregation
/// Schemes in Federated Learning", IEEE Trans. Big Data 2023; Blades' `Clippedclustering`):
///
/// 1. every update's L2 norm joins the run's history, and each update longer than the median of
///    that history (all rounds, all clients, this round included) is scaled down to it, so no
///    client outweighs a typical one;
/// 2. the updates are split into two clusters by agglomerative clustering with average linkage
///    on the cosine distance `1 − cos(Δᵢ, Δⱼ)` (2 when either update is zero), which scaling does
///    not change;
/// 3. the result is the unweighted mean of the clipped updates of the larger cluster (on a tie,
///    the cluster holding the first update in sampled order).
///
/// Attackers who send one crafted direction (min-max, min-sum, IPM) point away from the honest
/// majority and end up in the smaller cluster; a lone attacker that hides among the honest
/// updates is clipped to a typical norm. Sign flipping on non-IID data is not caught this way:
/// a client's flipped update looks like an honest one from clients with other labels, and the
/// flippers join whichever half of the honest clients it resembles (docs/robustness.md). The norm history is the rule's state, checkpointed as
/// `aggregator.norms` (stored in Float, so a resumed run clips exactly as an uninterrupted one).
/// Unweighted: a liar's sample count buys nothing.
public struct ClippedClustering: Aggregator {
    public static let stateName = "aggregator.norms"
    public private(set) var norms: [Float] = []

    public init() {}

    /// Two clusters need three updates to have a majority.
    public var minimumUpdates: Int { 3 }

    public mutating func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        let rows = results.map(\.delta)
        let roundNorms = rows.map { Float(L2Clip.norm($0)) }
        norms += roundNorms
        var sorted = norms.sorted()
        let threshold = sorted.withUnsafeMutableBufferPointer { CoordinateWise.median(ofSorted: $0) }
        let kept = Self.majorityCluster(Self.cosineDistances(rows))
        let clipped = kept.map { index -> [Float] in
            var row = rows[index]
            if Double(roundNorms[index]) > threshold { L2Clip.clip(&row, to: threshold) }
            return row
        }
        return Aggregate(direction: Aggregation.weightedMean(clipped, weights: [Double](repeating: 1, count: clipped.count)),
                         selected: kept.map { results[$0].client })
    }

    /// `1 − cos(rowᵢ, rowⱼ)` for every pair, row-major `n × n`, from one uncentered Gram matrix
    /// in Double; 2 (as far as opposite directions) when either row is zero or not finite.
    public static func cosineDistances(_ rows: [[Float]]) -> [Double] {
        let n = rows.count, gram = PairwiseDistances.gram(rows, centeredOn: nil)
        var distances = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in (i + 1)..<n {
                let scale = (gram[i * n + i] * gram[j * n + j]).squareRoot()
                let cosine = gram[i * n + j] / scale
                let distance = scale > 0 && cosine.isFinite ? 1 - min(1, max(-1, cosine)) : 2
                distances[i * n + j] = distance
                distances[j * n + i] = distance
            }
        }
        return distances
    }

    /// Agglomerative clustering with average linkage (UPGMA) of `distances` (row-major `n × n`,
    /// symmetric) down to two clusters: the members of the larger one, ascending. Each step
    /// merges the two closest clusters (ties to the lowest pair of indices), their distance to
    /// every other cluster becoming the size-weighted average (Lance and Williams).
    public static func majorityCluster(_ distances: [Double]) -> [Int] {
        let n = Int(Double(distances.count).squareRoot())
        precondition(n * n == distances.count && n >= 1)
        var distance = distances
        var members = (0..<n).map { [$0] }
        var active = Array(0..<n)
        while active.count > 2 {
            var best = (distance: Double.infinity, a: 0, b: 0)
            for (position, i) in active.enumerated() {
                for j in active[(position + 1)...] where distance[i * n + j] < best.distance { best = (distance[i * n + j], i, j) }
            }
            if best.distance == .infinity { (best.a, best.b) = (active[0], active[1]) }
            let (a, b) = (best.a, best.b)
            let (sizeA, sizeB) = (Double(members[a].count), Double(members[b].count))
            for k in active where k != a && k != b {
                let merged = (sizeA * distance[k * n + a] + sizeB * distance[k * n + b]) / (sizeA + sizeB)
                distance[k * n + a] = merged
                distance[a * n + k] = merged
            }
            members[a] += members[b]
            active.removeAll { $0 == b }
        }
        let clusters = active.map { members[$0].sorted() }
        guard clusters.count == 2 else { return clusters[0] }
        return clusters[1].count > clusters[0].count || (clusters[1].count == clusters[0].count && clusters[1][0] < clusters[0][0])
            ? clusters[1] : clusters[0]
    }

    public var state: [String: [Float]] { norms.isEmpty ? [:] : [Self.stateName: norms] }

    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {
        norms = state[Self.stateName] ?? []
        guard norms.allSatisfy({ $0.isFinite && $0 >= 0 }) else { throw CheckpointError("checkpoint: \(Self.stateName) holds a negative or non-finite norm") }
    }
}
