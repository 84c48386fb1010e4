import CBLAS

/// Thin, size-checked wrappers over LAPACKE (row-major, dense).
public enum LAPACK {
    /// Overwrites the row-major `rows × columns` matrix `a` (`rows >= columns`) with an orthonormal
    /// basis of its column space: the Q of its thin QR factorization (Householder, `sgeqrf` then
    /// `sorgqr`). Columns that are zero or dependent still come back orthonormal, so the result is
    /// always a valid projector basis. `tau` is scratch of at least `columns` elements.
    public static func orthonormalizeColumns(rows: Int, columns: Int, _ a: UnsafeMutablePointer<Float>, tau: UnsafeMutablePointer<Float>) {
        precondition(rows >= columns && columns > 0, "QR needs rows >= columns > 0 (got \(rows)x\(columns))")
        let m = Int32(rows), n = Int32(columns)
        var status = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, m, n, a, n, tau)
        precondition(status == 0, "sgeqrf failed with status \(status)")
        status = LAPACKE_sorgqr(LAPACK_ROW_MAJOR, m, n, n, a, n, tau)
        precondition(status == 0, "sorgqr failed with status \(status)")
    }

    /// The largest eigenvalue of the symmetric row-major `n × n` matrix `a` (its upper triangle is
    /// read) and a unit eigenvector for it (`dsyevr`, relatively robust representations). The
    /// vector's sign is made deterministic: its largest-magnitude entry (the first on a tie) is
    /// positive.
    public static func largestEigenpair(symmetric a: [Double], n: Int) -> (value: Double, vector: [Double]) {
        precondition(n > 0 && a.count == n * n, "eigenpair needs an n x n matrix")
        var matrix = a, value = [Double](repeating: 0, count: n), vector = [Double](repeating: 0, count: n)
        var found: Int32 = 0, support = [Int32](repeating: 0, count: 2)
        let status = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "V")), Int8(UInt8(ascii: "I")), Int8(UInt8(ascii: "U")), Int32(n),
                                    &matrix, Int32(n), 0, 0, Int32(n), Int32(n), 0, &found, &value, &vector, 1, &support)
        precondition(status == 0 && found == 1, "dsyevr failed with status \(status)")
        let largest = vector.indices.max { (abs(vector[$0]), -$0) < (abs(vector[$1]), -$1) }!
        if vector[largest] < 0 { vector = vector.map { -$0 } }
        return (value[0], vector)
    }
}
