import Foundation
import Synchronization

/// A fixed set of helper threads that run `Parallelism.run` jobs with low hand-off latency.
///
/// A training step hands work to the helpers two or three times per batch, every few hundred
/// microseconds. Waking a sleeping thread for each hand-off (what `concurrentPerform` does) cost
/// a tenth of 2-thread throughput (B=32, 2 cores: 31.9-37.3k img/s with `concurrentPerform`,
/// 39.2-41.3k with this pool, interleaved runs). Helpers therefore spin on an atomic generation
/// counter for a while after each job and only then sleep on a semaphore.
///
/// Protocol: the caller publishes `job` and `jobWorkers`, then bumps `generation`; **every**
/// helper checks in for every generation (running `job(index)` when `index < jobWorkers`) and
/// decrements `pending`; the caller runs worker 0 and returns when `pending` is 0. Since no job
/// starts before every helper has checked in for the previous one, no helper can miss or repeat
/// a job, and `job` is never written while a helper may read it.
final class WorkerPool: @unchecked Sendable {
    /// How many polls a helper spins for before it sleeps (on the order of 100 µs).
    private static let spinLimit = 50_000

    private let generation = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let lock = NSLock()
    private var job: ((Int) -> Void)?
    private var jobWorkers = 0
    private var helpers: [Helper] = []

    private final class Helper: @unchecked Sendable {
        let index: Int
        let wakeUp = DispatchSemaphore(value: 0)
        let sleeping = Atomic<Bool>(false)
        init(index: Int) { self.index = index }
    }

    /// Runs `body(w)` for `w` in `0..<workers` and returns when all have finished. Jobs from
    /// different threads are serialized; a job must not start another job (it would deadlock).
    func run(workers: Int, _ body: (Int) -> Void) {
        withoutActuallyEscaping(body) { runPrebuilt(workers: workers, job: $0) }
    }

    /// `run` for a closure that is already escaping (nothing to wrap, nothing allocated).
    func runPrebuilt(workers: Int, job body: @escaping (Int) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        while helpers.count < workers - 1 { startHelper(index: helpers.count + 1) }
        job = body
        jobWorkers = workers
        pending.store(helpers.count, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        for helper in helpers where helper.sleeping.load(ordering: .sequentiallyConsistent) {
            helper.wakeUp.signal()
        }
        body(0)
        // Spin for a fast hand-off, then yield: when another process holds a core, the helper we
        // wait for may be the thread that is not running, and spinning would keep it off (B=32
        // train beside one `yes` hog: 32.3k -> 36.8k img/s, median of 3; alone unchanged). Helpers
        // must not yield while they wait for a job: that hands their core to the hog and the next
        // hand-off waits a whole time slice (12-16k img/s).
        var spins = 0
        while pending.load(ordering: .acquiring) > 0 {
            spins += 1
            if spins >= Self.spinLimit { sched_yield() }
        }
        job = nil
    }

    private func startHelper(index: Int) {
        let helper = Helper(index: index)
        helpers.append(helper)
        // The helper waits for the first job published after this point, so it starts from the
        // generation as it is now, not whenever the thread happens to be scheduled.
        let start = generation.load(ordering: .sequentiallyConsistent)
        let thread = Thread { [unowned self] in self.helperLoop(helper, seen: start) }
        thread.name = "fedtrain-worker-\(index)"
        thread.start()
    }

    private func helperLoop(_ helper: Helper, seen start: Int) {
        var seen = start
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < Self.spinLimit { continue }
                helper.sleeping.store(true, ordering: .sequentiallyConsistent)
                if generation.load(ordering: .sequentiallyConsistent) == seen { helper.wakeUp.wait() }
                helper.sleeping.store(false, ordering: .sequentiallyConsistent)
                spins = 0
            }
            seen += 1
            if helper.index < jobWorkers { job!(helper.index) }
            pending.subtract(1, ordering: .releasing)
        }
    }
}
