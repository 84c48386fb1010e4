import Engine

/// Bucketing (Karimireddy, He and Jaggi 2022): the round's updates are shuffled, averaged in
/// consecutive groups of `size` (the last may be smaller), and `inner` aggregates the bucket
/// means, which are `size` times less heterogeneous, so robust rules stop mistaking honest
/// non-IID clients for attackers. The shuffle comes from (seed, bucketing, round). The
/// selected clients (Krum family) are the members of the selected buckets.
public struct Bucketing: Aggregator {
    public let size: Int
    public let seed: UInt64
    public private(set) var inner: any Aggregator

    public init(size: Int, seed: UInt64, inner: any Aggregator) {
        precondition(size >= 1)
        (self.size, self.seed, self.inner) = (size, seed, inner)
    }

    /// Enough updates for `inner` to see its minimum number of buckets.
    public var minimumUpdates: Int { (inner.minimumUpdates - 1) * size + 1 }

    public mutating func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        var generator = SeededGenerator.derived(seed: seed, RandomStream.bucketing.rawValue, UInt64(round))
        let groups = Self.buckets(count: results.count, size: size, generator: &generator)
        let means = groups.enumerated().map { index, members in
            ClientUpdate(client: index, samples: members.reduce(0) { $0 + results[$1].samples }, steps: members.map { results[$0].steps }.max()!,
                         delta: Aggregation.weightedMean(members.map { results[$0].delta }, weights: [Double](repeating: 1, count: members.count)),
                         trainLoss: 0)
        }
        var aggregate = inner.aggregate(means, round: round)
        aggregate.selected = aggregate.selected.map { buckets in buckets.flatMap { groups[$0].map { results[$0].client } } }
        return aggregate
    }

    /// Indices `0..<count` in a Fisher-Yates shuffle, cut into consecutive groups of `size`.
    public static func buckets(count: Int, size: Int, generator: inout SeededGenerator) -> [[Int]] {
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, Int(generator.next(upperBound: UInt64(i + 1)))) }
        return stride(from: 0, to: count, by: size).map { Array(order[$0..<min(count, $0 + size)]) }
    }

    public var state: [String: [Float]] { inner.state }
    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) { try inner.restore(state) }
}
