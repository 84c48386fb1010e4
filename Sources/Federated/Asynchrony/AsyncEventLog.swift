import Engine
import Foundation

/// What happened in an asynchronous networked run, in the order the server did it: the
/// coordinator's decisions (which client it dispatched at which version), the trips' ends in
/// the order it processed them, and its steps. `fedtrain replay` re-runs exactly this order.
public enum AsyncEvent: Sendable, Equatable, Codable {
    case dispatch(client: Int, version: Int)
    case reply(client: Int)
    case fail(client: Int)
    case step(version: Int)
}

/// `events.jsonl` of a networked asynchronous run's state directory: one JSON event per line,
/// appended as they happen and flushed to disk at every server step, before its checkpoint. A
/// restarted server cuts it back to the events its checkpoint has seen (`AsyncCheckpoint.events`).
public final class AsyncEventLog: @unchecked Sendable {
    public let path: String
    public private(set) var count = 0
    private var unwritten: [UInt8] = []

    /// A log at `path`; nothing is read or written before `start`.
    public init(path: String) { self.path = path }

    /// Starts the log file, keeping its first `keeping` events (0: a new run).
    /// Lines past them (a step that never reached its checkpoint, perhaps torn) are dropped unread.
    public func start(keeping: Int) throws(FileError) {
        precondition(count == 0 && unwritten.isEmpty)
        guard keeping >= 0 else { throw FileError(path: path, problem: "a checkpoint claims \(keeping) events") }
        let kept = keeping == 0 ? [] : try Self.read(path, first: keeping)
        guard kept.count == keeping else { throw FileError(path: path, problem: "holds fewer events than its checkpoint has seen") }
        count = kept.count
        try AtomicFile.write(kept.flatMap(Self.line), to: path)
    }

    public func append(_ event: AsyncEvent) {
        unwritten += Self.line(event)
        count += 1
    }

    /// Writes the appended events and flushes them to disk.
    public func flush() throws(FileError) {
        guard !unwritten.isEmpty else { return }
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard descriptor >= 0 else { throw FileError(path: path, problem: "cannot open for appending") }
        defer { close(descriptor) }
        let written = unwritten.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
        guard written == unwritten.count, fsync(descriptor) == 0 else { throw FileError(path: path, problem: "cannot append events (disk full?)") }
        unwritten = []
    }

    private static func line(_ event: AsyncEvent) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(event) else { preconditionFailure("an event does not encode") }
        return Array(data) + [UInt8(ascii: "\n")]
    }

    /// The events of a log file (its `first` ones); a line that is not an event is an error naming it.
    public static func read(_ path: String, first: Int = .max) throws(FileError) -> [AsyncEvent] {
        let bytes: [UInt8]
        do { bytes = try AtomicFile.read(path) } catch { throw FileError(path: path, problem: "cannot read the event log") }
        var events: [AsyncEvent] = []
        for (number, line) in bytes.split(separator: UInt8(ascii: "\n")).prefix(first).enumerated() {
            guard let event = try? JSONDecoder().decode(AsyncEvent.self, from: Data(line)) else {
                throw FileError(path: path, problem: "line \(number + 1) is not an event")
            }
            events.append(event)
        }
        return events
    }
}
