import CMalloc

/// How a process that moves large messages asks glibc's allocator to keep their buffers.
///
/// A 100 MB update crosses as 1 MiB chunks, and each end's gRPC and HTTP/2 layers allocate a
/// buffer of a chunk's size (rounded to 2 MiB) per chunk. glibc serves such a size with a fresh
/// `mmap` and returns it with `munmap` (or trims it off the heap), so every chunk's buffer is
/// zeroed and faulted in again page by page: measured with `perf`, those page faults cost more
/// than the copies themselves. With these settings, blocks below 32 MiB come from the heap and up
/// to 64 MiB of free heap top stays mapped, so chunk buffers are reused warm. The cost is memory
/// the process keeps after a burst: at most 64 MiB of free heap top per malloc arena.
public enum MessageMemory {
    public static let mmapThresholdBytes: Int32 = 32 << 20
    public static let trimThresholdBytes: Int32 = 64 << 20

    /// Applies the settings to the whole process; call once, before the transport starts.
    public static func keepChunkBuffers() {
        _ = mallopt(M_MMAP_THRESHOLD, mmapThresholdBytes)
        _ = mallopt(M_TRIM_THRESHOLD, trimThresholdBytes)
    }
}
