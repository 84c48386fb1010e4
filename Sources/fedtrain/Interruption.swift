import Foundation
import Synchronization

/// What Ctrl-C prints: how to resume the run once a round is checkpointed, or that there is
/// nothing to resume yet. The handler only reads preformatted C strings and calls `write` and
/// `_exit` (async-signal-safe).
enum Interruption {
    nonisolated(unsafe) private static var beforeCheckpoint: UnsafeMutablePointer<CChar>?
    nonisolated(unsafe) private static var afterCheckpoint: UnsafeMutablePointer<CChar>?
    private static let checkpointed = Atomic<Bool>(false)

    /// Installs the SIGINT handler for a run writing into `directory` (nil: no checkpoints).
    static func install(directory: String?) {
        beforeCheckpoint = strdup(directory == nil
            ? "\nfedtrain: interrupted; nothing to resume (the run has no --out directory)\n"
            : "\nfedtrain: interrupted before the first round finished; nothing to resume (the same command starts over)\n")
        afterCheckpoint = strdup("\nfedtrain: interrupted; continue with: fedtrain simulate --resume \(directory ?? "")\n")
        // A parent (a test runner, a supervisor) may have left SIGINT blocked: unblock it.
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &mask, nil)
        signal(SIGINT) { _ in
            let message = Interruption.checkpointed.load(ordering: .relaxed) ? Interruption.afterCheckpoint : Interruption.beforeCheckpoint
            if let message { _ = write(STDERR_FILENO, message, strlen(message)) }
            _exit(130)
        }
    }

    /// Called after each round's checkpoint.
    static func checkpointWritten() { checkpointed.store(true, ordering: .relaxed) }
}
