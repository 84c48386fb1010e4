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
}
