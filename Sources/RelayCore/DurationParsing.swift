/// Durations in configuration are written like `500ms`, `30s`, `5m`, `2h`, `5d` (a bare number means seconds).
public enum DurationParsing {
    /// Parses a configuration duration; returns nil for anything else (negative, empty, unknown unit).
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let unitStart = trimmed.firstIndex(where: { !$0.isNumber && $0 != "." }) else {
            return Double(trimmed).map { .milliseconds(Int64($0 * 1000)) }
        }
        guard let value = Double(trimmed[..<unitStart]), value >= 0 else { return nil }
        let unit = trimmed[unitStart...].lowercased()
        let millisecondsPerUnit: Double
        switch unit {
        case "ms": millisecondsPerUnit = 1
        case "s": millisecondsPerUnit = 1000
        case "m": millisecondsPerUnit = 60_000
        case "h": millisecondsPerUnit = 3_600_000
        case "d": millisecondsPerUnit = 86_400_000
        default: return nil
        }
        return .milliseconds(Int64((value * millisecondsPerUnit).rounded()))
    }

    /// Formats a duration back into the shortest exact configuration form (for logs and docs).
    public static func format(_ duration: Duration) -> String {
        let ms = duration.milliseconds
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] where ms >= size && ms % size == 0 {
            return "\(ms / size)\(unit)"
        }
        return "\(ms)ms"
    }
}

extension Duration {
    /// Whole milliseconds (truncated).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// Seconds as a floating-point value.
    public var seconds: Double {
        Double(milliseconds) / 1000
    }
}

import Foundation
