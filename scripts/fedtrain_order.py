"""The order in which `fedtrain train --seed S` visits the training set, reproduced in Python so a
PyTorch loop can take exactly the same minibatches.

It follows Sources/Engine/SeededGenerator.swift (xoshiro256** seeded by SplitMix64, `derived`),
the Swift standard library's `next(upperBound:)` (Lemire's multiply-and-reject) and
Sources/Datasets/EpochOrder.swift (Fisher-Yates from the last position down). TrainingJob shuffles
with `SeededGenerator.derived(seed: S, 1)`, one generator carried across epochs.
"""
MASK = (1 << 64) - 1


def _splitmix64(x):
    """One SplitMix64 step: (new state, output)."""
    x = (x + 0x9E3779B97F4A7C15) & MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return x, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class SeededGenerator:
    def __init__(self, seed):
        mixer, self.s = seed & MASK, []
        for _ in range(4):
            mixer, word = _splitmix64(mixer)
            self.s.append(word)

    @classmethod
    def derived(cls, seed, *path):
        key = seed & MASK
        for component in path:
            _, key = _splitmix64(key ^ ((component * 0x9E3779B97F4A7C15) & MASK))
        return cls(key)

    def next(self):
        s0, s1, s2, s3 = self.s
        result = (_rotl((s1 * 5) & MASK, 7) * 9) & MASK
        shifted = (s1 << 17) & MASK
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= shifted
        s3 = _rotl(s3, 45)
        self.s = [s0, s1, s2, s3]
        return result

    def next_below(self, upper):
        """Swift's `next(upperBound:)` for UInt64."""
        m = self.next() * upper
        if (m & MASK) < upper:
            t = ((1 << 64) - upper) % upper
            while (m & MASK) < t:
                m = self.next() * upper
        return m >> 64


def epoch_orders(seed, count, epochs):
    """The sample indices of each epoch of `fedtrain train --seed seed` over `count` samples."""
    generator = SeededGenerator.derived(seed, 1)
    for _ in range(epochs):
        order = list(range(count))
        for i in range(count - 1, 0, -1):
            j = generator.next_below(i + 1)
            order[i], order[j] = order[j], order[i]
        yield order
