import Engine

/// Flat L2 clipping of a client's update to norm `bound` (DP-FedAvg's clip, McMahan et al. 2018;
/// also a norm bound against outsized updates). Scales the update by `bound / ‖Δ‖` when the norm
/// exceeds the bound, computed so that the norm recomputed in Double never exceeds it: float
/// rounding of the scaled values can overshoot by a few ulps, so the scale steps down one float
/// ulp at a time until it fits. Updates within the bound, the zero update included, pass
/// unchanged. Input must be finite (the client pipeline rejects non-finite updates before its
/// stages run).
///
/// With `layers` (per-layer clipping, McMahan et al. 2018), each of the L tensors of the layout
/// is clipped on its own to `bound / √L`, so ΣC_l² = C² and the whole update stays within C.
public struct L2Clip: UpdateStage {
    public let bound: Double
    public let layers: ParameterLayout?

    public init(bound: Double, layers: ParameterLayout? = nil) {
        precondition(bound > 0 && bound.isFinite, "clip bound must be a positive number")
        (self.bound, self.layers) = (bound, layers)
    }

    public func apply(to update: inout [Float], round: Int, client: Int, generator: inout SeededGenerator) {
        Self.clip(&update, to: bound, layers: layers)
    }

    /// Clips flat, or per tensor of `layers`; returns the update's norm before clipping.
    @discardableResult
    public static func clip(_ values: inout [Float], to bound: Double, layers: ParameterLayout?) -> Double {
        guard let layers else { return clip(&values, to: bound) }
        precondition(layers.count == values.count, "update and layout differ in length")
        let layerBound = bound / Double(layers.entries.count).squareRoot()
        var squared = 0.0
        for entry in layers.entries {
            var slice = Array(values[entry.offset..<(entry.offset + entry.count)])
            let norm = clip(&slice, to: layerBound)
            squared += norm * norm
            values.replaceSubrange(entry.offset..<(entry.offset + entry.count), with: slice)
        }
        return squared.squareRoot()
    }

    /// The L2 norm, summed in Double (`VectorKernels.squaredNorm`'s order: the norm this clip's
    /// bound holds for).
    public static func norm(_ values: [Float]) -> Double {
        values.withUnsafeBufferPointer { $0.baseAddress.map { VectorKernels.squaredNorm($0, count: values.count) } ?? 0 }.squareRoot()
    }

    /// Clips `values` in place; returns the norm before clipping. Each candidate scale is checked
    /// on the values it would give before any is written, so the update is written once.
    @discardableResult
    public static func clip(_ values: inout [Float], to bound: Double) -> Double {
        let original = norm(values)
        // A NaN or an infinity makes the norm non-finite; finite floats cannot overflow it in Double.
        precondition(original.isFinite, "clipping needs a finite update")
        guard original > bound else { return original }
        var scale = Float(bound / original)
        values.withUnsafeMutableBufferPointer { values in
            while VectorKernels.squaredNorm(values.baseAddress!, count: values.count, scaledBy: scale).squareRoot() > bound { scale = scale.nextDown }
            for i in values.indices { values[i] *= scale }
        }
        return original
    }
}
