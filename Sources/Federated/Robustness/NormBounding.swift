/// Norm bounding (Sun et al. 2019): every update is clipped to L2 norm `bound` (`L2Clip`, exact in
/// Double) before `inner` aggregates them, so no client moves the model by more than its share
/// of `bound`, however it scales its update (model replacement, boosted backdoors).
public struct NormBounding: Aggregator {
    public let bound: Double
    public private(set) var inner: any Aggregator

    public init(bound: Double, inner: any Aggregator) {
        precondition(bound > 0 && bound.isFinite)
        (self.bound, self.inner) = (bound, inner)
    }

    public var minimumUpdates: Int { inner.minimumUpdates }

    public mutating func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        let bounded = results.map { result -> ClientUpdate in
            var result = result
            L2Clip.clip(&result.delta, to: bound)
            return result
        }
        return inner.aggregate(bounded, round: round)
    }

    public var state: [String: [Float]] { inner.state }
    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) { try inner.restore(state) }
}
