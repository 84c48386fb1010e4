import Foundation

/// Progress output: a live, rewritten line on a terminal; occasional plain lines otherwise.
struct ProgressLine {
    let isTerminal = isatty(STDOUT_FILENO) == 1
    private var lastDraw = ContinuousClock.now

    /// Redraws the live line at most 10 times a second (terminal only).
    mutating func update(_ text: @autoclosure () -> String) {
        guard isTerminal, ContinuousClock.now - lastDraw > .milliseconds(100) else { return }
        lastDraw = ContinuousClock.now
        print("\r\u{1B}[2K" + text(), terminator: "")
        fflush(nil)
    }

    /// Prints a permanent line (clearing the live line first on a terminal).
    func finish(_ text: String) {
        print((isTerminal ? "\r\u{1B}[2K" : "") + text)
        fflush(nil)
    }

    static func bar(_ fraction: Double, width: Int = 24) -> String {
        let filled = Int((fraction * Double(width)).rounded(.down))
        return "[" + String(repeating: "#", count: max(0, min(width, filled))) + String(repeating: ".", count: max(0, width - filled)) + "]"
    }
}

/// Writes a one-line error to standard error and exits with status 1.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("fedtrain: error: \(message)\n".utf8))
    exit(1)
}

func format(_ value: Double, _ digits: Int = 4) -> String { String(format: "%.\(digits)f", value) }

