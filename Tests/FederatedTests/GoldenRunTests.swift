import Datasets
@testable import Engine
@testable import Federated
import Testing
import TestSupport

/// The golden-run guard: short simulations whose final models must stay bit-identical through
/// refactors. The hashes were recorded from the code before the round-architecture refactor; a
/// deliberate numerical change updates them in its own commit that says why.
///
/// Bit-identity holds within one platform: OpenBLAS's kernel set and fedtrain's register
/// blocking (`VectorKernels.wideRegisters`) change summation orders, so each platform has its
/// own hashes (`platform`), recorded from the pre-refactor code with `OPENBLAS_CORETYPE` set to
/// each kernel set, on the AVX-512 build ("wide") and on the AVX2 build ("narrow", what hosts
/// without AVX-512 compile: `hostHasAVX512 = false` in Package.swift).
@Suite struct GoldenRunTests {
    static var platform: String { "\(BLAS.kernelSet)/\(VectorKernels.wideRegisters ? "wide" : "narrow")" }

    static let cases: [(name: String, edit: @Sendable (inout SimulationConfiguration) -> Void)] = [
        ("fedavg", { _ in }),
        ("scaffold-momentum", { $0.federation.strategy = "scaffold"; $0.training.momentum = 0.9 }),
        ("fedadam", { $0.federation.strategy = "fedadam" }),
        ("fednova", { $0.federation.strategy = "fednova" }),
        ("powersgd-ef-topk-down", { $0.compression.codec = "powersgd:2"; $0.compression.errorFeedback = true; $0.compression.downCodec = "topk:0.1" }),
        ("dropout", { $0.federation.dropout = 0.3; $0.federation.fraction = 1; $0.federation.strategy = "fedavgm" }),
    ]

    /// OpenBLAS runs its Haswell kernels on Zen: the two platforms share hashes.
    static let haswellWide = [
        "fdc26f494fc2ce2d5df1540abf3c54d0f745ee289d971db86099eaeab6314adf",
        "c616c0df077e02d279623e1eda087e9da47212912be5a552870e837bd532d963",
        "79d69ac85aa1623bbf8282f4142c81b68da64eba8e7535003fd84659bf2db9d2",
        "84600151fb34d83317e222ada8fce3f8e66f3d4c0cf65693af08ff58602417f2",
        "7c6d6c9c49061c230cb0269cfde8443fd760b25821906784dcc4ffbc3706ac6a",
        "05abef8587c5d0727ea2eab958d23c553033542af25f27e2a78edd1be5d459e9",
    ]

    static let haswellNarrow = [
        "68a954b3d98e27fe06d1fce2f3cdda42eefc122e654a50885cf2c188f66bec04",
        "c4123ced0c801a7936c33b4ba2bd28701f201fd989b0eb1fc87f6b85fb594980",
        "8b7f3505abe0548e4394a70d993fbab21417811069f726716cf3616a21cd3b44",
        "577b4793a5a2434f27c56d25bd81f4f37c9b34a46b18c7d3927e488c1e2809d9",
        "ba7911def1df6ba0ade2ce9d4412e470ce88a8cec3bf351939ffbd64d0919246",
        "9b18bd782aa59fa1daa80578b08ece297a44ec4c4bc1028bba3a0de8256896e8",
    ]

    /// SHA-256 of each case's final model (little-endian fp32), in `cases` order, per platform.
    static let hashes: [String: [String]] = [
        "Prescott/wide": [
            "acf89c7cbb90014ddebea6d5b6c930c17a5d0d001d24875663ee317ac1c4f70d",
            "c10ebd179e35aeebd527b211df1dd27e01d37d65122f1b161b1b844423ff8529",
            "c25e2543aa0d2ddf7de4541906b8c79b7430955736b23a29bf29cca09856a85c",
            "a4f4bf84f859be1af277552d478bd31091854971dfd90c7fdb5a85b631a19179",
            "0ff3fcb9965e6ef17ba78916184181c403b4c427f1841eaa5347fa553538ddc6",
            "68dd4293fa54ec783ce93ce7ea59654d5ac74970f66de28dd6e80888c2b693d6",
        ],
        "Cooperlake/wide": [
            "cf43c4c52ec2fcd4b841806f627d47dee8a60b7a9beb9a1f98ce2d062a16b6a6",
            "ab78c0cbe2f9011b51347459bbdf54c86ee4dbd28cb0775c204be247b55c51dd",
            "c5d3a8de59a7754fe2b7ec3b79b73d11b599625210a3f578cb5cdae8bcbfa1dd",
            "1423bc3ce1e5664fe5241e297acffe8742f61b4473b2a2ee738c22626d1582b3",
            "0072f3568ba4852f392ba18add6dd893d2ab4d56fe5a8717e1045c72d8d22aa7",
            "103a9c237368de87cd497fc55b3e6ad2657b1f2b56145afa4e941a93a914271c",
        ],
        "Haswell/wide": haswellWide,
        "SkylakeX/wide": [
            "7abbb29bfaf12f6718a37d1544f0b6a8e0224084bc94b643c83eff4951245099",
            "406b93cc361069bf93aab64a6a1ca45ab44db2f379ca855a896a08e9a2fb8281",
            "b7c447f2e8cade13932407ca39ceaaac82f0f1f8dbcb591177778a10f6a3ddd9",
            "6d62b9240451e1cd7e753de2e61d8b18ba0d45b8ff8321925f2abf078ba92163",
            "993e4c62de257e1cf7acf83ef5b3ba3dc2fed2fdd8acd996277c9e7ba58866da",
            "35c6412be06046b9ae743512e5254594fc4139ae868c8d5e519c6f32d208a890",
        ],
        "Zen/wide": haswellWide,
        "Prescott/narrow": [
            "15141bbb22267a7e1513af84ed591cd5f68984cb8175e16dd8d8e72f49f037ea",
            "47c98f409d8c81932a544f68d3fa9f2e0b2878bb77b03892281dd09c477a3591",
            "1d96f16f3fd7dc94db3cfc7c4ff85bb413c5c04f584d156bb56ae509b4362914",
            "4ed692eb865e2f8f575000493be40eb39659b9f57dd11517f1aff14c2099391d",
            "ddb5410e46a915e5200c13a77262cdb3b21b16c47f9fcbdae272a2c1ba9d7984",
            "f2ed73fb595b2c4d949dda9e43f1bea1495752d3a606825216d38ef9caa1607d",
        ],
        "Haswell/narrow": haswellNarrow,
        "SkylakeX/narrow": [
            "69557e9da86ca0df5fd9b31f75fd3e6436d4a0d45300264fd346679bfd73f2c0",
            "57d79e405b52fc748316e852ce296ebe749279495803bba1bc5f3ac4fb77ad4f",
            "78cf2aaa6afcdcd356ff4f23767cbd48ad8609290090394eae619824a8f60e90",
            "11f02a8da955b76c1cfbc808dd2828e2b246c8b03499f75502193d8eb8182512",
            "d93e71d78d72b59e8f9e50a503d8ddd26324a2a6cdabd197139f5586ec27d3b8",
            "7ff87d6c86efbc2e23b735244c610a59b4b498b8f2e4b8a8fca3629bb156bc35",
        ],
        "Cooperlake/narrow": [
            "2f794abdca0f16329d76890637613fc78f69ed502264ca7e57380590f74bcb2d",
            "3b0804ab3d0c55599d562c541d2fd14434ef01cc0669a2c6a4b0061c2bcd4d6e",
            "ba848089c64a1505559ef11b5fd39c8652555ba02aaa40f0b05c3676f4c190d9",
            "c74a1ce024309f51c882fe75228949a998a42eb90886a1ed69fb02e4b4f38287",
            "375ff2c215abe67fb88d164b07148d08ac1d7bb992f98a15ea99187beb729531",
            "b7ea3fff4fd4250f22d2b7fd8d36c0ce432945417e9e76dfcf566930e1ce67be",
        ],
        "Zen/narrow": haswellNarrow,
    ]

    static func finalModel(_ edit: @escaping (inout SimulationConfiguration) -> Void) throws -> [Float] {
        let run = try smallSimulation {
            $0.run.threads = 2
            $0.federation.seed = 11
            edit(&$0)
        }
        for _ in 0..<run.configuration.federation.rounds { run.runRound() }
        return run.global
    }

    @Test(arguments: 0..<cases.count)
    func finalModelIsUnchanged(index: Int) throws {
        let (name, edit) = Self.cases[index]
        let model = try Self.finalModel(edit)
        #expect(model.allSatisfy { $0.isFinite })
        let recorded = try #require(Self.hashes[Self.platform], "no golden hashes for platform \(Self.platform)")
        #expect(SHA256.hex(model) == recorded[index], "\(name) on \(Self.platform)")
    }
}

@Suite struct SHA256Tests {
    /// FIPS 180-4 examples (one block, empty, two blocks).
    @Test func standardVectors() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }
}
