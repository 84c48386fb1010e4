import Engine

/// Pure aggregation maths on flat vectors (one layout), each a single pass in a fixed order so
/// results do not depend on thread counts. Tested on literal arrays.
public enum Aggregation {
    /// `Σ wᵢ · vᵢ`, summed in the order given; vectors must share one length.
    public static func weightedSum(_ vectors: [[Float]], weights: [Double]) -> [Float] {
        precondition(!vectors.isEmpty && vectors.count == weights.count)
        var result = [Float](repeating: 0, count: vectors[0].count)
        result.withUnsafeMutableBufferPointer { out in
            for (vector, weight) in zip(vectors, weights) {
                precondition(vector.count == out.count, "vectors differ in length")
                vector.withUnsafeBufferPointer { v in
                    BLAS.axpy(count: out.count, alpha: Float(weight), v.baseAddress!, out.baseAddress!)
                }
            }
        }
        return result
    }

    /// `Σ wᵢ · vᵢ / Σ wᵢ`, summed in the order given. Weights must be non-negative with a
    /// positive sum.
    public static func weightedMean(_ vectors: [[Float]], weights: [Double]) -> [Float] {
        let total = weights.reduce(0, +)
        precondition(total > 0 && weights.allSatisfy { $0 >= 0 }, "weights must be non-negative with a positive sum")
        return weightedSum(vectors, weights: weights.map { $0 / total })
    }

    /// The coordinate-wise mean of `rows` in Double (summed in row order, then divided): the
    /// center robust rules and attacks start from.
    public static func mean(inDouble rows: [[Float]]) -> [Double] {
        precondition(!rows.isEmpty)
        let d = rows[0].count
        var mean = [Double](repeating: 0, count: d)
        mean.withUnsafeMutableBufferPointer { mean in
            for row in rows {
                precondition(row.count == d, "vectors differ in length")
                row.withUnsafeBufferPointer { row in for k in 0..<d { mean[k] += Double(row[k]) } }
            }
            for k in 0..<d { mean[k] /= Double(rows.count) }
        }
        return mean
    }

    /// `x + scale · d`, element-wise.
    public static func adding(_ x: [Float], _ d: [Float], scale: Float = 1) -> [Float] {
        precondition(x.count == d.count)
        var result = x
        result.withUnsafeMutableBufferPointer { r in
            d.withUnsafeBufferPointer { BLAS.axpy(count: r.count, alpha: scale, $0.baseAddress!, r.baseAddress!) }
        }
        return result
    }

    /// FedNova's effective number of steps of local SGD with momentum `rho` over `steps` steps
    /// (Wang et al. 2020, as NIID-Bench implements it): `a = (τ − ρ(1 − ρ^τ)/(1 − ρ)) / (1 − ρ)`;
    /// for plain SGD (`rho = 0`) it is `τ`.
    public static func fedNovaNorm(steps: Int, momentum rho: Double) -> Double {
        guard rho > 0 else { return Double(steps) }
        let tau = Double(steps)
        return (tau - rho * (1 - pow(rho, tau)) / (1 - rho)) / (1 - rho)
    }

    /// Server optimizers of Reddi et al. 2021 on the pseudo-gradient `delta` (the mean client
    /// update): `m = β₁m + (1 − β₁)Δ`; `v` by Adam, Yogi or Adagrad; `x += η · m / (√v + τ)`.
    /// Updates `m`, `v` and `x` in place.
    public static func adaptiveStep(
        kind: AdaptiveKind, x: inout [Float], delta: [Float], m: inout [Float], v: inout [Float],
        eta: Float, beta1: Float, beta2: Float, tau: Float
    ) {
        precondition(x.count == delta.count && m.count == delta.count && v.count == delta.count)
        for i in delta.indices {
            let d = delta[i], d2 = d * d
            m[i] = beta1 * m[i] + (1 - beta1) * d
            switch kind {
            case .adam: v[i] = beta2 * v[i] + (1 - beta2) * d2
            case .yogi: v[i] = v[i] - (1 - beta2) * d2 * (v[i] - d2 > 0 ? 1 : (v[i] - d2 < 0 ? -1 : 0))
            case .adagrad: v[i] = v[i] + d2
            }
            x[i] += eta * m[i] / (v[i].squareRoot() + tau)
        }
    }

    public enum AdaptiveKind: String, Sendable, Codable { case adam, yogi, adagrad }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
