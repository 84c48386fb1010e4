import Foundation
import Synchronization

/// One line per event on standard error: JSON (`{"time":..., "event":..., ...}`, for log
/// collectors) unless standard error is a terminal, where a terse human line is easier to read.
public final class EventLog: Sendable {
    public let component: String
    private let json: Bool
    private let lock = Mutex(())

    public init(component: String, json: Bool = isatty(STDERR_FILENO) != 1) {
        (self.component, self.json) = (component, json)
    }

    /// Writes `event` with `fields` (values are strings or numbers).
    public func log(_ event: String, _ fields: KeyValuePairs<String, any Sendable> = [:]) {
        let line: String
        if json {
            var object: [String: Any] = ["time": ISO8601DateFormatter().string(from: Date()), "component": component, "event": event]
            for (key, value) in fields { object[key] = value is Int || value is Double || value is Bool ? value : "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        } else {
            line = "fedtrain \(component): \(event.replacingOccurrences(of: "_", with: " "))"
                + fields.map { " \($0.key)=\($0.value)" }.joined()
        }
        lock.withLock { _ in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}
