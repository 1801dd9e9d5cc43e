import DKIM
import Foundation
import Logging
import RelayStore
import Synchronization

/// Signs outgoing mail at delivery time (so a rotation also applies to mail already queued) with the active
/// keys of the sender's domain. Keys are read from the database and opened once per minute per domain.
///
/// Which keys sign: the active keys whose DNS record verified; when none has (only possible with
/// RELAY_REQUIRE_VERIFIED_DOMAINS=false, e.g. a local setup), all active keys, so that the signatures can be
/// checked as soon as the records appear.
public final class MessageSigner: Sendable {
    private let database: RelayDatabase
    private let keyring: @Sendable () async throws -> DKIMKeyring
    private let cacheTime: Duration
    private let cache = Mutex<[String: (loaded: ContinuousClock.Instant, domain: String, keys: [DKIMSigningKey])]>([:])

    /// `keyring` is asked once per load (it may read a secret from the database the first time).
    public init(database: RelayDatabase, cacheTime: Duration = .seconds(60),
                keyring: @escaping @Sendable () async throws -> DKIMKeyring) {
        self.database = database
        self.cacheTime = cacheTime
        self.keyring = keyring
    }

    /// The keys that sign mail from `senderDomain` for a tenant (empty: the domain has none and mail goes
    /// unsigned). Throws when the database cannot be read or a key cannot be opened.
    public func keys(tenantID: UUID, senderDomain: String) async throws -> [DKIMSigningKey] {
        let cacheKey = "\(tenantID)|\(senderDomain)"
        if let hit = cache.withLock({ $0[cacheKey] }), ContinuousClock.now - hit.loaded < cacheTime { return hit.keys }
        let (domain, stored) = try await database.signingKeys(tenantID: tenantID, domain: senderDomain)
        let verified = stored.filter { $0.dnsStatus == .verified }
        let keyring = try await keyring()
        let keys = try (verified.isEmpty ? stored : verified).map { try keyring.open($0, domain: domain) }
        cache.withLock { $0[cacheKey] = (.now, domain, keys) }
        return keys
    }

    /// Drops the cached keys of a tenant's domain (after a rotation took effect on this node).
    public func forget(tenantID: UUID, domain: String) {
        cache.withLock { cached in
            for key in cached.keys where key.hasPrefix("\(tenantID)|") && (key.hasSuffix("|\(domain)") || key.hasSuffix(".\(domain)")) {
                cached[key] = nil
            }
        }
    }

    /// `message` with a DKIM-Signature per key prepended (unchanged when there are no keys).
    public static func sign(_ message: [UInt8], keys: [DKIMSigningKey], time: Date = Date()) throws -> [UInt8] {
        keys.isEmpty ? message : try DKIMSigner.sign(message, keys: keys, time: time)
    }
}
