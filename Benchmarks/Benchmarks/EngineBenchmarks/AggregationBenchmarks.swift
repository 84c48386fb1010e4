import Benchmark
import Engine
import Federated

/// The cost of every aggregation rule on one core (OpenBLAS single-threaded) over LeNet-5-sized
/// updates (61,706 parameters): 100 clients for every rule, 1000 for Krum (its n² distances from
/// one Gram matrix) and clipped clustering (its n³ agglomerative clustering). Wall clock per
/// aggregation.
func aggregationBenchmarks() {
    Parallelism.useSingleThreadedBLAS()
    let configuration = Benchmark.Configuration(metrics: [.wallClock], warmupIterations: 1, maxDuration: .seconds(3), maxIterations: 20)
    let parameters = LeNet5.grayscale.parameterCount
    func results(_ count: Int) -> [ClientUpdate] {
        var generator = SeededGenerator(seed: 5)
        return (0..<count).map { client in
            ClientUpdate(client: client, samples: 100, steps: 1, delta: (0..<parameters).map { _ in Float(0.01 * generator.nextGaussian()) }, trainLoss: 0)
        }
    }
    let hundred = results(100)
    let rules: [(String, any Aggregator)] = [
        ("mean", WeightedMean()), ("median", CoordinateMedian()), ("trimmed-mean:20", TrimmedMean(trim: 20)),
        ("krum:20", Krum(byzantine: 20)), ("multi-krum:20", Krum(byzantine: 20, selecting: nil)), ("bulyan:20", Bulyan(byzantine: 20)),
        ("geomedian", GeometricMedian()), ("centered-clip:0.5:3", CenteredClipping(radius: 0.5, iterations: 3, parameterCount: parameters)),
        ("norm-bound 0.5 + mean", NormBounding(bound: 0.5, inner: WeightedMean())),
        ("bucketing 2 + median", Bucketing(size: 2, seed: 1, inner: CoordinateMedian())),
        ("clipped-clustering", ClippedClustering()), ("dnc:20", DivideAndConquer(byzantine: 20, seed: 1)),
        ("afa", AdaptiveFederatedAveraging()),
    ]
    for (name, rule) in rules {
        Benchmark("aggregate \(name) 100x62k", configuration: configuration) { benchmark in
            var rule = rule
            for _ in benchmark.scaledIterations { blackHole(rule.aggregate(hundred, round: 1)) }
        }
    }
    Benchmark("aggregate krum:200 1000x62k", configuration: configuration) { benchmark in
        let thousand = results(1000)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(Krum(byzantine: 200).aggregate(thousand, round: 1)) }
    }
    Benchmark("aggregate clipped-clustering 1000x62k", configuration: configuration) { benchmark in
        let thousand = results(1000)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { var rule = ClippedClustering(); blackHole(rule.aggregate(thousand, round: 1)) }
    }
}
