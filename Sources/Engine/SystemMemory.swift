import Foundation

/// The memory this machine can give a process now, from `/proc/meminfo`'s `MemAvailable`
/// (Linux); nil where it cannot be read.
public enum SystemMemory {
    public static var availableBytes: Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }) else { return nil }
        let fields = line.split(separator: " ")
        guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
        return kilobytes * 1024
    }

    /// Asks the kernel to back the pages of `[start, start + count)` with transparent huge pages
    /// (2 MiB) when they are first touched, where the machine allows it (Linux's THP in
    /// `madvise` mode). Advice only: the bytes and their values are unchanged, and a kernel without
    /// THP ignores it. Worth it for a large buffer about to be filled once: filling 100 MB of 4 KiB
    /// pages takes 25,600 page faults, of 2 MiB pages 50.
    public static func adviseHugePages(_ start: UnsafeRawPointer, count: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (Int(bitPattern: start) + page - 1) / page * page
        let end = (Int(bitPattern: start) + count) / page * page
        guard end > first, let pointer = UnsafeMutableRawPointer(bitPattern: first) else { return }
        _ = madvise(pointer, end - first, MADV_HUGEPAGE)
    }
}
