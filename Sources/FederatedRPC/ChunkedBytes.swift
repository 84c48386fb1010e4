import Engine
import Federated
import GRPCCore
import NIOCore

/// Tasks and replies cross as streams of gRPC messages of at most `chunkBytes` data each, so no
/// gRPC message limit depends on the model's size (a 100 MB update, or a task batch for 250
/// hosted clients, is never one message), and a receiver holds at most one chunk beyond what it
/// assembles. The first chunk starts with the total length (UInt64, little-endian); the receiver
/// checks it against its own limit before reserving anything, and refuses a stream that carries
/// more or fewer bytes than it declared.
public enum ChunkedBytes {
    public static let chunkBytes = 1 << 20
    /// The transport's per-message limit for chunked streams: a chunk and the length prefix.
    public static let maxMessageBytes = chunkBytes + 8
    /// The largest HTTP/2 frame either end accepts (SETTINGS_MAX_FRAME_SIZE): a chunk's size, where
    /// the default 16 KiB cut each chunk into 64 frames, each through both ends' channel pipelines.
    public static let http2FrameBytes = chunkBytes

    /// Sets a new connection to read up to a whole frame at once: with NIO's default of at most
    /// 64 KiB a read, the HTTP/2 decoder gathered each 1 MiB frame from 16 reads, copying as its
    /// buffer grew (a 100 MB push without the journal: 687-742 MB/s, against 611-669 with 64 KiB
    /// reads; docs/performance.md).
    @Sendable public static func readWholeFrames(_ channel: any Channel) -> EventLoopFuture<Void> {
        channel.setOption(ChannelOptions.recvAllocator,
                          value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 64 << 10, maximum: http2FrameBytes + (64 << 10)))
    }

    /// `bytes` as the messages of one stream.
    public static func chunks(of bytes: [UInt8]) -> [ArraySlice<UInt8>] { chunks(of: [bytes[...]]) }

    /// The message made of `parts`, one after another, as the messages of one stream: a chunk
    /// within one part is that part's slice (no copy); the first chunk (after the length) and
    /// those spanning parts are copied.
    public static func chunks(of parts: [ArraySlice<UInt8>]) -> [ArraySlice<UInt8>] {
        let total = parts.reduce(0) { $0 + $1.count }
        var chunks: [ArraySlice<UInt8>] = []
        var gathered = [UInt8]()
        gathered.reserveCapacity(8 + min(total, chunkBytes))
        withUnsafeBytes(of: UInt64(total).littleEndian) { gathered.append(contentsOf: $0) }
        // Data bytes the chunk being gathered can still take.
        var room = chunkBytes
        for var part in parts {
            while !part.isEmpty {
                if gathered.isEmpty, part.count >= chunkBytes {
                    chunks.append(part.prefix(chunkBytes))
                    part = part.dropFirst(chunkBytes)
                    continue
                }
                let take = min(room, part.count)
                gathered += part.prefix(take)
                part = part.dropFirst(take)
                room -= take
                if room == 0 {
                    chunks.append(gathered[...])
                    (gathered, room) = ([], chunkBytes)
                }
            }
        }
        if !gathered.isEmpty || chunks.isEmpty { chunks.append(gathered[...]) }
        return chunks
    }

    /// Writes the message made of `parts` to a stream chunk by chunk, each write awaited, so a
    /// sender holds one chunk's framed copy at a time (handing gRPC every chunk at once made it
    /// frame the whole message into one buffer, 100 MB of fresh memory for a 100 MB update).
    /// `sent` gets each chunk's size once it is written.
    public static func write(_ bytes: [UInt8], to writer: RPCWriter<ArraySlice<UInt8>>) async throws {
        try await write([bytes[...]], to: writer)
    }

    public static func write(_ parts: [ArraySlice<UInt8>], to writer: RPCWriter<ArraySlice<UInt8>>, sent: (Int) -> Void = { _ in }) async throws {
        for chunk in chunks(of: parts) {
            try await writer.write(chunk)
            sent(chunk.count)
        }
    }

    /// Why a stream was refused.
    public enum Problem: Error, Equatable, CustomStringConvertible, Sendable {
        case tooLarge(declared: UInt64, limit: Int)
        case noLength
        case moreThanDeclared(Int)
        case fewerThanDeclared(received: Int, declared: Int)

        public var description: String {
            switch self {
            case .tooLarge(let declared, let limit): "a message of \(declared) bytes (at most \(limit))"
            case .noLength: "a chunked message without its length"
            case .moreThanDeclared(let declared): "a chunked message longer than the \(declared) bytes it declared"
            case .fewerThanDeclared(let received, let declared): "a chunked message of \(received) bytes, \(declared) declared"
            }
        }
    }

    /// Rebuilds one message from its chunks, with its CRC-32 (`UpdateMessage.checksum`)
    /// computed as the chunks arrive.
    public struct Assembler {
        public let limit: Int
        private var declared: Int?
        public private(set) var bytes: [UInt8] = []
        public private(set) var checksum: UInt32 = 0

        public init(limit: Int) { self.limit = limit }

        /// Takes the next chunk; returns the range of `bytes` its data (the chunk without the
        /// length prefix) went to.
        @discardableResult
        public mutating func append(_ chunk: UnsafeRawBufferPointer) throws(Problem) -> Range<Int> {
            var data = chunk
            if declared == nil {
                guard chunk.count >= 8 else { throw .noLength }
                let length = UInt64(littleEndian: chunk.loadUnaligned(as: UInt64.self))
                guard length <= UInt64(limit) else { throw .tooLarge(declared: length, limit: limit) }
                declared = Int(length)
                bytes.reserveCapacity(Int(length))
                bytes.withUnsafeBufferPointer { if let base = $0.baseAddress { SystemMemory.adviseHugePages(base, count: bytes.capacity) } }
                data = UnsafeRawBufferPointer(rebasing: chunk[8...])
            }
            guard data.count <= declared! - bytes.count else { throw .moreThanDeclared(declared!) }
            checksum = UpdateMessage.checksum(data, continuing: checksum)
            let start = bytes.count
            bytes.append(contentsOf: data)
            return start..<bytes.count
        }

        /// Takes the next chunk as the transport received it, read in place.
        @discardableResult
        public mutating func append(_ chunk: ReceivedBytes) throws(Problem) -> Range<Int> {
            try chunk.withUnsafeBytes { (raw) throws(Problem) in try append(raw) }
        }

        /// The whole message, once every declared byte came.
        public func finished() throws(Problem) -> [UInt8] {
            guard let declared else { throw .noLength }
            guard bytes.count == declared else { throw .fewerThanDeclared(received: bytes.count, declared: declared) }
            return bytes
        }
    }
}

/// Messages cross the wire as they are: fedtrain's own formats carry their own checks.
public struct RawSerializer: MessageSerializer {
    public init() {}
    public func serialize<Bytes: GRPCContiguousBytes>(_ message: ArraySlice<UInt8>) throws -> Bytes { Bytes(message) }
}

/// A received message as the transport gave it (for the NIO transport, its `ByteBuffer`), read in
/// place: a chunk is copied once, into the message it assembles, not first into an array of its own.
/// Sendable: the transport hands over a value it no longer mutates (a `ByteBuffer` is copy-on-write).
public struct ReceivedBytes: @unchecked Sendable {
    private let storage: any GRPCContiguousBytes

    public var count: Int { storage.count }
    public var array: [UInt8] { storage.withUnsafeBytes { Array($0) } }
    public func withUnsafeBytes<Value, Failure: Error>(_ body: (UnsafeRawBufferPointer) throws(Failure) -> Value) throws(Failure) -> Value {
        let result: Result<Value, Failure> = storage.withUnsafeBytes { raw in
            do throws(Failure) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    fileprivate init(_ storage: any GRPCContiguousBytes) { self.storage = storage }
}

public struct InPlaceDeserializer: MessageDeserializer {
    public init() {}
    public func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> ReceivedBytes { ReceivedBytes(serializedMessageBytes) }
}

public struct RawDeserializer: MessageDeserializer {
    public init() {}
    public func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
