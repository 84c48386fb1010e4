import Engine
@testable import Federated
import Testing

/// A layout of one `rows × columns` matrix and a bias, or a flat vector.
func layout(_ shapes: [[Int]]) -> ParameterLayout {
    var layout = ParameterLayout()
    for (index, shape) in shapes.enumerated() { layout.append(name: "t\(index)", shape: shape) }
    return layout
}

func gaussian(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in scale * Float(generator.nextGaussian()) }
}

/// Encodes `values` with `spec` into a whole message and decodes it back.
func roundTrip(_ values: [Float], _ spec: String, layout: ParameterLayout, seed: UInt64 = 1, state: inout [Float]) throws -> (bytes: [UInt8], decoded: [Float]) {
    let codec = try CodecRegistry.codec(parsing: spec)
    var generator = SeededGenerator(seed: seed)
    let bytes = values.withUnsafeBufferPointer {
        UpdateMessage.encode($0, kind: .update, round: 3, layout: layout, codec: codec, state: &state, generator: &generator)
    }
    let message = try UpdateMessage.decode(bytes, layout: layout)
    #expect(message.round == 3 && message.kind == .update && message.codec.spec == codec.spec)
    return (bytes, message.values)
}

func roundTrip(_ values: [Float], _ spec: String, layout: ParameterLayout, seed: UInt64 = 1) throws -> (bytes: [UInt8], decoded: [Float]) {
    var state = initialState(try CodecRegistry.codec(parsing: spec), layout: layout)
    return try roundTrip(values, spec, layout: layout, seed: seed, state: &state)
}

/// A codec's initial sender state from a fixed seed (a fresh generator per call: tests run in parallel).
func initialState(_ codec: any UpdateCodec, layout: ParameterLayout) -> [Float] {
    var generator = SeededGenerator(seed: 99)
    return codec.initialState(layout: layout, generator: &generator)
}

/// Positions of the k largest magnitudes by sorting (ties to the lower position).
func referenceTopK(_ values: [Float], k: Int) -> [UInt32] {
    let order = values.indices.sorted { abs(values[$0]) != abs(values[$1]) ? abs(values[$0]) > abs(values[$1]) : $0 < $1 }
    return order.prefix(k).map { UInt32($0) }.sorted()
}

@Suite struct CodecTests {
    let flat = layout([[1000]])

    @Test func fp32IsExact() throws {
        let values = gaussian(1000, seed: 1) + [0, -0.0, 1e-38, 3e38]
        let (bytes, decoded) = try roundTrip(values, "fp32", layout: layout([[1004]]))
        #expect(decoded.map(\.bitPattern) == values.map(\.bitPattern))
        #expect(bytes.count == UpdateMessage.denseSize(count: 1004))
    }

    @Test func halfPrecisionsWithinFormatPrecision() throws {
        let values = gaussian(1000, seed: 2, scale: 3)
        let half = try roundTrip(values, "fp16", layout: flat).decoded
        let brain = try roundTrip(values, "bf16", layout: flat).decoded
        for (v, (h, b)) in zip(values, zip(half, brain)) {
            if abs(v) >= 6.2e-5 { #expect(abs(h - v) <= abs(v) * 0x1p-11, "fp16 \(v) -> \(h)") }
            #expect(abs(b - v) <= abs(v) * 0x1p-8, "bf16 \(v) -> \(b)")
        }
        // Out of fp16's range saturates instead of becoming infinite (which the server would reject).
        let big = try roundTrip([1e6, -1e6] + [Float](repeating: 0, count: 998), "fp16", layout: flat).decoded
        #expect(big[0] == 65504 && big[1] == -65504)
    }

    /// QSGD is unbiased (the mean over many seeds is within 5 standard errors of the input) and
    /// its mean squared error obeys min(d/s², √d/s)·‖v‖² per bucket.
    @Test(arguments: [(2, 16), (4, 64), (1, 8)])
    func qsgdIsUnbiasedWithinItsVarianceBound(bits: Int, bucket: Int) throws {
        let n = 64, trials = 3000
        let values = gaussian(n, seed: 3)
        let codec = QSGDCodec(bits: bits, bucket: bucket)
        let s = Float((1 << bits) - 1)
        var sums = [Double](repeating: 0, count: n)
        var squaredError = 0.0
        for trial in 0..<trials {
            let decoded = try roundTrip(values, codec.spec, layout: layout([[n]]), seed: UInt64(trial)).decoded
            for i in 0..<n {
                sums[i] += Double(decoded[i])
                squaredError += Double((decoded[i] - values[i]) * (decoded[i] - values[i]))
            }
        }
        var bound = 0.0
        for start in stride(from: 0, to: n, by: bucket) {
            let bucketValues = values[start..<min(start + bucket, n)]
            let normSquared = bucketValues.reduce(0) { $0 + Double($1 * $1) }
            let d = Double(bucketValues.count)
            bound += min(d / Double(s * s), d.squareRoot() / Double(s)) * normSquared
            let norm = normSquared.squareRoot()
            for i in bucketValues.indices {
                // Each decoded value is one of two adjacent levels norm/s apart: its std is at most norm/(2s).
                let standardError = norm / (2 * Double(s)) / Double(trials).squareRoot()
                #expect(abs(sums[i] / Double(trials) - Double(values[i])) <= 5 * standardError + 1e-6, "element \(i)")
            }
        }
        #expect(squaredError / Double(trials) <= bound, "MSE \(squaredError / Double(trials)) above bound \(bound)")
    }

    @Test(arguments: [(1000, 1), (1000, 10), (1000, 999), (200_000, 1), (200_000, 200), (200_000, 20_000), (200_000, 150_000)])
    func topKKeepsExactlyTheLargestMagnitudes(n: Int, k: Int) throws {
        let values = gaussian(n, seed: UInt64(n + k))
        let positions = values.withUnsafeBufferPointer { TopKSelection.largestMagnitudes($0, k: k) }
        #expect(positions == referenceTopK(values, k: k))
        // Through the codec: kept values exact, the rest zero.
        let fraction = Float(k) / Float(n)
        let codec = TopKCodec(fraction: fraction)
        #expect(codec.keptCount(n) == k)
        let decoded = try roundTrip(values, codec.spec, layout: layout([[n]])).decoded
        let kept = Set(positions)
        for i in 0..<n { #expect(decoded[i] == (kept.contains(UInt32(i)) ? values[i] : 0)) }
    }

    @Test func topKBreaksTiesTowardLowerPositions() {
        let values: [Float] = [1, -1, 1, 2, -1, 1]
        #expect(values.withUnsafeBufferPointer { TopKSelection.largestMagnitudes($0, k: 3) } == [0, 1, 3])
        let flat = [Float](repeating: 0.5, count: 300_000)
        #expect(flat.withUnsafeBufferPointer { TopKSelection.largestMagnitudes($0, k: 5) } == [0, 1, 2, 3, 4])
    }

    @Test func topKWithQuantizedValues() throws {
        let values = gaussian(1000, seed: 5)
        let decoded = try roundTrip(values, "topk:0.1+qsgd:8", layout: flat).decoded
        let kept = referenceTopK(values, k: 100)
        let norm = kept.map { values[Int($0)] * values[Int($0)] }.reduce(0, +).squareRoot()
        for i in 0..<1000 {
            if kept.contains(UInt32(i)) {
                #expect(abs(decoded[i] - values[i]) <= norm / 255 + 1e-6)
            } else {
                #expect(decoded[i] == 0)
            }
        }
    }

    @Test func stcSendsTheMeanMagnitudeWithSigns() throws {
        let values = gaussian(1000, seed: 6)
        let decoded = try roundTrip(values, "stc:0.05", layout: flat).decoded
        let kept = referenceTopK(values, k: 50)
        let mu = kept.map { Double(abs(values[Int($0)])) }.reduce(0, +) / 50
        for i in 0..<1000 {
            if kept.contains(UInt32(i)) {
                #expect(abs(Double(decoded[i]) - (values[i] < 0 ? -mu : mu)) <= 1e-6 * mu)
            } else {
                #expect(decoded[i] == 0)
            }
        }
    }

    @Test func signSendsOneScalePerTensor() throws {
        let shapes = layout([[10, 20], [10], [30]])
        let values = gaussian(240, seed: 7)
        let decoded = try roundTrip(values, "sign", layout: shapes).decoded
        for entry in shapes.entries {
            let scale = values[entry.range].map(abs).reduce(0, +) / Float(entry.count)
            for i in entry.range {
                #expect(abs(decoded[i] - (values[i] < 0 ? -scale : scale)) <= 1e-5 * scale)
            }
        }
    }

    /// PowerSGD reconstructs a matrix of rank <= RANK exactly (to float rounding) and sends
    /// vectors dense; its warm start moves to the new Q.
    @Test func powerSGDIsExactOnLowRankMatrices() throws {
        let shapes = layout([[20, 3, 2, 5], [20], [40, 30]])
        let a = gaussian(20 * 2, seed: 8), b = gaussian(2 * 30, seed: 9), c = gaussian(40 * 2, seed: 10), d = gaussian(2 * 30, seed: 11)
        func product(_ x: [Float], _ y: [Float], rows: Int, columns: Int) -> [Float] {
            (0..<(rows * columns)).map { index in (0..<2).reduce(0) { $0 + x[index / columns * 2 + $1] * y[$1 * columns + index % columns] } }
        }
        let bias = gaussian(20, seed: 12)
        let values = product(a, b, rows: 20, columns: 30) + bias + product(c, d, rows: 40, columns: 30)
        let codec = try CodecRegistry.codec(parsing: "powersgd:2")
        var state = initialState(codec, layout: shapes)
        let initial = state
        #expect(state.count == 30 * 2 + 30 * 2)
        let (bytes, decoded) = try roundTrip(values, "powersgd:2", layout: shapes, state: &state)
        let scale = values.map(abs).max()!
        for i in values.indices { #expect(abs(decoded[i] - values[i]) <= 1e-4 * scale, "element \(i)") }
        #expect(Array(decoded[600..<620]) == bias, "vectors go dense")
        #expect(state != initial)
        // Payload: factors (20+30)·2 + (40+30)·2 floats, then the 20 bias floats.
        #expect(bytes.count == UpdateMessage.headerSize + 3 + 4 * (100 + 140) + 4 * 20 + 4)
    }

    /// Byte sizes follow from the format: 28-byte header, descriptor, payload, 4-byte CRC.
    @Test func exactByteSizes() throws {
        let n = 1000, header = UpdateMessage.headerSize, crc = 4
        // 100 spikes every 10 positions: gaps 0, 9, 9, ...; Rice with b = 2 is smallest (5 bits a gap).
        var spikes = [Float](repeating: 0.001, count: n)
        for i in stride(from: 0, to: n, by: 10) { spikes[i] = 1 + Float(i) }
        let riceIndexBytes = 5 + 1 + (3 + 99 * 5 + 7) / 8
        let cases: [(String, [Float], Int)] = [
            ("fp32", spikes, header + 1 + 4 * n + crc),
            ("fp16", spikes, header + 1 + 2 * n + crc),
            ("bf16", spikes, header + 1 + 2 * n + crc),
            ("qsgd:4", spikes, header + 6 + 4 * 2 + (n * 5 + 7) / 8 + crc),
            ("qsgd:2:100", spikes, header + 6 + 4 * 10 + (n * 3 + 7) / 8 + crc),
            ("sign", spikes, header + 1 + 4 + n / 8 + crc),
            ("topk:0.1", spikes, header + 6 + riceIndexBytes + 4 * 100 + crc),
            ("topk:0.1+fp16", spikes, header + 6 + riceIndexBytes + 2 * 100 + crc),
            ("topk:0.1+qsgd:4", spikes, header + 11 + riceIndexBytes + 4 + (100 * 5 + 7) / 8 + crc),
            ("stc:0.1", spikes, header + 5 + 4 + riceIndexBytes + (100 + 7) / 8 + crc),
            // Every other position: the bitmap (125 bytes) beats varint (500) and Rice (126).
            ("topk:0.5", (0..<n).map { $0 % 2 == 0 ? 2 : 1 }, header + 6 + 5 + n / 8 + 4 * 500 + crc),
        ]
        for (spec, values, expected) in cases {
            let bytes = try roundTrip(values, spec, layout: flat).bytes
            #expect(bytes.count == expected, "\(spec): \(bytes.count) bytes, expected \(expected)")
        }
        // Few, spread positions: varint (1-2 bytes a gap) beats the bitmap and Rice.
        var sparse = [Float](repeating: 0, count: 100_000)
        sparse[5] = 1
        sparse[70_000] = 2
        let bytes = try roundTrip(sparse, "topk:0.00002", layout: layout([[100_000]])).bytes
        #expect(bytes.count == header + 6 + 5 + 1 + 3 + 4 * 2 + crc)
    }

    /// Error feedback: what was sent over all rounds plus the final residual equals the sum of the updates.
    @Test(arguments: ["topk:0.05", "qsgd:2", "sign", "stc:0.02", "powersgd:1"])
    func errorFeedbackLosesNothing(spec: String) throws {
        let shapes = layout([[20, 30], [20], [400]])
        let codec = try CodecRegistry.codec(parsing: spec)
        let runtime = ClientRuntime(layout: shapes, training: LocalTrainingConfiguration(epochs: 1, batchSize: 1, optimizer: SGDConfiguration(learningRate: 0.1)),
                                    uplinkCodec: codec, errorFeedback: true, keepsModelCopy: false, seed: 5)
        var state = runtime.initialState(client: 0)
        var updates = [Double](repeating: 0, count: shapes.count), sent = updates
        for round in 1...8 {
            let delta = gaussian(shapes.count, seed: UInt64(100 + round), scale: 0.01)
            let message = try #require(runtime.encode(delta, round: round, client: 0, state: &state))
            let values = try UpdateMessage.decode(message, layout: shapes).values
            for i in 0..<shapes.count {
                updates[i] += Double(delta[i])
                sent[i] += Double(values[i])
            }
        }
        let residual = try #require(state.residual)
        let worst = (0..<shapes.count).map { abs(sent[$0] + Double(residual[$0]) - updates[$0]) }.max()!
        #expect(worst <= 1e-5, "\(spec): |sent + residual - updates| = \(worst)")
        #expect(residual.contains { $0 != 0 }, "\(spec) dropped nothing?")
        // A non-finite update is refused and leaves the state alone.
        let before = state
        #expect(runtime.encode([Float](repeating: .nan, count: shapes.count), round: 9, client: 0, state: &state) == nil)
        #expect(state == before)
    }

    /// Client momentum: the first reply is the delta, then m = β·m + (1 − β)·Δ on literal values;
    /// the momentum survives a checkpoint of the client's state; a non-finite delta leaves it alone.
    @Test func clientMomentumFollowsItsRecursion() throws {
        let shapes = layout([[3]])
        let runtime = ClientRuntime(layout: shapes, training: LocalTrainingConfiguration(epochs: 1, batchSize: 1, optimizer: SGDConfiguration(learningRate: 0.1)),
                                    uplinkCodec: DenseCodec(), errorFeedback: false, keepsModelCopy: false, seed: 5, momentum: 0.75)
        var state = runtime.initialState(client: 0)
        func send(_ delta: [Float], round: Int) throws -> [Float] {
            try UpdateMessage.decode(try #require(runtime.encode(delta, round: round, client: 0, state: &state)), layout: shapes).values
        }
        #expect(try send([4, -8, 0], round: 1) == [4, -8, 0])
        #expect(try send([8, 0, 4], round: 2) == [5, -6, 1])  // 0.75·[4, −8, 0] + 0.25·[8, 0, 4]
        state = try #require(ClientState(vectors: state.vectors))
        let before = state
        #expect(runtime.encode([.nan, 0, 0], round: 3, client: 0, state: &state) == nil && state == before)
        #expect(try send([1, 2, 3], round: 3) == [4, -4, 1.5])
    }

    /// Downlink: the client's copy tracks the global model through compressed changes, and the
    /// server's mirror of it stays equal to it.
    @Test func downlinkCopyTracksTheGlobalModel() throws {
        let shapes = layout([[5000]])
        var downlink = Downlink(codec: try CodecRegistry.codec(parsing: "topk:0.1"), layout: shapes, seed: 1)
        let runtime = ClientRuntime(layout: shapes, training: LocalTrainingConfiguration(epochs: 1, batchSize: 1, optimizer: SGDConfiguration(learningRate: 0.1)),
                                    uplinkCodec: DenseCodec(), errorFeedback: false, keepsModelCopy: true, seed: 1)
        var state = ClientState()
        var global = gaussian(5000, seed: 20)
        func send(round: Int) throws -> Int {
            let full = UpdateMessage.encodeDense(global, kind: .model, round: round, layout: shapes)
            var task = Envelope(kind: .train, client: 3, round: round, modelVersion: round - 1)
            var mirror = downlink.mirrors(for: [3])[0]
            task.payloads[.model] = downlink.message(for: 3, mirror: &mirror, global: global, round: round, fullModel: full)
            downlink.store([mirror], for: [3])
            let received = try runtime.receive(task.bytes, client: 3, state: &state)
            #expect(received.model == state.copy && state.copy == downlink.mirrors[3]?.copy)
            return task.payloads[.model]!.count
        }
        let first = try send(round: 1)
        #expect(first == UpdateMessage.denseSize(count: 5000) && state.copy == global, "first contact gets the full model")
        var previousGap = Float.infinity
        for round in 2...30 {
            if round <= 5 { global = zip(global, gaussian(5000, seed: UInt64(round), scale: 0.01)).map(+) }
            #expect(try send(round: round) < first / 5)
            let gap = zip(global, state.copy!).map { abs($0 - $1) }.max()!
            if round > 5 { #expect(gap <= previousGap) }
            previousGap = gap
        }
        #expect(previousGap == 0, "once the model stops moving, the copy catches up exactly")
    }

    @Test func specsParseCanonicallyAndRejectNonsense() throws {
        for (spec, canonical) in [("dense", "fp32"), ("qsgd:4", "qsgd:4"), ("qsgd:4:512", "qsgd:4"), ("qsgd:3:64", "qsgd:3:64"),
                                  ("topk:0.01+qsgd:4", "topk:0.01+qsgd:4"), ("topk:0.01+fp32", "topk:0.01"), ("powersgd:2+fp16", "powersgd:2+fp16"),
                                  ("stc:0.01", "stc:0.01"), ("sign", "sign"), ("bf16", "bf16")] {
            #expect(try CodecRegistry.codec(parsing: spec).spec == canonical)
        }
        for bad in ["zip", "qsgd", "qsgd:0", "qsgd:9", "qsgd:2.5", "qsgd:4:0", "topk", "topk:0", "topk:1.5", "topk:nan", "stc:-1",
                    "powersgd:0", "powersgd:256", "sign:2", "fp16+qsgd:4", "topk:0.1+topk:0.1", "topk:0.1+stc:0.1",
                    "topk:0.1+qsgd:4+fp16", "topk:0.1+", "+fp16", ""] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try CodecRegistry.codec(parsing: bad) }
        }
    }
}

@Suite struct MessageTests {
    let shapes = layout([[100]])
    let values = gaussian(100, seed: 30)

    func message(_ spec: String = "fp32", values: [Float]? = nil, round: Int = 7) throws -> [UInt8] {
        try roundTrip(values ?? self.values, spec, layout: shapes, seed: 1).bytes
    }

    /// Recomputes the checksum after tampering, so the corruption reaches the field checks.
    func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var body = Array(bytes.dropLast(4))
        let crc = UpdateMessage.checksum(body[...])
        withUnsafeBytes(of: crc.littleEndian) { body += $0 }
        return body
    }

    func patched(_ bytes: [UInt8], at offset: Int, _ newBytes: [UInt8]) -> [UInt8] {
        var copy = bytes
        copy.replaceSubrange(offset..<(offset + newBytes.count), with: newBytes)
        return resealed(copy)
    }

    @Test func rejectsEveryHostileCase() throws {
        let valid = try message()
        let topk = try message("topk:0.1")
        let qsgd = try message("qsgd:4")
        var flipped = valid
        flipped[60] ^= 1
        let topkPayload = UpdateMessage.headerSize + 6
        let nanValues = values.enumerated().map { $0.offset == 3 ? Float.nan : $0.element }
        let nanMessage = nanValues.withUnsafeBufferPointer { buffer in
            var state: [Float] = [], generator = SeededGenerator(seed: 0)
            return UpdateMessage.encode(buffer, kind: .update, round: 1, layout: shapes, codec: DenseCodec(), state: &state, generator: &generator)
        }
        let cases: [(String, [UInt8], ParameterLayout, MessageError?)] = [
            ("empty", [], shapes, .truncated(0)),
            ("truncated header", Array(valid.prefix(20)), shapes, .truncated(20)),
            ("truncated payload", Array(valid.dropLast(9)), shapes, .badChecksum),
            ("truncated and resealed", resealed(Array(valid.dropLast(9))), shapes, .badField("lengths (descriptor 1, payload 400) do not add up to 424 bytes")),
            ("bad magic", patched(valid, at: 0, [0x46, 0x54, 0x55, 0x58]), shapes, .badMagic),
            ("future version", patched(valid, at: 4, [3, 0]), shapes, .unsupportedVersion(3)),
            ("flipped bit", flipped, shapes, .badChecksum),
            ("bad kind", patched(valid, at: 6, [9]), shapes, .badField("kind")),
            ("other model", valid, layout([[10, 10]]), .wrongLayout),
            ("wrong count", patched(valid, at: 16, [99, 0, 0, 0]), shapes, .wrongElementCount(99, expected: 100)),
            ("unknown codec", patched(valid, at: 28, [200]), shapes, .unsupportedCodec(200)),
            ("qsgd bits 9", patched(qsgd, at: 29, [9]), shapes, .badField("qsgd parameters")),
            ("topk fraction 2", patched(topk, at: 29, [0, 0, 0, 0x40]), shapes, .badField("topk fraction 2.0")),
            ("topk more positions than values", patched(topk, at: topkPayload + 1, [101, 0, 0, 0]), shapes, .badField("101 positions for 100 elements")),
            ("topk wrong count", patched(topk, at: topkPayload + 1, [11, 0, 0, 0]), shapes, nil),
            ("topk fewer positions", patched(topk, at: topkPayload + 1, [9, 0, 0, 0]), shapes, nil),
            ("bad index mode", patched(topk, at: topkPayload, [7]), shapes, .badField("index coding mode 7")),
            ("NaN values", nanMessage, shapes, .nonFinite),
            ("NaN qsgd norm", patched(qsgd, at: UpdateMessage.headerSize + 6, [0, 0, 0xC0, 0x7F]), shapes, .nonFinite),
        ]
        for (name, bytes, layout, expected) in cases {
            if let expected {
                #expect(throws: expected, "\(name)") { try UpdateMessage.decode(bytes, layout: layout) }
            } else {
                #expect(throws: MessageError.self, "\(name)") { try UpdateMessage.decode(bytes, layout: layout) }
            }
        }
        // Positions out of range, in every index coding.
        var bitmap = ByteWriter(), varint = ByteWriter(), rice = ByteWriter()
        IndexCoding.encode((0..<50).map { UInt32(2 * $0) }, count: 100, into: &bitmap)
        IndexCoding.encode([3, 90], count: 100, into: &varint)
        IndexCoding.encode((0..<10).map { UInt32($0 * 10) }, count: 100, into: &rice)
        #expect(bitmap.bytes[0] == 0 && varint.bytes[0] == 1 && rice.bytes[0] == 2)
        var readBitmap = ByteReader(bitmap.bytes), readVarint = ByteReader(varint.bytes), readRice = ByteReader(rice.bytes)
        #expect(throws: MessageError.self) { try IndexCoding.decode(from: &readBitmap, count: 59) }
        #expect(throws: MessageError.self) { try IndexCoding.decode(from: &readVarint, count: 90) }
        #expect(throws: MessageError.self) { try IndexCoding.decode(from: &readRice, count: 90) }
        var again = ByteReader(rice.bytes)
        #expect(try IndexCoding.decode(from: &again, count: 100) == (0..<10).map { UInt32($0 * 10) })
        // Trailing bytes inside the payload are rejected too.
        var long = Array(valid.dropLast(4)) + [0]
        long.replaceSubrange(24..<28, with: [145, 1, 0, 0])
        #expect(throws: MessageError.badField("payload has 1 trailing bytes")) { try UpdateMessage.decode(resealed(long + [0, 0, 0, 0]), layout: shapes) }
    }

    /// Random corruptions of valid messages of every codec, with and without a fixed-up
    /// checksum: decoding throws or returns a full, finite vector; it never traps.
    @Test(arguments: ["fp32", "fp16", "bf16", "qsgd:3", "topk:0.05", "topk:0.5+qsgd:2", "sign", "stc:0.1", "topk:0.02"])
    func fuzzedMessagesNeverCrash(spec: String) throws {
        let valid = try message(spec)
        var generator = SeededGenerator(seed: 11)
        var accepted = 0
        for trial in 0..<1500 {
            var bytes = valid
            switch generator.next(upperBound: UInt64(3)) {
            case 0: bytes = Array(bytes.prefix(Int(generator.next(upperBound: UInt64(bytes.count)))))
            default:
                for _ in 0...Int(generator.next(upperBound: UInt64(3))) {
                    let position = Int(generator.next(upperBound: UInt64(bytes.count)))
                    bytes[position] ^= UInt8(1 + generator.next(upperBound: UInt64(255)))
                }
            }
            if trial % 2 == 0, bytes.count >= 4 { bytes = resealed(bytes) }
            if let decoded = try? UpdateMessage.decode(bytes, layout: shapes) {
                accepted += 1
                #expect(decoded.values.count == 100 && decoded.values.allSatisfy(\.isFinite))
                if trial % 2 == 1 { #expect(bytes == valid, "a corrupted message passed the checksum") }
            }
        }
        #expect(accepted < 1500)
    }
}
