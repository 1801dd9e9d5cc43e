import Foundation

/// Time-ordered UUIDs (RFC 9562 version 7) for rows that are inserted at a high rate: new ids land at the
/// right edge of the primary-key B-tree instead of at random pages, which keeps inserts cheap at 10M rows.
public enum TimeOrderedUUID {
    /// A new version-7 UUID for the current time.
    public static func make(now: Date = Date()) -> UUID {
        let milliseconds = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        var generator = SystemRandomNumberGenerator()
        let randomA = generator.next() as UInt64
        let randomB = generator.next() as UInt64
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: milliseconds >> (40 - 8 * UInt64(i))) }
        bytes[6] = 0x70 | UInt8(truncatingIfNeeded: randomA & 0x0F)          // version 7
        bytes[7] = UInt8(truncatingIfNeeded: randomA >> 8)
        bytes[8] = 0x80 | UInt8(truncatingIfNeeded: (randomA >> 16) & 0x3F)  // RFC 4122 variant
        for i in 9..<16 { bytes[i] = UInt8(truncatingIfNeeded: randomB >> (8 * UInt64(i - 9))) }
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }
}

/// API keys: random secrets shown once; only their SHA-256 is stored (hashing lives in RelayStore).
public enum APIKeyFormat {
    /// The prefix every key starts with, so that leaked keys are easy to recognise in logs and scanners.
    public static let prefix = "rly_"

    /// A new key: the prefix followed by 32 random bytes in base64url without padding (43 characters).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let encoded = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return prefix + encoded
    }
}
