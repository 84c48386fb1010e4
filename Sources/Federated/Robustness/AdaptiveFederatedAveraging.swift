import Foundation

/// Adaptive federated averaging (AFA; Muñoz-González, Co and Lupu, "Byzantine-Robust Federated
/// Machine Learning through Adaptive Model Averaging", arXiv:1909.05125, 2019), with the paper's
/// defaults (those of the MUSKETEER project's reference code): slack ξ₀ = 2 growing by 0.5, a
/// Beta(3, 3) prior on each client being good, blocking at 95% confidence.
///
/// Each round, over the updates of clients not blocked:
/// 1. the reputation-weighted mean of the good set (initially every update), with weights
///    `pₖ = αₖ / (αₖ + βₖ)`;
/// 2. each good update's cosine similarity to it, their mean, median and (population) standard
///    deviation σ; if the mean is below the median the outliers are low, and every update below
///    `median − ξ·σ` leaves the good set, otherwise every update above `median + ξ·σ`;
/// 3. ξ grows by 0.5 and steps 1-2 repeat until nothing leaves.
/// The result is the reputation-weighted mean of the good set. Then each client whose update
/// stayed gets `α += 1`, each removed one `β += 1`, and a client is blocked for the rest of the
/// run once `P(pₖ < 0.5) = I₀.₅(αₖ, βₖ) ≥ 0.95` (its later updates are ignored).
///
/// Differences from the paper, on purpose: the similarities are of updates (client model minus
/// global model), as every rule here sees them, where the paper and its code compare whole
/// models (whose cosines are all near 1); the weights leave out self-reported sample counts, as
/// every robust rule here does (a liar's count is a free attack). A sign-flipped update points
/// against the honest majority's mean, so its similarity falls far below the median even when
/// the honest updates are nearly orthogonal to one another (docs/robustness.md).
///
/// State (checkpointed as `aggregator.reputation`): per client seen, `[client, α, β, blocked]`,
/// integers in Float (exact below 2²⁴).
public struct AdaptiveFederatedAveraging: Aggregator {
    public static let stateName = "aggregator.reputation"
    static let initialSlack = 2.0, slackStep = 0.5, prior = 3, blockingConfidence = 0.95

    struct Reputation: Equatable {
        var good = prior, bad = prior, blocked = false
        var weight: Double { Double(good) / Double(good + bad) }
    }
    private(set) var reputations: [Int: Reputation] = [:]

    public init() {}

    public mutating func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        for update in results where reputations[update.client] == nil { reputations[update.client] = Reputation() }
        let allowed = results.indices.filter { !reputations[results[$0].client]!.blocked }
        guard !allowed.isEmpty else {
            return Aggregate(direction: [Float](repeating: 0, count: results[0].delta.count), selected: [])
        }
        let rows = results.map(\.delta)
        let weights = results.map { reputations[$0.client]!.weight }
        let kept = Self.goodSet(rows, among: allowed, weights: weights)
        for index in allowed {
            var reputation = reputations[results[index].client]!
            if kept.contains(index) { reputation.good += 1 } else { reputation.bad += 1 }
            reputation.blocked = Self.probabilityBad(good: reputation.good, bad: reputation.bad) >= Self.blockingConfidence
            reputations[results[index].client] = reputation
        }
        return Aggregate(direction: Aggregation.weightedMean(kept.map { rows[$0] }, weights: kept.map { weights[$0] }),
                         selected: kept.map { results[$0].client })
    }

    /// Steps 1-3 above: the indices (ascending, a subset of `among`) that survive the filter.
    static func goodSet(_ rows: [[Float]], among: [Int], weights: [Double]) -> [Int] {
        var good = among, slack = initialSlack
        let rowNorms = Dictionary(uniqueKeysWithValues: among.map { ($0, squaredNorm(rows[$0])) })
        while good.count > 1 {
            let reference = Aggregation.weightedMean(good.map { rows[$0] }, weights: good.map { weights[$0] })
            let referenceNorm = squaredNorm(reference)
            let outliers = outliers(good.map { cosine(rows[$0], squaredNorm: rowNorms[$0]!, reference, squaredNorm: referenceNorm) }, slack: slack)
            let survivors = zip(good, outliers).filter { !$0.1 }.map(\.0)
            if survivors.count == good.count { break }
            good = survivors
            slack += slackStep
        }
        return good
    }

    /// Step 2 above: which similarities fall beyond `median ∓ slack·σ` on the side the mean leans to.
    static func outliers(_ similarities: [Double], slack: Double) -> [Bool] {
        let count = Double(similarities.count)
        let mean = similarities.reduce(0, +) / count
        let deviation = (similarities.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / count).squareRoot()
        let sorted = similarities.sorted(), middle = sorted.count / 2
        let median = sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        return similarities.map { mean < median ? $0 < median - slack * deviation : $0 > median + slack * deviation }
    }

    /// `Σ xᵢ²` accumulated in Double, in order (computed once per row, not per comparison).
    static func squaredNorm(_ row: [Float]) -> Double {
        row.reduce(0) { $0 + Double($1) * Double($1) }
    }

    /// `cos(row, reference)` from their `squaredNorm`s, the dot product accumulated in Double;
    /// 0 when either is zero.
    static func cosine(_ row: [Float], squaredNorm rowNorm: Double, _ reference: [Float], squaredNorm referenceNorm: Double) -> Double {
        var dot = 0.0
        for (a, b) in zip(row, reference) { dot += Double(a) * Double(b) }
        let scale = (rowNorm * referenceNorm).squareRoot()
        return scale > 0 ? dot / scale : 0
    }

    /// `P(p < 0.5)` for `p ~ Beta(good, bad)` with integer parameters: the regularized incomplete
    /// beta `I₀.₅(a, b) = P(Binomial(a + b − 1, ½) ≥ a)`.
    static func probabilityBad(good a: Int, bad b: Int) -> Double {
        let n = a + b - 1
        let logHalfPower = Double(n) * log(0.5)
        var total = 0.0
        for j in a...n {
            total += exp(lgamma(Double(n + 1)) - lgamma(Double(j + 1)) - lgamma(Double(n - j + 1)) + logHalfPower)
        }
        return min(1, total)
    }

    public var state: [String: [Float]] {
        guard !reputations.isEmpty else { return [:] }
        return [Self.stateName: reputations.keys.sorted().flatMap { client -> [Float] in
            let r = reputations[client]!
            return [Float(client), Float(r.good), Float(r.bad), r.blocked ? 1 : 0]
        }]
    }

    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) {
        reputations = [:]
        guard let flat = state[Self.stateName] else { return }
        guard flat.count % 4 == 0 else { throw CheckpointError("checkpoint: \(Self.stateName) is not a list of [client, α, β, blocked]") }
        for start in stride(from: 0, to: flat.count, by: 4) {
            let entry = flat[start..<(start + 4)].map { $0 }
            guard entry.allSatisfy({ $0.isFinite && $0 >= 0 && $0 == $0.rounded() && $0 < 16_777_216 }),
                  entry[1] >= Float(Self.prior), entry[2] >= Float(Self.prior), entry[3] <= 1 else {
                throw CheckpointError("checkpoint: \(Self.stateName) holds an entry that is not [client, α ≥ 3, β ≥ 3, 0 or 1]")
            }
            reputations[Int(entry[0])] = Reputation(good: Int(entry[1]), bad: Int(entry[2]), blocked: entry[3] == 1)
        }
    }
}
