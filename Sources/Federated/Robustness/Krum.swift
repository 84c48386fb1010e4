/// Krum and Multi-Krum (Blanchard et al. 2017). Each update's score is the sum of its squared
/// distances to its `n − f − 2` nearest other updates (the paper's and Flower's count; byzfl
/// and FLPoison use `n − f − 1`); Krum returns the update with the lowest score, Multi-Krum the
/// plain mean of the `m` lowest-scoring ones (default `n − f`). Ties go to the earlier update in
/// sampled order. Unweighted: a liar's sample count buys nothing. Defined for `n > 2f + 2`
/// and, with `m` given, `m ≤ n − f` (more would average updates the rule must assume hostile).
public struct Krum: Aggregator {
    /// `f`, the hostile updates the rule must survive.
    public let byzantine: Int
    /// Updates averaged: 1 for Krum, nil for Multi-Krum's default `n − f`.
    public let selecting: Int?

    public init(byzantine: Int, selecting: Int? = 1) {
        precondition(byzantine >= 0 && (selecting ?? 1) >= 1)
        (self.byzantine, self.selecting) = (byzantine, selecting)
    }

    public var minimumUpdates: Int { max(2 * byzantine + 3, (selecting ?? 0) + byzantine) }

    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        let rows = results.map(\.delta)
        let chosen = Self.select(PairwiseDistances(rows), byzantine: byzantine, count: selecting ?? rows.count - byzantine)
        return Aggregate(direction: Aggregation.weightedMean(chosen.map { rows[$0] }, weights: [Double](repeating: 1, count: chosen.count)),
                         selected: chosen.map { results[$0].client })
    }

    /// Krum's score of each of `members` (indices into `distances`) within that set: the sum of
    /// its `max(0, |members| − f − 2)` smallest squared distances to the other members.
    public static func scores(_ distances: PairwiseDistances, members: [Int], byzantine: Int) -> [Double] {
        let neighbours = max(0, members.count - byzantine - 2)
        return members.map { i in
            var others = members.filter { $0 != i }.map { distances[i, $0] }
            others.sort()
            return others.prefix(neighbours).reduce(0, +)
        }
    }

    /// The `count` lowest-scoring rows (by score, then index), lowest first.
    public static func select(_ distances: PairwiseDistances, byzantine: Int, count: Int) -> [Int] {
        let members = Array(0..<distances.count)
        let score = scores(distances, members: members, byzantine: byzantine)
        return members.sorted { (score[$0], $0) < (score[$1], $1) }.prefix(count).map { $0 }
    }
}

/// Bulyan (El Mhamdi et al. 2018): `θ = n − 2f` updates chosen by running Krum again and again
/// on the ones left (each pick scored within the remaining set, then removed; not Flower's
/// one-shot Multi-Krum, which picks other updates), then per coordinate the mean of the
/// `β = θ − 2f` chosen values closest to their median. Defined for `n ≥ 4f + 3`.
public struct Bulyan: Aggregator {
    public let byzantine: Int

    public init(byzantine: Int) {
        precondition(byzantine >= 0)
        self.byzantine = byzantine
    }

    public var minimumUpdates: Int { 4 * byzantine + 3 }

    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        let rows = results.map(\.delta)
        let chosen = Self.select(PairwiseDistances(rows), byzantine: byzantine)
        return Aggregate(direction: Self.closestToMedianMean(chosen.map { rows[$0] }, keep: chosen.count - 2 * byzantine),
                         selected: chosen.map { results[$0].client })
    }

    /// The `n − 2f` indices recursive Krum picks, in the order picked.
    public static func select(_ distances: PairwiseDistances, byzantine: Int) -> [Int] {
        precondition(distances.count >= 4 * byzantine + 3, "Bulyan needs n >= 4f + 3")
        var remaining = Array(0..<distances.count), chosen: [Int] = []
        while chosen.count < distances.count - 2 * byzantine {
            let score = Krum.scores(distances, members: remaining, byzantine: byzantine)
            let best = remaining.indices.min { (score[$0], remaining[$0]) < (score[$1], remaining[$1]) }!
            chosen.append(remaining.remove(at: best))
        }
        return chosen
    }

    /// Per coordinate: the mean of the `keep` values closest to the median (ties to the smaller value).
    public static func closestToMedianMean(_ rows: [[Float]], keep: Int) -> [Float] {
        precondition(keep >= 1 && keep <= rows.count)
        return CoordinateWise.reduce(rows) { sorted in
            // The closest values form a window of the sorted values: grow it from the median's
            // place, one value at a time, from whichever side is closer (the lower on a tie).
            let median = CoordinateWise.median(ofSorted: sorted)
            var low = 0
            while low < sorted.count && Double(sorted[low]) < median { low += 1 }
            var high = low
            while high - low < keep {
                let below = low > 0 ? median - Double(sorted[low - 1]) : .infinity
                let above = high < sorted.count ? Double(sorted[high]) - median : .infinity
                if below <= above { low -= 1 } else { high += 1 }
            }
            return CoordinateWise.mean(sorted, low..<high)
        }
    }
}
