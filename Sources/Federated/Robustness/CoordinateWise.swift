/// Per-coordinate order statistics over a round's updates (the rows, one length each): for
/// every coordinate the n values are gathered, sorted ascending, and `reduce` turns them into
/// that coordinate's result. One pass over the coordinates in order; no allocation per
/// coordinate. NaN never reaches it (the coordinator rejects non-finite updates).
enum CoordinateWise {
    static func reduce(_ rows: [[Float]], _ reduce: (UnsafeMutableBufferPointer<Float>) -> Double) -> [Float] {
        precondition(!rows.isEmpty, "no updates to reduce")
        let count = rows[0].count
        precondition(rows.allSatisfy { $0.count == count }, "updates differ in length")
        var result = [Float](repeating: 0, count: count)
        var column = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows.count)
        defer { column.deallocate() }
        for k in 0..<count {
            for (i, row) in rows.enumerated() { column[i] = row[k] }
            column.sort()
            result[k] = Float(reduce(column))
        }
        return result
    }

    /// The median of sorted values: the middle one, or the mean of the two middle ones.
    static func median(ofSorted values: UnsafeMutableBufferPointer<Float>) -> Double {
        let n = values.count, middle = n / 2
        return n % 2 == 1 ? Double(values[middle]) : (Double(values[middle - 1]) + Double(values[middle])) / 2
    }

    /// The mean of `values[range]`, summed in Double.
    static func mean(_ values: UnsafeMutableBufferPointer<Float>, _ range: Range<Int>) -> Double {
        var sum = 0.0
        for i in range { sum += Double(values[i]) }
        return sum / Double(range.count)
    }
}

/// Coordinate-wise median (Yin et al. 2018): each coordinate is the median of the clients'
/// values; with an even count, the mean of the two middle values (numpy's, Flower's and
/// byzfl's convention). Unweighted: self-reported sample counts are ignored. Breaks down only
/// when half the updates are hostile.
public struct CoordinateMedian: Aggregator {
    public init() {}

    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        Aggregate(direction: Self.median(results.map(\.delta)))
    }

    public static func median(_ rows: [[Float]]) -> [Float] {
        CoordinateWise.reduce(rows) { CoordinateWise.median(ofSorted: $0) }
    }
}

/// Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate, the `trim` largest and `trim`
/// smallest values are dropped and the remaining `n − 2·trim` averaged in Double. `trim` is a
/// count, not a fraction (Flower's `int(beta·n)` trims one fewer than meant for many n).
/// Unweighted.
public struct TrimmedMean: Aggregator {
    public let trim: Int

    public init(trim: Int) {
        precondition(trim >= 0)
        self.trim = trim
    }

    public var minimumUpdates: Int { 2 * trim + 1 }

    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        Aggregate(direction: Self.trimmedMean(results.map(\.delta), trim: trim))
    }

    public static func trimmedMean(_ rows: [[Float]], trim: Int) -> [Float] {
        precondition(rows.count > 2 * trim, "trimming \(trim) per side needs more than \(2 * trim) updates")
        return CoordinateWise.reduce(rows) { CoordinateWise.mean($0, trim..<($0.count - trim)) }
    }
}
