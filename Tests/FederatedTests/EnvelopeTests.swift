import Engine
@testable import Federated
import Testing

@Suite struct EnvelopeTests {
    func sample() -> Envelope {
        var envelope = Envelope(kind: .update, client: 17, round: 4, modelVersion: 3)
        envelope.samples = 6000
        envelope.steps = 188
        envelope.trainLoss = 0.4375
        envelope.proximalMu = 0.01
        envelope.metrics = ["accuracy": 0.875, "loss": 0.31]
        envelope.payloads = [.update: [1, 2, 3, 4, 5], .controlChange: [9, 8]]
        return envelope
    }

    /// Recomputes the CRC after tampering, so the change reaches the field checks.
    func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var body = Array(bytes.dropLast(4))
        let crc = UpdateMessage.checksum(body[...])
        body += [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: crc >> UInt32($0)) }
        return body
    }

    @Test func roundTripAndExactSize() throws {
        let envelope = sample(), bytes = envelope.bytes
        // Header 41, metrics (1 + name + 8 each), payloads (1 + 4 + bytes each), CRC 4.
        #expect(bytes.count == 41 + (1 + 8 + 8) + (1 + 4 + 8) + (5 + 5) + (5 + 2) + 4)
        #expect(try Envelope(decoding: bytes) == envelope)
        var task = Envelope(kind: .train, client: 0, round: 1, modelVersion: 0)
        task.payloads[.model] = UpdateMessage.encodeDense([1, 2, 3], kind: .model, round: 1, layout: layout([[3]]))
        #expect(try Envelope(decoding: task.bytes) == task)
        #expect(task.bytes.count == 41 + 5 + UpdateMessage.denseSize(count: 3) + 4)
        #expect(task.denseLength(encodedLength: task.bytes.count, parameterCount: 3) == task.bytes.count)
    }

    /// A readdressed envelope (the round's shared task) joins to exactly the envelope encoded for
    /// that client, checksum included, and shares the template's body rather than copying it.
    @Test func readdressedEqualsEncodedForThatClient() throws {
        var generator = SeededGenerator(seed: 11)
        var task = Envelope(kind: .train, client: 0, round: 7, modelVersion: 6)
        task.proximalMu = 0.01
        task.payloads[.model] = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        task.payloads[.serverControl] = [3, 1, 4]
        let template = task.bytes, bodyChecksum = UpdateMessage.checksum(Envelope.body(of: template))
        let templateStorage = template.withUnsafeBufferPointer { $0.baseAddress! }
        for client in [0, 1, 255, 256, 70_000, Int(UInt32.max)] {
            var expected = task
            expected.client = client
            let parts = Envelope.readdressed(template, to: client, bodyChecksum: bodyChecksum)
            let message = ClientMessage(client: client, parts: parts)
            #expect(message.bytes == expected.bytes, "client \(client)")
            #expect(message.count == expected.bytes.count)
            #expect(message.prefix(45) == Array(expected.bytes.prefix(45)))
            #expect(try Envelope(decoding: message.bytes) == expected)
            #expect(parts.contains { part in part.withUnsafeBufferPointer { $0.baseAddress } == templateStorage + Envelope.headerSize })
        }
    }

    @Test func hostileBytesAreRejectedWithTypedErrors() {
        let bytes = sample().bytes
        for length in 0..<bytes.count {
            #expect(throws: MessageError.self, "prefix \(length)") { try Envelope(decoding: Array(bytes.prefix(length))) }
        }
        var flipped = bytes
        flipped[20] ^= 1
        #expect(throws: MessageError.badChecksum) { try Envelope(decoding: flipped) }
        var magic = bytes
        magic[0] = UInt8(ascii: "X")
        #expect(throws: MessageError.badMagic) { try Envelope(decoding: magic) }
        var version = bytes
        version[4] = 9
        #expect(throws: MessageError.unsupportedVersion(9)) { try Envelope(decoding: resealed(version)) }
        var kind = bytes
        kind[6] = 77
        #expect(throws: MessageError.badField("envelope kind")) { try Envelope(decoding: resealed(kind)) }
        // The first payload's declared length (after the metrics) grown past the end.
        let payloadLength = 41 + 17 + 13 + 1
        var oversized = bytes
        oversized[payloadLength + 3] = 0x7F
        #expect(throws: MessageError.self) { try Envelope(decoding: resealed(oversized)) }
        do {
            _ = try Envelope(decoding: resealed(oversized))
        } catch {
            #expect(error.description.contains("declares"), "\(error)")
        }
        var trailing = Array(bytes.dropLast(4))
        trailing.append(0)
        trailing += [0, 0, 0, 0]
        #expect(throws: MessageError.self) { try Envelope(decoding: resealed(trailing)) }
        var duplicate = sample()
        duplicate.payloads = [.update: [1]]
        var twice = Array(duplicate.bytes.dropLast(4))
        twice[40] = 2
        twice += [Envelope.Role.update.rawValue, 1, 0, 0, 0, 1, 0, 0, 0, 0]
        #expect(throws: MessageError.badField("payload update appears twice")) { try Envelope(decoding: resealed(twice)) }
        var mu = sample()
        mu.proximalMu = -1
        #expect(throws: MessageError.self) { try Envelope(decoding: mu.bytes) }
    }

    /// Random corruptions of valid envelopes and random byte strings: decoding either throws or
    /// returns an envelope whose bytes are exactly the input; it never traps.
    @Test func fuzz() {
        var generator = SeededGenerator(seed: 2024)
        let valid = sample().bytes
        for iteration in 0..<20_000 {
            var bytes: [UInt8]
            if iteration % 4 == 0 {
                bytes = (0..<Int(generator.next(upperBound: UInt64(120)))).map { _ in UInt8(truncatingIfNeeded: generator.next() as UInt64) }
                if bytes.count >= 4 && iteration % 8 == 0 { bytes.replaceSubrange(0..<4, with: Envelope.magic) }
            } else {
                bytes = valid
                for _ in 0...Int(generator.next(upperBound: UInt64(4))) {
                    bytes[Int(generator.next(upperBound: UInt64(bytes.count)))] = UInt8(truncatingIfNeeded: generator.next() as UInt64)
                }
                if iteration % 3 == 0 { bytes = resealed(bytes) }
                if iteration % 5 == 0 { bytes = Array(bytes.prefix(Int(generator.next(upperBound: UInt64(bytes.count + 1))))) }
            }
            if let decoded = try? Envelope(decoding: bytes) { #expect(decoded.bytes == bytes) }
        }
    }
}
