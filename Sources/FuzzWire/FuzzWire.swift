import Foundation
import Engine
import Federated

// libFuzzer harness for the decoders of everything a peer sends: `Envelope`, `EnvelopeBatch`
// and `UpdateMessage` (every codec's payload decoder behind it). Built by `make fuzz` with
// `-sanitize=fuzzer` and `-D FUZZING` (libFuzzer supplies `main`); otherwise a replay tool:
// `fuzz-wire FILE...` runs the same checks on saved inputs (a crash libFuzzer found, say).
//
// The first input byte picks the target. Random bytes almost never carry a valid CRC-32, layout
// fingerprint or element count, so most targets repair those fields first: the fuzzer then
// explores the field and payload checks behind them, where the interesting code is.

/// A small layout, so decoded vectors stay small and executions fast.
let layout: ParameterLayout = {
    var layout = ParameterLayout()
    layout.append(name: "w", shape: [3, 2])
    layout.append(name: "b", shape: [3])
    return layout
}()

func resealed(_ bytes: [UInt8]) -> [UInt8] {
    guard bytes.count >= 4 else { return bytes }
    var body = Array(bytes.dropLast(4))
    let crc = UpdateMessage.checksum(body[...])
    body += [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: crc >> UInt32($0)) }
    return body
}

/// An update message with this layout's fingerprint and count written over the input's.
func fittedMessage(_ bytes: [UInt8]) -> [UInt8] {
    var bytes = bytes
    guard bytes.count >= 28 else { return bytes }
    bytes.replaceSubrange(0..<4, with: Array("FTUM".utf8))
    bytes.replaceSubrange(4..<6, with: [2, 0])
    let fingerprint = layout.fingerprint, count = UInt32(layout.count)
    bytes.replaceSubrange(8..<16, with: (0..<8).map { UInt8(truncatingIfNeeded: fingerprint >> UInt64(8 * $0)) })
    bytes.replaceSubrange(16..<20, with: (0..<4).map { UInt8(truncatingIfNeeded: count >> UInt32(8 * $0)) })
    return resealed(bytes)
}

/// `FUZZ_DECODER` (envelope, message or batch) keeps the fuzzer on one decoder's targets.
let decoderTargets: [UInt8] = {
    switch getenv("FUZZ_DECODER").map({ String(cString: $0) }) {
    case "envelope": return [0, 1]
    case "message": return [2, 3]
    case "batch": return [4]
    default: return [0, 1, 2, 3, 4]
    }
}()

/// Runs one input; any outcome but a crash is fine (decoders throw typed errors).
func fuzzOne(_ input: [UInt8]) {
    guard let selector = input.first else { return }
    let bytes = Array(input.dropFirst())
    switch decoderTargets[Int(selector) % decoderTargets.count] {
    case 0: _ = try? Envelope(decoding: bytes)
    case 1:
        let sealed = resealed(bytes)
        if let envelope = try? Envelope(decoding: sealed) {
            // What decodes must encode to bytes that decode to it again.
            let again = try? Envelope(decoding: envelope.bytes)
            precondition(again == envelope || envelope.metrics.values.contains { $0.isNaN }, "envelope does not round-trip")
            for payload in envelope.payloads.values { _ = try? UpdateMessage.decode(fittedMessage(payload), layout: layout) }
        }
    case 2: _ = try? UpdateMessage.decode(bytes, layout: layout)
    case 3: _ = try? UpdateMessage.decode(fittedMessage(bytes), layout: layout)
    default:
        if let envelopes = try? EnvelopeBatch.decode(bytes) {
            for envelope in envelopes { _ = try? Envelope.header(of: envelope) }
        }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
@main
struct Replay {
    static func main() throws {
        for path in CommandLine.arguments.dropFirst() {
            fuzzOne(try AtomicFile.read(path))
            print("\(path): ok")
        }
    }
}
#endif
