import Engine

/// Turns a vector laid out as a model's parameters (an update, or the change of a global model)
/// into a payload of bytes and back. `UpdateMessage` wraps the payload with the codec's
/// descriptor, so a receiver rebuilds the codec from the message alone.
///
/// Contracts: `decode` overwrites every element of `output` (`layout.count` of them) and reads
/// exactly the bytes `encode` wrote; any inconsistency in hostile bytes throws, never traps.
/// Encoding is deterministic given `state` and `generator`.
public protocol UpdateCodec: Sendable {
    /// The spec this codec was parsed from (`topk:0.01+qsgd:4`), canonical.
    var spec: String { get }
    /// Appends the tag and parameters that `CodecRegistry.codec(from:)` reads back.
    func writeDescriptor(to writer: inout ByteWriter)
    /// Whether the sender keeps state between encodes (`initialState` is not empty).
    var isStateful: Bool { get }
    /// State the sender keeps between encodes (PowerSGD's warm start), created once per sender.
    func initialState(layout: ParameterLayout, generator: inout SeededGenerator) -> [Float]
    func encode(_ values: UnsafeBufferPointer<Float>, layout: ParameterLayout, state: inout [Float],
                generator: inout SeededGenerator, into writer: inout ByteWriter)
    func decode(from reader: inout ByteReader, layout: ParameterLayout, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError)
}

/// A codec for a plain run of floats (no layout): usable alone and for the values kept by a
/// sparsifying or low-rank codec (`topk:0.01+qsgd:4`, `powersgd:2+fp16`).
public protocol ValueCodec: UpdateCodec {
    func encode(_ values: UnsafeBufferPointer<Float>, generator: inout SeededGenerator, into writer: inout ByteWriter)
    func decode(from reader: inout ByteReader, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError)
}

extension UpdateCodec {
    public var isStateful: Bool { false }

    public func initialState(layout: ParameterLayout, generator: inout SeededGenerator) -> [Float] { [] }

    /// Whether this is the uncompressed fp32 codec.
    public var isDense: Bool { self is DenseCodec }
}

extension ValueCodec {
    public func encode(_ values: UnsafeBufferPointer<Float>, layout: ParameterLayout, state: inout [Float],
                       generator: inout SeededGenerator, into writer: inout ByteWriter) {
        encode(values, generator: &generator, into: &writer)
    }

    public func decode(from reader: inout ByteReader, layout: ParameterLayout, into output: UnsafeMutableBufferPointer<Float>) throws(MessageError) {
        try decode(from: &reader, into: output)
    }
}

/// Codec tags as written in message descriptors. Never renumber: old messages must keep meaning.
enum CodecTag: UInt8 {
    case fp32 = 0, fp16, bf16, qsgd, topk, sign, stc, powersgd
}

/// Parses codec specs (user input) and descriptors (message bytes).
public enum CodecRegistry {
    public static let help = "fp32 (dense), fp16, bf16, qsgd:BITS[:BUCKET], topk:FRACTION[+VALUES], sign, stc:FRACTION, "
        + "powersgd:RANK[+VALUES]; VALUES is fp16, bf16 or qsgd:BITS[:BUCKET]"

    /// Parses `spec`, for example `qsgd:4`, `topk:0.01+qsgd:4`, `powersgd:2+fp16`.
    public static func codec(parsing spec: String) throws(ConfigurationError) -> any UpdateCodec {
        let stages = spec.split(separator: "+", omittingEmptySubsequences: false).map(String.init)
        guard stages.count <= 2 else { throw ConfigurationError("codec \(spec): at most one +VALUES stage (\(help))") }
        var inner: (any ValueCodec)?
        if stages.count == 2 {
            guard let values = try codec(stage: stages[1], spec: spec) as? any ValueCodec,
                  !(values is TopKCodec || values is STCCodec) else {
                throw ConfigurationError("codec \(spec): the values after + must be fp16, bf16 or qsgd")
            }
            inner = values
        }
        let outer = try codec(stage: stages[0], spec: spec, inner: inner)
        if inner != nil, !(outer is TopKCodec || outer is PowerSGDCodec) {
            throw ConfigurationError("codec \(spec): only topk and powersgd take +VALUES")
        }
        return outer
    }

    private static func codec(stage: String, spec: String, inner: (any ValueCodec)? = nil) throws(ConfigurationError) -> any UpdateCodec {
        let parts = stage.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let name = parts[0], arguments = Array(parts.dropFirst())
        func number(_ index: Int, _ what: String) throws(ConfigurationError) -> Double {
            guard index < arguments.count, let value = Double(arguments[index]), value.isFinite else {
                throw ConfigurationError("codec \(spec): \(name) needs \(what)")
            }
            return value
        }
        func arity(_ allowed: ClosedRange<Int>) throws(ConfigurationError) {
            guard allowed.contains(arguments.count) else { throw ConfigurationError("codec \(spec): wrong number of parameters for \(name) (\(help))") }
        }
        switch name {
        case "fp32", "dense":
            try arity(0...0)
            return DenseCodec()
        case "fp16":
            try arity(0...0)
            return Float16Codec()
        case "bf16":
            try arity(0...0)
            return BFloat16Codec()
        case "qsgd":
            try arity(1...2)
            let bits = try number(0, "BITS in 1...8")
            guard bits == bits.rounded(), (1...8).contains(bits) else { throw ConfigurationError("codec \(spec): qsgd BITS must be an integer in 1...8") }
            let bucket = arguments.count == 2 ? try number(1, "a BUCKET size") : Double(QSGDCodec.defaultBucket)
            guard bucket == bucket.rounded(), bucket >= 1, bucket <= Double(QSGDCodec.maximumBucket) else {
                throw ConfigurationError("codec \(spec): qsgd BUCKET must be an integer in 1...\(QSGDCodec.maximumBucket)")
            }
            return QSGDCodec(bits: Int(bits), bucket: Int(bucket))
        case "topk", "stc":
            try arity(1...1)
            let fraction = try number(0, "a FRACTION in (0, 1]")
            guard fraction > 0, fraction <= 1 else { throw ConfigurationError("codec \(spec): \(name) FRACTION must be in (0, 1]") }
            return name == "topk" ? TopKCodec(fraction: Float(fraction), values: inner ?? DenseCodec()) : STCCodec(fraction: Float(fraction))
        case "sign":
            try arity(0...0)
            return SignCodec()
        case "powersgd":
            try arity(1...1)
            let rank = try number(0, "a RANK in 1...255")
            guard rank == rank.rounded(), (1...255).contains(rank) else { throw ConfigurationError("codec \(spec): powersgd RANK must be an integer in 1...255") }
            return PowerSGDCodec(rank: Int(rank), values: inner ?? DenseCodec())
        default:
            throw ConfigurationError("unknown codec \(name) in \(spec); codecs: \(help)")
        }
    }

    /// Reads a descriptor written by `writeDescriptor`, checking every parameter.
    static func codec(from reader: inout ByteReader) throws(MessageError) -> any UpdateCodec {
        let raw: UInt8 = try reader.read()
        guard let tag = CodecTag(rawValue: raw) else { throw .unsupportedCodec(UInt16(raw)) }
        switch tag {
        case .fp32: return DenseCodec()
        case .fp16: return Float16Codec()
        case .bf16: return BFloat16Codec()
        case .sign: return SignCodec()
        case .qsgd:
            let bits = Int(try reader.read(UInt8.self)), bucket = Int(try reader.read(UInt32.self))
            guard (1...8).contains(bits), (1...QSGDCodec.maximumBucket).contains(bucket) else { throw .badField("qsgd parameters") }
            return QSGDCodec(bits: bits, bucket: bucket)
        case .topk, .stc:
            let fraction = try reader.readFloat()
            guard fraction > 0, fraction <= 1 else { throw .badField("\(tag) fraction \(fraction)") }
            if tag == .stc { return STCCodec(fraction: fraction) }
            return TopKCodec(fraction: fraction, values: try valueCodec(from: &reader))
        case .powersgd:
            let rank = Int(try reader.read(UInt8.self))
            guard rank >= 1 else { throw .badField("powersgd rank 0") }
            return PowerSGDCodec(rank: rank, values: try valueCodec(from: &reader))
        }
    }

    private static func valueCodec(from reader: inout ByteReader) throws(MessageError) -> any ValueCodec {
        guard let values = try codec(from: &reader) as? any ValueCodec, !(values is TopKCodec || values is STCCodec) else {
            throw .badField("nested codec")
        }
        return values
    }
}
