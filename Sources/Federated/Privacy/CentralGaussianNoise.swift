import Engine

/// DP-FedAvg's aggregation (McMahan et al. 2018): each decoded update clipped to L2 norm `clip`
/// on the server (whatever the client did), summed unweighted, and divided by the **expected**
/// number of clients `q·N`, so one client's presence or absence moves the result by at most
/// `clip / (q·N)` whatever the others sent. Sample weighting is not used: its sensitivity is
/// unbounded. An empty round sums to zero.
public struct ClippedSumOverExpected: Aggregator {
    public let clip: Double
    public let expectedClients: Double
    public let parameterCount: Int

    public init(clip: Double, expectedClients: Double, parameterCount: Int) {
        precondition(clip > 0 && expectedClients > 0)
        (self.clip, self.expectedClients, self.parameterCount) = (clip, expectedClients, parameterCount)
    }

    public func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        guard !results.isEmpty else { return Aggregate(direction: [Float](repeating: 0, count: parameterCount)) }
        let clipped = results.map { result -> [Float] in
            var delta = result.delta
            L2Clip.clip(&delta, to: clip)
            return delta
        }
        return Aggregate(direction: Aggregation.weightedSum(clipped, weights: [Double](repeating: 1 / expectedClients, count: clipped.count)))
    }
}

/// Central DP's noise: `N(0, (z·C)²)` per coordinate added to the clipped **sum**, so
/// `N(0, (z·C)²) / (q·N)` on the aggregate, between the aggregator and the server optimizer (the
/// optimizer's moments never see the noise-free mean).
///
/// Randomness: in simulation a generator derived from (seed, centralNoise, round), so runs are
/// reproducible; a deployed server must draw from a cryptographically secure generator instead.
public struct CentralGaussianNoise: Sendable {
    public let noiseMultiplier: Double
    public let clip: Double
    public let expectedClients: Double
    public let seed: UInt64

    public init(noiseMultiplier: Double, clip: Double, expectedClients: Double, seed: UInt64) {
        precondition(noiseMultiplier >= 0 && clip > 0 && expectedClients > 0)
        (self.noiseMultiplier, self.clip, self.expectedClients, self.seed) = (noiseMultiplier, clip, expectedClients, seed)
    }

    /// Standard deviation of the noise on the aggregate: `z·C / (q·N)`.
    public var standardDeviation: Double { noiseMultiplier * clip / expectedClients }

    public func addNoise(to aggregate: inout Aggregate, round: Int) {
        precondition(aggregate.scale == 1, "central DP noise needs an unscaled aggregate")
        var generator = SeededGenerator.derived(seed: seed, RandomStream.centralNoise.rawValue, UInt64(round))
        let deviation = standardDeviation
        for i in aggregate.direction.indices { aggregate.direction[i] += Float(deviation * generator.nextGaussian()) }
    }
}
