import Foundation
import PostgresNIO
import RelayCore

/// One event of a recipient's history (`events` row) as the API shows it.
public struct EventRecord: Sendable {
    public var id: Int64
    public var type: String
    public var messageID: UUID
    public var recipient: String
    public var at: Date
    public var attempt: Int
    public var attemptID: UUID?
    public var mx: String?
    public var remoteIP: String?
    public var tlsVersion: String?
    public var reply: DeliveryReply?
    /// What happened when there was no SMTP reply (DNS or network failure, expiry).
    public var detail: String?
    public var durationMs: Int?
}

/// Filters of the tenant event stream; nil means "any".
public struct EventFilter: Sendable {
    public var type: String?
    public var recipient: String?
    public var since: Date?
    public var until: Date?

    /// Creates a filter.
    public init(type: String? = nil, recipient: String? = nil, since: Date? = nil, until: Date? = nil) {
        self.type = type
        self.recipient = recipient
        self.since = since
        self.until = until
    }
}

/// One SMTP attempt with its transcript and what it did to each recipient.
public struct AttemptRecord: Sendable {
    public var id: UUID
    public var startedAt: Date
    public var durationMs: Int
    public var domain: String
    public var mx: String?
    public var remoteIP: String?
    public var tlsVersion: String?
    public var outcomes: [EventRecord]
    public var transcript: [TranscriptLine]
}

extension RelayDatabase {
    /// Position in the event stream: (time, id) of the last event of a page.
    public struct EventCursor: Sendable, Hashable {
        public var atMicros: Int64
        public var id: Int64
        public init(atMicros: Int64, id: Int64) {
            self.atMicros = atMicros
            self.id = id
        }
    }

    private static let eventColumns = """
        e.id, e.type, e.message_id, r.email, e.at, e.attempt, e.attempt_id, e.mx, e.remote_ip, e.tls_version,
        e.reply_code, e.reply_enhanced, e.reply_text, e.duration_ms, (extract(epoch FROM e.at) * 1000000)::bigint
        """

    private static func decodeEvents(_ rows: PostgresRowSequence) async throws -> [(EventRecord, Int64)] {
        var events: [(EventRecord, Int64)] = []
        for try await row in rows {
            let (id, type, messageID, email, at, attempt, attemptID, mx, remoteIP, tls, code, enhanced, text, duration, micros)
                = try row.decode((Int64, String, UUID, String, Date, Int, UUID?, String?, String?, String?, Int?, String?,
                                  String?, Int?, Int64).self)
            let reply = code.map { DeliveryReply(code: $0, enhanced: enhanced, text: text ?? "") }
            events.append((EventRecord(id: id, type: type, messageID: messageID, recipient: email, at: at, attempt: attempt,
                                       attemptID: attemptID, mx: mx, remoteIP: remoteIP, tlsVersion: tls, reply: reply,
                                       detail: code == nil ? text : nil, durationMs: duration), micros))
        }
        return events
    }

    /// When a tenant's message was accepted, or nil when it does not exist for this tenant. Events and attempts
    /// of a message are never older, which lets their queries skip older day partitions.
    private func acceptedAt(messageID: UUID, tenantID: UUID) async throws -> Date? {
        let rows = try await client.query(
            "SELECT created_at FROM messages WHERE id = \(messageID) AND tenant_id = \(tenantID)", logger: logger)
        for try await createdAt in rows.decode(Date.self) { return createdAt }
        return nil
    }

    /// A tenant's message's events in time order, or nil when the message does not exist for this tenant.
    public func events(messageID: UUID, tenantID: UUID) async throws -> [EventRecord]? {
        try await withDeadline { [self] in
            guard let acceptedAt = try await acceptedAt(messageID: messageID, tenantID: tenantID) else { return nil }
            let rows = try await client.query("""
                SELECT \(unescaped: Self.eventColumns)
                FROM events e JOIN recipients r ON r.id = e.recipient_id
                WHERE e.message_id = \(messageID) AND e.tenant_id = \(tenantID) AND e.at >= \(acceptedAt) - interval '1 minute'
                ORDER BY e.id
                """, logger: logger)
            return try await Self.decodeEvents(rows).map(\.0)
        }
    }

    /// One page of a tenant's event stream, newest first (or oldest first with `ascending`), and the cursor of
    /// the next page (nil at the end). Keyset pagination on (at, id).
    public func events(tenantID: UUID, filter: EventFilter, limit: Int, ascending: Bool, after cursor: EventCursor?)
        async throws -> (events: [EventRecord], next: EventCursor?) {
        try await withDeadline { [self] in
            let order = ascending ? "ASC" : "DESC"
            var query = SQLBuilder("""
                SELECT \(Self.eventColumns)
                FROM events e JOIN recipients r ON r.id = e.recipient_id
                """)
            let tenant = query.bind(tenantID)
            query.append("\nWHERE e.tenant_id = \(tenant)")
            if let type = filter.type { query.append(" AND e.type = \(query.bind(type))") }
            if let since = filter.since { query.append(" AND e.at >= \(query.bind(since))") }
            if let until = filter.until { query.append(" AND e.at < \(query.bind(until))") }
            if let recipient = filter.recipient {
                // A plain conjunct, so the recipient's ids (a handful) drive the plan through events_recipient.
                query.append("""

                      AND e.recipient_id IN (SELECT id FROM recipients WHERE tenant_id = \(tenant) AND email = \(query.bind(recipient)))
                    """)
            }
            if let cursor {
                let micros = query.bind(cursor.atMicros)
                query.append("""

                      AND (e.at, e.id) \(ascending ? ">" : "<") ('1970-01-01 00:00:00+00'::timestamptz + \(micros) * interval '1 microsecond', \(query.bind(cursor.id)))
                    """)
            }
            query.append("\nORDER BY e.at \(order), e.id \(order) LIMIT \(limit + 1)")
            let rows = try await client.query(query.query, logger: logger)
            var page = try await Self.decodeEvents(rows)
            var next: EventCursor?
            if page.count > limit {
                page.removeLast()
                next = EventCursor(atMicros: page[limit - 1].1, id: page[limit - 1].0.id)
            }
            return (page.map(\.0), next)
        }
    }

    /// A tenant's message's SMTP attempts, oldest first, each with its transcript and per-recipient outcomes; nil
    /// when the message does not exist for this tenant.
    public func attempts(messageID: UUID, tenantID: UUID) async throws -> [AttemptRecord]? {
        try await withDeadline { [self] in
            guard let acceptedAt = try await acceptedAt(messageID: messageID, tenantID: tenantID) else { return nil }
            let since = acceptedAt.addingTimeInterval(-60)
            let rows = try await client.query("""
                SELECT id, started_at, duration_ms, domain, mx, remote_ip, tls_version, transcript::text
                FROM attempts WHERE message_id = \(messageID) AND tenant_id = \(tenantID) AND started_at >= \(since)
                ORDER BY started_at, id
                """, logger: logger)
            var attempts: [AttemptRecord] = []
            for try await (id, started, duration, domain, mx, ip, tls, transcript) in rows.decode(
                (UUID, Date, Int, String, String?, String?, String?, String).self) {
                attempts.append(AttemptRecord(id: id, startedAt: started, durationMs: duration, domain: domain, mx: mx,
                                              remoteIP: ip, tlsVersion: tls, outcomes: [],
                                              transcript: (try? TranscriptCoding.decode(transcript)) ?? []))
            }
            if attempts.isEmpty { return [] }
            let eventRows = try await client.query("""
                SELECT \(unescaped: Self.eventColumns)
                FROM events e JOIN recipients r ON r.id = e.recipient_id
                WHERE e.message_id = \(messageID) AND e.tenant_id = \(tenantID) AND e.at >= \(since)
                  AND e.attempt_id IS NOT NULL
                ORDER BY e.id
                """, logger: logger)
            var byAttempt: [UUID: [EventRecord]] = [:]
            for (event, _) in try await Self.decodeEvents(eventRows) {
                if let attemptID = event.attemptID { byAttempt[attemptID, default: []].append(event) }
            }
            for index in attempts.indices { attempts[index].outcomes = byAttempt[attempts[index].id] ?? [] }
            return attempts
        }
    }
}
