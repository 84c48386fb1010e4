// swift-tools-version: 6.1
// fedtrain: a federated-learning training engine on OpenBLAS. Layers (dependencies point down):
// fedtrain (CLI) -> FederatedRPC (gRPC) -> Federated -> Datasets -> Engine -> CBLAS. See docs/architecture.md.
import Foundation
import PackageDescription

/// Release builds are tuned to the vector unit of the machine that builds them (fedtrain is
/// built from source where it runs: `make` does it). Hosts with AVX-512 build for themselves
/// (`-target-cpu native`) and define `WIDE_VECTORS`, so the register-blocked kernels keep twice
/// as many 16-float sums in the 32 registers (see `VectorKernels.wideRegisters`; the define also
/// holds in debug builds, so the tests check the blocking the release build runs). Other x86
/// hosts target Haswell (AVX2 and FMA, every x86 server CPU since 2015). Other architectures keep
/// the default target. A release binary built on an AVX-512 host needs one to run.
/// `FEDTRAIN_VECTOR_ISA=avx2` builds the Haswell variant on any x86 host (valgrind, for
/// instruction counts, does not decode AVX-512).
#if arch(x86_64)
let hostCPUFlags: Set<Substring> = {
    guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
    return Set(line.split(separator: " "))
}()
let hostHasAVX512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy { hostCPUFlags.contains(Substring($0)) }
    && ProcessInfo.processInfo.environment["FEDTRAIN_VECTOR_ISA"] != "avx2"
let vectorISA: [SwiftSetting] = hostHasAVX512
    ? [.unsafeFlags(["-target-cpu", "native"], .when(configuration: .release)), .define("WIDE_VECTORS")]
    : [.unsafeFlags(["-target-cpu", "haswell"], .when(configuration: .release))]
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
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        // Already in the gRPC transport's graph; named for the TLS client-certificate check.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS", path: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        // PNG and JPEG through the system libpng and libjpeg-turbo (make deps installs them); C,
        // because libjpeg and libpng report errors by longjmp.
        .target(name: "CImageCodecs", linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),
        // zlib's CRC-32 folded with PCLMULQDQ (zlib for the tail and on other CPUs).
        .target(name: "CChecksum", linkerSettings: [.linkedLibrary("z")]),
        // glibc's mallopt, for the networked federation's message buffers.
        .target(name: "CMalloc"),
        // Replaces OpenBLAS's generic (Prescott) fallback on CPUs it does not know, before main.
        .target(name: "CBLASKernels"),
        .target(name: "Engine", dependencies: ["CBLAS", "CBLASKernels"], swiftSettings: vectorISA),
        .target(name: "Datasets", dependencies: ["Engine", "CZlib", "CImageCodecs"], swiftSettings: vectorISA),
        .target(name: "Federated", dependencies: ["Engine", "Datasets", "CChecksum", .product(name: "Yams", package: "Yams")],
                swiftSettings: vectorISA),
        // The networked federation: gRPC, TLS and certificates. Nothing below it imports them.
        .target(name: "FederatedRPC", dependencies: [
            "Federated", "CMalloc",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .executableTarget(
            name: "fedtrain",
            dependencies: ["Engine", "Datasets", "Federated", "FederatedRPC",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Yams", package: "Yams")]),
        // make bench-transport: one large update through the server's real receive path.
        .executableTarget(name: "bench-transport", dependencies: ["Federated", "FederatedRPC",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport")], path: "Sources/BenchTransport"),
        // libFuzzer harness of the wire decoders (`make fuzz`); without -D FUZZING, a replay tool.
        .executableTarget(name: "fuzz-wire", dependencies: ["Engine", "Federated"], path: "Sources/FuzzWire"),
        .target(name: "TestSupport", dependencies: ["Engine"], path: "Tests/TestSupport"),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "TestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "TestSupport", "CZlib", "CImageCodecs"]),
        .testTarget(name: "FederatedTests", dependencies: ["Federated", "TestSupport", "CChecksum", "CZlib"]),
        .testTarget(name: "FedtrainTests", dependencies: [
            "fedtrain", "FederatedRPC", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "X509", package: "swift-certificates"),
        ]),
    ]
)
