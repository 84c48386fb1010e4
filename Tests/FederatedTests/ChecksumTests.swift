import CChecksum
import CZlib
import Engine
@testable import Federated
import Testing

@Suite struct ChecksumTests {
    /// The folded CRC-32 equals zlib's on every length around the folding steps (64-byte lanes,
    /// 16-byte blocks, the tail), at every alignment, and when continuing a previous CRC.
    @Test func foldedCRCEqualsZlib() {
        var generator = SeededGenerator(seed: 11)
        let bytes = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes.withUnsafeBufferPointer { buffer in
            for offset in 0..<16 {
                for count in Array(0...300) + [1023, 1024, 1025, 4096, 4984 - offset] {
                    let start = buffer.baseAddress! + offset
                    let zlib = UInt32(crc32(0, start, UInt32(count)))
                    #expect(fedtrain_crc32(0, start, count) == zlib, "offset \(offset) count \(count)")
                    let split = count / 3
                    let continued = fedtrain_crc32(fedtrain_crc32(0, start, split), start + split, count - split)
                    #expect(continued == zlib, "offset \(offset) count \(count) split \(split)")
                }
            }
        }
        // The check value of the gzip CRC-32, and nothing appended to it (an empty array has no buffer).
        let check = UpdateMessage.checksum(Array("123456789".utf8)[...])
        #expect(check == 0xCBF4_3926)
        #expect(UpdateMessage.checksum([UInt8]()[...], continuing: check) == check)
        #expect(UpdateMessage.checksum([UInt8]()[...]) == 0)
        // The folding path is the one under test on this machine (every x86-64 CPU since 2010 has it).
        #expect(fedtrain_crc32_is_accelerated() == 1)
    }
}
