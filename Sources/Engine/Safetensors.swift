import Foundation

/// Why a safetensors file was rejected.
public enum SafetensorsError: Error, CustomStringConvertible, Sendable {
    case io(FileError)
    case malformed(path: String, problem: String)
    case incompatible(path: String, problem: String)

    public var description: String {
        switch self {
        case .io(let error): return error.description
        case .malformed(let path, let problem): return "\(path): not a valid safetensors file: \(problem)"
        case .incompatible(let path, let problem): return "\(path): does not fit this model: \(problem)"
        }
    }
}

/// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
/// N bytes of JSON mapping each tensor name to `{dtype, shape, data_offsets: [begin, end]}`
/// (offsets relative to the data section, which the tensors tile without gaps or overlap), then
/// the raw little-endian data. fedtrain writes and reads F32 tensors named as in PyTorch's
/// `state_dict`, so `model.load_state_dict(safetensors.torch.load_file(path))` works.
public enum Safetensors {
    /// Header size limit, as in the reference implementation (100 MB).
    static let maximumHeaderLength = 100_000_000

    /// Serializes `parameters` (laid out by `layout`) with optional string `metadata`.
    public static func encode(_ parameters: [Float], layout: ParameterLayout, metadata: [String: String] = [:]) -> [UInt8] {
        precondition(parameters.count == layout.count)
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        for entry in layout.entries {
            let shape = entry.shape.map(String.init).joined(separator: ",")
            fields.append("\(jsonString(entry.name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(entry.offset * 4),\((entry.offset + entry.count) * 4)]}")
        }
        var header = Array("{\(fields.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + header.count + parameters.count * 4)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: header)
        for value in parameters {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    /// Writes `parameters` to `path` atomically.
    public static func save(_ parameters: [Float], layout: ParameterLayout, to path: String, metadata: [String: String] = [:]) throws(SafetensorsError) {
        do {
            try AtomicFile.write(encode(parameters, layout: layout, metadata: metadata), to: path)
        } catch {
            throw .io(error)
        }
    }

    /// Reads `path` into a vector laid out by `layout`. The file must hold exactly the layout's
    /// tensors (any order), each F32 with the layout's shape.
    public static func load(_ path: String, layout: ParameterLayout) throws(SafetensorsError) -> [Float] {
        let bytes: [UInt8]
        do { bytes = try AtomicFile.read(path) } catch { throw .io(error) }
        return try decode(bytes, layout: layout, path: path)
    }

    /// One tensor of a safetensors file.
    public struct Tensor: Sendable {
        public var shape: [Int]
        public var values: [Float]
    }

    /// Every F32 tensor of a safetensors image by name, after checking the whole header (JSON,
    /// dtypes, shapes against byte ranges, data section tiled without gaps or overlap).
    /// `path` only names the source in errors.
    public static func tensors(_ bytes: [UInt8], path: String = "<memory>") throws(SafetensorsError) -> [String: Tensor] {
        func malformed(_ problem: String) -> SafetensorsError { .malformed(path: path, problem: problem) }
        guard bytes.count >= 8 else { throw malformed("file is \(bytes.count) bytes, shorter than the 8-byte header length") }
        let headerLength = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength >= 2, headerLength <= UInt64(maximumHeaderLength), headerLength <= UInt64(bytes.count - 8) else {
            throw malformed("header length \(headerLength) does not fit in a \(bytes.count)-byte file")
        }
        let dataStart = 8 + Int(headerLength)
        let headerBytes = Data(bytes[8..<dataStart])
        guard let object = try? JSONSerialization.jsonObject(with: headerBytes), let header = object as? [String: Any] else {
            throw malformed("header is not a JSON object")
        }
        struct Entry { var name: String; var shape: [Int]; var begin: Int; var end: Int }
        var entries: [Entry] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any] else { throw malformed("entry \(name) is not an object") }
            guard let dtype = info["dtype"] as? String else { throw malformed("entry \(name) has no dtype") }
            guard let shapeValues = info["shape"] as? [Any], let offsetValues = info["data_offsets"] as? [Any],
                  offsetValues.count == 2 else { throw malformed("entry \(name) needs shape and two data_offsets") }
            let shape = shapeValues.compactMap { ($0 as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } }
            let offsets = offsetValues.compactMap { ($0 as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } }
            guard shape.count == shapeValues.count, shape.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }),
                  offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw malformed("entry \(name) has an invalid shape or data_offsets")
            }
            guard dtype == "F32" else {
                throw .incompatible(path: path, problem: "tensor \(name) has dtype \(dtype); fedtrain reads F32 only")
            }
            let (elements, overflow) = shape.reduce((1, false)) { acc, d in
                let r = acc.0.multipliedReportingOverflow(by: d); return (r.partialValue, acc.1 || r.overflow) }
            guard !overflow, elements * 4 == offsets[1] - offsets[0] else {
                throw malformed("tensor \(name): shape \(shape) does not match its \(offsets[1] - offsets[0]) data bytes")
            }
            entries.append(Entry(name: name, shape: shape, begin: offsets[0], end: offsets[1]))
        }
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var expected = 0
        for entry in entries {
            guard entry.begin == expected else { throw malformed("tensor \(entry.name) data does not follow the previous tensor (gap or overlap)") }
            expected = entry.end
        }
        guard expected == bytes.count - dataStart else {
            throw malformed("tensors cover \(expected) data bytes but the file holds \(bytes.count - dataStart)")
        }
        var result: [String: Tensor] = [:]
        for entry in entries {
            let values = (0..<((entry.end - entry.begin) / 4)).map { index -> Float in
                let at = dataStart + entry.begin + 4 * index
                return Float(bitPattern: UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24)
            }
            result[entry.name] = Tensor(shape: entry.shape, values: values)
        }
        return result
    }

    /// Parses a safetensors image into a vector laid out by `layout`: exactly the layout's
    /// tensors (any order), each with the layout's shape. `path` only names the source in errors.
    public static func decode(_ bytes: [UInt8], layout: ParameterLayout, path: String = "<memory>") throws(SafetensorsError) -> [Float] {
        let named = try tensors(bytes, path: path)
        var parameters = [Float](repeating: 0, count: layout.count)
        for (name, tensor) in named.sorted(by: { $0.key < $1.key }) {
            guard let entry = layout[name] else { throw .incompatible(path: path, problem: "unexpected tensor \(name)") }
            guard entry.shape == tensor.shape else {
                throw .incompatible(path: path, problem: "tensor \(name) has shape \(tensor.shape), the model needs \(entry.shape)")
            }
            parameters.replaceSubrange(entry.range, with: tensor.values)
        }
        if let missing = layout.entries.first(where: { named[$0.name] == nil }) {
            throw .incompatible(path: path, problem: "missing tensor \(missing.name)")
        }
        return parameters
    }

    private static func jsonString(_ text: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
        let array = String(decoding: data, as: UTF8.self)
        return String(array.dropFirst().dropLast())
    }
}
