import Foundation
import Engine
import Testing
import TestSupport

@Suite struct FiniteCheckTests {
    /// One NaN or infinity anywhere (in the 16-wide blocks or the tail) is found; the largest
    /// finite values, subnormals and negative zero are finite.
    @Test func allFiniteFindsEveryNonFiniteValue() {
        let finite: [Float] = (0..<37).map { [Float.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, -0.0, 1.5][$0 % 5] }
        #expect(VectorKernels.allFinite(finite))
        #expect(VectorKernels.allFinite([]))
        for position in finite.indices {
            for bad in [Float.nan, .infinity, -.infinity, .signalingNaN] {
                var values = finite
                values[position] = bad
                #expect(!VectorKernels.allFinite(values), "\(bad) at \(position)")
            }
        }
    }
}

@Suite struct GEMMTests {
    /// A CPU with AVX2 and FMA never runs OpenBLAS's generic Prescott (SSE3) kernels, unless the
    /// user asked for them with OPENBLAS_CORETYPE: fedtrain replaces that fallback before main.
    @Test func openBLASRunsTheKernelsTheCPUSupports() throws {
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let flags = Set(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ") ?? [])
        let userChoice = !BLAS.kernelsReplacedFallback && ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil
        if flags.contains("avx2") && flags.contains("fma") && !userChoice {
            #expect(BLAS.kernelSet != "Prescott")
        }
        if flags.contains("avx512f") && flags.contains("avx512bw") && BLAS.kernelsReplacedFallback {
            #expect(["SkylakeX", "Cooperlake"].contains(BLAS.kernelSet))
        }
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func matchesTripleLoop(transpose: (Bool, Bool)) {
        let (m, n, k) = (7, 5, 11)
        let a = randomArray(m * k, seed: 1), b = randomArray(k * n, seed: 2)
        var c = [Float](repeating: .nan, count: m * n)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    BLAS.gemm(transposeA: transpose.0, transposeB: transpose.1, m: m, n: n, k: k,
                              a.baseAddress!, b.baseAddress!, c.baseAddress!)
                }
            }
        }
        let expected = Reference.gemm(transposeA: transpose.0, transposeB: transpose.1, m: m, n: n, k: k, a, b)
        #expect(closeness(c, expected, rtol: 1e-5, atol: 1e-6) <= 1)
    }
}

/// Kernel 1/3/5, stride 1/2, padding 0/1/2, 1 and 3 input channels, non-square input.
let convolutionSweep: [ConvolutionGeometry] = {
    var geometries: [ConvolutionGeometry] = []
    for kernel in [1, 3, 5] {
        for stride in [1, 2] {
            for padding in [0, 1, 2] {
                for channels in [1, 3] {
                    geometries.append(ConvolutionGeometry(channels: channels, height: 9, width: 7,
                                                          kernelSize: kernel, stride: stride, padding: padding))
                }
            }
        }
    }
    return geometries
}()

/// Geometries with output channel counts for `ChannelBlockedConvolution` (stride 1, a multiple
/// of 16 output channels): LeNet's conv2, padding, 1×1 and 3×3 kernels, non-square input, output
/// position counts that leave a short last block of 4 and tap counts a short block of 6, and
/// input channel counts that make the input gradient channel-blocked.
let channelBlockedCases: [(ConvolutionGeometry, Int)] = [
    (ConvolutionGeometry(channels: 6, height: 14, width: 14, kernelSize: 5), 16),
    (ConvolutionGeometry(channels: 3, height: 9, width: 7, kernelSize: 5, padding: 2), 16),
    (ConvolutionGeometry(channels: 2, height: 7, width: 5, kernelSize: 3, padding: 1), 32),
    (ConvolutionGeometry(channels: 17, height: 5, width: 3, kernelSize: 1), 16),
    (ConvolutionGeometry(channels: 4, height: 6, width: 11, kernelSize: 3), 48),
    // A multiple of 16 input channels: the input gradient is a channel-blocked convolution too
    // ("same" and "valid" padding, and padding between).
    (ConvolutionGeometry(channels: 16, height: 7, width: 5, kernelSize: 3, padding: 1), 16),
    (ConvolutionGeometry(channels: 32, height: 6, width: 6, kernelSize: 5, padding: 2), 16),
    (ConvolutionGeometry(channels: 16, height: 6, width: 9, kernelSize: 3), 32),
    (ConvolutionGeometry(channels: 16, height: 8, width: 7, kernelSize: 5, padding: 1), 16),
]

@Suite struct ConvolutionTests {
    @Test(arguments: convolutionSweep.map { ($0, 4) } + channelBlockedCases)
    func forwardMatchesDirectConvolution(geometry g: ConvolutionGeometry, outputChannels: Int) {
        let batch = 2
        let layer = Conv2D(inputChannels: g.channels, outputChannels: outputChannels, kernelSize: g.kernelSize,
                           stride: g.stride, padding: g.padding, inputHeight: g.height, inputWidth: g.width)
        let input = randomArray(batch * layer.inputCount, seed: 3)
        let parameters = randomArray(layer.parameterCount, seed: 4)
        let weightCount = outputChannels * g.patchSize
        let expected = Reference.conv2D(g, batch: batch, outputChannels: outputChannels, input: input,
                                        weight: Array(parameters[..<weightCount]), bias: Array(parameters[weightCount...]))
        let output = LayerHarness(layer: layer, batch: batch).forward(input: input, parameters: parameters)
        #expect(closeness(output, expected, rtol: 1e-5, atol: 1e-5) <= 1)
    }

    /// The weight gradient (direct kernel for one input channel and stride 1, GEMM otherwise)
    /// against the six-loop definition, on LeNet's conv1 geometry, odd tap counts (k = 3, 7),
    /// output channels that fill one and a half register blocks, and the sweep; backward adds
    /// to what the gradient held.
    @Test(arguments: [(ConvolutionGeometry(channels: 1, height: 28, width: 28, kernelSize: 5, padding: 2), 6),
                      (ConvolutionGeometry(channels: 1, height: 28, width: 28, kernelSize: 5, padding: 2), 9),
                      (ConvolutionGeometry(channels: 1, height: 11, width: 13, kernelSize: 3, padding: 1), 4),
                      (ConvolutionGeometry(channels: 1, height: 12, width: 9, kernelSize: 7, padding: 3), 13),
                      (ConvolutionGeometry(channels: 3, height: 10, width: 8, kernelSize: 5, padding: 2), 6)]
                     + convolutionSweep.map { ($0, 5) } + channelBlockedCases)
    func weightGradientMatchesDefinition(geometry g: ConvolutionGeometry, outputChannels: Int) {
        let batch = 3
        let layer = Conv2D(inputChannels: g.channels, outputChannels: outputChannels, kernelSize: g.kernelSize,
                           stride: g.stride, padding: g.padding, inputHeight: g.height, inputWidth: g.width)
        let input = randomArray(batch * layer.inputCount, seed: 11)
        let parameters = randomArray(layer.parameterCount, seed: 12)
        let projection = randomArray(batch * layer.outputCount, seed: 13)
        let start = randomArray(layer.parameterCount, seed: 14)
        let weightCount = outputChannels * g.patchSize
        let expected = Reference.conv2DWeightGradient(g, batch: batch, outputChannels: outputChannels, input: input,
                                                      outputGradient: projection)
        let gradient = LayerHarness(layer: layer, batch: batch)
            .backward(input: input, parameters: parameters, projection: projection, parameterGradientStart: start).parameters
        let added = zip(gradient[..<weightCount], start[..<weightCount]).map { $0 - $1 }
        #expect(closeness(added, expected, rtol: 1e-4, atol: 1e-4) <= 1)
    }

    /// col2im is the adjoint of im2col: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for every x and c.
    @Test(arguments: convolutionSweep)
    func col2imIsTheAdjointOfIm2col(geometry g: ConvolutionGeometry) {
        let imageCount = g.channels * g.height * g.width, colCount = g.patchSize * g.outputPositions
        let image = randomArray(imageCount, seed: 5), col = randomArray(colCount, seed: 6)
        // col2im may read (and discards) the slack around the column matrix: NaN there must not leak.
        let slack = [Float](repeating: .nan, count: ConvolutionGeometry.im2colSlack)
        let paddedCol = slack + col + slack
        var unrolled = [Float](repeating: .nan, count: colCount + ConvolutionGeometry.im2colSlack)
        var folded = [Float](repeating: .nan, count: imageCount)
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: g.paddedImageSize)
        defer { padded.deallocate() }
        image.withUnsafeBufferPointer { x in unrolled.withUnsafeMutableBufferPointer { im2col(g, image: x.baseAddress!, col: $0.baseAddress!, padded: padded) } }
        unrolled.removeLast(ConvolutionGeometry.im2colSlack)
        paddedCol.withUnsafeBufferPointer { c in
            folded.withUnsafeMutableBufferPointer { col2im(g, col: c.baseAddress! + slack.count, image: $0.baseAddress!, padded: padded) }
        }
        let left = zip(unrolled, col).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let right = zip(image, folded).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(left - right) <= 1e-4 * max(1, abs(left)))
    }

    /// (LeNet's conv2 geometry, the first channel-blocked case, is left to the reference checks
    /// above and the whole-network check: its finite differences take a minute in a debug build.)
    @Test(arguments: convolutionSweep.map { ($0, 3) } + channelBlockedCases.dropFirst())
    func gradientsMatchFiniteDifferences(geometry g: ConvolutionGeometry, outputChannels: Int) {
        let batch = 2
        let layer = Conv2D(inputChannels: g.channels, outputChannels: outputChannels, kernelSize: g.kernelSize,
                           stride: g.stride, padding: g.padding, inputHeight: g.height, inputWidth: g.width)
        checkLayerGradients(layer, batch: batch, seed: 7)
    }
}

/// Both register blockings of the direct kernels against the references: a build compiles both
/// but runs the one its host's vector registers pick (`WIDE_VECTORS`), so the layer tests above
/// cover only that one.
@Suite struct RegisterBlockingTests {
    @Test(arguments: [false, true])
    func channelBlockedKernels(wide: Bool) {
        for (g, outputChannels) in channelBlockedCases {
            let K = g.patchSize, P = g.outputPositions, image = g.channels * g.height * g.width
            let x = randomArray(image, seed: 21), weight = randomArray(outputChannels * K, seed: 22)
            let bias = randomArray(outputChannels, seed: 23), dy = randomArray(outputChannels * P, seed: 24)
            var padded = [Float](repeating: 0, count: g.paddedImageSize), y = [Float](repeating: .nan, count: outputChannels * P)
            var tile = [Float](repeating: .nan, count: P * 16), dWT = [Float](repeating: 0, count: K * outputChannels)
            var panels = [Float](repeating: .nan, count: K * outputChannels)
            ChannelBlockedConvolution.packWeightPanels(weight, outputChannels: outputChannels, patchSize: K, into: &panels)
            // Panel o / 16 holds the transpose of W's rows 16·(o / 16) ..< 16·(o / 16) + 16.
            #expect(panels == (0..<(K * outputChannels)).map { weight[($0 / (16 * K) * 16 + $0 % 16) * K + $0 / 16 % K] })
            let dyT = (0..<(P * outputChannels)).map { dy[($0 % outputChannels) * P + $0 / outputChannels] }
            x.withUnsafeBufferPointer { x in copyPadded(g, image: x.baseAddress!, into: &padded) }
            ChannelBlockedConvolution.forward(g, outputChannels: outputChannels, padded: padded, weightPanels: panels,
                                              bias: bias, y: &y, tile: &tile, wide: wide)
            ChannelBlockedConvolution.accumulateWeightGradient(g, outputChannels: outputChannels, padded: padded,
                                                               dyTransposed: dyT, weightGradientTransposed: &dWT, wide: wide)
            let expectedY = Reference.conv2D(g, batch: 1, outputChannels: outputChannels, input: x, weight: weight, bias: bias)
            let expectedDW = Reference.conv2DWeightGradient(g, batch: 1, outputChannels: outputChannels, input: x, outputGradient: dy)
            let dW = (0..<(outputChannels * K)).map { dWT[($0 % K) * outputChannels + $0 / K] }
            #expect(closeness(y, expectedY, rtol: 1e-5, atol: 1e-5) <= 1, "forward \(g.testDescription)")
            #expect(closeness(dW, expectedDW, rtol: 1e-4, atol: 1e-4) <= 1, "weight gradient \(g.testDescription)")
        }
    }

    @Test(arguments: [false, true])
    func singleChannelWeightGradient(wide: Bool) {
        for (g, outputChannels) in [(ConvolutionGeometry(channels: 1, height: 28, width: 28, kernelSize: 5, padding: 2), 6),
                                    (ConvolutionGeometry(channels: 1, height: 12, width: 9, kernelSize: 7, padding: 3), 13)] {
            let x = randomArray(g.height * g.width, seed: 25), dy = randomArray(outputChannels * g.outputPositions, seed: 26)
            var padded = [Float](repeating: 0, count: g.paddedHeight * g.paddedWidth + DirectConvolution.slack)
            var scratch = [Float](repeating: .nan, count: DirectConvolution.gradientScratchCount(g, outputChannels: outputChannels))
            var dW = [Float](repeating: 0, count: outputChannels * g.patchSize)
            x.withUnsafeBufferPointer { x in copyPadded(g, image: x.baseAddress!, into: &padded, slack: DirectConvolution.slack) }
            DirectConvolution.accumulateWeightGradient(g, outputChannels: outputChannels, padded: padded, dy: dy,
                                                       weightGradient: &dW, scratch: &scratch, wide: wide)
            let expected = Reference.conv2DWeightGradient(g, batch: 1, outputChannels: outputChannels, input: x, outputGradient: dy)
            #expect(closeness(dW, expected, rtol: 1e-4, atol: 1e-4) <= 1, "\(g.testDescription)")
        }
    }
}

@Suite struct PoolingTests {
    /// The scalar path (3×3 windows, output rows < 4), the 4-wide SIMD path (LeNet's 10×10 pool,
    /// odd sizes with a row and column no window covers) and the 8-wide one (28×28, 16-wide).
    static let geometries = [
        ConvolutionGeometry(channels: 1, height: 8, width: 6, kernelSize: 2, stride: 2),
        ConvolutionGeometry(channels: 2, height: 10, width: 10, kernelSize: 2, stride: 2),
        ConvolutionGeometry(channels: 1, height: 9, width: 15, kernelSize: 2, stride: 2),
        ConvolutionGeometry(channels: 2, height: 28, width: 28, kernelSize: 2, stride: 2),
        ConvolutionGeometry(channels: 1, height: 5, width: 16, kernelSize: 2, stride: 2),
        ConvolutionGeometry(channels: 3, height: 7, width: 9, kernelSize: 3, stride: 2),
        ConvolutionGeometry(channels: 2, height: 5, width: 5, kernelSize: 3, stride: 1),
    ]

    @Test(arguments: geometries)
    func forwardMatchesReference(geometry g: ConvolutionGeometry) {
        let layer = MaxPool2D(channels: g.channels, inputHeight: g.height, inputWidth: g.width, kernelSize: g.kernelSize, stride: g.stride)
        let input = randomArray(2 * layer.inputCount, seed: 8)
        let output = LayerHarness(layer: layer, batch: 2).forward(input: input, parameters: [])
        #expect(output == Reference.maxPool(g, batch: 2, input: input))
    }

    @Test(arguments: geometries)
    func gradientsMatchFiniteDifferences(geometry g: ConvolutionGeometry) {
        let layer = MaxPool2D(channels: g.channels, inputHeight: g.height, inputWidth: g.width, kernelSize: g.kernelSize, stride: g.stride)
        // Max pooling is piecewise linear: distinct inputs 0.05 apart keep every ±h probe inside
        // one linear piece, so the finite differences are exact there.
        var generator = SeededGenerator(seed: 9)
        let input = (0..<(2 * layer.inputCount)).map { Float($0) * 0.05 - 1 }.shuffled(using: &generator)
        checkLayerGradients(layer, batch: 2, seed: 9, input: input)
    }

    @Test func tiesRouteTheGradientToTheFirstMaximum() {
        let layer = MaxPool2D(channels: 1, inputHeight: 2, inputWidth: 2, kernelSize: 2)
        let gradient = LayerHarness(layer: layer, batch: 1).backward(input: [1, 3, 3, 2], parameters: [], projection: [5]).input
        #expect(gradient == [0, 5, 0, 0])
    }

    /// Inputs from {0, 1, 2} tie in most windows; every path must send each window's gradient to
    /// its first maximum in row-major order (PyTorch's rule), computed here by a scan.
    @Test(arguments: geometries.filter { $0.kernelSize == 2 })
    func tiesFollowTheFirstMaximumOnEveryPath(geometry g: ConvolutionGeometry) {
        let layer = MaxPool2D(channels: g.channels, inputHeight: g.height, inputWidth: g.width, kernelSize: 2)
        var generator = SeededGenerator(seed: 15)
        let input = (0..<layer.inputCount).map { _ in Float(generator.next() % 3) }
        let projection = (0..<layer.outputCount).map { Float($0 + 1) }
        var expected = [Float](repeating: 0, count: layer.inputCount)
        for c in 0..<g.channels {
            for oy in 0..<g.outputHeight {
                for ox in 0..<g.outputWidth {
                    var best = -1, bestValue = -Float.infinity
                    for ky in 0..<2 {
                        for kx in 0..<2 {
                            let index = (c * g.height + 2 * oy + ky) * g.width + 2 * ox + kx
                            if input[index] > bestValue { best = index; bestValue = input[index] }
                        }
                    }
                    expected[best] += projection[(c * g.outputHeight + oy) * g.outputWidth + ox]
                }
            }
        }
        let gradient = LayerHarness(layer: layer, batch: 1).backward(input: input, parameters: [], projection: projection).input
        #expect(gradient == expected)
    }
}

@Suite struct DenseAndActivationTests {
    @Test func denseForwardIsAffine() {
        let layer = Dense(inputFeatures: 3, outputFeatures: 2)
        // W = [[1, 2, 3], [4, 5, 6]], b = [0.5, -1]
        let output = LayerHarness(layer: layer, batch: 2).forward(input: [1, 0, -1, 2, 1, 0], parameters: [1, 2, 3, 4, 5, 6, 0.5, -1])
        #expect(output == [-1.5, -3, 4.5, 12])
    }

    @Test func denseGradients() { checkLayerGradients(Dense(inputFeatures: 6, outputFeatures: 4), batch: 3, seed: 10) }
    @Test func reluGradients() { checkLayerGradients(ReLU(shape: [3, 4]), batch: 2, seed: 11) }
    @Test func flattenGradients() { checkLayerGradients(Flatten(shape: [2, 3, 2]), batch: 2, seed: 12) }

    @Test func reluClampsNegatives() {
        #expect(LayerHarness(layer: ReLU(shape: [4]), batch: 1).forward(input: [-1, 0, 2, -0.5], parameters: []) == [0, 0, 2, 0])
    }
}

/// Checks a layer's input and parameter gradients against central differences, and that the
/// parameter gradient accumulates onto what the buffer held.
func checkLayerGradients(_ layer: any Layer, batch: Int, seed: UInt64, input: [Float]? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    let harness = LayerHarness(layer: layer, batch: batch)
    let input = input ?? randomArray(batch * layer.inputCount, seed: seed)
    let parameters = randomArray(layer.parameterCount, seed: seed + 1)
    let projection = randomArray(batch * layer.outputCount, seed: seed + 2)
    let start = randomArray(max(1, layer.parameterCount), seed: seed + 3)
    let analytic = harness.backward(input: input, parameters: parameters, projection: projection, parameterGradientStart: start)
    let numericInput = numericGradient(of: { harness.loss(input: $0, parameters: parameters, projection: projection) }, at: input, step: 1e-2)
    #expect(closeness(analytic.input, numericInput, rtol: 1e-2, atol: 2e-3) <= 1, "input gradient", sourceLocation: sourceLocation)
    if layer.parameterCount > 0 {
        let numericParameters = numericGradient(of: { harness.loss(input: input, parameters: $0, projection: projection) }, at: parameters, step: 1e-2)
        let accumulated = zip(numericParameters, start).map { $0 + $1 }
        #expect(closeness(analytic.parameters, accumulated, rtol: 1e-2, atol: 2e-3) <= 1, "parameter gradient", sourceLocation: sourceLocation)
    }
}

extension ConvolutionGeometry: CustomTestStringConvertible {
    public var testDescription: String { "C\(channels) \(height)x\(width) k\(kernelSize) s\(stride) p\(padding)" }
}
