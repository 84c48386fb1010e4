/// One named tensor inside a model's flat parameter vector.
public struct ParameterEntry: Sendable, Hashable, Codable {
    /// PyTorch `state_dict` key, for example `conv1.weight`.
    public var name: String
    /// PyTorch shape, for example `[6, 1, 5, 5]`.
    public var shape: [Int]
    /// Position of the first element in the flat vector.
    public var offset: Int
    public var count: Int { shape.reduce(1, *) }
    public var range: Range<Int> { offset..<(offset + count) }
}

/// The names, shapes and positions of every tensor in a flat parameter vector.
///
/// Parameters, gradients, optimizer state, client deltas and aggregates all share one layout, so
/// every vector operation is a single pass over contiguous memory. Entries are in `state_dict`
/// order and tile `0..<count` without gaps.
public struct ParameterLayout: Sendable, Hashable, Codable {
    public private(set) var entries: [ParameterEntry] = []
    /// Total number of scalars.
    public private(set) var count = 0

    public init() {}

    /// Appends a tensor after the existing ones and returns its entry.
    @discardableResult
    public mutating func append(name: String, shape: [Int]) -> ParameterEntry {
        precondition(shape.allSatisfy { $0 > 0 }, "parameter \(name) has an empty dimension: \(shape)")
        precondition(!entries.contains { $0.name == name }, "duplicate parameter name \(name)")
        let entry = ParameterEntry(name: name, shape: shape, offset: count)
        entries.append(entry)
        count += entry.count
        return entry
    }

    public subscript(name: String) -> ParameterEntry? {
        entries.first { $0.name == name }
    }

    /// A stable 64-bit fingerprint of names and shapes (FNV-1a), so messages and checkpoints can
    /// reject a vector meant for another model.
    public var fingerprint: UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix(_ byte: UInt8) { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        for entry in entries {
            entry.name.utf8.forEach(mix)
            mix(0)
            for dimension in entry.shape {
                withUnsafeBytes(of: UInt64(dimension).littleEndian) { $0.forEach(mix) }
            }
        }
        return hash
    }
}
