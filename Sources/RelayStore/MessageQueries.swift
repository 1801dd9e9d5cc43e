import Foundation
import NIOCore
import PostgresNIO
import RelayCore

/// A message ready to be stored: composed, validated, with its envelope recipients.
public struct NewMessage: Sendable {
    /// Message id (time-ordered UUID).
    public var id: UUID
    /// Owning tenant.
    public var tenantID: UUID
    /// Envelope sender (RFC 5321 reverse-path, bare address).
    public var mailFrom: String
    /// The From header as the user gave it.
    public var fromHeader: String
    /// Subject, "" when none.
    public var subject: String
    /// The Message-ID header value without angle brackets.
    public var messageIDHeader: String
    /// Up to 10 tags.
    public var tags: [String]
    /// Metadata as a JSON object text.
    public var metadataJSON: String
    /// The composed RFC 5322 message with CRLF line ends.
    public var body: ByteBuffer
    /// Whether delivery needs the SMTPUTF8 extension (non-ASCII addresses).
    public var requiresSMTPUTF8: Bool
    /// Envelope recipients, deduplicated: (address, lowercased domain).
    public var recipients: [(email: String, domain: String)]
    /// How long the message may stay in flight before failing as expired.
    public var lifetime: Duration
    /// Recipients on the tenant's suppression list (lower-cased address → the list's reason): stored as
    /// `suppressed` with that reason, never queued.
    public var suppressed: [String: String] = [:]
    /// Relay hosts the unsubscribe link: the worker adds List-Unsubscribe per recipient at delivery.
    public var hostedUnsubscribe = false
    /// Scheduled send: no attempt before this time (the queue rows are due then, and `lifetime` counts from
    /// then). nil sends at once.
    public var notBefore: Date?

    /// Creates a message to store.
    public init(id: UUID, tenantID: UUID, mailFrom: String, fromHeader: String, subject: String, messageIDHeader: String,
                tags: [String], metadataJSON: String, body: ByteBuffer, requiresSMTPUTF8: Bool,
                recipients: [(email: String, domain: String)], lifetime: Duration) {
        self.id = id
        self.tenantID = tenantID
        self.mailFrom = mailFrom
        self.fromHeader = fromHeader
        self.subject = subject
        self.messageIDHeader = messageIDHeader
        self.tags = tags
        self.metadataJSON = metadataJSON
        self.body = body
        self.requiresSMTPUTF8 = requiresSMTPUTF8
        self.recipients = recipients
        self.lifetime = lifetime
    }
}

/// An `Idempotency-Key` with the hash of the request body it came with and the response to replay.
public struct IdempotencyRequest: Sendable {
    /// The key as sent by the client.
    public var key: String
    /// SHA-256 of the request body.
    public var requestHash: [UInt8]
    /// The response to store for replays (status and JSON body), rendered before the insert.
    public var statusCode: Int
    /// JSON body of the response.
    public var responseBody: String

    /// Creates the value.
    public init(key: String, requestHash: [UInt8], statusCode: Int, responseBody: String) {
        self.key = key
        self.requestHash = requestHash
        self.statusCode = statusCode
        self.responseBody = responseBody
    }
}

/// What `enqueue` did.
public enum EnqueueResult: Sendable, Equatable {
    /// Stored and committed.
    case stored
    /// The idempotency key was seen with the same body within 24 h: replay this response, nothing stored.
    case replay(statusCode: Int, body: String)
    /// The idempotency key was seen with a different body.
    case idempotencyConflict
}

/// A message as the API shows it.
public struct MessageRecord: Sendable {
    public var id: UUID
    public var fromHeader: String
    public var subject: String
    public var tags: [String]
    public var metadataJSON: String
    public var createdAt: Date
    public var recipients: [RecipientRecord]
    /// The scheduled send time, nil when the message was sent at once.
    public var sendAt: Date?
}

/// One recipient's delivery state as the API shows it.
public struct RecipientRecord: Sendable {
    public var email: String
    public var status: RecipientStatus
    public var attempts: Int
    public var nextAttemptAt: Date?
    public var lastReply: DeliveryReply?
    /// The last attempt's text when there was no SMTP reply (network or DNS failure).
    public var lastText: String?
    public var lastMX: String?
    public var reason: String?
    public var updatedAt: Date
}

extension RelayDatabase {
    /// Name of the LISTEN/NOTIFY channel that wakes idle workers after an accept.
    public static let queueChannel = "relay_queue"

    /// Stores a message, its body, its recipients, their queue rows and `accepted` events in one transaction,
    /// and notifies idle workers on commit. With an idempotency key, a replay or conflict stores nothing.
    public func enqueue(_ message: NewMessage, idempotency: IdempotencyRequest?) async throws -> EnqueueResult {
        guard idempotency == nil else {
            return try await withDeadline { try await self.store([message], tenantID: message.tenantID, idempotency: idempotency) }
        }
        // Group commit: concurrent accepts share one statement and one commit (EnqueueGroup); each caller is
        // answered after the commit that holds its message.
        try await withDeadline { try await self.enqueueGroup.submit(message) }
        return .stored
    }

    /// Stores many messages of one tenant in ONE transaction (all or none) as `enqueue` stores one, and notifies
    /// idle workers once on commit (PostgreSQL folds a transaction's identical notifications into one). With an
    /// idempotency key, a replay or conflict stores nothing; an empty list stores only the key.
    public func enqueueBatch(_ messages: [NewMessage], tenantID: UUID, idempotency: IdempotencyRequest?) async throws -> EnqueueResult {
        try await withDeadline(requestTimeout * 6) { try await self.store(messages, tenantID: tenantID, idempotency: idempotency) }
    }

    /// Writes messages in one statement (atomic by itself), for the group committer; bounded by the request
    /// deadline, so that a writer never outlives the callers waiting for it by much.
    func insertGroup(_ messages: [NewMessage]) async throws {
        try await withDeadline { [self] in
            try await client.withConnection { connection in try await self.insert(messages, on: connection) }
        }
    }

    private func store(_ messages: [NewMessage], tenantID: UUID, idempotency: IdempotencyRequest?) async throws -> EnqueueResult {
        guard let idempotency else {
            if messages.isEmpty { return .stored }
            // One statement is atomic by itself.
            try await client.withConnection { connection in
                try await insert(messages, on: connection)
            }
            return .stored
        }
        return try await client.withTransaction(logger: logger) { connection -> EnqueueResult in
            let hash = ByteBuffer(bytes: idempotency.requestHash)
            let claimed = try await connection.query("""
                INSERT INTO idempotency_keys (tenant_id, key, request_hash, status_code, response)
                VALUES (\(tenantID), \(idempotency.key), \(hash), \(idempotency.statusCode), \(idempotency.responseBody))
                ON CONFLICT (tenant_id, key) DO UPDATE
                    SET request_hash = EXCLUDED.request_hash, status_code = EXCLUDED.status_code,
                        response = EXCLUDED.response, created_at = now()
                    WHERE idempotency_keys.created_at < now() - interval '24 hours'
                RETURNING 1
                """, logger: logger)
            var inserted = false
            for try await _ in claimed { inserted = true }
            if inserted {
                if !messages.isEmpty { try await insert(messages, on: connection) }
                return .stored
            }
            let existing = try await connection.query("""
                SELECT request_hash, status_code, response FROM idempotency_keys
                WHERE tenant_id = \(tenantID) AND key = \(idempotency.key)
                """, logger: logger)
            for try await (storedHash, status, body) in existing.decode((ByteBuffer, Int, String).self) {
                if Array(storedHash.readableBytesView) == idempotency.requestHash {
                    return .replay(statusCode: status, body: body)
                }
                return .idempotencyConflict
            }
            return .idempotencyConflict
        }
    }

    private func insert(_ messages: [NewMessage], on connection: PostgresConnection) async throws {
        // A named prepared statement: PostgreSQL parses and plans this seven-table statement once per connection
        // instead of on every accept (docs/benchmarks.md, B1).
        let rows = try await connection.execute(EnqueueStatement(messages: messages), logger: logger)
        // `execute` returns once the row description is in; an error while the statement executes (a constraint, a
        // trigger, a connection failure) arrives with the rows. Read them, or a failed insert would look stored
        // (and in a transaction, COMMIT of the aborted transaction silently rolls back).
        for try await _ in rows {}
    }

    /// A tenant's message with its recipients, or nil when it does not exist for this tenant.
    public func message(id: UUID, tenantID: UUID) async throws -> MessageRecord? {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT id, from_header, subject, tags, metadata::text, created_at, send_at FROM messages
                WHERE id = \(id) AND tenant_id = \(tenantID)
                """, logger: logger)
            var record: MessageRecord?
            for try await (id, from, subject, tags, metadata, createdAt, sendAt) in rows.decode(
                (UUID, String, String, [String], String, Date, Date?).self) {
                record = MessageRecord(id: id, fromHeader: from, subject: subject, tags: tags, metadataJSON: metadata,
                                       createdAt: createdAt, recipients: [], sendAt: sendAt)
            }
            guard var record else { return nil }
            let recipientRows = try await client.query("""
                SELECT email, status, attempts, next_attempt_at, last_code, last_enhanced, last_text, last_mx, reason, updated_at
                FROM recipients WHERE message_id = \(id) ORDER BY id
                """, logger: logger)
            for try await (email, status, attempts, next, code, enhanced, text, mx, reason, updated) in recipientRows.decode(
                (String, String, Int, Date?, Int?, String?, String?, String?, String?, Date).self) {
                record.recipients.append(RecipientRecord(
                    email: email, status: RecipientStatus(rawValue: status) ?? .queued, attempts: attempts,
                    nextAttemptAt: next, lastReply: code.map { DeliveryReply(code: $0, enhanced: enhanced, text: text ?? "") },
                    lastText: text, lastMX: mx, reason: reason, updatedAt: updated))
            }
            return record
        }
    }

    /// Filters of the delivery log (`GET /v1/messages`); nil means "any".
    public struct MessageFilter: Sendable {
        /// Messages with at least one recipient in this status.
        public var status: String?
        /// Messages with this exact recipient address.
        public var recipient: String?
        /// Messages with a recipient at this (lowercased) domain.
        public var domain: String?
        /// Messages carrying this tag.
        public var tag: String?
        /// Messages with this envelope sender.
        public var from: String?
        /// Accepted at or after this time.
        public var since: Date?
        /// Accepted before this time.
        public var until: Date?

        /// An empty filter.
        public init() {}
    }

    /// A keyset position: the (created_at in microseconds since 1970, id) of the last row of the previous page.
    public struct MessageCursor: Sendable, Equatable {
        public var createdAtMicros: Int64
        public var id: UUID
        public init(createdAtMicros: Int64, id: UUID) {
            self.createdAtMicros = createdAtMicros
            self.id = id
        }
    }

    /// One page of a tenant's messages, newest first, and the cursor of the next page (nil at the end).
    /// Keyset pagination on (created_at, id): stable while new messages arrive (they sort before the first page).
    public func messages(tenantID: UUID, filter: MessageFilter, limit: Int, after cursor: MessageCursor?) async throws
        -> (messages: [MessageRecord], next: MessageCursor?) {
        try await withDeadline { [self] in
            var query = SQLBuilder("""
                SELECT m.id, m.from_header, m.subject, m.tags, m.metadata::text, m.created_at,
                       (extract(epoch FROM m.created_at) * 1000000)::bigint, m.send_at
                FROM messages m
                """)
            let tenant = query.bind(tenantID)
            query.append("\nWHERE m.tenant_id = \(tenant)")
            if let since = filter.since { query.append(" AND m.created_at >= \(query.bind(since))") }
            if let until = filter.until { query.append(" AND m.created_at < \(query.bind(until))") }
            if let from = filter.from { query.append(" AND m.mail_from = \(query.bind(from))") }
            if let tag = filter.tag { query.append(" AND m.tags @> ARRAY[\(query.bind(tag))::text]") }
            // Recipient filters as semi-joins through recipients' (tenant_id, column, message_id) indexes.
            for (column, value) in [("status", filter.status), ("email", filter.recipient), ("domain", filter.domain)] {
                guard let value else { continue }
                query.append("""

                      AND EXISTS (SELECT 1 FROM recipients r WHERE r.tenant_id = \(tenant) AND r.message_id = m.id
                                  AND r.\(column) = \(query.bind(value)))
                    """)
            }
            if let cursor {
                let micros = query.bind(cursor.createdAtMicros)
                query.append("""

                      AND (m.created_at, m.id) < ('1970-01-01 00:00:00+00'::timestamptz + \(micros) * interval '1 microsecond', \(query.bind(cursor.id)))
                    """)
            }
            query.append("\nORDER BY m.created_at DESC, m.id DESC LIMIT \(limit + 1)")
            let rows = try await client.query(query.query, logger: logger)
            var page: [MessageRecord] = []
            var micros: [Int64] = []
            for try await (id, from, subject, tags, metadata, createdAt, createdMicros, sendAt) in rows.decode(
                (UUID, String, String, [String], String, Date, Int64, Date?).self) {
                page.append(MessageRecord(id: id, fromHeader: from, subject: subject, tags: tags, metadataJSON: metadata,
                                          createdAt: createdAt, recipients: [], sendAt: sendAt))
                micros.append(createdMicros)
            }
            var next: MessageCursor?
            if page.count > limit {
                page.removeLast()
                next = MessageCursor(createdAtMicros: micros[limit - 1], id: page[limit - 1].id)
            }
            if page.isEmpty { return ([], nil) }
            let ids = page.map(\.id)
            let recipientRows = try await client.query("""
                SELECT message_id, email, status, attempts, next_attempt_at, last_code, last_enhanced, last_text, last_mx, reason, updated_at
                FROM recipients WHERE message_id = ANY(\(ids)::uuid[]) ORDER BY id
                """, logger: logger)
            var byMessage: [UUID: [RecipientRecord]] = [:]
            for try await (messageID, email, status, attempts, nextAt, code, enhanced, text, mx, reason, updated) in recipientRows.decode(
                (UUID, String, String, Int, Date?, Int?, String?, String?, String?, String?, Date).self) {
                byMessage[messageID, default: []].append(RecipientRecord(
                    email: email, status: RecipientStatus(rawValue: status) ?? .queued, attempts: attempts,
                    nextAttemptAt: nextAt, lastReply: code.map { DeliveryReply(code: $0, enhanced: enhanced, text: text ?? "") },
                    lastText: text, lastMX: mx, reason: reason, updatedAt: updated))
            }
            for index in page.indices { page[index].recipients = byMessage[page[index].id] ?? [] }
            return (page, next)
        }
    }
}

/// Stores messages: their rows, bodies, recipients, queue rows, `accepted` (and `suppressed`) events and pending
/// statistics, and wakes idle workers, in one statement. Messages are given as parallel arrays (one element per
/// message), recipients as parallel arrays with the index of their message (1-based).
struct EnqueueStatement: PostgresPreparedStatement {
    static let name = "relay_enqueue_v2"
    static let sql = """
        WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                 $8::text[], $9::int8[], $10::bool[], $11::float8[], $12::float8[], $13::bool[], $14::bytea[])
                WITH ORDINALITY AS x(id, tenant_id, mail_from, from_header, subject, message_id_header, tags, metadata,
                                     size_bytes, smtputf8, lifetime, not_before, hosted, body, index)
        ), timed AS (
            -- When the first attempt may be made: now, or the scheduled time (not_before < 0: none).
            SELECT input.*, CASE WHEN not_before < 0 THEN NULL ELSE to_timestamp(not_before) END AS send_at,
                   CASE WHEN not_before < 0 THEN now() ELSE to_timestamp(not_before) END AS start_at
            FROM input
        ), m AS (
            INSERT INTO messages (id, tenant_id, mail_from, from_header, subject, message_id_header, tags, metadata,
                                  size_bytes, smtputf8, expires_at, send_at, hosted_unsubscribe)
            SELECT id, tenant_id, mail_from, from_header, subject, message_id_header,
                   ARRAY(SELECT jsonb_array_elements_text(tags::jsonb)), metadata::jsonb, size_bytes, smtputf8,
                   start_at + make_interval(secs => lifetime), send_at, hosted
            FROM timed ORDER BY index
        ), b AS (
            INSERT INTO message_bodies (message_id, body) SELECT id, body FROM timed ORDER BY index
        ), listed AS (
            SELECT * FROM unnest($15::int8[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[])
                WITH ORDINALITY AS y(message_index, e, d, st, rs, p, n)
        ), r AS (
            INSERT INTO recipients (message_id, tenant_id, email, domain, status, next_attempt_at, reason)
            SELECT t.id, t.tenant_id, e, d, st, CASE WHEN st = 'queued' THEN t.start_at END, NULLIF(rs, '')
            FROM listed JOIN timed t ON t.index = listed.message_index ORDER BY n
            RETURNING id, message_id, tenant_id, domain, status, next_attempt_at
        ), q AS (
            INSERT INTO queue (recipient_id, message_id, domain, due_at)
            SELECT id, message_id, domain, next_attempt_at FROM r WHERE status = 'queued'
        ), ev AS (
            -- Every recipient is accepted; a suppressed one is also suppressed at once (never attempted).
            INSERT INTO events (tenant_id, message_id, recipient_id, type, reply_text)
            SELECT tenant_id, message_id, id, 'accepted', NULL FROM r
            UNION ALL
            SELECT tenant_id, message_id, id, 'suppressed', 'the address is on the suppression list' FROM r
            WHERE status = 'suppressed'
        ), st AS (
            INSERT INTO stats_hourly_pending (tenant_id, hour, domain, provider, accepted, suppressed)
            SELECT t.tenant_id, date_trunc('hour', now(), 'UTC'), d, p, count(*), count(*) FILTER (WHERE st = 'suppressed')
            FROM listed JOIN timed t ON t.index = listed.message_index GROUP BY t.tenant_id, d, p
        )
        SELECT pg_notify('\(RelayDatabase.queueChannel)', '')
        """
    static let bindingDataTypes: [PostgresDataType] = [
        .uuidArray, .uuidArray, .textArray, .textArray, .textArray, .textArray, .textArray, .textArray, .int8Array,
        .boolArray, .float8Array, .float8Array, .boolArray, .byteaArray,
        .int8Array, .textArray, .textArray, .textArray, .textArray, .textArray,
    ]
    typealias Row = ()

    let messages: [NewMessage]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 20)
        bindings.append(messages.map(\.id))
        bindings.append(messages.map(\.tenantID))
        bindings.append(messages.map(\.mailFrom))
        bindings.append(messages.map(\.fromHeader))
        bindings.append(messages.map(\.subject))
        bindings.append(messages.map(\.messageIDHeader))
        // Tag lists differ in length and PostgreSQL arrays are rectangular: each list travels as a JSON array.
        let encoder = JSONEncoder()
        bindings.append(try messages.map { String(decoding: try encoder.encode($0.tags), as: UTF8.self) })
        bindings.append(messages.map(\.metadataJSON))
        bindings.append(messages.map { Int64($0.body.readableBytes) })
        bindings.append(messages.map(\.requiresSMTPUTF8))
        bindings.append(messages.map(\.lifetime.seconds))
        bindings.append(messages.map { $0.notBefore?.timeIntervalSince1970 ?? -1 })
        bindings.append(messages.map(\.hostedUnsubscribe))
        bindings.append(messages.map(\.body))
        var indexes: [Int64] = [], emails: [String] = [], domains: [String] = [], statuses: [String] = []
        var reasons: [String] = [], providers: [String] = []
        for (index, message) in messages.enumerated() {
            for recipient in message.recipients {
                let suppressed = message.suppressed[recipient.email.lowercased()]
                indexes.append(Int64(index + 1))
                emails.append(recipient.email)
                domains.append(recipient.domain)
                statuses.append(suppressed == nil ? RecipientStatus.queued.rawValue : RecipientStatus.suppressed.rawValue)
                reasons.append(suppressed ?? "")
                providers.append(MailboxProvider.classify(mx: nil, domain: recipient.domain).rawValue)
            }
        }
        bindings.append(indexes)
        bindings.append(emails)
        bindings.append(domains)
        bindings.append(statuses)
        bindings.append(reasons)
        bindings.append(providers)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {}
}
