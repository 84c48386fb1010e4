import Foundation

/// How much an update trained from a model `τ` versions old counts (Xie et al. 2019, FedAsync's
/// s(τ); FedBuff scales each buffered delta by it): `const` 1; `poly:A` (1 + τ)^(−A);
/// `hinge:A:B` 1 while τ ≤ B, then 1 / (A·(τ − B) + 1). Every function is 1 at τ = 0 and
/// non-increasing in τ.
public enum Staleness: Sendable, Equatable, CustomStringConvertible {
    case constant
    case polynomial(exponent: Double)
    case hinge(slope: Double, threshold: Int)

    public static let help = "const, poly:A or hinge:A:B"

    public init(parsing spec: String) throws(ConfigurationError) {
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func number(_ index: Int) throws(ConfigurationError) -> Double {
            guard let value = Double(parts[index]), value.isFinite, value >= 0 else {
                throw ConfigurationError("staleness \(spec): \(parts[index]) is not a non-negative number")
            }
            return value
        }
        switch (parts[0], parts.count) {
        case ("const", 1): self = .constant
        case ("poly", 2): self = .polynomial(exponent: try number(1))
        case ("hinge", 3):
            let slope = try number(1), threshold = try number(2)
            guard threshold == threshold.rounded(), threshold <= 1e9 else { throw ConfigurationError("staleness \(spec): B must be a whole number of versions") }
            self = .hinge(slope: slope, threshold: Int(threshold))
        default: throw ConfigurationError("staleness \(spec): expected \(Self.help)")
        }
    }

    /// s(τ) for a staleness of `versions` ≥ 0.
    public func weight(_ versions: Int) -> Double {
        precondition(versions >= 0)
        switch self {
        case .constant: return 1
        case .polynomial(let exponent): return pow(1 + Double(versions), -exponent)
        case .hinge(let slope, let threshold): return versions <= threshold ? 1 : 1 / (slope * Double(versions - threshold) + 1)
        }
    }

    public var description: String {
        switch self {
        case .constant: return "const"
        case .polynomial(let exponent): return "poly:\(exponent)"
        case .hinge(let slope, let threshold): return "hinge:\(slope):\(threshold)"
        }
    }
}
