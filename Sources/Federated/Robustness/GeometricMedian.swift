/// The geometric median, `argmin_z Σ ‖z − Δᵢ‖` (RFA, Pillutla et al. 2022), by the smoothed
/// Weiszfeld iteration `z ← Σ βᵢΔᵢ / Σ βᵢ` with `βᵢ = 1 / max(ν, ‖z − Δᵢ‖)`, in Double.
/// Starts from the plain mean (so the result moves with a common shift of the updates), and
/// stops when the objective improves by less than `tolerance` (relative) or after
/// `maxIterations`. Unweighted.
public struct GeometricMedian: Aggregator {
    public let maxIterations: Int
    public let smoothing: Double
    public let tolerance: Double

    public init(maxIterations: Int = 100, smoothing: Double = 1e-6, tolerance: Double = 1e-7) {
        precondition(maxIterations >= 1 && smoothing > 0 && tolerance >= 0)
        (self.maxIterations, self.smoothing, self.tolerance) = (maxIterations, smoothing, tolerance)
    }

    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        Aggregate(direction: median(results.map(\.delta)).map { Float($0) })
    }

    public func median(_ rows: [[Float]]) -> [Double] {
        precondition(!rows.isEmpty)
        let d = rows[0].count
        var z = Aggregation.mean(inDouble: rows)
        var distances = rows.map { Self.distance(z, $0) }
        var objective = distances.reduce(0, +)
        for _ in 0..<maxIterations {
            let weights = distances.map { 1 / max(smoothing, $0) }, total = weights.reduce(0, +)
            var next = [Double](repeating: 0, count: d)
            for (row, weight) in zip(rows, weights) { for k in 0..<d { next[k] += weight * Double(row[k]) } }
            for k in 0..<d { next[k] /= total }
            let nextDistances = rows.map { Self.distance(next, $0) }, nextObjective = nextDistances.reduce(0, +)
            guard nextObjective < objective else { break }
            let improvement = objective - nextObjective
            (z, distances, objective) = (next, nextDistances, nextObjective)
            if improvement <= tolerance * objective { break }
        }
        return z
    }

    static func distance(_ z: [Double], _ row: [Float]) -> Double {
        var sum = 0.0
        for k in z.indices {
            let difference = z[k] - Double(row[k])
            sum += difference * difference
        }
        return sum.squareRoot()
    }
}
