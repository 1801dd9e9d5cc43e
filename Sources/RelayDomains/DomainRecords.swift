import RelayCore
import RelayStore

/// One DNS record a user publishes for a sender domain.
public struct ExpectedRecord: Sendable, Equatable {
    /// What it is for: `dkim`, `spf`, `return_path`, `dmarc`.
    public var purpose: String
    /// `TXT` or `MX`.
    public var type: String
    /// Fully qualified owner name.
    public var name: String
    /// The record data to paste (for MX, the exchange host; `priority` holds the preference).
    public var value: String
    /// MX preference.
    public var priority: Int?
    /// For DKIM records: selector, algorithm and the key's state.
    public var selector: String?
    public var algorithm: String?
    public var keyState: DKIMKeyState?
}

/// The records a sender domain needs, derived from its keys and the settings. Pure.
///
/// - DKIM: one TXT per key that is signing, about to sign or still verifying old mail
///   (`<selector>._domainkey.<domain>`).
/// - Return path: envelope senders are `bounce+…@bounces.<domain>` (unless RELAY_BOUNCE_DOMAIN), so that host
///   needs an MX to Relay's inbound listener, and the SPF record that receivers check for the envelope sender
///   belongs on it too. DMARC's relaxed alignment accepts bounces.<domain> for a From at <domain>. With
///   RELAY_BOUNCE_DOMAIN the return path is the operator's and the SPF guidance moves to the domain itself.
/// - DMARC: a monitoring start (`p=none`) that the user tightens once reports look clean.
public enum DomainRecords {
    /// The host of the return path for `domain`, when it is under the user's domain.
    public static func returnPathHost(_ domain: String, settings: DomainSettings) -> String? {
        settings.bounceDomain == nil ? "\(ReturnPath.defaultSubdomain).\(domain)" : nil
    }

    /// Every record to publish, DKIM first.
    public static func expected(domain: String, keys: [StoredDKIMKey], settings: DomainSettings) -> [ExpectedRecord] {
        var records = keys.map { key in
            ExpectedRecord(purpose: "dkim", type: "TXT", name: "\(key.selector)._domainkey.\(domain)", value: key.publicRecord,
                           selector: key.selector, algorithm: key.algorithm, keyState: key.state)
        }
        let returnPath = returnPathHost(domain, settings: settings)
        records.append(ExpectedRecord(purpose: "spf", type: "TXT", name: returnPath ?? domain,
                                      value: "v=spf1 \(settings.spfMechanism) ~all"))
        if let returnPath {
            records.append(ExpectedRecord(purpose: "return_path", type: "MX", name: returnPath, value: settings.hostname,
                                          priority: 10))
        }
        records.append(ExpectedRecord(purpose: "dmarc", type: "TXT", name: "_dmarc.\(domain)",
                                      value: "v=DMARC1; p=none; rua=mailto:postmaster@\(domain)"))
        return records
    }
}
