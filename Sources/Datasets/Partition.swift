import Engine

/// How a training set is split across federated clients.
public enum PartitionScheme: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Uniformly shuffled, equal shares.
    case iid
    /// Flower's `DirichletPartitioner`: per class, client proportions from Dir(alpha).
    case dirichlet(alpha: Double)
    /// NIID-Bench's #C=K: each client holds exactly K classes.
    case labels(perClient: Int)
    /// McMahan et al.'s pathological split: sort by label, cut into equal shards, S per client.
    case shards(perClient: Int)
    /// NIID-Bench's quantity skew: client sizes from Dir(beta), labels IID.
    case quantity(beta: Double)

    /// Parses `iid`, `dirichlet:ALPHA`, `labels:K`, `shards:S` or `quantity:BETA`.
    public init(parsing text: String) throws(PartitionError) {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let argument = parts.count == 2 ? parts[1] : nil
        func positiveDouble() throws(PartitionError) -> Double {
            guard let argument, let value = Double(argument), value > 0, value.isFinite else {
                throw .invalidScheme("\(text): \(parts[0]) needs a positive number, as in \(parts[0]):0.5")
            }
            return value
        }
        func positiveInt() throws(PartitionError) -> Int {
            guard let argument, let value = Int(argument), value > 0 else {
                throw .invalidScheme("\(text): \(parts[0]) needs a positive integer, as in \(parts[0]):2")
            }
            return value
        }
        switch parts[0] {
        case "iid" where argument == nil: self = .iid
        case "dirichlet": self = .dirichlet(alpha: try positiveDouble())
        case "labels": self = .labels(perClient: try positiveInt())
        case "shards": self = .shards(perClient: try positiveInt())
        case "quantity": self = .quantity(beta: try positiveDouble())
        default:
            throw .invalidScheme("unknown partition \(text); expected iid, dirichlet:ALPHA, labels:K, shards:S or quantity:BETA")
        }
    }

    public var description: String {
        switch self {
        case .iid: return "iid"
        case .dirichlet(let alpha): return "dirichlet:\(alpha)"
        case .labels(let k): return "labels:\(k)"
        case .shards(let s): return "shards:\(s)"
        case .quantity(let beta): return "quantity:\(beta)"
        }
    }
}

public enum PartitionError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidScheme(String)
    case unsatisfiable(String)
    public var description: String {
        switch self {
        case .invalidScheme(let message), .unsatisfiable(let message): return message
        }
    }
}

/// Splits sample indices across clients. Every scheme is seeded by the injected generator and
/// returns, per client, a list of distinct sample indices; together the lists cover every sample
/// exactly once (shards: all but the remainder of an uneven division).
public struct Partitioner: Sendable {
    public var scheme: PartitionScheme
    public var clients: Int
    /// Smallest acceptable client size for the Dirichlet schemes (Flower's default is 10).
    public var minimumSize: Int
    /// Dirichlet draws tried before giving up (Flower: 10).
    public var attempts = 10

    public init(scheme: PartitionScheme, clients: Int, minimumSize: Int = 10) {
        precondition(clients >= 1)
        self.scheme = scheme
        self.clients = clients
        self.minimumSize = minimumSize
    }

    public func split(labels: [UInt16], classes: Int, generator: inout SeededGenerator) throws(PartitionError) -> [[Int]] {
        let n = labels.count
        guard n >= clients else { throw .unsatisfiable("\(n) samples cannot be split across \(clients) clients") }
        var byClass = [[Int]](repeating: [], count: classes)
        for (index, label) in labels.enumerated() { byClass[Int(label)].append(index) }
        switch scheme {
        case .iid:
            var order = Array(0..<n)
            order.shuffle(using: &generator)
            return evenSplit(order, parts: clients)

        case .dirichlet(let alpha):
            for _ in 0..<attempts {
                var parts = [[Int]](repeating: [], count: clients)
                for var members in byClass where !members.isEmpty {
                    members.shuffle(using: &generator)
                    let proportions = generator.nextDirichlet(alpha: alpha, count: clients)
                    var cumulative = 0.0, start = 0
                    for client in 0..<clients {
                        cumulative += proportions[client]
                        let end = client == clients - 1 ? members.count : min(members.count, Int(cumulative * Double(members.count)))
                        parts[client] += members[start..<max(start, end)]
                        start = max(start, end)
                    }
                }
                if parts.allSatisfy({ $0.count >= minimumSize }) {
                    for client in 0..<clients { parts[client].shuffle(using: &generator) }
                    return parts
                }
            }
            throw .unsatisfiable("dirichlet:\(alpha) over \(clients) clients left some client with fewer than \(minimumSize) samples in \(attempts) draws; raise alpha, use fewer clients, or lower the minimum partition size (--min-partition-size)")

        case .labels(let k):
            guard k <= classes else { throw .unsatisfiable("labels:\(k): the data has only \(classes) classes") }
            // NIID-Bench: client i holds class i mod C plus k−1 other distinct random classes; each
            // class's samples are split evenly among the clients that hold it.
            var holders = [[Int]](repeating: [], count: classes)
            for client in 0..<clients {
                var held = [client % classes]
                while held.count < k {
                    let candidate = Int(generator.next(upperBound: UInt64(classes)))
                    if !held.contains(candidate) { held.append(candidate) }
                }
                for c in held { holders[c].append(client) }
            }
            var parts = [[Int]](repeating: [], count: clients)
            for c in 0..<classes where !holders[c].isEmpty {
                var members = byClass[c]
                members.shuffle(using: &generator)
                for (share, client) in zip(evenSplit(members, parts: holders[c].count), holders[c]) { parts[client] += share }
            }
            if let empty = parts.firstIndex(where: \.isEmpty) {
                throw .unsatisfiable("labels:\(k): client \(empty) received no samples (its classes are absent from the data)")
            }
            return parts

        case .shards(let perClient):
            let shardCount = clients * perClient
            guard shardCount <= n else { throw .unsatisfiable("shards:\(perClient): \(shardCount) shards exceed \(n) samples") }
            // Stable sort by label (ties in sample order), equal shards, a seeded shard assignment.
            let sorted = byClass.flatMap { $0 }
            let shardSize = n / shardCount
            var shardOrder = Array(0..<shardCount)
            shardOrder.shuffle(using: &generator)
            return (0..<clients).map { client in
                shardOrder[(client * perClient)..<((client + 1) * perClient)].flatMap { shard in
                    sorted[(shard * shardSize)..<((shard + 1) * shardSize)]
                }
            }

        case .quantity(let beta):
            var order = Array(0..<n)
            order.shuffle(using: &generator)
            for _ in 0..<attempts {
                let proportions = generator.nextDirichlet(alpha: beta, count: clients)
                var sizes = proportions.map { Int($0 * Double(n)) }
                sizes[clients - 1] = n - sizes[..<(clients - 1)].reduce(0, +)
                guard sizes.allSatisfy({ $0 >= minimumSize }) else { continue }
                var start = 0
                return sizes.map { size in
                    defer { start += size }
                    return Array(order[start..<(start + size)])
                }
            }
            throw .unsatisfiable("quantity:\(beta) over \(clients) clients left some client with fewer than \(minimumSize) samples in \(attempts) draws; raise beta or lower the minimum partition size (--min-partition-size)")
        }
    }

    /// `items` cut into `parts` contiguous pieces whose sizes differ by at most one (the first
    /// `count % parts` pieces are one longer, as numpy's `array_split`).
    func evenSplit(_ items: [Int], parts: Int) -> [[Int]] {
        let base = items.count / parts, extra = items.count % parts
        var start = 0
        return (0..<parts).map { part in
            let size = base + (part < extra ? 1 : 0)
            defer { start += size }
            return Array(items[start..<(start + size)])
        }
    }
}
