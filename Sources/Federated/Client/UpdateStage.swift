import Engine

/// One step of the client pipeline between training and encoding (clipping, noise, simulated
/// attacks, masking), applied in order to the update the codec will carry: the client's delta
/// plus, with error feedback, its residual. The residual kept afterwards is what the codec
/// dropped of the staged update.
public protocol UpdateStage: Sendable {
    /// Transforms `update` (laid out as the model's parameters) in place. `generator` is
    /// derived from (seed, round, client) and shared by the stages in order.
    func apply(to update: inout [Float], round: Int, client: Int, generator: inout SeededGenerator)
}
