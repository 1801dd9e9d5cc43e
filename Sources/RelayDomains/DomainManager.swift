import Foundation
import Logging
import NIOPosix
import RelayStore
import ServiceLifecycle
import Synchronization

/// A domain as the API shows it: the stored record and every record to publish with its last status.
public struct DomainView: Sendable {
    public var domain: DomainRecord
    public var records: [(record: ExpectedRecord, status: DNSRecordStatus, found: String?, checkedAt: Date?)]
}

/// Sender-domain operations shared by the API and the periodic re-check: registering (with keys), DNS
/// verification, rotation.
public final class DomainManager: Sendable {
    private let database: RelayDatabase
    private let settings: DomainSettings
    private let lookup: any DomainDNSLookup
    private let logger: Logger
    private let keyrings: KeyringLoader
    /// Signs outgoing mail with these domains' keys; told when a rotation takes effect here.
    public let signer: MessageSigner

    /// `secretKey`: RELAY_SECRET_KEY (base64) or nil; `lookup`: the DNS used for checks.
    public init(database: RelayDatabase, settings: DomainSettings, secretKey: String?, lookup: any DomainDNSLookup,
                logger: Logger) {
        self.database = database
        self.settings = settings
        self.lookup = lookup
        self.logger = logger
        let keyrings = KeyringLoader(database: database, secretKey: secretKey)
        self.keyrings = keyrings
        signer = MessageSigner(database: database) { try await keyrings.keyring() }
    }

    /// The keyring (reads the `dkim-database` secret the first time).
    public func keyring() async throws -> DKIMKeyring {
        try await keyrings.keyring()
    }

    /// The keyring that seals other secrets kept in the database (smarthost passwords) as DKIM keys are sealed.
    public func secretKeyring() async throws -> SecretKeyring {
        try await keyrings.keyring().secrets
    }

    /// Registers a domain with a fresh RSA and Ed25519 key (both active: they sign as soon as a record verifies).
    public func register(tenantID: UUID, name: String) async throws -> DomainView {
        let keys = try await newKeys(domain: name, taken: [], state: .active)
        return view(try await database.addDomain(tenantID: tenantID, name: name, keys: keys))
    }

    /// One domain (nil: not the tenant's). A domain registered before DKIM existed gets its keys now.
    public func domain(tenantID: UUID, name: String) async throws -> DomainView? {
        guard var record = try await database.domain(tenantID: tenantID, name: name) else { return nil }
        if record.keys.isEmpty {
            try await addKeys(to: record, tenantID: tenantID, state: .active)
            record = try await database.domain(tenantID: tenantID, name: name) ?? record
        }
        return view(record)
    }

    /// The tenant's domains.
    public func domains(tenantID: UUID) async throws -> [DomainView] {
        var views: [DomainView] = []
        for record in try await database.domains(tenantID: tenantID) {
            if record.keys.isEmpty, let fresh = try await domain(tenantID: tenantID, name: record.name) {
                views.append(fresh)
            } else {
                views.append(view(record))
            }
        }
        return views
    }

    /// Checks the domain's records in DNS now and stores the result (activating a rotated key whose record
    /// verified). Nil: not the tenant's.
    public func verify(tenantID: UUID, name: String) async throws -> DomainView? {
        guard let current = try await domain(tenantID: tenantID, name: name) else { return nil }
        let expected = DomainRecords.expected(domain: name, keys: current.domain.keys, settings: settings)
        let (_, result) = await DomainVerifier.check(expected, lookup: lookup, settings: settings)
        try await database.recordDomainCheck(tenantID: tenantID, domain: name, result)
        signer.forget(tenantID: tenantID, domain: name)
        return try await domain(tenantID: tenantID, name: name)
    }

    /// Starts a rotation: a new key pair, `pending` until its records verify. Throws `StoreError.conflict` when
    /// one is already pending; nil: not the tenant's.
    public func rotate(tenantID: UUID, name: String) async throws -> DomainView? {
        guard let current = try await domain(tenantID: tenantID, name: name) else { return nil }
        try await addKeys(to: current.domain, tenantID: tenantID, state: .pending)
        return try await domain(tenantID: tenantID, name: name)
    }

    /// Fresh keys, made on NIO's blocking-work pool: an RSA-2048 key takes about 0.1 s of CPU, and dozens of
    /// registrations at once would otherwise hold every thread of the concurrency pool (timers, sessions) that long.
    private func newKeys(domain: String, taken: Set<String>, state: DKIMKeyState) async throws -> [StoredDKIMKey] {
        let keyring = try await keyring()
        return try await NIOThreadPool.singleton.runIfActive {
            try keyring.newKeys(domain: domain, date: Date(), taken: taken, state: state)
        }
    }

    private func addKeys(to record: DomainRecord, tenantID: UUID, state: DKIMKeyState) async throws {
        let keys = try await newKeys(domain: record.name, taken: Set(record.keys.map(\.selector)), state: state)
        try await database.addDKIMKeys(tenantID: tenantID, domain: record.name, keys: keys)
    }

    /// Re-checks the domains whose last check is older than the interval (a batch at a time, shared among
    /// nodes) and deletes keys whose retirement grace is over. Returns how many domains were checked.
    @discardableResult
    public func recheckDue(limit: Int = 50) async throws -> Int {
        try await database.pruneRetiredDKIMKeys()
        let due = try await database.claimDomainsForRecheck(olderThan: settings.recheckInterval, limit: limit)
        for (tenantID, name) in due {
            do {
                _ = try await verify(tenantID: tenantID, name: name)
            } catch {
                logger.warning("re-checking a domain's DNS records failed", metadata: [
                    "domain": "\(name)", "error": "\(String(reflecting: error))"])
            }
        }
        return due.count
    }

    /// Builds the view: expected records with the statuses stored by the last check.
    public func view(_ record: DomainRecord) -> DomainView {
        let expected = DomainRecords.expected(domain: record.name, keys: record.keys, settings: settings)
        let checks = (try? JSONSerialization.jsonObject(with: Data(record.dnsChecksJSON.utf8))) as? [String: [String: String]] ?? [:]
        let formatter = ISO8601DateFormatter()
        let records = expected.map { item -> (ExpectedRecord, DNSRecordStatus, String?, Date?) in
            if let selector = item.selector, let key = record.keys.first(where: { $0.selector == selector }) {
                return (item, key.dnsStatus, key.dnsFound, key.checkedAt)
            }
            let check = checks[item.purpose]
            return (item, check?["status"].flatMap(DNSRecordStatus.init(rawValue:)) ?? .pending, check?["found"],
                    check?["checked_at"].flatMap(formatter.date(from:)))
        }
        return DomainView(domain: record, records: records.map { ($0.0, $0.1, $0.2, $0.3) })
    }
}

/// Loads the keyring once: the `dkim-database` secret is read from the database on first use.
final class KeyringLoader: Sendable {
    private let database: RelayDatabase
    private let secretKey: String?
    private let loaded = Mutex<DKIMKeyring?>(nil)

    init(database: RelayDatabase, secretKey: String?) {
        self.database = database
        self.secretKey = secretKey
    }

    func keyring() async throws -> DKIMKeyring {
        if let keyring = loaded.withLock({ $0 }) { return keyring }
        let keyring = try DKIMKeyring(secretKeyBase64: secretKey, databaseKey: try await database.secret(named: "dkim-database"))
        loaded.withLock { $0 = keyring }
        return keyring
    }
}

/// Runs `DomainManager.recheckDue` every minute on nodes with the worker role.
public struct DomainRecheckService: Service {
    let manager: DomainManager
    let logger: Logger
    let period: Duration

    /// Creates the service.
    public init(manager: DomainManager, logger: Logger, period: Duration = .seconds(60)) {
        self.manager = manager
        self.logger = logger
        self.period = period
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await manager.recheckDue()
            } catch {
                logger.warning("the periodic domain check failed; trying again later", metadata: ["error": "\(String(reflecting: error))"])
            }
            // Shutdown ends the wait at once.
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: period) } } catch { return }
        }
    }
}
