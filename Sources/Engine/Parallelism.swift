import CBLAS
import Foundation
import Synchronization

/// Where fedtrain's threads go. This is the one place that decides it.
///
/// **Threads run across work items (batch chunks of one step, or whole clients of one round);
/// OpenBLAS always runs single-threaded.** LeNet-sized GEMMs are far too small for OpenBLAS's own
/// threading: on the 2-core reference machine a batched B=64 step only went from 2.76 to 2.42 ms
/// of GEMM time with 2 BLAS threads, while per-image GEMMs on one thread reach ~100 GFLOP/s
/// (see docs/performance.md). Splitting a batch into chunks that each run a full forward and
/// backward on one core keeps every GEMM at the per-image shape that runs near peak, and both
/// cores busy. Never both at once: nested BLAS threads would oversubscribe the cores.
public enum Parallelism {
    /// Gradient chunks per centralized training step unless the user says otherwise: fixed (not
    /// the thread count) so that results do not change with `--threads`. Each chunk pays a full
    /// gradient buffer (zeroed, then reduced) and runs its dense layers on fewer rows, so more
    /// chunks than cores only cost: on 2 cores, 2 chunks against 4 measured +27% img/s at
    /// B=10, +6% at B=32 and the same at B=64. Machines with more cores want `--chunks` = cores.
    public static let defaultChunks = 2

    /// Pins OpenBLAS to one thread. Called by every entry point that runs work in parallel.
    public static func useSingleThreadedBLAS() {
        openblas_set_num_threads(1)
    }

    /// Number of cores the process may use.
    public static var availableCores: Int { ProcessInfo.processInfo.activeProcessorCount }

    /// Runs `body(worker)` for `worker` in `0..<workers`, concurrently, and returns when all are
    /// done. With one worker it runs inline (no thread hop).
    ///
    /// Contract: calls for different workers touch disjoint memory (their own chunk, workspace
    /// or client), which is what makes sharing a non-`Sendable` closure across threads sound.
    /// `body` must not call `run` with more than one worker itself (jobs do not nest).
    public static func run(workers: Int, _ body: (Int) -> Void) {
        precondition(workers >= 1)
        if workers == 1 {
            body(0)
            return
        }
        pool.run(workers: workers, body)
    }

    /// Runs `body(index, worker)` for every `index` in `0..<count` on up to `workers` threads,
    /// each worker taking the next index until none is left (items of uneven cost balance).
    /// Same contract as `run`: bodies for different indices touch disjoint memory. The calling
    /// thread is worker 0.
    public static func forEach(count: Int, workers: Int, _ body: (_ index: Int, _ worker: Int) -> Void) {
        guard count > 0 else { return }
        let next = Atomic<Int>(0)
        run(workers: max(1, min(workers, count))) { worker in
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                if index >= count { break }
                body(index, worker)
            }
        }
    }

    /// `run` for a job built once and reused: handing it to the workers allocates nothing
    /// (the non-escaping form wraps its closure in a heap thunk on every call).
    public static func runPrebuilt(workers: Int, job: @escaping (Int) -> Void) {
        precondition(workers >= 1)
        if workers == 1 {
            job(0)
            return
        }
        pool.runPrebuilt(workers: workers, job: job)
    }

    private static let pool = WorkerPool()
}
