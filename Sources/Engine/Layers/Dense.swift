/// Fully connected layer, as PyTorch's `Linear`: `y = x · Wᵀ + b`.
///
/// Weight `[outputFeatures, inputFeatures]`, then bias `[outputFeatures]`. Over a batch:
/// forward `Y(B × out) = X(B × in) · Wᵀ + b`; backward `dW += dYᵀ · X`, `db += colsum(dY)`,
/// `dX = dY · W`.
public struct Dense: Layer {
    public let inputFeatures: Int
    public let outputFeatures: Int
    public let inputShape: [Int]
    public let outputShape: [Int]
    public var inputCount: Int { inputFeatures }
    public var outputCount: Int { outputFeatures }

    public init(inputFeatures: Int, outputFeatures: Int) {
        precondition(inputFeatures > 0 && outputFeatures > 0)
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
        inputShape = [inputFeatures]
        outputShape = [outputFeatures]
    }
    public var parameterShapes: [(suffix: String, shape: [Int])] {
        [("weight", [outputFeatures, inputFeatures]), ("bias", [outputFeatures])]
    }
    public var parameterCount: Int { outputFeatures * (inputFeatures + 1) }

    public func initialize(_ parameters: UnsafeMutableBufferPointer<Float>, using generator: inout SeededGenerator) {
        initializeUniformFanIn(parameters, fanIn: inputFeatures, using: &generator)
    }

    public func forward(batch: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                        parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let bias = parameters + outputFeatures * inputFeatures
        for row in 0..<batch {
            (output + row * outputFeatures).update(from: bias, count: outputFeatures)
        }
        BLAS.gemm(transposeB: true, m: batch, n: outputFeatures, k: inputFeatures, input, parameters, beta: 1, output)
    }

    /// `dYᵀ`, so that `dW += dYᵀ · X` is a plain NN product (see `Conv2D.backward`), and
    /// `dX = (dYᵀ)ᵀ · W` can avoid the allocating plain form (see `BLAS.plainProductAllocates`).
    public func scratchCount(batch: Int) -> Int { batch * outputFeatures }

    public func backward(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                         outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                         parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        let biasGradient = parameterGradient + outputFeatures * inputFeatures
        BLAS.transpose(rows: batch, columns: outputFeatures, outputGradient, scratch)
        if BLAS.plainProductAllocates(n: inputFeatures, k: batch) {
            BLAS.gemm(transposeA: true, m: outputFeatures, n: inputFeatures, k: batch, outputGradient, input, beta: 1, parameterGradient)
        } else {
            BLAS.gemm(m: outputFeatures, n: inputFeatures, k: batch, scratch, input, beta: 1, parameterGradient)
        }
        for row in 0..<batch {
            let dy = outputGradient + row * outputFeatures
            for feature in 0..<outputFeatures { biasGradient[feature] += dy[feature] }
        }
        if let inputGradient {
            backwardInput(batch: batch, outputGradient: outputGradient, outputGradientTransposed: scratch,
                          parameters: parameters, inputGradient: inputGradient)
        }
    }

    /// `backward` without the weight product: accumulates the bias gradient into
    /// `parameterGradient` (the layer's slice; its weight part is not touched), computes `dX`,
    /// and copies `dY` to `keptOutputGradient` (`batch × outputFeatures`, overwritten) for
    /// `accumulateWeightGradient(rows:)`. A training step with several chunks forms `dW` once,
    /// from every chunk's `dY`, instead of one full `dW` per chunk that the step then sums.
    public func backwardDeferringWeightGradient(batch: Int, input: UnsafePointer<Float>, outputGradient: UnsafePointer<Float>,
                                                inputGradient: UnsafeMutablePointer<Float>?, parameters: UnsafePointer<Float>,
                                                parameterGradient: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                                keptOutputGradient: UnsafeMutablePointer<Float>) {
        let biasGradient = parameterGradient + outputFeatures * inputFeatures
        keptOutputGradient.update(from: outputGradient, count: batch * outputFeatures)
        for row in 0..<batch {
            let dy = outputGradient + row * outputFeatures
            for feature in 0..<outputFeatures { biasGradient[feature] += dy[feature] }
        }
        guard let inputGradient else { return }
        if BLAS.plainProductAllocates(n: inputFeatures, k: outputFeatures) {
            BLAS.transpose(rows: batch, columns: outputFeatures, outputGradient, scratch)
        }
        backwardInput(batch: batch, outputGradient: outputGradient, outputGradientTransposed: scratch,
                      parameters: parameters, inputGradient: inputGradient)
    }

    /// Rows `rows` of the weight gradient of one chunk: `dW[rows] = beta · dW[rows] + dY[:, rows]ᵀ · X`,
    /// `dY` as `backwardDeferringWeightGradient` kept it, `X` the chunk's input (`batch × inputFeatures`),
    /// `weightGradient` the layer's whole `outputFeatures × inputFeatures` weight gradient. The
    /// bits of `backward`'s full product need row blocks that are multiples of the GEMM kernel's
    /// register tile (`Trainer.denseRowBlock`).
    public func accumulateWeightGradient(rows: Range<Int>, batch: Int, input: UnsafePointer<Float>, keptOutputGradient: UnsafePointer<Float>,
                                         beta: Float, weightGradient: UnsafeMutablePointer<Float>) {
        guard !rows.isEmpty else { return }
        BLAS.gemm(transposeA: true, m: rows.count, n: inputFeatures, k: batch, keptOutputGradient + rows.lowerBound,
                  rowStrideA: outputFeatures, input, beta: beta, weightGradient + rows.lowerBound * inputFeatures)
    }

    /// `dX = dY · W`, from `dYᵀ` where the plain product would allocate.
    private func backwardInput(batch: Int, outputGradient: UnsafePointer<Float>, outputGradientTransposed: UnsafePointer<Float>,
                               parameters: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>) {
        if BLAS.plainProductAllocates(n: inputFeatures, k: outputFeatures) {
            BLAS.gemm(transposeA: true, m: batch, n: inputFeatures, k: outputFeatures, outputGradientTransposed, parameters, inputGradient)
        } else {
            BLAS.gemm(m: batch, n: inputFeatures, k: outputFeatures, outputGradient, parameters, inputGradient)
        }
    }

    /// Sample i's gradient is `dyᵢ xᵢᵀ` and `dyᵢ`, so its squared norm is `‖dyᵢ‖² (‖xᵢ‖² + 1)`
    /// (Goodfellow 2015): no per-sample product is formed. Keeps `dY`.
    public func sampleGradientKeptCount(batch: Int) -> Int { batch * outputFeatures }

    public func accumulateSampleGradientNorms(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                                              outputGradient: UnsafePointer<Float>, inputGradient: UnsafeMutablePointer<Float>?,
                                              parameters: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                              kept: UnsafeMutablePointer<Float>, squaredNorms: UnsafeMutablePointer<Double>) {
        for sample in 0..<batch {
            squaredNorms[sample] += VectorKernels.squaredNorm(outputGradient + sample * outputFeatures, count: outputFeatures)
                * (VectorKernels.squaredNorm(input + sample * inputFeatures, count: inputFeatures) + 1)
        }
        kept.update(from: outputGradient, count: batch * outputFeatures)
        guard let inputGradient else { return }
        BLAS.transpose(rows: batch, columns: outputFeatures, outputGradient, scratch)
        backwardInput(batch: batch, outputGradient: outputGradient, outputGradientTransposed: scratch,
                      parameters: parameters, inputGradient: inputGradient)
    }

    /// `Σᵢ cᵢ dyᵢ xᵢᵀ` is the batch's weight gradient of the rows `cᵢ dyᵢ`: one product, as in `backward`.
    public func accumulateWeightedSampleGradients(batch: Int, input: UnsafePointer<Float>, output: UnsafePointer<Float>,
                                                  kept: UnsafeMutablePointer<Float>, factors: UnsafePointer<Float>,
                                                  parameters: UnsafePointer<Float>, parameterGradient: UnsafeMutablePointer<Float>,
                                                  scratch: UnsafeMutablePointer<Float>) {
        for sample in 0..<batch {
            let dy = kept + sample * outputFeatures
            for feature in 0..<outputFeatures { dy[feature] *= factors[sample] }
        }
        backward(batch: batch, input: input, output: output, outputGradient: kept, inputGradient: nil,
                 parameters: parameters, parameterGradient: parameterGradient, scratch: scratch)
    }
}
