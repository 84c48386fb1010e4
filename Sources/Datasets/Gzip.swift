import CZlib

/// gzip decompression through the system zlib.
public enum Gzip {
    /// Decompressed output larger than this is refused (a hostile file cannot exhaust memory).
    public static let maximumOutput = 1 << 32

    /// True when `bytes` start with the gzip magic number 1f 8b.
    public static func hasMagic(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// Inflates every gzip member in `bytes` (concatenated members are one stream, as `gunzip`
    /// treats them). `path` names the source in errors. CRC and length trailers are verified by
    /// zlib.
    public static func decompress(_ bytes: [UInt8], path: String) throws(DatasetError) -> [UInt8] {
        guard hasMagic(bytes) else { throw .notGzip(path: path) }
        // ISIZE (the last 4 bytes) is the size modulo 2^32: a good first guess for the output.
        let sizeHint = bytes.count >= 18
            ? Int(bytes[bytes.count - 4]) | Int(bytes[bytes.count - 3]) << 8 | Int(bytes[bytes.count - 2]) << 16 | Int(bytes[bytes.count - 1]) << 24
            : 0
        var output = [UInt8](repeating: 0, count: max(1 << 16, min(sizeHint + 1, 1 << 30)))
        var produced = 0
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .corrupt(path: path, detail: "zlib could not initialize")
        }
        defer { inflateEnd(&stream) }
        var failure: DatasetError?
        bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!)
            stream.avail_in = UInt32(input.count)
            while true {
                if produced == output.count {
                    guard output.count < maximumOutput else {
                        failure = .corrupt(path: path, detail: "decompresses to more than \(maximumOutput) bytes")
                        return
                    }
                    output.append(contentsOf: repeatElement(0, count: min(output.count, maximumOutput - output.count)))
                }
                let status = output.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress! + produced
                    stream.avail_out = UInt32(min(out.count - produced, Int(UInt32.max)))
                    let before = stream.avail_out
                    let status = inflate(&stream, Z_NO_FLUSH)
                    produced += Int(before - stream.avail_out)
                    return status
                }
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    if stream.avail_in == 0 { return }
                    let rest = input.count - Int(stream.avail_in)
                    guard input.count - rest >= 2, input[rest] == 0x1F, input[rest + 1] == 0x8B else {
                        failure = .corrupt(path: path, detail: "\(stream.avail_in) trailing bytes after the gzip stream")
                        return
                    }
                    inflateReset(&stream)
                case Z_BUF_ERROR where stream.avail_in == 0:
                    failure = .truncated(path: path, detail: "the gzip stream ends before its end marker")
                    return
                case Z_BUF_ERROR:
                    continue
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    failure = .corrupt(path: path, detail: message)
                    return
                }
            }
        }
        if let failure { throw failure }
        output.removeSubrange(produced...)
        return output
    }
}
