import Foundation
import PostgresNIO
import RelayCore

/// One entry of a tenant's suppression list.
public struct Suppression: Sendable, Equatable {
    public var email: String
    public var reason: String
    public var sourceMessageID: UUID?
    public var createdAt: Date
    public var expiresAt: Date?

    /// Creates an entry (for imports; the store fills `createdAt`).
    public init(email: String, reason: String, sourceMessageID: UUID? = nil, createdAt: Date = Date(), expiresAt: Date? = nil) {
        self.email = email
        self.reason = reason
        self.sourceMessageID = sourceMessageID
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

extension RelayDatabase {
    /// Position in the suppression list: (created_at, lower-cased email) of the last entry of a page.
    public struct SuppressionCursor: Sendable, Hashable {
        public var createdAtMicros: Int64
        public var emailLower: String
        public init(createdAtMicros: Int64, emailLower: String) {
            self.createdAtMicros = createdAtMicros
            self.emailLower = emailLower
        }
    }

    /// The checks of an HTTP send in one round trip: whether the sender domain is the tenant's and its DKIM
    /// record verified, whether the tenant is paused, and which recipients the tenant suppresses.
    public func sendChecks(tenantID: UUID, senderDomain: String, recipients: [String])
        async throws -> (domainRegistered: Bool, domainVerified: Bool, pausedReason: String?, suppressed: [String: String]) {
        try await withDeadline { [self] in
            // Prepared once per connection: this runs before every accept (docs/benchmarks.md, B1).
            let rows = try await client.execute(SendChecksStatement(tenantID: tenantID, senderDomain: senderDomain,
                                                                    recipients: recipients.map { $0.lowercased() }),
                                                logger: logger)
            var registered = false
            var verified = false
            var paused: String?
            var suppressed: [String: String] = [:]
            for try await (domain, dkimVerified, pausedReason, email, reason) in rows {
                registered = domain
                verified = dkimVerified
                paused = pausedReason
                if let email, let reason { suppressed[email] = reason }
            }
            return (registered, verified, paused, suppressed)
        }
    }

    /// Adds or replaces entries (the latest reason wins). Returns how many were written.
    @discardableResult
    public func addSuppressions(tenantID: UUID, _ entries: [Suppression]) async throws -> Int {
        if entries.isEmpty { return 0 }
        // The last entry for an address wins within one call, as it would across calls.
        var latest: [String: Suppression] = [:]
        for entry in entries { latest[entry.email.lowercased()] = entry }
        let keys = latest.keys.sorted()
        let values = keys.map { latest[$0]! }
        let epoch = Date(timeIntervalSince1970: 0)
        return try await withDeadline(.seconds(60)) { [self] in
            let rows = try await client.query("""
                INSERT INTO suppressions AS s (tenant_id, email_lower, email, reason, source_message_id, expires_at)
                SELECT \(tenantID), l, e, r, NULLIF(m, '')::uuid, NULLIF(x, \(epoch))
                FROM unnest(\(keys)::text[], \(values.map(\.email))::text[], \(values.map(\.reason))::text[],
                            \(values.map { $0.sourceMessageID?.uuidString ?? "" })::text[],
                            \(values.map { $0.expiresAt ?? epoch })::timestamptz[]) AS x(l, e, r, m, x)
                ON CONFLICT (tenant_id, email_lower) DO UPDATE
                    SET reason = excluded.reason, source_message_id = excluded.source_message_id,
                        created_at = now(), expires_at = excluded.expires_at
                RETURNING 1
                """, logger: logger)
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
    }

    /// Removes an address from the list; false when it was not there.
    public func removeSuppression(tenantID: UUID, email: String) async throws -> Bool {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                DELETE FROM suppressions WHERE tenant_id = \(tenantID) AND email_lower = \(email.lowercased()) RETURNING 1
                """, logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    /// One page of the list, newest first, optionally only one reason or one address (any case).
    public func suppressions(tenantID: UUID, reason: String?, email: String?, limit: Int, after cursor: SuppressionCursor?)
        async throws -> (entries: [Suppression], next: SuppressionCursor?) {
        try await withDeadline { [self] in
            var query = SQLBuilder("""
                SELECT email, reason, source_message_id, created_at, expires_at, email_lower,
                       (extract(epoch FROM created_at) * 1000000)::bigint
                FROM suppressions
                """)
            query.append(" WHERE tenant_id = \(query.bind(tenantID))")
            if let reason { query.append(" AND reason = \(query.bind(reason))") }
            if let email { query.append(" AND email_lower = \(query.bind(email.lowercased()))") }
            if let cursor {
                let micros = query.bind(cursor.createdAtMicros)
                query.append("""
                     AND (created_at, email_lower) < ('1970-01-01 00:00:00+00'::timestamptz + \(micros) * interval '1 microsecond', \(query.bind(cursor.emailLower)))
                    """)
            }
            query.append(" ORDER BY created_at DESC, email_lower DESC LIMIT \(limit + 1)")
            var entries: [(Suppression, String, Int64)] = []
            for try await (email, reason, source, created, expires, lower, micros) in try await client.query(query.query, logger: logger)
                .decode((String, String, UUID?, Date, Date?, String, Int64).self) {
                entries.append((Suppression(email: email, reason: reason, sourceMessageID: source, createdAt: created,
                                            expiresAt: expires), lower, micros))
            }
            var next: SuppressionCursor?
            if entries.count > limit {
                entries.removeLast()
                next = SuppressionCursor(createdAtMicros: entries[limit - 1].2, emailLower: entries[limit - 1].1)
            }
            return (entries.map(\.0), next)
        }
    }
}

/// The sender checks of one send: is the domain registered (and verified) for the tenant, is the tenant paused, and
/// which recipients are suppressed (one row each, or one row of NULLs).
struct SendChecksStatement: PostgresPreparedStatement {
    static let name = "relay_send_checks_v1"
    static let sql = """
        SELECT EXISTS (SELECT 1 FROM domains WHERE tenant_id = $1 AND name = $2),
               EXISTS (SELECT 1 FROM domains WHERE tenant_id = $1 AND name = $2 AND dkim_verified),
               (SELECT COALESCE(paused_reason, 'paused') FROM tenants WHERE id = $1 AND paused_at IS NOT NULL),
               s.email_lower, s.reason
        FROM (SELECT 1) AS one
        LEFT JOIN suppressions s
               ON s.tenant_id = $1 AND s.email_lower = ANY($3::text[])
              AND (s.expires_at IS NULL OR s.expires_at > now())
        """
    static let bindingDataTypes: [PostgresDataType] = [.uuid, .text, .textArray]
    typealias Row = (Bool, Bool, String?, String?, String?)

    let tenantID: UUID
    let senderDomain: String
    let recipients: [String]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(tenantID)
        bindings.append(senderDomain)
        bindings.append(recipients)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        try row.decode(Row.self)
    }
}
