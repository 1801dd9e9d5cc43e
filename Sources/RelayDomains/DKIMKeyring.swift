import Crypto
import DKIM
import Foundation
import RelayStore

/// Makes, seals and opens DKIM private keys. Keys are sealed with AES-GCM under `RELAY_SECRET_KEY`; without it,
/// under the cluster's `dkim-database` secret (which keeps a key out of plain sight in dumps and logs but not
/// from someone holding the whole database — production sets RELAY_SECRET_KEY). Each key records which of the
/// two sealed it, so setting RELAY_SECRET_KEY later keeps the older keys usable.
public struct DKIMKeyring: Sendable {
    /// `sealed_with` of keys sealed under the database secret.
    public static let databaseKeyName = "database"

    private let configured: (name: String, box: SecretKeyBox)?
    private let database: SecretKeyBox

    /// `secretKeyBase64`: RELAY_SECRET_KEY (32 bytes in base64) or nil; `databaseKey`: the `dkim-database` secret.
    public init(secretKeyBase64: String?, databaseKey: [UInt8]) throws {
        if let secretKeyBase64 {
            let box = try SecretKeyBox(base64Key: secretKeyBase64)
            let raw = Data(base64Encoded: secretKeyBase64) ?? Data()
            let fingerprint = SHA256.hash(data: raw).prefix(6).map { String(format: "%02x", $0) }.joined()
            configured = ("env:\(fingerprint)", box)
        } else {
            configured = nil
        }
        database = try SecretKeyBox(base64Key: Data(databaseKey.prefix(32)).base64EncodedString())
    }

    /// Whether RELAY_SECRET_KEY seals new keys.
    public var usesConfiguredKey: Bool { configured != nil }

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
            let (name, box) = configured ?? (Self.databaseKeyName, database)
            return StoredDKIMKey(selector: selector, algorithm: algorithm.rawValue,
                                 sealedPrivateKey: try box.seal(key.serialized, context: Self.context(domain, selector)),
                                 sealedWith: name, publicRecord: key.dnsRecord, state: state)
        }
    }

    /// The signing key of a stored key; throws when the key that sealed it is not available (RELAY_SECRET_KEY
    /// changed) or the sealed bytes were altered.
    public func open(_ stored: StoredDKIMKey, domain: String) throws -> DKIMSigningKey {
        guard let algorithm = DKIMAlgorithm(rawValue: stored.algorithm) else {
            throw DKIMKeyringError("DKIM key \(stored.selector) of \(domain) has an unknown algorithm \(stored.algorithm)")
        }
        let box: SecretKeyBox
        if stored.sealedWith == Self.databaseKeyName {
            box = database
        } else if let configured, configured.name == stored.sealedWith {
            box = configured.box
        } else {
            throw DKIMKeyringError("DKIM key \(stored.selector) of \(domain) was sealed with another RELAY_SECRET_KEY (\(stored.sealedWith)); restore that key")
        }
        let serialized = try box.open(stored.sealedPrivateKey, context: Self.context(domain, stored.selector))
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
