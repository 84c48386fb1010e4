import Engine

/// DP-FedAvg's aggregation (McMahan et al. 2018): each decoded update clipped to L2 norm `clip`
/// on the server (whatever the client did), summed unweighted, and divided by the **expected**
/// number of clients `q·N`, so one client's presence or absence moves the result by at most
/// `clip / (q·N)` whatever the others sent. Sample weighting is not used: its sensitivity is
/// unbounded. An empty round sums to zero. With `adaptive`, the clip is the adaptive one of the
/// round (its state), moved after the round by the noised count of unclipped updates.
public struct ClippedSumOverExpected: Aggregator {
    public let clip: Double
    public let expectedClients: Double
    public let parameterCount: Int
    public private(set) var adaptive: AdaptiveClipping?
    /// The adaptive clip's count noise.
    public let noise: NoiseSource
    /// Per-layer clipping: each tensor to `clip / √L` (the update's norm stays within `clip`).
    public let layers: ParameterLayout?
    /// Threads that clip the updates (one update each at a time); the result does not depend on it.
    public let threads: Int

    public init(clip: Double, expectedClients: Double, parameterCount: Int, adaptive: AdaptiveClipping? = nil, noise: NoiseSource = .seeded(0),
                layers: ParameterLayout? = nil, threads: Int = 1) {
        precondition(clip > 0 && expectedClients > 0 && (adaptive == nil || layers == nil) && threads >= 1)
        (self.clip, self.expectedClients, self.parameterCount, self.adaptive, self.noise) = (clip, expectedClients, parameterCount, adaptive, noise)
        (self.layers, self.threads) = (layers, threads)
    }

    /// The clip of the next round.
    public var currentClip: Double { adaptive.map { Double($0.clip) } ?? clip }

    /// The aggregate carries the clip it used, which sizes the round's noise.
    public mutating func aggregate(_ results: [ClientUpdate], round: Int) -> Aggregate {
        let bound = currentClip, layers = self.layers
        // Updates within the bound are not copied (`clip` leaves them untouched).
        var clipped = results.map(\.delta), norms = [Double](repeating: 0, count: results.count)
        clipped.withUnsafeMutableBufferPointer { clipped in
            norms.withUnsafeMutableBufferPointer { norms in
                Parallelism.forEach(count: clipped.count, workers: threads) { index, _ in
                    norms[index] = L2Clip.clip(&clipped[index], to: bound, layers: layers)
                }
            }
        }
        let unclipped = norms.filter { $0 <= bound }.count
        adaptive?.update(unclipped: unclipped, expectedClients: expectedClients, round: round, noise: noise)
        let direction = clipped.isEmpty ? [Float](repeating: 0, count: parameterCount)
            : Aggregation.weightedSum(clipped, weights: [Double](repeating: 1 / expectedClients, count: clipped.count))
        return Aggregate(direction: direction, clip: bound)
    }

    public var state: [String: [Float]] { adaptive?.state ?? [:] }
    public mutating func restore(_ state: [String: [Float]]) throws(CheckpointError) { try adaptive?.restore(state) }
}

/// Central DP's noise: `N(0, (z·C)²)` per coordinate added to the clipped **sum**, so
/// `N(0, (z·C)²) / (q·N)` on the aggregate, between the aggregator and the server optimizer (the
/// optimizer's moments never see the noise-free mean).
///
/// Randomness: `noise` (in simulation seeded from (seed, centralNoise, round), so runs are
/// reproducible; a networked server uses the system's cryptographically secure generator).
public struct CentralGaussianNoise: Sendable {
    public let noiseMultiplier: Double
    public let clip: Double
    public let expectedClients: Double
    public let noise: NoiseSource

    public init(noiseMultiplier: Double, clip: Double, expectedClients: Double, noise: NoiseSource) {
        precondition(noiseMultiplier >= 0 && clip > 0 && expectedClients > 0)
        (self.noiseMultiplier, self.clip, self.expectedClients, self.noise) = (noiseMultiplier, clip, expectedClients, noise)
    }

    /// Standard deviation of the noise on the aggregate: `z·C / (q·N)`.
    public var standardDeviation: Double { standardDeviation(clip: clip) }

    public func standardDeviation(clip: Double) -> Double { noiseMultiplier * clip / expectedClients }

    /// Adds the noise, sized to the clip the aggregate was made with (the adaptive clip of the
    /// round) when it carries one.
    public func addNoise(to aggregate: inout Aggregate, round: Int) {
        precondition(aggregate.scale == 1, "central DP noise needs an unscaled aggregate")
        var generator = noise.generator(.centralNoise, round: round)
        let deviation = standardDeviation(clip: aggregate.clip ?? clip)
        aggregate.direction.withUnsafeMutableBufferPointer { generator.addGaussian(standardDeviation: deviation, to: $0) }
    }
}
