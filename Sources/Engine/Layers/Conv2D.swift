/// 2-D convolution (cross-correlation, as PyTorch's `Conv2d`) with zero padding, any channels,
/// kernel size, stride and padding.
///
/// Weight `[outputChannels, inputChannels, k, k]` stored as the matrix
/// `W(outputChannels × inputChannels·k²)`, then bias `[outputChannels]`.
/// Per image: forward is `Y(outC × oH·oW) = W · im2col(x) + b`; backward is
/// `dW += dY · colᵀ` (computed as its transpose), `db += rowsum(dY)`, `dx = col2im(Wᵀ · dY)`.
/// One GEMM per image keeps the shapes at the size OpenBLAS runs fastest (see `Parallelism`).
/// For one input channel and stride 1, the direct kernels of `DirectConvolution` compute `Y`
/// and `dW` instead; for stride 1 and a multiple of 16 output channels, those of
/// `ChannelBlockedConvolution` (the input gradient stays a GEMM and col2im).
public struct Conv2D: Layer {
    public let geometry: ConvolutionGeometry
    public let outputChannels: Int
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let inputCount: Int
    public let outputCount: Int

    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                inputHeight: Int, inputWidth: Int) {
        precondition(outputChannels > 0)
        geometry = ConvolutionGeometry(channels: inputChannels, height: inputHeight, width: inputWidth,
                                       kernelSize: kernelSize, stride: stride, padding: padding)
        precondition(geometry.outputHeight > 0 && geometry.outputWidth > 0, "kernel larger than padded input")
        self.outputChannels = outputChannels
        inputShape = [geometry.channels, geometry.height, geometry.width]
        outputShape = [outputChannels, geometry.outputHeight, geometry.outputWidth]
        inputCount = geometry.channels * geometry.height * geometry.width
        outputCount = outputChannels * geometry.outputPositions
    }
    public var parameterShapes: [(suffix: String, shape: [Int])] {
        [("weight", [outputChannels, geometry.channels, geometry.kernelSize, geometry.kernelSize]),
         ("bias", [outputChannels])]
    }
    public var parameterCount: Int { outputChannels * (geometry.patchSize + 1) }

    /// A 1×1, stride-1, unpadded convolution reads the image itself as its column matrix.
    private var isPointwise: Bool {
        geometry.kernelSize == 1 && geometry.stride == 1 && geometry.padding == 0
    }

    public func initialize(_ parameters: UnsafeMutableBufferPointer<Float>, using generator: inout SeededGenerator) {
        initializeUniformFanIn(parameters, fanIn: geometry.patchSize, using: &generator)
    }

    /// Single-channel, stride-1 layers run forward without the column matrix (see `DirectConvolution`).
    private var isDirect: Bool { DirectConvolution.applies(geometry) }

    /// Layers with a multiple of 16 output channels read the image in place for `Y` and `dW`
    /// (see `ChannelBlockedConvolution`).
    private var isChannelBlocked: Bool { ChannelBlockedConvolution.applies(geometry, outputChannels: outputChannels) }

    /// The input gradient of a stride-1 layer as a convolution: `dX = conv(dY padded by k−1−p,
    /// W flipped in both axes with its channel axes swapped)`. When that convolution fits the
    /// channel-blocked kernel (a multiple of 16 input channels: fedavg-cnn's conv2, 32 ← 64), it
    /// computes `dX` in place of the GEMM and col2im. LeNet's layers keep the GEMM path.
    private var gradientGeometry: ConvolutionGeometry? {
        guard geometry.stride == 1, geometry.padding <= geometry.kernelSize - 1 else { return nil }
        let g = ConvolutionGeometry(channels: outputChannels, height: geometry.outputHeight, width: geometry.outputWidth,
                                    kernelSize: geometry.kernelSize, padding: geometry.kernelSize - 1 - geometry.padding)
        return ChannelBlockedConvolution.applies(g, outputChannels: geometry.channels) && !isPointwise ? g : nil
    }

    /// The gradient convolution's weights, `W'[ci, (co, ky, kx)] = W[co, ci, k−1−ky, k−1−kx]`,
    /// packed in the channel-blocked kernel's 16-channel panels (`ChannelBlockedConvolution.packWeightPanels`).
    private func flippedWeightPanels(_ weight: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let k = geometry.kernelSize, C = geometry.channels, block = ChannelBlockedConvolution.channelBlock
        let panel = outputChannels * k * k * block
        for co in 0..<outputChannels {
            for ci in 0..<C {
                for ky in 0..<k {
                    for kx in 0..<k {
                        out[ci / block * panel + ((co * k + ky) * k + kx) * block + ci % block] =
                            weight[((co * C + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)]
                    }
                }
            }
        }
    }

    /// The image as the channel-blocked kernels read it: zero-padded into `padded` when the layer pads.
    private func paddedImage(_ x: UnsafePointer<Float>, _ padded: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        guard geometry.padding > 0 else { return x }
        copyPadded(geometry, image: x, into: padded)
        return UnsafePointer(padded)
    }

    /// Column matrix, its gradient, the padded image, `dYᵀ` (one image at a time), `Wᵀ` (or the
    /// channel-blocked kernel's weight panels, the same size) and `dWᵀ`;
    /// for the direct kernels also the padded image with slack and their `dY` copy.
    public func scratchCount(batch: Int) -> Int {
        let K = geometry.patchSize, P = geometry.outputPositions
        let direct = isDirect ? directPaddedCount + DirectConvolution.gradientScratchCount(geometry, outputChannels: outputChannels) : 0
        let gradient = gradientGeometry.map { $0.paddedImageSize + geometry.channels } ?? 0
        return 2 * K * P + geometry.paddedImageSize + P * outputChannels + 2 * outputChannels * K + direct + gradient
    }

    /// Floats of the direct kernels' padded image, slack included.
    private var directPaddedCount: Int { geometry.paddedHeight * geometry.paddedWidth + DirectConvolution.slack }

    /// Start of the direct kernels' scratch (after the column-matrix path's).
    private func directScratch(_ scratch: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let K = geometry.patchSize, P = geometry.outputPositions
        return scratch + 2 * K * P + geometry.paddedImageSize + P * outputChannels + 2 * outputChannels * K
    }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let K = geometry.patchSize, P = geometry.outputPositions
        let weight = parameters, bias = parameters + outputChannels * K
        if isDirect {
            let padded = directScratch(scratch)
            for image in 0..<batch {
                copyPadded(geometry, image: input + image * inputCount, into: padded, slack: DirectConvolution.slack)
                DirectConvolution.forward(geometry, outputChannels: outputChannels, padded: padded, weight: weight, bias: bias,
                                          y: output + image * outputCount)
            }
            return
        }
        let weightTransposed = scratch + 2 * K * P + geometry.paddedImageSize + P * outputChannels
        if isChannelBlocked {
            let weightPanels = weightTransposed
            ChannelBlockedConvolution.packWeightPanels(weight, outputChannels: outputChannels, patchSize: K, into: weightPanels)
            for image in 0..<batch {
                ChannelBlockedConvolution.forward(geometry, outputChannels: outputChannels,
                                                  padded: paddedImage(input + image * inputCount, scratch + 2 * K * P),
                                                  weightPanels: weightPanels, bias: bias,
                                                  y: output + image * outputCount, tile: scratch)
            }
            return
        }
        // `Y = (Wᵀ)ᵀ · col` where the plain product would allocate inside OpenBLAS (see BLAS).
        let transposed = BLAS.plainProductAllocates(n: P, k: K)
        if transposed { BLAS.transpose(rows: outputChannels, columns: K, weight, weightTransposed) }
        for image in 0..<batch {
            let x = input + image * inputCount, y = output + image * outputCount
            let col: UnsafePointer<Float>
            if isPointwise {
                col = x
            } else {
                im2col(geometry, image: x, col: scratch, padded: scratch + 2 * K * P)
                col = UnsafePointer(scratch)
            }
            for channel in 0..<outputChannels {
                (y + channel * P).update(repeating: bias[channel], count: P)
            }
            if transposed {
                BLAS.gemm(transposeA: true, m: outputChannels, n: P, k: K, weightTransposed, col, beta: 1, y)
            } else {
                BLAS.gemm(m: outputChannels, n: P, k: K, weight, col, beta: 1, y)
            }
        }
    }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        let K = geometry.patchSize, P = geometry.outputPositions
        let weight = parameters
        let weightGradient = parameterGradient, biasGradient = parameterGradient + outputChannels * K
        let col = scratch, colGradient = scratch + K * P, padded = scratch + 2 * K * P
        let outputGradientTransposed = padded + geometry.paddedImageSize
        let weightTransposed = outputGradientTransposed + P * outputChannels
        let weightGradientTransposed = weightTransposed + outputChannels * K
        // OpenBLAS's small-matrix kernels reject transposed-A shapes that are short in K or wide
        // in M·N (the packing path measured slower), so the products are issued in plain form:
        // `dWᵀ += col · dYᵀ` accumulated over the batch and added to `dW` once, and
        // `dcol = Wᵀ · dY`. Where the plain `dWᵀ` product would allocate inside OpenBLAS (few
        // output channels, see BLAS), `dW += dY · colᵀ` is used directly instead.
        let transposedAccumulator = isChannelBlocked || (!isDirect && !BLAS.plainProductAllocates(n: outputChannels, k: P))
        // The gradient convolution's padded dY and zero bias, after every other region.
        let gradientConvolution = inputGradient == nil ? nil : gradientGeometry
        let gradientPadded = directScratch(scratch) + (isDirect ? directPaddedCount + DirectConvolution.gradientScratchCount(geometry, outputChannels: outputChannels) : 0)
        if let g = gradientConvolution {
            flippedWeightPanels(weight, into: weightTransposed)
            (gradientPadded + g.paddedImageSize).update(repeating: 0, count: geometry.channels)
        } else if inputGradient != nil {
            BLAS.transpose(rows: outputChannels, columns: K, weight, weightTransposed)
        }
        if transposedAccumulator { weightGradientTransposed.update(repeating: 0, count: K * outputChannels) }
        for image in 0..<batch {
            let x = input + image * inputCount, dy = outputGradient + image * outputCount
            for channel in 0..<outputChannels {
                biasGradient[channel] += VectorKernels.sum(dy + channel * P, count: P)
            }
            if isDirect {
                let padded = directScratch(scratch)
                copyPadded(geometry, image: x, into: padded, slack: DirectConvolution.slack)
                DirectConvolution.accumulateWeightGradient(geometry, outputChannels: outputChannels, padded: padded, dy: dy,
                                                           weightGradient: weightGradient, scratch: padded + directPaddedCount)
            } else if isChannelBlocked {
                BLAS.transpose(rows: outputChannels, columns: P, dy, outputGradientTransposed)
                ChannelBlockedConvolution.accumulateWeightGradient(geometry, outputChannels: outputChannels,
                                                                   padded: paddedImage(x, padded),
                                                                   dyTransposed: outputGradientTransposed,
                                                                   weightGradientTransposed: weightGradientTransposed)
            } else {
                let columns: UnsafePointer<Float>
                if isPointwise {
                    columns = x
                } else {
                    im2col(geometry, image: x, col: col, padded: padded)
                    columns = UnsafePointer(col)
                }
                if transposedAccumulator {
                    BLAS.transpose(rows: outputChannels, columns: P, dy, outputGradientTransposed)
                    BLAS.gemm(m: K, n: outputChannels, k: P, columns, outputGradientTransposed, beta: 1, weightGradientTransposed)
                } else {
                    BLAS.gemm(transposeB: true, m: outputChannels, n: K, k: P, dy, columns, beta: 1, weightGradient)
                }
            }
            guard let inputGradient else { continue }
            let dx = inputGradient + image * inputCount
            if let g = gradientConvolution {
                copyPadded(g, image: dy, into: gradientPadded)
                ChannelBlockedConvolution.forward(g, outputChannels: geometry.channels, padded: gradientPadded,
                                                  weightPanels: weightTransposed, bias: gradientPadded + g.paddedImageSize,
                                                  y: dx, tile: colGradient)
            } else if isPointwise {
                BLAS.gemm(m: K, n: P, k: outputChannels, weightTransposed, dy, dx)
            } else {
                BLAS.gemm(m: K, n: P, k: outputChannels, weightTransposed, dy, colGradient)
                col2im(geometry, col: colGradient, image: dx, padded: padded)
            }
        }
        guard transposedAccumulator else { return }
        for row in 0..<K {
            for channel in 0..<outputChannels {
                weightGradient[channel * K + row] += weightGradientTransposed[row * outputChannels + channel]
            }
        }
    }
}
