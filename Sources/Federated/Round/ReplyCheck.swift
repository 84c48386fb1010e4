import Engine

/// Why the server refused a reply; the `metrics.jsonl` key counts each reason.
public enum RejectionReason: String, Error, Sendable, Hashable, CaseIterable, Codable {
    /// Not a valid envelope or message (truncated, bad checksum, unknown version...).
    case malformed
    /// Not an update reply, or from a client that was not sampled or already replied.
    case unexpected
    case wrongRound = "wrong_round"
    /// Trained from another model version than the round's.
    case staleModel = "stale_model"
    case wrongCodec = "wrong_codec"
    /// For another model (parameter-layout fingerprint or element count differ).
    case wrongLayout = "wrong_layout"
    /// NaN or infinite values, or a client that reported its training diverged.
    case nonFinite = "non_finite"
    /// A sample count of zero or above the configured cap.
    case sampleCount = "sample_count"
    /// A payload the round needs is missing (SCAFFOLD's control change).
    case missingPayload = "missing_payload"
}

/// What the server requires of every reply in a round. Pure: checks bytes against the round's
/// expectations and returns the decoded update or the reason for refusing it.
struct ReplyCheck: Sendable {
    var round: Int
    var modelVersion: Int
    var layout: ParameterLayout
    var codecSpec: String
    var maxSamples: Int
    var needsControlChange: Bool

    func check(_ bytes: [UInt8], from client: Int) -> Result<(ClientUpdate, Envelope), RejectionReason> {
        let envelope: Envelope
        do { envelope = try Envelope(decoding: bytes) } catch { return .failure(.malformed) }
        guard envelope.client == client else { return .failure(.unexpected) }
        if envelope.kind == .diverged { return .failure(.nonFinite) }
        guard envelope.kind == .update else { return .failure(.unexpected) }
        guard envelope.round == round else { return .failure(.wrongRound) }
        guard envelope.modelVersion == modelVersion else { return .failure(.staleModel) }
        guard envelope.samples >= 1, envelope.samples <= maxSamples else { return .failure(.sampleCount) }
        guard let updateBytes = envelope.payloads[.update] else { return .failure(.missingPayload) }
        let update: UpdateMessage
        switch decode(updateBytes, kind: .update) {
        case .success(let message): update = message
        case .failure(let reason): return .failure(reason)
        }
        guard update.codec.spec == codecSpec else { return .failure(.wrongCodec) }
        var controlDelta: [Float]?
        if needsControlChange {
            guard let controlBytes = envelope.payloads[.controlChange] else { return .failure(.missingPayload) }
            switch decode(controlBytes, kind: .control) {
            case .success(let message): controlDelta = message.values
            case .failure(let reason): return .failure(reason)
            }
        }
        guard envelope.trainLoss.isFinite || envelope.trainLoss.isNaN else { return .failure(.nonFinite) }
        let result = ClientUpdate(client: client, samples: envelope.samples, steps: envelope.steps, delta: update.values,
                                  controlDelta: controlDelta, trainLoss: envelope.trainLoss)
        return .success((result, envelope))
    }

    private func decode(_ bytes: [UInt8], kind: UpdateMessage.Kind) -> Result<UpdateMessage, RejectionReason> {
        do {
            let message = try UpdateMessage.decode(bytes, layout: layout)
            guard message.kind == kind, message.round == round else { return .failure(message.kind == kind ? .wrongRound : .malformed) }
            return .success(message)
        } catch .wrongLayout {
            return .failure(.wrongLayout)
        } catch .nonFinite {
            return .failure(.nonFinite)
        } catch {
            if case .badField(let field) = error, field.hasPrefix("element count") { return .failure(.wrongLayout) }
            return .failure(.malformed)
        }
    }
}
