/// Short-vector helpers for the row-sized loops of im2col, col2im, pooling and bias sums, where
/// calls to memcpy or scalar loops cost more than the work. All take explicit lengths; none reads
/// or writes outside `[pointer, pointer + count)`.
public enum VectorKernels {
    /// Whether the build targets 32 vector registers of 16 floats (AVX-512 hosts, which define
    /// `WIDE_VECTORS`; see Package.swift). Register-blocked kernels then keep twice as many
    /// independent sums, enough to cover FMA latency with 16-float vectors; otherwise they size
    /// their blocks for 16 AVX2 registers. A constant, so the unused half of a kernel folds away.
    #if WIDE_VECTORS
    static let wideRegisters = true
    #else
    static let wideRegisters = false
    #endif

    @inline(__always)
    static func load<V: SIMD>(_ pointer: UnsafePointer<Float>, as type: V.Type) -> V where V.Scalar == Float {
        UnsafeRawPointer(pointer).loadUnaligned(as: V.self)
    }

    @inline(__always)
    static func store<V: SIMD>(_ value: V, _ pointer: UnsafeMutablePointer<Float>) where V.Scalar == Float {
        UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: V.self)
    }

    /// `target[0..<count] = source[0..<count]`; the ranges must not overlap. The last vector
    /// may overlap the previous one, which is harmless for a copy.
    @inline(__always)
    static func copy(_ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>, count: Int) {
        if count >= 16 {
            var i = 0
            while i + 16 <= count {
                store(load(source + i, as: SIMD16<Float>.self), target + i)
                i += 16
            }
            if i < count { store(load(source + count - 16, as: SIMD16<Float>.self), target + count - 16) }
        } else if count >= 8 {
            store(load(source, as: SIMD8<Float>.self), target)
            store(load(source + count - 8, as: SIMD8<Float>.self), target + count - 8)
        } else if count >= 4 {
            store(load(source, as: SIMD4<Float>.self), target)
            store(load(source + count - 4, as: SIMD4<Float>.self), target + count - 4)
        } else {
            for i in 0..<count { target[i] = source[i] }
        }
    }

    /// `target[0..<count] += source[0..<count]`.
    @inline(__always)
    static func add(_ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 16 <= count {
            store(load(source + i, as: SIMD16<Float>.self) + load(target + i, as: SIMD16<Float>.self), target + i)
            i += 16
        }
        if i + 8 <= count {
            store(load(source + i, as: SIMD8<Float>.self) + load(target + i, as: SIMD8<Float>.self), target + i)
            i += 8
        }
        if i + 4 <= count {
            store(load(source + i, as: SIMD4<Float>.self) + load(target + i, as: SIMD4<Float>.self), target + i)
            i += 4
        }
        while i < count {
            target[i] += source[i]
            i += 1
        }
    }

    /// Sum of `count` floats with 16 running partial sums (a fixed order, so deterministic).
    @inline(__always)
    static func sum(_ source: UnsafePointer<Float>, count: Int) -> Float {
        var partial = SIMD16<Float>()
        var i = 0
        while i + 16 <= count {
            partial += load(source + i, as: SIMD16<Float>.self)
            i += 16
        }
        var total = partial.halvingSum
        while i < count {
            total += source[i]
            i += 1
        }
        return total
    }

    /// Σ x², each term and the sum in Double, in four interleaved partial sums (per-sample
    /// gradient norms, DP-SGD's clip, L2Clip). Memory-bound on updates that are not in cache:
    /// more partial sums, which would change the bits, measured no faster.
    public static func squaredNorm(_ source: UnsafePointer<Float>, count: Int) -> Double {
        squaredNorm(source, count: count, scaledBy: 1)
    }

    /// `squaredNorm` of the values `source[i] · scale` (each product rounded to Float), in its
    /// order and so to the same bits, without writing them: a clip checks the scale it would
    /// apply before it applies it. (`x · 1` is `x`: the unscaled norm is this one at scale 1.)
    @inline(__always)
    public static func squaredNorm(_ source: UnsafePointer<Float>, count: Int, scaledBy scale: Float) -> Double {
        let raw = UnsafeRawPointer(source)
        var partial = SIMD4<Double>()
        var i = 0
        while i + 4 <= count {
            let x = SIMD4<Double>(raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD4<Float>.self) * scale)
            partial += x * x
            i += 4
        }
        var total = partial.sum()
        while i < count {
            let x = Double(source[i] * scale)
            total += x * x
            i += 1
        }
        return total
    }

    /// Whether every value is finite (no NaN, no infinity): the exponent fields of 16 values are
    /// tested at a time (a generic `allSatisfy(\.isFinite)` took about 20 instructions a value).
    public static func allFinite(_ values: [Float]) -> Bool {
        values.withUnsafeBufferPointer { buffer in
            let count = buffer.count, exponent = SIMD16<UInt32>(repeating: 0x7F80_0000)
            guard let base = buffer.baseAddress else { return true }
            let raw = UnsafeRawPointer(base)
            var special = SIMDMask<SIMD16<Int32>>(repeating: false)
            var i = 0
            while i + 16 <= count {
                special .|= (raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<UInt32>.self) & exponent) .== exponent
                i += 16
            }
            guard !any(special) else { return false }
            while i < count {
                guard base[i].isFinite else { return false }
                i += 1
            }
            return true
        }
    }
}

/// Float vectors whose lanes are summed by halving the vector in registers. The standard
/// library's `sum()` on `SIMD16<Float>` ran as an out-of-line loop over lanes (1.4% of a
/// training step in the weight-gradient kernel's 12 sums per tap pair).
protocol HalvingSum: SIMD where Scalar == Float {
    var halvingSum: Float { get }
}

extension SIMD8: HalvingSum where Scalar == Float {
    @inline(__always)
    var halvingSum: Float {
        let half = lowHalf + highHalf, quarter = half.lowHalf + half.highHalf
        return quarter[0] + quarter[1]
    }
}

extension SIMD16: HalvingSum where Scalar == Float {
    @inline(__always)
    var halvingSum: Float { (lowHalf + highHalf).halvingSum }
}
