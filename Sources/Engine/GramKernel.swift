/// `C += A·Aᵀ` in Double for a row-major `rows × width` matrix A: the inner products of A's rows
/// (a Gram matrix), register-blocked 4 rows by 4 rows with one vector accumulator per pair, for
/// robust aggregation's pairwise distances. OpenBLAS's `dsyrk` takes about 100 ms for 100 rows of
/// 61,706 where this runs on the SIMD unit the build targets. Deterministic: each entry sums the
/// same products in the same order whatever the machine load; the order depends on the build's
/// vector width (AVX-512 or AVX2 builds may round differently, like the engine's other kernels).
public enum GramKernel {
    /// `rows` must be a multiple of 4 and `width` of 8 (callers pad with zeros); `c` is
    /// `rows × rows` row-major. Entries `(i, j)` with `i <= j` are updated (and, in the 4×4
    /// blocks on the diagonal, the ones below it too).
    public static func accumulateUpper(rows: Int, width: Int, _ a: UnsafePointer<Double>, _ c: UnsafeMutablePointer<Double>) {
        precondition(rows % 4 == 0 && width % 8 == 0, "pad the Gram input to 4 rows and 8 columns")
        if VectorKernels.wideRegisters {
            blocked(SIMD8<Double>.self, rows: rows, width: width, a, c)
        } else {
            blocked(SIMD4<Double>.self, rows: rows, width: width, a, c)
        }
    }

    @inline(__always)
    private static func load<V: SIMD>(_ pointer: UnsafePointer<Double>, as type: V.Type) -> V where V.Scalar == Double {
        UnsafeRawPointer(pointer).loadUnaligned(as: V.self)
    }

    private static func blocked<V: SIMD>(_ type: V.Type, rows: Int, width: Int, _ a: UnsafePointer<Double>, _ c: UnsafeMutablePointer<Double>)
    where V.Scalar == Double {
        for i in stride(from: 0, to: rows, by: 4) {
            let a0 = a + i * width, a1 = a0 + width, a2 = a1 + width, a3 = a2 + width
            for j in stride(from: i, to: rows, by: 4) {
                let b0 = a + j * width, b1 = b0 + width, b2 = b1 + width, b3 = b2 + width
                var c00 = V(), c01 = V(), c02 = V(), c03 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V()
                var c20 = V(), c21 = V(), c22 = V(), c23 = V(), c30 = V(), c31 = V(), c32 = V(), c33 = V()
                var p = 0
                while p < width {
                    let x0 = load(a0 + p, as: V.self), x1 = load(a1 + p, as: V.self), x2 = load(a2 + p, as: V.self), x3 = load(a3 + p, as: V.self)
                    let y0 = load(b0 + p, as: V.self), y1 = load(b1 + p, as: V.self), y2 = load(b2 + p, as: V.self), y3 = load(b3 + p, as: V.self)
                    c00 = c00.addingProduct(x0, y0); c01 = c01.addingProduct(x0, y1); c02 = c02.addingProduct(x0, y2); c03 = c03.addingProduct(x0, y3)
                    c10 = c10.addingProduct(x1, y0); c11 = c11.addingProduct(x1, y1); c12 = c12.addingProduct(x1, y2); c13 = c13.addingProduct(x1, y3)
                    c20 = c20.addingProduct(x2, y0); c21 = c21.addingProduct(x2, y1); c22 = c22.addingProduct(x2, y2); c23 = c23.addingProduct(x2, y3)
                    c30 = c30.addingProduct(x3, y0); c31 = c31.addingProduct(x3, y1); c32 = c32.addingProduct(x3, y2); c33 = c33.addingProduct(x3, y3)
                    p += V.scalarCount
                }
                let row0 = c + i * rows + j, row1 = row0 + rows, row2 = row1 + rows, row3 = row2 + rows
                row0[0] += c00.sum(); row0[1] += c01.sum(); row0[2] += c02.sum(); row0[3] += c03.sum()
                row1[0] += c10.sum(); row1[1] += c11.sum(); row1[2] += c12.sum(); row1[3] += c13.sum()
                row2[0] += c20.sum(); row2[1] += c21.sum(); row2[2] += c22.sum(); row2[3] += c23.sum()
                row3[0] += c30.sum(); row3[1] += c31.sum(); row3[2] += c32.sum(); row3[3] += c33.sum()
            }
        }
    }
}
