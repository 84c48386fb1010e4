import Benchmark
import Datasets
import Engine
import Federated

/// One SGD step (gather + forward + backward + update), the unit every training job repeats: on
/// one thread in one chunk as a simulated client trains, and on every core with `fedtrain
/// train`'s default chunks. LeNet-5 at B=64/32/10; McMahan et al.'s CNN (`fedavg-cnn`) and a
/// model with BatchNorm and Dropout (its masks drawn every step) at B=64/32 on every core.
/// Throughput is steps per second; the malloc count proves the step allocates nothing once the
/// trainer exists.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal],
                                           warmupIterations: 20, maxDuration: .seconds(3), maxIterations: 100_000)
    let data = try! FashionMNIST.split("train", in: FashionMNIST.defaultDirectory)
    let batchNormDropout = ModelSpec(layers: [
        .conv(out: 16, kernel: 5, stride: 1, padding: 2), .batchnorm, .relu, .maxpool(kernel: 2, stride: nil),
        .conv(out: 32, kernel: 5, stride: 1, padding: 2), .batchnorm, .relu, .maxpool(kernel: 2, stride: nil),
        .flatten, .dense(.units(128)), .batchnorm, .relu, .dropout(0.3), .dense(.classes),
    ])
    let models: [(name: String, network: Sequential, batches: [Int], threads: [Int])] = [
        ("LeNet-5", LeNet5.grayscale, [64, 32, 10], [1, Parallelism.availableCores]),
        ("fedavg-cnn", try! ModelSpec.fedAvgCNN.build(input: [1, 28, 28], classes: 10), [64, 32], [Parallelism.availableCores]),
        ("batchnorm-dropout", try! batchNormDropout.build(input: [1, 28, 28], classes: 10), [64, 32], [Parallelism.availableCores]),
    ]
    for model in models {
    for threads in model.threads {
    for batch in model.batches {
        Benchmark("train step \(model.name) B=\(batch) threads=\(threads)",
                  configuration: .init(scalingFactor: .one, thresholds: [.mallocCountTotal: .init(absolute: [.p100: 0])])) { benchmark in
            let network = model.network
            var generator = SeededGenerator(seed: 0)
            var parameters = network.initialParameters(using: &generator)
            let trainer = Trainer(network: network, optimizer: SGDConfiguration(learningRate: 0.02, momentum: 0.9),
                                  batchCapacity: batch, chunks: threads == 1 ? 1 : Parallelism.defaultChunks, threads: threads)
            let buffer = BatchBuffer(capacity: batch, sampleSize: network.inputCount)
            let indices = Array(0..<data.count)
            buffer.data = data
            var start = 0, seed: UInt64 = 0
            let step = { (start: Int, seed: UInt64) in
                buffer.pending = indices[start..<(start + batch)]
                return trainer.step(parameters: &parameters, images: buffer.images, labels: buffer.labels, count: batch,
                                    source: buffer, seed: seed)
            }
            step(0, 0)  // allocates the momentum buffer outside the measurement
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                start = (start + batch) % (data.count - batch)
                seed += 1
                blackHole(step(start, seed))
            }
            benchmark.stopMeasurement()
        }
    }
    }
    }

    Benchmark("im2col conv2 (6x14x14, k5)", configuration: .init(metrics: [.wallClock, .throughput])) { benchmark in
        let g = ConvolutionGeometry(channels: 6, height: 14, width: 14, kernelSize: 5)
        let image = UnsafeMutablePointer<Float>.allocate(capacity: 6 * 14 * 14)
        image.initialize(repeating: 1, count: 6 * 14 * 14)
        let col = UnsafeMutablePointer<Float>.allocate(capacity: g.patchSize * g.outputPositions + ConvolutionGeometry.im2colSlack)
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: g.paddedImageSize)
        for _ in benchmark.scaledIterations { im2col(g, image: image, col: col, padded: padded) }
        blackHole(col[0])
        image.deallocate()
        col.deallocate()
        padded.deallocate()
    }

    codecBenchmarks()
    aggregationBenchmarks()
}
