import CBLAS
import CBLASKernels

/// Thin, size-checked wrappers over OpenBLAS. Matrices are row-major and dense (leading
/// dimension = number of columns), which is the only layout fedtrain uses.
public enum BLAS {
    /// The kernel set OpenBLAS runs (e.g. "Haswell", "SkylakeX", "Cooperlake"): its
    /// `DYNAMIC_ARCH` pick for the CPU, `OPENBLAS_CORETYPE` when the environment sets it, or, in
    /// place of its generic Prescott fallback on a CPU model it does not know, what the CPU's
    /// feature flags support (`kernelsReplacedFallback`; chosen before main, see CBLASKernels).
    public static var kernelSet: String { String(cString: openblas_get_corename()) }

    /// Whether fedtrain replaced OpenBLAS's Prescott fallback at load time.
    public static var kernelsReplacedFallback: Bool { fedtrain_blas_kernels_chosen() != nil }

    /// `kernelSet`, saying when it replaced OpenBLAS's fallback (for the lines a run prints).
    public static var kernelDescription: String {
        kernelsReplacedFallback ? "\(kernelSet) (in place of OpenBLAS's Prescott fallback)" : kernelSet
    }

    /// `C(m×n) = alpha · op(A) · op(B) + beta · C`, where `op(A)` is `m×k` and `op(B)` is `k×n`.
    /// With `transposeA`, A is stored as `k×m`; with `transposeB`, B is stored as `n×k`.
    /// `beta = 0` overwrites C (its old contents may be garbage); `beta = 1` accumulates.
    /// `rowStrideA`, when given, is A's leading dimension (A a block of a wider matrix).
    @inline(__always)
    public static func gemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1, _ a: UnsafePointer<Float>, rowStrideA: Int? = nil, _ b: UnsafePointer<Float>,
        beta: Float = 0, _ c: UnsafeMutablePointer<Float>
    ) {
        precondition(m > 0 && n > 0 && k > 0, "gemm sizes must be positive: m=\(m) n=\(n) k=\(k)")
        cblas_sgemm(
            CblasRowMajor,
            transposeA ? CblasTrans : CblasNoTrans,
            transposeB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha,
            a, Int32(rowStrideA ?? (transposeA ? m : k)),
            b, Int32(transposeB ? k : n),
            beta, c, Int32(n))
    }

    /// Whether OpenBLAS (0.3.21, AVX-512 small-matrix path) would `malloc` a packing buffer for a
    /// row-major, non-transposed `gemm` with these `n` and `k`: its NN kernel packs the leftover
    /// `n mod 16` rows (column-major view) into a fresh buffer when 1-8 remain and `k >= 32`,
    /// on every call. The transposed forms of the same products do not allocate and measured as
    /// fast, so the layers pick one of those for such shapes and the training step stays free of
    /// allocations.
    @inline(__always)
    public static func plainProductAllocates(n: Int, k: Int) -> Bool {
        let tail = n % 16
        return tail >= 1 && tail <= 8 && k >= 32
    }

    /// Writes the transpose of the row-major `rows × columns` matrix `a` into `b` (`columns × rows`).
    @inline(__always)
    public static func transpose(rows: Int, columns: Int, _ a: UnsafePointer<Float>, _ b: UnsafeMutablePointer<Float>) {
        cblas_somatcopy(CblasRowMajor, CblasTrans, Int32(rows), Int32(columns), 1, a, Int32(columns), b, Int32(rows))
    }

    /// `y += alpha · x` over `count` elements.
    @inline(__always)
    public static func axpy(count: Int, alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(count), alpha, x, 1, y, 1)
    }

    /// Euclidean norm of `x` (scaled to avoid overflow); 0 for an empty buffer.
    @inline(__always)
    public static func norm(_ x: UnsafeBufferPointer<Float>) -> Float {
        x.isEmpty ? 0 : cblas_snrm2(Int32(x.count), x.baseAddress!, 1)
    }

    /// Sum of absolute values of `x`; 0 for an empty buffer.
    @inline(__always)
    public static func absoluteSum(_ x: UnsafeBufferPointer<Float>) -> Float {
        x.isEmpty ? 0 : cblas_sasum(Int32(x.count), x.baseAddress!, 1)
    }
}
