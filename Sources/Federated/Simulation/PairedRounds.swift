import Datasets

/// What a setting costs in time, measured so that a shared machine's noise does not hide it.
/// Two simulations of one job, a baseline and a variant (the same job with central DP, say), run
/// round by round in turn in one process: round r of one right after round r of the other, the
/// one that goes first alternating, so both meet the machine in nearly the same state. Separate
/// runs of one job differ by up to 35% on a shared machine; paired rounds cancel what the two
/// have in common.
///
/// The cost is the **median over rounds of the paired ratio** variant / baseline of round times
/// (the ratio of the summed times beside it). Both simulations must train the same clients each
/// round (same seed and sampling, which a setting like DP leaves alone); rounds where the two
/// sampled or kept different clients are counted and left out.
public enum PairedRounds {
    public struct Result: Sendable {
        /// Seconds of each round, in round order.
        public var baseline: [Double] = []
        public var variant: [Double] = []
        /// Rounds whose two sides sampled or kept different clients (left out of the ratios).
        public var unpaired = 0

        /// `variant / baseline` of every paired round.
        public var ratios: [Double] { zip(variant, baseline).map { $0 / $1 } }

        /// The median of `ratios` (the mean of the middle two for an even count); nil without rounds.
        public var medianRatio: Double? {
            let sorted = ratios.sorted()
            guard !sorted.isEmpty else { return nil }
            let middle = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        }

        /// Total variant time over total baseline time.
        public var totalRatio: Double? { baseline.isEmpty ? nil : variant.reduce(0, +) / baseline.reduce(0, +) }
    }

    /// Runs `rounds` rounds of each simulation in turn (both must have that many left);
    /// `roundDone(round, baseline, variant)` reports each pair as it ends.
    public static func run(baseline: Simulation, variant: Simulation, rounds: Int,
                           roundDone: ((_ round: Int, _ baseline: RoundMetrics, _ variant: RoundMetrics) -> Void)? = nil) -> Result {
        precondition(rounds >= 1 && baseline.completedRounds == variant.completedRounds)
        var result = Result()
        for round in 1...rounds {
            let (first, second) = round % 2 == 1 ? (baseline, variant) : (variant, baseline)
            let firstMetrics = first.runRound(), secondMetrics = second.runRound()
            let (b, v) = round % 2 == 1 ? (firstMetrics, secondMetrics) : (secondMetrics, firstMetrics)
            roundDone?(round, b, v)
            guard b.clients == v.clients, baseline.sampledClients(round: b.round) == variant.sampledClients(round: v.round) else {
                result.unpaired += 1
                continue
            }
            result.baseline.append(b.seconds)
            result.variant.append(v.seconds)
        }
        return result
    }
}

extension PairedRounds {
    /// The pair that measures what `configuration`'s privacy costs: the same job without it
    /// (no DP, no clip) as the baseline, the job as configured as the variant, on data loaded once.
    public static func privacyPair(_ configuration: SimulationConfiguration) throws(JobError) -> (baseline: Simulation, variant: Simulation) {
        guard configuration.privacy.dp != "off" || configuration.privacy.clip != nil else {
            throw .configuration(ConfigurationError("measuring what privacy costs needs a job with privacy on (--dp, or --clip)"))
        }
        var baseline = configuration
        baseline.privacy = PrivacySection()
        let data: DataSource.Loaded
        do { data = try configuration.data.load(seed: configuration.federation.seed) } catch { throw .data(error) }
        do {
            return (try Simulation(configuration: baseline, train: data.train, test: data.test),
                    try Simulation(configuration: configuration, train: data.train, test: data.test))
        } catch { throw .configuration(error) }
    }
}
