/// The aggregation rule a job names (`--aggregator`, `--norm-bound`, `--bucketing`), parsed and
/// checked against the number of updates a round is expected to bring, so that a rule that
/// cannot work (Krum with n ≤ 2f + 2, Bulyan with n < 4f + 3, trimming everything) is refused
/// before the run starts.
public struct AggregatorSpec: Sendable, Equatable {
    public static let help = "mean, uniform-mean, median, trimmed-mean:B, krum:F, multi-krum:F[:M], bulyan:F, geomedian, centered-clip:TAU[:ITERS], clipped-clustering, dnc:F[:ITERS[:DIMS]], afa"

    public enum Rule: Sendable, Equatable {
        case mean, uniformMean, median, trimmedMean(Int), krum(Int), multiKrum(Int, Int?), bulyan(Int), geometricMedian, centeredClip(Double, Int), clippedClustering, divideAndConquer(Int, Int, Int), adaptiveFederatedAveraging
    }

    /// The largest F, B, M or bucket size accepted (no federation is larger; keeps 4F + 3 in range).
    static let largestCount = 1_000_000

    public var rule: Rule
    /// The rule's text, as parsed.
    public let spec: String
    public var normBound: Double?
    public var bucketing: Int?

    /// Whether the job aggregates other than by the strategy's own sample-weighted mean.
    public var isPlainMean: Bool { rule == .mean && normBound == nil && bucketing == nil }

    public init(parsing spec: String, normBound: Double? = nil, bucketing: Int? = nil) throws(ConfigurationError) {
        self.spec = spec
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func count(_ index: Int) throws(ConfigurationError) -> Int {
            guard index < parts.count, let value = Int(parts[index]), value >= 0, value <= Self.largestCount else {
                throw ConfigurationError("aggregator \(spec): \(parts[0]) needs a whole number up to \(Self.largestCount) as parameter \(index), as in \(parts[0]):2")
            }
            return value
        }
        func arity(_ most: Int, least: Int = 0) throws(ConfigurationError) {
            guard (least...most).contains(parts.count - 1) else {
                throw ConfigurationError("aggregator \(spec): \(parts[0]) takes \(least == most ? "\(most)" : "\(least) to \(most)") parameters; expected \(Self.help)")
            }
        }
        switch parts[0] {
        case "mean": try arity(0); rule = .mean
        case "uniform-mean": try arity(0); rule = .uniformMean
        case "median": try arity(0); rule = .median
        case "geomedian": try arity(0); rule = .geometricMedian
        case "clipped-clustering": try arity(0); rule = .clippedClustering
        case "afa": try arity(0); rule = .adaptiveFederatedAveraging
        case "dnc":
            try arity(3, least: 1)
            let iterations = parts.count > 2 ? try count(2) : 1, dimensions = parts.count > 3 ? try count(3) : DivideAndConquer.defaultDimensions
            if iterations == 0 || dimensions == 0 { throw ConfigurationError("aggregator \(spec): dnc needs at least 1 iteration and 1 dimension") }
            rule = .divideAndConquer(try count(1), iterations, dimensions)
        case "trimmed-mean": try arity(1, least: 1); rule = .trimmedMean(try count(1))
        case "krum": try arity(1, least: 1); rule = .krum(try count(1))
        case "bulyan": try arity(1, least: 1); rule = .bulyan(try count(1))
        case "multi-krum":
            try arity(2, least: 1)
            let selecting = parts.count > 2 ? try count(2) : nil
            if selecting == 0 { throw ConfigurationError("aggregator \(spec): multi-krum must average at least 1 update") }
            rule = .multiKrum(try count(1), selecting)
        case "centered-clip":
            try arity(2, least: 1)
            guard let radius = Double(parts[1]), radius > 0, radius.isFinite else {
                throw ConfigurationError("aggregator \(spec): centered-clip needs a positive radius TAU, as in centered-clip:1")
            }
            let iterations = parts.count > 2 ? try count(2) : 3
            if iterations == 0 { throw ConfigurationError("aggregator \(spec): centered-clip needs at least 1 iteration") }
            rule = .centeredClip(radius, iterations)
        default:
            throw ConfigurationError("unknown aggregator \(spec); expected \(Self.help)")
        }
        if let normBound, !(normBound > 0 && normBound.isFinite) { throw ConfigurationError("norm_bound must be a positive number (got \(normBound))") }
        if let bucketing, !(2...Self.largestCount).contains(bucketing) {
            throw ConfigurationError("bucketing must be a bucket size from 2 to \(Self.largestCount) (got \(bucketing))")
        }
        if rule == .adaptiveFederatedAveraging, bucketing != nil {
            throw ConfigurationError("aggregator \(spec): afa keeps a reputation per client, which buckets (a new mix each round) would hide; drop bucketing")
        }
        (self.normBound, self.bucketing) = (normBound, bucketing)
    }

    /// The aggregator, refused when a round of `expectedUpdates` could not feed it.
    public func make(parameterCount: Int, seed: UInt64, expectedUpdates: Int) throws(ConfigurationError) -> any Aggregator {
        var aggregator: any Aggregator
        switch rule {
        case .mean: aggregator = WeightedMean()
        case .uniformMean: aggregator = UniformMean()
        case .median: aggregator = CoordinateMedian()
        case .trimmedMean(let trim): aggregator = TrimmedMean(trim: trim)
        case .krum(let f): aggregator = Krum(byzantine: f)
        case .multiKrum(let f, let m): aggregator = Krum(byzantine: f, selecting: m)
        case .bulyan(let f): aggregator = Bulyan(byzantine: f)
        case .geometricMedian: aggregator = GeometricMedian()
        case .centeredClip(let radius, let iterations): aggregator = CenteredClipping(radius: radius, iterations: iterations, parameterCount: parameterCount)
        case .clippedClustering: aggregator = ClippedClustering()
        case .adaptiveFederatedAveraging: aggregator = AdaptiveFederatedAveraging()
        case .divideAndConquer(let f, let iterations, let dimensions):
            aggregator = DivideAndConquer(byzantine: f, iterations: iterations, dimensions: dimensions, seed: seed)
        }
        if let bucketing { aggregator = Bucketing(size: bucketing, seed: seed, inner: aggregator) }
        if let normBound { aggregator = NormBounding(bound: normBound, inner: aggregator) }
        guard aggregator.minimumUpdates <= expectedUpdates else {
            throw ConfigurationError("aggregator \(description) needs at least \(aggregator.minimumUpdates) updates a round; "
                + "the job expects \(expectedUpdates) (raise clients or fraction, or lower F)")
        }
        return aggregator
    }

    /// The rule as given, with its wrappers.
    public var description: String {
        spec + (bucketing.map { " in buckets of \($0)" } ?? "") + (normBound.map { " with norm bound \($0)" } ?? "")
    }
}
