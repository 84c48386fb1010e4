/// Centered clipping (Karimireddy, He and Jaggi 2021): starting from the previous round's
/// aggregate `v` (zero before the first round), `iterations` times
/// `v ← v + (1/n) Σ (Δᵢ − v) · min(1, τ / ‖Δᵢ − v‖)`, in Double. No update moves the result by
/// more than `τ/n` per iteration however large it is. The last aggregate is the rule's state
/// (checkpointed as `aggregator.center`). Unweighted.
public struct CenteredClipping: Aggregator {
    public static let stateName = "aggregator.center"
    public let radius: Double
    public let iterations: Int
    public private(set) var center: [Float]

    public init(radius: Double, iterations: Int = 3, parameterCount: Int) {
        precondition(radius > 0 && iterations >= 1)
        (self.radius, self.iterations) = (radius, iterations)
        center = [Float](repeating: 0, count: parameterCount)
    }

    public mutating func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        center = Self.clipAround(results.map(\.delta), center: center, radius: radius, iterations: iterations)
        return Aggregate(direction: center)
    }

    public static func clipAround(_ rows: [[Float]], center: [Float], radius: Double, iterations: Int) -> [Float] {
        precondition(!rows.isEmpty && rows.allSatisfy { $0.count == center.count })
        var v = center.map(Double.init)
        for _ in 0..<iterations {
            var step = [Double](repeating: 0, count: v.count)
            for row in rows {
                var squared = 0.0
                for k in v.indices {
                    let difference = Double(row[k]) - v[k]
                    squared += difference * difference
                }
                let norm = squared.squareRoot(), factor = norm > radius ? radius / norm : 1
                for k in v.indices { step[k] += (Double(row[k]) - v[k]) * factor }
            }
            for k in v.indices { v[k] += step[k] / Double(rows.count) }
        }
        return v.map { Float($0) }
    }

    public var state: [String: [Float]] { [Self.stateName: center] }

    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {
        center = try restoredVector(state, Self.stateName, count: center.count)
    }
}
