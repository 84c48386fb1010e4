/// Purposes of the generators a run derives from (seed, purpose, round, client...), so every
/// random choice is reproducible and independent of the others. Never renumber: checkpoints and
/// golden runs depend on these values.
enum RandomStream: UInt64 {
    case initialization = 1, partition, sampling, dropout, client, uplink, downlink, codecState, downlinkState, updateStage, centralNoise, bucketing, attackers, attack, clipCount, clock, exampleDP, divideAndConquer
}
