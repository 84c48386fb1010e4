import Foundation
import Testing

/// One thread that runs the jobs of the tasks preferring it, in the order they come.
///
/// Why: Swift's cooperative pool is as wide as the machine has cores (2 here), and tests running in
/// parallel fill it with blocking work (training steps, waits on subprocesses) for tens of seconds.
/// A test with deadlines or timing bounds on async code runs here so that those measure its own
/// code, not how long its siblings hold the pool. Its jobs must not block for long: the thread is
/// shared by every test that prefers it.
public final class DedicatedThreadExecutor: TaskExecutor, @unchecked Sendable {
    public static let shared = DedicatedThreadExecutor()

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let job = jobs.removeFirst()
                condition.unlock()
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
        thread.name = "test-dedicated-executor"
        thread.start()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }
}

/// Runs each test (of a suite, when on one) with `DedicatedThreadExecutor.shared` as its task
/// executor preference, which its structured child tasks inherit.
public struct DedicatedThreadTrait: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        guard testCase != nil else { return try await function() }
        try await withTaskExecutorPreference(DedicatedThreadExecutor.shared) { try await function() }
    }
}

extension Trait where Self == DedicatedThreadTrait {
    /// Off the cooperative pool: see `DedicatedThreadExecutor`.
    public static var dedicatedThread: Self { Self() }
}
