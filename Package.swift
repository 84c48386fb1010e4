// swift-tools-version: 6.1
// fedtrain: a federated-learning training engine on OpenBLAS. Layers (dependencies point down):
// fedtrain (CLI) -> Federated -> Datasets -> Engine -> CBLAS. See DESIGN.md in the shared folder.
import PackageDescription

/// Release builds target Haswell (AVX2, FMA: every x86 server CPU since 2015) so the SIMD
/// kernels use 256-bit registers; debug builds and other architectures keep the default target.
#if arch(x86_64)
let vectorISA: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"], .when(configuration: .release))]
#else
let vectorISA: [SwiftSetting] = []
#endif


let package = Package(
    name: "fedtrain",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fedtrain", targets: ["fedtrain"]),
        .library(name: "Engine", targets: ["Engine"]),
        .library(name: "Datasets", targets: ["Datasets"]),
        .library(name: "Federated", targets: ["Federated"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS", path: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .target(name: "Engine", dependencies: ["CBLAS"], swiftSettings: vectorISA),
        .target(name: "Datasets", dependencies: ["Engine", "CZlib"], swiftSettings: vectorISA),
        .target(name: "Federated", dependencies: ["Engine", "Datasets", "CZlib"], swiftSettings: vectorISA),
        .executableTarget(
            name: "fedtrain",
            dependencies: ["Engine", "Datasets", "Federated",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Yams", package: "Yams")]),
        .target(name: "TestSupport", dependencies: ["Engine"], path: "Tests/TestSupport"),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "TestSupport", "CZlib"]),
        .testTarget(name: "FederatedTests", dependencies: ["Federated", "TestSupport"]),
        .testTarget(name: "FedtrainTests", dependencies: ["fedtrain"]),
    ]
)
