import DKIM
import Foundation
import RelayStore

/// Makes, seals and opens DKIM private keys, sealed by ``SecretKeyring`` (under `RELAY_SECRET_KEY`, or the cluster's
/// `dkim-database` secret without it).
public struct DKIMKeyring: Sendable {
    /// `sealed_with` of keys sealed under the database secret.
    public static let databaseKeyName = SecretKeyring.databaseKeyName

    /// The keyring that seals and opens the keys (and other secrets, such as smarthost passwords).
    public let secrets: SecretKeyring

    /// `secretKeyBase64`: RELAY_SECRET_KEY (32 bytes in base64) or nil; `databaseKey`: the `dkim-database` secret.
    public init(secretKeyBase64: String?, databaseKey: [UInt8]) throws {
        secrets = try SecretKeyring(secretKeyBase64: secretKeyBase64, databaseKey: databaseKey)
    }

    /// Whether RELAY_SECRET_KEY seals new keys.
    public var usesConfiguredKey: Bool { secrets.usesConfiguredKey }

    /// A fresh RSA-2048 and Ed25519 pair for `domain`, with selectors `relay<yyyymm>r` / `relay<yyyymm>e` for the
    /// month of `date` (UTC), suffixed 2, 3, … when a rotation in the same month already used the name.
    public func newKeys(domain: String, date: Date, taken: Set<String>, state: DKIMKeyState) throws -> [StoredDKIMKey] {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month], from: date)
        let month = String(format: "%04d%02d", parts.year ?? 2000, parts.month ?? 1)
        var suffix = ""
        var counter = 1
        while taken.contains("relay\(month)r\(suffix)") || taken.contains("relay\(month)e\(suffix)") {
            counter += 1
            suffix = "\(counter)"
        }
        return try [(DKIMAlgorithm.rsaSHA256, "r"), (.ed25519SHA256, "e")].map { algorithm, letter in
            let selector = "relay\(month)\(letter)\(suffix)"
            let key = try DKIMPrivateKey.generate(algorithm)
            let (sealed, name) = try secrets.seal(key.serialized, context: Self.context(domain, selector))
            return StoredDKIMKey(selector: selector, algorithm: algorithm.rawValue, sealedPrivateKey: sealed,
                                 sealedWith: name, publicRecord: key.dnsRecord, state: state)
        }
    }

    /// The signing key of a stored key; throws when the key that sealed it is not available (RELAY_SECRET_KEY
    /// changed) or the sealed bytes were altered.
    public func open(_ stored: StoredDKIMKey, domain: String) throws -> DKIMSigningKey {
        guard let algorithm = DKIMAlgorithm(rawValue: stored.algorithm) else {
            throw DKIMKeyringError("DKIM key \(stored.selector) of \(domain) has an unknown algorithm \(stored.algorithm)")
        }
        let serialized = try secrets.open(stored.sealedPrivateKey, sealedWith: stored.sealedWith,
                                          context: Self.context(domain, stored.selector),
                                          what: "DKIM key \(stored.selector) of \(domain)")
        return DKIMSigningKey(domain: domain, selector: stored.selector,
                              privateKey: try DKIMPrivateKey(algorithm: algorithm, serialized: serialized))
    }

    /// Authenticated data binding a sealed key to its domain and selector (a key copied to another row fails).
    static func context(_ domain: String, _ selector: String) -> String {
        "dkim:\(domain):\(selector)"
    }
}

/// A key that cannot be opened or made.
public struct DKIMKeyringError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
