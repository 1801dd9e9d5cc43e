import Foundation
import PostgresNIO

/// A sender domain registered to a tenant, with its DKIM keys and the results of the last DNS check.
public struct DomainRecord: Sendable {
    /// Lowercased domain name.
    public var name: String
    /// When it was registered.
    public var createdAt: Date
    /// Whether an active DKIM key's record was found in DNS at the last check.
    public var dkimVerified: Bool
    /// The last check's results for the records other than DKIM, as a JSON object text
    /// (`{"spf": {"status": "verified", "found": "…"}, …}`).
    public var dnsChecksJSON: String
    /// When DNS was last checked (nil: never).
    public var checkedAt: Date?
    /// Its DKIM keys, oldest first.
    public var keys: [StoredDKIMKey]
}

/// Where a DKIM key is in its life: `pending` (rotated in, waiting for its record), `active` (signs),
/// `retiring` (replaced; still to be published until `retireAt`, no longer signing).
public enum DKIMKeyState: String, Sendable {
    case pending, active, retiring
}

/// What the last DNS check found for one record.
public enum DNSRecordStatus: String, Sendable, Codable {
    /// Not checked yet.
    case pending
    /// Found with the expected value.
    case verified
    /// No such record (NXDOMAIN or no record of that type).
    case notFound = "not_found"
    /// A record is there but does not carry the expected value.
    case mismatch
    /// DNS did not answer (timeout, SERVFAIL): the previous state is unknown, try again.
    case error
}

/// A DKIM key as stored: the private key sealed, never shown.
public struct StoredDKIMKey: Sendable {
    public var selector: String
    /// `rsa-sha256` or `ed25519-sha256`.
    public var algorithm: String
    /// AES-GCM sealed private key.
    public var sealedPrivateKey: [UInt8]
    /// Which key sealed it (a fingerprint of RELAY_SECRET_KEY, or `database`).
    public var sealedWith: String
    /// The TXT value to publish at `<selector>._domainkey.<domain>`.
    public var publicRecord: String
    public var state: DKIMKeyState
    public var dnsStatus: DNSRecordStatus
    /// What DNS held when it did not match (for the user to compare).
    public var dnsFound: String?
    public var checkedAt: Date?
    public var createdAt: Date
    public var activatedAt: Date?
    public var retireAt: Date?

    /// A new key to store.
    public init(selector: String, algorithm: String, sealedPrivateKey: [UInt8], sealedWith: String, publicRecord: String,
                state: DKIMKeyState) {
        self.selector = selector
        self.algorithm = algorithm
        self.sealedPrivateKey = sealedPrivateKey
        self.sealedWith = sealedWith
        self.publicRecord = publicRecord
        self.state = state
        self.dnsStatus = .pending
        self.createdAt = Date()
    }
}

/// The outcome of checking one domain's records, to be stored in one transaction.
public struct DomainCheckResult: Sendable {
    /// Per DKIM selector: status and, when it differs, what was found.
    public var keys: [(selector: String, status: DNSRecordStatus, found: String?)]
    /// The other records' results as a JSON object text.
    public var checksJSON: String
    /// How long a replaced key stays published after its successor starts signing.
    public var rotationGrace: Duration

    public init(keys: [(selector: String, status: DNSRecordStatus, found: String?)], checksJSON: String, rotationGrace: Duration) {
        self.keys = keys
        self.checksJSON = checksJSON
        self.rotationGrace = rotationGrace
    }
}

extension RelayDatabase {
    /// Registers a domain with its first DKIM keys in one transaction; throws `StoreError.conflict` when the
    /// tenant has it already.
    public func addDomain(tenantID: UUID, name: String, keys: [StoredDKIMKey]) async throws -> DomainRecord {
        let inserted = try await withDeadline { [self] in
            try await client.withTransaction(logger: logger) { connection in
                let rows = try await connection.query(
                    "INSERT INTO domains (tenant_id, name) VALUES (\(tenantID), \(name)) ON CONFLICT DO NOTHING RETURNING 1",
                    logger: logger)
                var fresh = false
                for try await _ in rows { fresh = true }
                if fresh { try await Self.insertKeys(keys, tenantID: tenantID, domain: name, on: connection, logger: logger) }
                return fresh
            }
        }
        guard inserted else { throw StoreError(code: .conflict, description: "domain \(name) is already registered") }
        guard let record = try await domain(tenantID: tenantID, name: name) else {
            throw StoreError(code: .missing, description: "domain \(name) vanished after insert")
        }
        return record
    }

    /// Adds keys to a domain that has none pending (rotation, or a domain registered before DKIM existed).
    /// Throws `StoreError.conflict` when a rotation is already waiting for its record, `.missing` for an
    /// unknown domain.
    public func addDKIMKeys(tenantID: UUID, domain: String, keys: [StoredDKIMKey]) async throws {
        // The checks answer from inside the transaction (nothing is written when one fails), so that the caller
        // gets a StoreError rather than the driver's wrapped transaction error.
        let refusal: StoreError? = try await withDeadline { [self] in
            try await client.withTransaction(logger: logger) { connection in
                // Lock the domain row so two rotations cannot both pass the check below.
                let locked = try await connection.query(
                    "SELECT 1 FROM domains WHERE tenant_id = \(tenantID) AND name = \(domain) FOR UPDATE", logger: logger)
                var exists = false
                for try await _ in locked { exists = true }
                guard exists else { return StoreError(code: .missing, description: "no such domain") }
                let pending = try await connection.query("""
                    SELECT count(*)::int FROM dkim_keys
                    WHERE tenant_id = \(tenantID) AND domain = \(domain) AND state = 'pending'
                    """, logger: logger)
                for try await count in pending.decode(Int.self) where count > 0 {
                    return StoreError(code: .conflict, description: "a rotation is already waiting for its DNS record")
                }
                try await Self.insertKeys(keys, tenantID: tenantID, domain: domain, on: connection, logger: logger)
                return nil
            }
        }
        if let refusal { throw refusal }
    }

    // Statements inside transactions read their (empty) results: PostgresNIO reports an error raised while a
    // statement executes only with its rows, and an unnoticed error would let COMMIT roll everything back quietly.
    private static func insertKeys(_ keys: [StoredDKIMKey], tenantID: UUID, domain: String, on connection: PostgresConnection,
                                   logger: Logger) async throws {
        for key in keys {
            for try await _ in try await connection.query("""
                INSERT INTO dkim_keys (tenant_id, domain, selector, algorithm, private_key, sealed_with, public_record, state,
                                       activated_at)
                VALUES (\(tenantID), \(domain), \(key.selector), \(key.algorithm), \(ByteBuffer(bytes: key.sealedPrivateKey)),
                        \(key.sealedWith), \(key.publicRecord), \(key.state.rawValue),
                        CASE WHEN \(key.state.rawValue) = 'active' THEN now() END)
                -- Two readers giving a pre-DKIM domain its first keys at once make the same selectors: one wins.
                ON CONFLICT DO NOTHING
                """, logger: logger) {}
        }
    }

    /// One of the tenant's domains with its keys, or nil.
    public func domain(tenantID: UUID, name: String) async throws -> DomainRecord? {
        try await domains(tenantID: tenantID, only: name).first
    }

    /// The tenant's domains with their keys, sorted by name.
    public func domains(tenantID: UUID) async throws -> [DomainRecord] {
        try await domains(tenantID: tenantID, only: nil)
    }

    private func domains(tenantID: UUID, only name: String?) async throws -> [DomainRecord] {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT d.name, d.created_at, d.dkim_verified, d.dns_checks::text, d.checked_at,
                       k.selector, k.algorithm, k.private_key, k.sealed_with, k.public_record, k.state, k.dns_status,
                       k.dns_found, k.checked_at, k.created_at, k.activated_at, k.retire_at
                FROM domains d LEFT JOIN dkim_keys k ON k.tenant_id = d.tenant_id AND k.domain = d.name
                WHERE d.tenant_id = \(tenantID) AND (\(name)::text IS NULL OR d.name = \(name))
                ORDER BY d.name, k.created_at, k.algorithm DESC
                """, logger: logger)
            var result: [DomainRecord] = []
            for try await row in rows {
                let r = row.makeRandomAccess()
                let name = try r[0].decode(String.self)
                if result.last?.name != name {
                    result.append(DomainRecord(
                        name: name, createdAt: try r[1].decode(Date.self), dkimVerified: try r[2].decode(Bool.self),
                        dnsChecksJSON: try r[3].decode(String.self), checkedAt: try r[4].decode(Date?.self), keys: []))
                }
                guard let selector = try r[5].decode(String?.self) else { continue }
                var key = StoredDKIMKey(
                    selector: selector, algorithm: try r[6].decode(String.self),
                    sealedPrivateKey: Array(buffer: try r[7].decode(ByteBuffer.self)), sealedWith: try r[8].decode(String.self),
                    publicRecord: try r[9].decode(String.self),
                    state: DKIMKeyState(rawValue: try r[10].decode(String.self)) ?? .pending)
                key.dnsStatus = DNSRecordStatus(rawValue: try r[11].decode(String.self)) ?? .pending
                key.dnsFound = try r[12].decode(String?.self)
                key.checkedAt = try r[13].decode(Date?.self)
                key.createdAt = try r[14].decode(Date.self)
                key.activatedAt = try r[15].decode(Date?.self)
                key.retireAt = try r[16].decode(Date?.self)
                result[result.count - 1].keys.append(key)
            }
            return result
        }
    }

    /// Whether the domain is the tenant's, and whether its DKIM record is verified.
    public func domainStanding(tenantID: UUID, name: String) async throws -> (registered: Bool, verified: Bool) {
        try await withDeadline { [self] in
            let rows = try await client.query(
                "SELECT dkim_verified FROM domains WHERE tenant_id = \(tenantID) AND name = \(name)", logger: logger)
            for try await verified in rows.decode(Bool.self) { return (true, verified) }
            return (false, false)
        }
    }

    /// Stores a DNS check in one transaction: each key's status; pending keys whose record verified become
    /// active and the active key of the same algorithm they replace starts retiring (published for
    /// `rotationGrace` more); the domain's `dkim_verified` follows its active keys.
    public func recordDomainCheck(tenantID: UUID, domain: String, _ check: DomainCheckResult) async throws {
        let selectors = check.keys.map(\.selector)
        let statuses = check.keys.map(\.status.rawValue)
        let found = check.keys.map { $0.found ?? "" }
        let graceSeconds = Double(check.rotationGrace.components.seconds)
        try await withDeadline { [self] in
            try await client.withTransaction(logger: logger) { connection in
                for try await _ in try await connection.query("""
                    -- A DNS failure says nothing about the record: the previous status stands (sending does not stop
                    -- because a resolver timed out).
                    UPDATE dkim_keys k SET dns_status = CASE WHEN x.status = 'error' THEN k.dns_status ELSE x.status END,
                        dns_found = CASE WHEN x.status = 'error' THEN k.dns_found ELSE NULLIF(x.found, '') END, checked_at = now()
                    FROM unnest(\(selectors)::text[], \(statuses)::text[], \(found)::text[]) AS x(selector, status, found)
                    WHERE k.tenant_id = \(tenantID) AND k.domain = \(domain) AND k.selector = x.selector
                    """, logger: logger) {}
                // Keys replaced by a newly verified pending key of their algorithm retire; then the pending keys sign.
                for try await _ in try await connection.query("""
                    UPDATE dkim_keys old SET state = 'retiring', retire_at = now() + make_interval(secs => \(graceSeconds))
                    WHERE old.tenant_id = \(tenantID) AND old.domain = \(domain) AND old.state = 'active'
                      AND EXISTS (SELECT 1 FROM dkim_keys new
                                  WHERE new.tenant_id = old.tenant_id AND new.domain = old.domain
                                    AND new.algorithm = old.algorithm AND new.state = 'pending' AND new.dns_status = 'verified')
                    """, logger: logger) {}
                for try await _ in try await connection.query("""
                    UPDATE dkim_keys SET state = 'active', activated_at = now()
                    WHERE tenant_id = \(tenantID) AND domain = \(domain) AND state = 'pending' AND dns_status = 'verified'
                    """, logger: logger) {}
                for try await _ in try await connection.query("""
                    UPDATE domains d SET dns_checks = \(check.checksJSON)::jsonb, checked_at = now(),
                        dkim_verified = EXISTS (SELECT 1 FROM dkim_keys k
                                                WHERE k.tenant_id = d.tenant_id AND k.domain = d.name
                                                  AND k.state = 'active' AND k.dns_status = 'verified')
                    WHERE d.tenant_id = \(tenantID) AND d.name = \(domain)
                    """, logger: logger) {}
            }
        }
    }

    /// Claims up to `limit` domains last checked before `olderThan` ago (or never) for the periodic re-check,
    /// stamping `checked_at` so that other nodes skip them; a domain being checked elsewhere is skipped.
    public func claimDomainsForRecheck(olderThan: Duration, limit: Int) async throws -> [(tenantID: UUID, name: String)] {
        let seconds = Double(olderThan.components.seconds)
        return try await withDeadline { [self] in
            let rows = try await client.query("""
                UPDATE domains d SET checked_at = now()
                FROM (SELECT tenant_id, name FROM domains
                      WHERE checked_at IS NULL OR checked_at < now() - make_interval(secs => \(seconds))
                      ORDER BY checked_at NULLS FIRST LIMIT \(limit) FOR UPDATE SKIP LOCKED) due
                WHERE d.tenant_id = due.tenant_id AND d.name = due.name
                RETURNING d.tenant_id, d.name
                """, logger: logger)
            var result: [(UUID, String)] = []
            for try await (tenant, name) in rows.decode((UUID, String).self) { result.append((tenant, name)) }
            return result
        }
    }

    /// Deletes retiring keys whose grace period is over. Returns how many.
    @discardableResult
    public func pruneRetiredDKIMKeys() async throws -> Int {
        try await withDeadline { [self] in
            let rows = try await client.query(
                "DELETE FROM dkim_keys WHERE state = 'retiring' AND retire_at < now() RETURNING 1", logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }

    /// The keys that sign mail from `domain` for a tenant: the active keys of that registered domain, or of the
    /// nearest registered parent domain (a From at news.example.com is signed d=example.com, which DMARC's
    /// relaxed alignment accepts), with whether each record verified.
    public func signingKeys(tenantID: UUID, domain: String) async throws -> (domain: String, keys: [StoredDKIMKey]) {
        let labels = domain.split(separator: ".")
        let candidates = (0..<max(0, labels.count - 1)).map { labels[$0...].joined(separator: ".") }
        return try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT k.domain, k.selector, k.algorithm, k.private_key, k.sealed_with, k.public_record, k.dns_status
                FROM dkim_keys k
                WHERE k.tenant_id = \(tenantID) AND k.domain = ANY(\(candidates)::text[]) AND k.state = 'active'
                ORDER BY length(k.domain) DESC, k.algorithm DESC
                """, logger: logger)
            var chosen: String?
            var keys: [StoredDKIMKey] = []
            for try await (keyDomain, selector, algorithm, sealed, sealedWith, record, status) in rows.decode(
                (String, String, String, ByteBuffer, String, String, String).self) {
                if chosen == nil { chosen = keyDomain }
                guard keyDomain == chosen else { continue }
                var key = StoredDKIMKey(selector: selector, algorithm: algorithm, sealedPrivateKey: Array(buffer: sealed),
                                        sealedWith: sealedWith, publicRecord: record, state: .active)
                key.dnsStatus = DNSRecordStatus(rawValue: status) ?? .pending
                keys.append(key)
            }
            return (chosen ?? domain, keys)
        }
    }
}
