// swift-tools-version: 6.1
// Benchmarks for fedtrain, kept in their own package so `swift test` on the main package never
// builds the benchmark framework. Run with `make bench` (or `swift package benchmark` here).
import PackageDescription

let package = Package(
    name: "fedtrain-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "fedtrain", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Engine", package: "fedtrain"),
                .product(name: "Datasets", package: "fedtrain"),
                .product(name: "Federated", package: "fedtrain"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ]
)
