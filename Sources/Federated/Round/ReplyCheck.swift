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
    /// NaN or infinite values (or a loss beyond `largestLoss`), or a client that reported its
    /// training diverged.
    case nonFinite = "non_finite"
    /// A sample count of zero or above the configured cap.
    case sampleCount = "sample_count"
    /// More local steps than the client's samples allow (FedNova weighs updates by steps).
    case stepCount = "step_count"
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
    var localEpochs: Int
    var batchSize: Int
    var needsControlChange: Bool

    /// Larger losses are refused with the non-finite ones: weighted by sample counts they would
    /// overflow the round's mean.
    static let largestLoss = 1e30

    func check(_ bytes: [UInt8], from client: Int) -> Result<(ClientUpdate, Envelope), RejectionReason> {
        let envelope: Envelope
        do { envelope = try Envelope(decoding: bytes) } catch { return .failure(.malformed) }
        guard envelope.client == client else { return .failure(.unexpected) }
        if envelope.kind == .diverged { return .failure(.nonFinite) }
        guard envelope.kind == .update else { return .failure(.unexpected) }
        guard envelope.round == round else { return .failure(.wrongRound) }
        guard envelope.modelVersion == modelVersion else { return .failure(.staleModel) }
        guard envelope.samples >= 1, envelope.samples <= maxSamples else { return .failure(.sampleCount) }
        guard envelope.steps >= 1, envelope.steps <= localEpochs * ((envelope.samples + batchSize - 1) / batchSize) else {
            return .failure(.stepCount)
        }
        guard envelope.trainLoss.isFinite, abs(envelope.trainLoss) <= Self.largestLoss else { return .failure(.nonFinite) }
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
        let result = ClientUpdate(client: client, samples: envelope.samples, steps: envelope.steps, delta: update.values,
                                  controlDelta: controlDelta, trainLoss: envelope.trainLoss)
        return .success((result, envelope))
    }

    private func decode(_ bytes: [UInt8], kind: UpdateMessage.Kind) -> Result<UpdateMessage, RejectionReason> {
        do {
            let message = try UpdateMessage.decode(bytes, layout: layout)
            guard message.kind == kind, message.round == round else { return .failure(message.kind == kind ? .wrongRound : .malformed) }
            return .success(message)
        } catch .wrongLayout, .wrongElementCount {
            return .failure(.wrongLayout)
        } catch .nonFinite {
            return .failure(.nonFinite)
        } catch {
            return .failure(.malformed)
        }
    }
}
