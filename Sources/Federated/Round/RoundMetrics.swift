import Engine

/// What one round did; keys are the `metrics.jsonl` names.
public struct RoundMetrics: Sendable, Codable, Equatable {
    public var round: Int
    /// nil in rounds without evaluation (`eval_every`).
    public var testAccuracy: Double?
    public var testLoss: Double?
    public var trainLoss: Double?
    /// Clients whose updates were aggregated.
    public var clients: Int
    /// Sampled clients that dropped out.
    public var failures: Int
    /// Replies the server rejected (non-finite, or a message that failed its checks).
    public var rejected: Int
    /// `rejected` by reason (`RejectionReason` names); empty when nothing was rejected.
    public var rejections: [String: Int] = [:]
    /// Whether the round's aggregate became the new model (false: too few replies, or a
    /// non-finite result, and the model and strategy state were kept).
    public var committed = true
    public var bytesUp: Int
    public var bytesDown: Int
    public var seconds: Double
    /// Local training images per second over the round's training phase.
    public var imagesPerSecond: Double
    public var clientAccuracyMean: Double?
    public var clientAccuracyWorstDecile: Double?
    /// Central DP: the (ε at the run's δ) spent after this round.
    public var epsilon: Double?
    /// With the simulated clock: this round's simulated seconds, and the simulated time since the
    /// first round began.
    public var simulatedSeconds: Double?
    public var simulatedTime: Double?
    /// Asynchronous runs (one row per server step): client trips that ended since the previous
    /// step, and the mean and largest staleness (versions) of the step's updates.
    public var trips: Int?
    public var stalenessMean: Double?
    public var stalenessMax: Int?
    /// Central DP with an adaptive clip: the clip this round used.
    public var clip: Double?
    /// Robustness (with a robust rule or an attack): attackers among the sampled clients, the
    /// updates a selecting rule kept and the attackers among them, the L2 distance of the
    /// aggregate from the plain mean of the honest updates, the coordinator's aggregation time,
    /// and the backdoor's success rate on triggered test images.
    public var attackersSampled: [Int]?
    public var selected: Int?
    public var attackersSelected: Int?
    public var honestDistance: Double?
    /// The median L2 norm of the honest accepted updates (a data-side guide for a norm bound or
    /// a clipping radius).
    public var honestNormMedian: Double?
    public var aggregationSeconds: Double?
    public var backdoorSuccess: Double?
    /// Bytes the same messages would take uncompressed (fp32), up and down.
    public var denseBytesUp: Int
    public var denseBytesDown: Int

    /// Uncompressed over actual bytes (1 without compression).
    public var compressionUp: Double { bytesUp == 0 ? 1 : Double(denseBytesUp) / Double(bytesUp) }
    public var compressionDown: Double { bytesDown == 0 ? 1 : Double(denseBytesDown) / Double(bytesDown) }

    enum CodingKeys: String, CodingKey {
        case round, clients, failures, rejected, seconds
        case testAccuracy = "test_accuracy", testLoss = "test_loss", trainLoss = "train_loss"
        case bytesUp = "bytes_up", bytesDown = "bytes_down", imagesPerSecond = "images_per_second"
        case clientAccuracyMean = "client_accuracy_mean", clientAccuracyWorstDecile = "client_accuracy_worst_decile"
        case denseBytesUp = "dense_bytes_up", denseBytesDown = "dense_bytes_down", rejections, committed, epsilon, clip
        case compressionUp = "compression_up", compressionDown = "compression_down"
        case attackersSampled = "attackers_sampled", selected, attackersSelected = "attackers_selected", honestDistance = "honest_distance", honestNormMedian = "honest_norm_median"
        case aggregationSeconds = "aggregation_seconds", backdoorSuccess = "backdoor_success"
        case simulatedSeconds = "simulated_seconds", simulatedTime = "simulated_time"
        case trips, stalenessMean = "staleness_mean", stalenessMax = "staleness_max"
    }

    public init(round: Int, clients: Int, failures: Int, rejected: Int, bytesUp: Int, bytesDown: Int, denseBytesUp: Int,
                denseBytesDown: Int, seconds: Double, imagesPerSecond: Double) {
        (self.round, self.clients, self.failures, self.rejected) = (round, clients, failures, rejected)
        (self.bytesUp, self.bytesDown, self.denseBytesUp, self.denseBytesDown) = (bytesUp, bytesDown, denseBytesUp, denseBytesDown)
        (self.seconds, self.imagesPerSecond) = (seconds, imagesPerSecond)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        round = try c.decode(Int.self, forKey: .round)
        testAccuracy = try c.decodeIfPresent(Double.self, forKey: .testAccuracy)
        testLoss = try c.decodeIfPresent(Double.self, forKey: .testLoss)
        trainLoss = try c.decodeIfPresent(Double.self, forKey: .trainLoss)
        clients = try c.decode(Int.self, forKey: .clients)
        failures = try c.decode(Int.self, forKey: .failures)
        bytesUp = try c.decode(Int.self, forKey: .bytesUp)
        bytesDown = try c.decode(Int.self, forKey: .bytesDown)
        rejected = try c.decodeIfPresent(Int.self, forKey: .rejected) ?? 0
        rejections = try c.decodeIfPresent([String: Int].self, forKey: .rejections) ?? [:]
        committed = try c.decodeIfPresent(Bool.self, forKey: .committed) ?? true
        epsilon = try c.decodeIfPresent(Double.self, forKey: .epsilon)
        clip = try c.decodeIfPresent(Double.self, forKey: .clip)
        simulatedSeconds = try c.decodeIfPresent(Double.self, forKey: .simulatedSeconds)
        simulatedTime = try c.decodeIfPresent(Double.self, forKey: .simulatedTime)
        trips = try c.decodeIfPresent(Int.self, forKey: .trips)
        stalenessMean = try c.decodeIfPresent(Double.self, forKey: .stalenessMean)
        stalenessMax = try c.decodeIfPresent(Int.self, forKey: .stalenessMax)
        denseBytesUp = try c.decodeIfPresent(Int.self, forKey: .denseBytesUp) ?? bytesUp
        denseBytesDown = try c.decodeIfPresent(Int.self, forKey: .denseBytesDown) ?? bytesDown
        seconds = try c.decode(Double.self, forKey: .seconds)
        imagesPerSecond = try c.decode(Double.self, forKey: .imagesPerSecond)
        clientAccuracyMean = try c.decodeIfPresent(Double.self, forKey: .clientAccuracyMean)
        clientAccuracyWorstDecile = try c.decodeIfPresent(Double.self, forKey: .clientAccuracyWorstDecile)
        attackersSampled = try c.decodeIfPresent([Int].self, forKey: .attackersSampled)
        selected = try c.decodeIfPresent(Int.self, forKey: .selected)
        attackersSelected = try c.decodeIfPresent(Int.self, forKey: .attackersSelected)
        honestDistance = try c.decodeIfPresent(Double.self, forKey: .honestDistance)
        honestNormMedian = try c.decodeIfPresent(Double.self, forKey: .honestNormMedian)
        aggregationSeconds = try c.decodeIfPresent(Double.self, forKey: .aggregationSeconds)
        backdoorSuccess = try c.decodeIfPresent(Double.self, forKey: .backdoorSuccess)
    }

    /// Non-finite accuracies and losses (a diverged model) are left out: JSON has no NaN.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(round, forKey: .round)
        try c.encodeIfPresent(testAccuracy.flatMap(\.finiteValue), forKey: .testAccuracy)
        try c.encodeIfPresent(testLoss.flatMap(\.finiteValue), forKey: .testLoss)
        try c.encodeIfPresent(trainLoss.flatMap(\.finiteValue), forKey: .trainLoss)
        try c.encode(clients, forKey: .clients)
        try c.encode(failures, forKey: .failures)
        try c.encode(rejected, forKey: .rejected)
        if !rejections.isEmpty { try c.encode(rejections, forKey: .rejections) }
        try c.encode(committed, forKey: .committed)
        try c.encodeIfPresent(epsilon.flatMap(\.finiteValue), forKey: .epsilon)
        try c.encodeIfPresent(clip, forKey: .clip)
        try c.encodeIfPresent(simulatedSeconds, forKey: .simulatedSeconds)
        try c.encodeIfPresent(simulatedTime, forKey: .simulatedTime)
        try c.encodeIfPresent(trips, forKey: .trips)
        try c.encodeIfPresent(stalenessMean, forKey: .stalenessMean)
        try c.encodeIfPresent(stalenessMax, forKey: .stalenessMax)
        try c.encode(bytesUp, forKey: .bytesUp)
        try c.encode(bytesDown, forKey: .bytesDown)
        try c.encode(denseBytesUp, forKey: .denseBytesUp)
        try c.encode(denseBytesDown, forKey: .denseBytesDown)
        try c.encode(compressionUp, forKey: .compressionUp)
        try c.encode(compressionDown, forKey: .compressionDown)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(imagesPerSecond, forKey: .imagesPerSecond)
        try c.encodeIfPresent(clientAccuracyMean.flatMap(\.finiteValue), forKey: .clientAccuracyMean)
        try c.encodeIfPresent(clientAccuracyWorstDecile.flatMap(\.finiteValue), forKey: .clientAccuracyWorstDecile)
        try c.encodeIfPresent(attackersSampled, forKey: .attackersSampled)
        try c.encodeIfPresent(selected, forKey: .selected)
        try c.encodeIfPresent(attackersSelected, forKey: .attackersSelected)
        try c.encodeIfPresent(honestDistance.flatMap(\.finiteValue), forKey: .honestDistance)
        try c.encodeIfPresent(honestNormMedian.flatMap(\.finiteValue), forKey: .honestNormMedian)
        try c.encodeIfPresent(aggregationSeconds, forKey: .aggregationSeconds)
        try c.encodeIfPresent(backdoorSuccess.flatMap(\.finiteValue), forKey: .backdoorSuccess)
    }
}

extension Double {
    /// The value when finite, nil otherwise (JSON has no NaN or infinity).
    var finiteValue: Double? { isFinite ? self : nil }
}
