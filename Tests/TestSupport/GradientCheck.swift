import Engine

/// Central finite differences `(f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h` of a scalar function of a float
/// vector, at the coordinates `indices` (all when nil).
public func numericGradient(of f: ([Float]) -> Double, at x: [Float], step h: Float, indices: [Int]? = nil) -> [Float] {
    var point = x
    return (indices ?? Array(x.indices)).map { i in
        let original = point[i]
        point[i] = original + h
        let plus = f(point)
        point[i] = original - h
        let minus = f(point)
        point[i] = original
        return Float((plus - minus) / Double(2 * h))
    }
}

/// Runs one layer forward and backward on a whole batch, for gradient checks. The scalar
/// `loss = Σ projection ⊙ output` makes `projection` the output gradient.
public struct LayerHarness {
    public let layer: any Layer
    public let batch: Int

    public init(layer: any Layer, batch: Int) {
        self.layer = layer
        self.batch = batch
    }

    public func forward(input: [Float], parameters: [Float]) -> [Float] {
        var output = [Float](repeating: .nan, count: batch * layer.outputCount)
        var scratch = [Float](repeating: .nan, count: max(1, layer.scratchCount(batch: batch)))
        let p = parameters.isEmpty ? [0] : parameters
        input.withUnsafeBufferPointer { x in
            p.withUnsafeBufferPointer { w in
                output.withUnsafeMutableBufferPointer { y in
                    scratch.withUnsafeMutableBufferPointer { s in
                        layer.forward(batch: batch, input: x.baseAddress!, output: y.baseAddress!,
                                      parameters: w.baseAddress!, scratch: s.baseAddress!)
                    }
                }
            }
        }
        return output
    }

    public func loss(input: [Float], parameters: [Float], projection: [Float]) -> Double {
        zip(forward(input: input, parameters: parameters), projection).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// (dL/dinput, dL/dparameters) from the layer's backward. `parameterGradientStart` is what
    /// the parameter gradient holds before backward (to check that it accumulates).
    public func backward(input: [Float], parameters: [Float], projection: [Float],
                         parameterGradientStart: [Float]? = nil) -> (input: [Float], parameters: [Float]) {
        let output = forward(input: input, parameters: parameters)
        var inputGradient = [Float](repeating: .nan, count: input.count)
        var parameterGradient = parameterGradientStart ?? [Float](repeating: 0, count: max(1, parameters.count))
        var scratch = [Float](repeating: .nan, count: max(1, layer.scratchCount(batch: batch)))
        let p = parameters.isEmpty ? [0] : parameters
        input.withUnsafeBufferPointer { x in
            p.withUnsafeBufferPointer { w in
                output.withUnsafeBufferPointer { y in
                    projection.withUnsafeBufferPointer { dy in
                        inputGradient.withUnsafeMutableBufferPointer { dx in
                            parameterGradient.withUnsafeMutableBufferPointer { dw in
                                scratch.withUnsafeMutableBufferPointer { s in
                                    layer.backward(batch: batch, input: x.baseAddress!, output: y.baseAddress!,
                                                   outputGradient: dy.baseAddress!, inputGradient: dx.baseAddress!,
                                                   parameters: w.baseAddress!, parameterGradient: dw.baseAddress!,
                                                   scratch: s.baseAddress!)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (inputGradient, parameters.isEmpty ? [] : parameterGradient)
    }
}
