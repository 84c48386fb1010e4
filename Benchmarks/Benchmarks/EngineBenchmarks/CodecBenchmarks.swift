import Benchmark
import Engine
import Federated

/// Encode and decode throughput of every update codec, as MB/s of fp32 input (1000 MB/s =
/// 1 GB/s), for LeNet-5's 62k parameters and for 10M parameters (one 2500×4000 matrix, so
/// PowerSGD has a matrix to factor), on one core; and the cost of error feedback (a client's
/// whole send: residual add, encode, decode of its own message, new residual).
/// Every measurement is a whole `UpdateMessage` (header, descriptor, CRC-32 included).
func codecBenchmarks() {
    let rate = BenchmarkMetric.custom("MB/s of fp32 input", polarity: .prefersLarger, useScalingFactor: false)
    let configuration = Benchmark.Configuration(metrics: [rate, .wallClock], warmupIterations: 2, maxDuration: .seconds(2), maxIterations: 200)
    var lenet = ParameterLayout()
    for entry in LeNet5.grayscale.layout.entries { lenet.append(name: entry.name, shape: entry.shape) }
    var large = ParameterLayout()
    large.append(name: "weight", shape: [2500, 4000])
    let specs = ["fp32", "fp16", "bf16", "qsgd:4", "qsgd:8", "topk:0.01", "topk:0.01+qsgd:4", "sign", "stc:0.01", "powersgd:2"]
    let clock = ContinuousClock()

    func record(_ benchmark: Benchmark, count: Int, _ body: () -> Void) {
        for _ in benchmark.scaledIterations {
            let start = clock.now
            body()
            let seconds = (clock.now - start).seconds
            benchmark.measurement(rate, Int(Double(4 * count) / seconds / 1e6))
        }
    }

    for (label, layout) in [("62k", lenet), ("10M", large)] {
        var generator = SeededGenerator(seed: 1)
        let values = (0..<layout.count).map { _ in Float(generator.nextGaussian()) * 0.01 }
        for spec in specs {
            let codec = try! CodecRegistry.codec(parsing: spec)
            Benchmark("encode \(spec) \(label)", configuration: configuration) { benchmark in
                var state = codec.initialState(layout: layout, generator: &generator)
                record(benchmark, count: layout.count) {
                    blackHole(values.withUnsafeBufferPointer {
                        UpdateMessage.encode($0, kind: .update, round: 1, layout: layout, codec: codec, state: &state, generator: &generator)
                    })
                }
            }
            Benchmark("decode \(spec) \(label)", configuration: configuration) { benchmark in
                var state = codec.initialState(layout: layout, generator: &generator)
                let message = values.withUnsafeBufferPointer {
                    UpdateMessage.encode($0, kind: .update, round: 1, layout: layout, codec: codec, state: &state, generator: &generator)
                }
                record(benchmark, count: layout.count) { blackHole(try! UpdateMessage.decode(message, layout: layout)) }
            }
        }
        for spec in ["topk:0.01", "qsgd:4"] {
            let codec = try! CodecRegistry.codec(parsing: spec)
            for errorFeedback in [false, true] {
                Benchmark("client send \(spec) \(label) error feedback \(errorFeedback ? "on" : "off")", configuration: configuration) { benchmark in
                    let runtime = ClientRuntime(layout: layout, training: LocalTrainingConfiguration(epochs: 1, batchSize: 1, optimizer: SGDConfiguration(learningRate: 0.1)),
                                                uplinkCodec: codec, errorFeedback: errorFeedback, keepsModelCopy: false, seed: 1)
                    var state = runtime.initialState(client: 0)
                    record(benchmark, count: layout.count) {
                        blackHole(runtime.encode(values, round: 1, client: 0, state: &state))
                    }
                }
            }
        }
    }
}
