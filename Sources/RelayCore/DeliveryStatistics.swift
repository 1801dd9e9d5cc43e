import Foundation

/// Mailbox providers, recognised from the MX host names they use (or, before an MX is known, from the big
/// consumer domains), so that a user can ask "what is my bounce rate at Microsoft?" for custom domains too.
public enum MailboxProvider: String, Sendable, CaseIterable, Codable {
    case google, microsoft, yahoo, apple, other

    /// MX host suffixes per provider (lower case, compared on label boundaries).
    static let mxSuffixes: [(String, MailboxProvider)] = [
        ("google.com", .google), ("googlemail.com", .google),
        ("outlook.com", .microsoft), ("hotmail.com", .microsoft), ("microsoft.com", .microsoft),
        ("yahoodns.net", .yahoo), ("yahoo.com", .yahoo), ("aol.com", .yahoo),
        ("icloud.com", .apple), ("apple.com", .apple), ("me.com", .apple),
    ]

    /// Consumer domains whose provider is known without looking at the MX.
    static let domains: [String: MailboxProvider] = [
        "gmail.com": .google, "googlemail.com": .google,
        "outlook.com": .microsoft, "hotmail.com": .microsoft, "live.com": .microsoft, "msn.com": .microsoft,
        "hotmail.co.uk": .microsoft, "outlook.de": .microsoft, "hotmail.fr": .microsoft, "live.co.uk": .microsoft,
        "yahoo.com": .yahoo, "ymail.com": .yahoo, "aol.com": .yahoo, "yahoo.co.uk": .yahoo, "yahoo.fr": .yahoo,
        "yahoo.co.jp": .yahoo, "rocketmail.com": .yahoo,
        "icloud.com": .apple, "me.com": .apple, "mac.com": .apple,
    ]

    /// The provider of a delivery: from the MX host when one is known, else from the recipient domain.
    public static func classify(mx: String?, domain: String) -> MailboxProvider {
        if let mx {
            var host = mx.lowercased()
            if host.hasSuffix(".") { host.removeLast() }
            for (suffix, provider) in mxSuffixes where host == suffix || host.hasSuffix("." + suffix) {
                return provider
            }
        }
        return domains[domain.lowercased()] ?? .other
    }
}

/// The histogram of time from accept to delivery that the statistics keep per hour. Buckets grow by 20%, so a
/// percentile read from it is within 20% of the true value: bucket 0 holds < 10 ms, bucket b ≥ 1 holds
/// [10·1.2^(b−1), 10·1.2^b) ms, and the last bucket everything from 6.6 days on (longer than the default message lifetime). The SQL function
/// `relay_latency_bucket` (migration 0004) computes the same buckets; a test checks that both agree.
public enum LatencyHistogram {
    public static let bucketCount = 100
    static let growth = 1.2
    static let firstBound = 10.0

    /// The bucket of a duration in milliseconds.
    public static func bucket(milliseconds: Double) -> Int {
        if milliseconds < firstBound { return 0 }
        return min(bucketCount - 1, 1 + Int((log(milliseconds / firstBound) / log(growth)).rounded(.down)))
    }

    /// The upper bound of a bucket in milliseconds (what a percentile in this bucket is reported as).
    public static func upperBound(of bucket: Int) -> Double {
        firstBound * pow(growth, Double(bucket))
    }

    /// The `quantile` (0…1) of a histogram given as counts per bucket, as the bucket's upper bound rounded to
    /// whole milliseconds; nil when the histogram is empty.
    public static func quantile(_ quantile: Double, counts: [Int: Int]) -> Int? {
        let total = counts.values.reduce(0, +)
        guard total > 0 else { return nil }
        // The rank of the wanted observation, 1-based: the smallest value with at least q·n values at or below.
        let rank = max(1, Int((quantile * Double(total)).rounded(.up)))
        var seen = 0
        for bucket in counts.keys.sorted() {
            seen += counts[bucket] ?? 0
            if seen >= rank { return Int(upperBound(of: bucket).rounded()) }
        }
        return nil
    }
}

/// Delivery-rate arithmetic shared by the API and the dashboard's figures.
public enum DeliveryRates {
    /// delivered ÷ (delivered + bounced + failed): the share of finished attempts that arrived. Suppressed
    /// recipients were never attempted and deferrals are not finished, so neither counts. Nil without data.
    public static func deliveryRate(delivered: Int, bounced: Int, failed: Int) -> Double? {
        let finished = delivered + bounced + failed
        return finished == 0 ? nil : Double(delivered) / Double(finished)
    }

    /// bounced ÷ (delivered + bounced + failed), hard bounces only. Nil without data.
    public static func bounceRate(delivered: Int, bounced: Int, failed: Int) -> Double? {
        let finished = delivered + bounced + failed
        return finished == 0 ? nil : Double(bounced) / Double(finished)
    }
}

/// One line of an SMTP attempt's transcript as stored and shown (`GET /v1/messages/{id}/attempts`): a command
/// Relay sent, a reply the server sent, or a note. Never message content; AUTH data is redacted.
public struct TranscriptLine: Sendable, Hashable, Codable {
    /// `client`, `server` or `info`.
    public var direction: String
    public var text: String
    public var at: Date

    /// Creates a line.
    public init(direction: String, text: String, at: Date = Date()) {
        self.direction = direction
        self.text = text
        self.at = at
    }
}
