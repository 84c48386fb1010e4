import Engine

/// QSGD (Alistarh et al. 2017): unbiased stochastic quantization with one norm per bucket.
///
/// Each bucket of `bucket` consecutive values `v` is sent as its Euclidean norm `‖v‖` (fp32) and,
/// per value, a sign bit and a level `ℓ ∈ 0...s` (`s = 2^bits − 1`) in `bits` bits, where
/// `ℓ = ⌊s·|vᵢ|/‖v‖⌋ + 1` with probability equal to the fractional part (else the floor) and the
/// sign bit is the sign bit of vᵢ (so −0 and a level-0 value may carry either); the
/// receiver reads `sign · ‖v‖ · ℓ / s`. So `E[Q(v)] = v`, and per bucket
/// `E‖Q(v) − v‖² ≤ min(d/s², √d/s) · ‖v‖²` with `d` the bucket length.
///
/// Payload: `4·⌈n/bucket⌉` bytes of norms, then `⌈n·(bits+1)/8⌉` bytes of codes (sign in the low
/// bit, level above it), LSB first.
public struct QSGDCodec: ValueCodec {
    public static let defaultBucket = 512
    public static let maximumBucket = 1 << 24
    public let bits: Int
    public let bucket: Int

    public init(bits: Int, bucket: Int = QSGDCodec.defaultBucket) {
        precondition((1...8).contains(bits) && (1...Self.maximumBucket).contains(bucket))
        self.bits = bits
        self.bucket = bucket
    }

    public var spec: String { bucket == Self.defaultBucket ? "qsgd:\(bits)" : "qsgd:\(bits):\(bucket)" }
    var levels: Int { (1 << bits) - 1 }

    public func writeDescriptor(to writer: inout ByteWriter) {
        writer.append(CodecTag.qsgd.rawValue)
        writer.append(UInt8(bits))
        writer.append(UInt32(bucket))
    }

    func payloadSize(count n: Int) -> Int { 4 * ((n + bucket - 1) / bucket) + (n * (bits + 1) + 7) / 8 }

    public func encode(_ values: UnsafeBufferPointer<Float>, generator: inout SeededGenerator, into writer: inout ByteWriter) {
        let n = values.count, buckets = (n + bucket - 1) / bucket
        let width = bits + 1
        var random = generator
        writer.appendBytes(count: payloadSize(count: n)) { raw in
            var codes = BitWriter(UnsafeMutableRawBufferPointer(rebasing: raw[(4 * buckets)...]))
            for b in 0..<buckets {
                let start = b * bucket, end = min(start + bucket, n)
                let norm = BLAS.norm(UnsafeBufferPointer(rebasing: values[start..<end]))
                raw.storeBytes(of: norm.bitPattern.littleEndian, toByteOffset: 4 * b, as: UInt32.self)
                quantize(values.baseAddress! + start, count: end - start, norm: norm, random: &random, codes: &codes, width: width)
            }
            codes.flush()
        }
        generator = random
    }

    /// Writes the codes of one bucket. Stochastic rounding as `⌊r + u⌋` with `u` uniform in
    /// [0, 1): it rounds up with probability frac(r), so the level is unbiased. Two 24-bit
    /// uniforms per generator step.
    @inline(__always)
    private func quantize(_ x: UnsafePointer<Float>, count: Int, norm: Float, random: inout SeededGenerator,
                          codes: inout BitWriter, width: Int) {
        let s = Float(levels)
        let scale = norm > 0 ? s / norm : 0
        @inline(__always) func code(_ value: Float, _ uniformBits: UInt64) -> UInt64 {
            let u = Float(uniformBits & 0xFF_FFFF) * 0x1p-24
            let level = UInt64(Int32(min(abs(value) * scale + u, s)))
            return level << 1 | UInt64(value.bitPattern >> 31)
        }
        var i = 0
        while i + 2 <= count {
            let word = random.next()
            codes.write(code(x[i], word >> 40), bits: width)
            codes.write(code(x[i + 1], word), bits: width)
            i += 2
        }
        if i < count { codes.write(code(x[i], random.next() >> 40), bits: width) }
    }

    public func decode(from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError) {
        let n = output.count, buckets = (n + bucket - 1) / bucket
        let width = bits + 1, inverseLevels = 1 / Float(levels)
        try reader.readBytes(count: payloadSize(count: n)) { raw throws(MessageError) in
            var codes = BitReader(UnsafeRawBufferPointer(rebasing: raw[(4 * buckets)...]))
            for b in 0..<buckets {
                let norm = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * b, as: UInt32.self)))
                guard norm.isFinite, norm >= 0 else { throw .nonFinite }
                let step = norm * inverseLevels
                for i in (b * bucket)..<min(b * bucket + bucket, n) {
                    let code = codes.read(bits: width)
                    let magnitude = Float(code >> 1) * step
                    output[i] = code & 1 == 1 ? -magnitude : magnitude
                }
            }
        }
    }
}
