import Federated

/// Client ids written as a list of numbers and ranges: `7`, `0-249`, `0,3,10-19`.
public enum ClientIDs {
    /// The ids, sorted and without repeats; at most `limit` of them (a range is checked before
    /// it is expanded).
    public static func parse(_ text: String, limit: Int = 1 << 20) throws(ConfigurationError) -> [Int] {
        var ids = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map { Int($0) }
            guard let low = bounds.first ?? nil, let high = bounds.count == 2 ? bounds[1] : low, low >= 0, low <= high else {
                throw ConfigurationError("client ids \(text): expected numbers and ranges like 0-24,30 (from 0)")
            }
            guard high - low < limit - ids.count else { throw ConfigurationError("client ids \(text): more than \(limit) clients") }
            ids.formUnion(low...high)
        }
        return ids.sorted()
    }

    /// The shortest text `parse` reads back as `ids` (sorted).
    public static func format(_ ids: [Int]) -> String {
        var parts: [String] = [], index = 0
        while index < ids.count {
            var end = index
            while end + 1 < ids.count && ids[end + 1] == ids[end] + 1 { end += 1 }
            parts.append(end == index ? "\(ids[index])" : "\(ids[index])-\(ids[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }
}
