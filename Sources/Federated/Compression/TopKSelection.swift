/// Exact top-k by magnitude for sparsifying codecs.
enum TopKSelection {
    /// The positions of the `k` largest `|values|`, ascending. Ties go to the lower position, so
    /// the set is unique and encoding is deterministic. NaN counts as larger than any number.
    ///
    /// Cost: one pass comparing magnitude bits against a threshold estimated from a strided
    /// sample (up to 16k values, every 8th for small inputs), then a quickselect over the (about
    /// 1.25k) candidates; a full quickselect only if the sample misjudged. Order keys pack
    /// (magnitude bits, inverted position) into 64 bits.
    static func largestMagnitudes(_ values: UnsafeBufferPointer<Float>, k: Int) -> [UInt32] {
        let n = values.count
        precondition(k >= 0 && k <= n && n <= Int(UInt32.max), "top-k needs 0 <= k <= n < 2^32")
        if k == 0 { return [] }
        if k == n { return (0..<UInt32(n)).map { $0 } }
        var threshold: UInt32 = 0
        let sampleCount = min(1 << 14, n / 8)
        if sampleCount >= 256 {
            let stride = n / sampleCount
            let rank = Int(1.25 * Double(k) / Double(n) * Double(sampleCount)) + 32
            if rank < sampleCount {
                // The sample's (rank+1)-th largest magnitude, by selection (sorting it cost more
                // than the whole pass at 62k values).
                var sample = (0..<sampleCount).map { UInt64(magnitudeBits(values[$0 * stride])) << 32 | UInt64($0) }
                sample.withUnsafeMutableBufferPointer { selectLargest($0, k: rank + 1) }
                threshold = UInt32(sample[...rank].min()! >> 32)
            }
        }
        var keys = candidates(values, atLeast: threshold, expected: k)
        if keys.count < k { keys = candidates(values, atLeast: 0, expected: n) }
        keys.withUnsafeMutableBufferPointer { selectLargest($0, k: k) }
        var positions = keys[..<k].map { ~UInt32(truncatingIfNeeded: $0) }
        positions.sort()
        return positions
    }

    /// The bits of `|value|` (sign cleared), which order as the magnitudes do; NaN above all.
    @inline(__always)
    static func magnitudeBits(_ value: Float) -> UInt32 { value.bitPattern & magnitudeMask }

    private static let magnitudeMask: UInt32 = 0x7FFF_FFFF

    /// Keys of the values whose magnitude bits are at least `threshold`, in position order. Tests
    /// 16 values per step and looks at single values only in steps with a hit (about 1 step in 5
    /// at 1% density): the scalar test-and-append loop cost 2 cycles per value.
    private static func candidates(_ values: UnsafeBufferPointer<Float>, atLeast threshold: UInt32, expected: Int) -> [UInt64] {
        var keys = [UInt64]()
        keys.reserveCapacity(min(values.count, expected + expected / 2 + 64))
        let n = values.count, limit = SIMD16<UInt32>(repeating: threshold)
        func append(_ i: Int) {
            let bits = magnitudeBits(values[i])
            if bits >= threshold { keys.append(UInt64(bits) << 32 | UInt64(~UInt32(truncatingIfNeeded: i))) }
        }
        var start = 0
        if let base = values.baseAddress {
            while start + 16 <= n {
                let bits = UnsafeRawPointer(base + start).loadUnaligned(as: SIMD16<UInt32>.self) & magnitudeMask
                if any(bits .>= limit) {
                    for i in start..<(start + 16) { append(i) }
                }
                start += 16
            }
        }
        for i in start..<n { append(i) }
        return keys
    }

    /// Reorders `keys` so its first `k` elements are its `k` largest (in no particular order).
    static func selectLargest(_ keys: UnsafeMutableBufferPointer<UInt64>, k: Int) {
        var low = 0, high = keys.count - 1
        var budget = 2 * (Int.bitWidth - keys.count.leadingZeroBitCount) + 8
        while high - low > 16 {
            budget -= 1
            if budget == 0 {
                // Adversarial input defeated the pivots: finish with a sort, O(n log n).
                var range = UnsafeMutableBufferPointer(rebasing: keys[low...high])
                range.sort(by: >)
                return
            }
            let middle = low + (high - low) / 2
            // Median of three as pivot, descending order.
            if keys[middle] > keys[low] { keys.swapAt(middle, low) }
            if keys[high] > keys[low] { keys.swapAt(high, low) }
            if keys[high] > keys[middle] { keys.swapAt(high, middle) }
            let pivot = keys[middle]
            var i = low, j = high
            while i <= j {
                while keys[i] > pivot { i += 1 }
                while keys[j] < pivot { j -= 1 }
                if i <= j {
                    keys.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            // Now keys[low...j] >= pivot >= keys[i...high]; keys are unique.
            if k - 1 <= j { high = j } else if k - 1 >= i { low = i } else { return }
        }
        var range = UnsafeMutableBufferPointer(rebasing: keys[low...high])
        range.sort(by: >)
    }
}
