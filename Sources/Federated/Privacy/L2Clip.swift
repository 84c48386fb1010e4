import Engine

/// Flat L2 clipping of a client's update to norm `bound` (DP-FedAvg's clip, McMahan et al. 2018;
/// also a norm bound against outsized updates). Scales the update by `bound / ‖Δ‖` when the norm
/// exceeds the bound, computed so that the norm recomputed in Double never exceeds it: float
/// rounding of the scaled values can overshoot by a few ulps, so the scale steps down one float
/// ulp at a time until it fits. Updates within the bound, the zero update included, pass
/// unchanged. Input must be finite (the client pipeline rejects non-finite updates before its
/// stages run).
public struct L2Clip: UpdateStage {
    public let bound: Double

    public init(bound: Double) {
        precondition(bound > 0 && bound.isFinite, "clip bound must be a positive number")
        self.bound = bound
    }

    public func apply(to update: inout [Float], round: Int, client: Int, generator: inout SeededGenerator) {
        Self.clip(&update, to: bound)
    }

    /// The L2 norm, summed in Double.
    public static func norm(_ values: [Float]) -> Double {
        var sum = 0.0
        for value in values { sum += Double(value) * Double(value) }
        return sum.squareRoot()
    }

    /// Clips `values` in place; returns the norm before clipping.
    @discardableResult
    public static func clip(_ values: inout [Float], to bound: Double) -> Double {
        precondition(values.allSatisfy(\.isFinite), "clipping needs a finite update")
        let original = norm(values)
        guard original > bound else { return original }
        let source = values
        var scale = Float(bound / original)
        while true {
            for i in values.indices { values[i] = source[i] * scale }
            if norm(values) <= bound { return original }
            scale = scale.nextDown
        }
    }
}
