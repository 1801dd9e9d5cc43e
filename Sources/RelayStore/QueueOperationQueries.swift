import Foundation
import PostgresNIO
import RelayCore

// Operations on pending recipients, shared by the API (`POST /v1/messages/{id}/cancel`, `POST /v1/queue/retry`,
// `POST /v1/queue/cancel`) and the operator's CLI (`relay queue retry|cancel`).
//
// A recipient is *pending* while it has a row in the hot queue (status queued or deferred). It is *operable*
// when that row is not leased by a worker that is delivering it right now: `lease_owner` is NULL, or the lease
// has run out (`due_at <= now()`: a worker that died or stalled; any node may take such a row over, and so may
// an operation). A recipient being delivered is left alone: its outcome is written by its worker.
//
// Every operation first reads the ids of the matching recipients (one statement, through the recipients
// indexes for a tenant or a message, or from the narrow queue table for the operator's all-tenant view), then
// applies itself to them in batches of `batchSize` ids, one short transaction each, so that a million-row
// selection never holds one giant lock and never blocks the workers for long. Each batch re-checks its rows
// (`FOR UPDATE SKIP LOCKED`, still unleased): a row a worker claimed meanwhile is skipped, not waited for.

/// Which pending recipients a queue operation applies to; nil means "any". Only pending, unleased recipients
/// are ever selected, whatever the filters.
public struct QueueSelection: Sendable, Equatable {
    /// One tenant's recipients; nil selects every tenant's (operators only).
    public var tenantID: UUID?
    /// One message's recipients.
    public var messageID: UUID?
    /// Recipients at this domain (lower case).
    public var domain: String?
    /// `queued` or `deferred`.
    public var status: RecipientStatus?
    /// Recipients of messages carrying this tag.
    public var tag: String?
    /// Recipients whose last reply carried this enhanced status code (e.g. `4.7.1`).
    public var enhancedCode: String?
    /// Recipients of messages accepted at or after this time.
    public var since: Date?
    /// Recipients of messages accepted before this time.
    public var until: Date?

    /// A selection with the given filters.
    public init(tenantID: UUID? = nil, messageID: UUID? = nil, domain: String? = nil, status: RecipientStatus? = nil,
                tag: String? = nil, enhancedCode: String? = nil, since: Date? = nil, until: Date? = nil) {
        self.tenantID = tenantID
        self.messageID = messageID
        self.domain = domain
        self.status = status
        self.tag = tag
        self.enhancedCode = enhancedCode
        self.since = since
        self.until = until
    }

    /// Whether no filter narrows the selection beyond the tenant (the whole pending queue of it, or of all).
    public var isUnfiltered: Bool {
        messageID == nil && domain == nil && status == nil && tag == nil && enhancedCode == nil && since == nil && until == nil
    }
}

/// What a queue operation does to the selected recipients.
public enum QueueOperation: String, Sendable, CaseIterable {
    /// Due now: `queue.due_at` and `recipients.next_attempt_at` become now(); idle workers are woken.
    case retry
    /// Removed from the queue, status `canceled`, a `canceled` event each (webhooks see it).
    case cancel
}

extension RelayDatabase {
    /// How many ids one batch of a queue operation touches.
    public static let queueOperationBatchSize = 10_000

    /// How many recipients `operation` would affect now (a dry run): changes nothing.
    public func countOperable(_ selection: QueueSelection) async throws -> Int {
        try await withDeadline { [self] in
            let rows = try await client.query(Self.operableQuery(selection, count: true), logger: logger)
            for try await count in rows.decode(Int.self) { return count }
            return 0
        }
    }

    /// Applies `operation` to the operable recipients of `selection`; returns how many it changed. `detail` is
    /// the text of the `canceled` events (who canceled). Idempotent in effect: run again, it finds nothing
    /// left to cancel, and retrying twice makes the same rows due now again.
    public func apply(_ operation: QueueOperation, to selection: QueueSelection, detail: String,
                      batchSize: Int = RelayDatabase.queueOperationBatchSize) async throws -> Int {
        let ids = try await withDeadline { [self] in
            var ids: [Int64] = []
            let rows = try await client.query(Self.operableQuery(selection, count: false), logger: logger)
            for try await id in rows.decode(Int64.self) { ids.append(id) }
            return ids
        }
        var affected = 0
        var start = ids.startIndex
        while start < ids.endIndex {
            let batch = Array(ids[start..<min(start + max(1, batchSize), ids.endIndex)])
            start += batch.count
            affected += try await withDeadline { [self] in try await applyBatch(operation, ids: batch, detail: detail) }
        }
        if operation == .retry && affected > 0 {
            try await withDeadline { [self] in
                _ = try await client.query("SELECT pg_notify(\(Self.queueChannel), '')", logger: logger)
            }
        }
        return affected
    }

    /// The ids (or their count) of the pending, unleased recipients that `selection` names, in id order.
    /// Tenant and message filters drive the plan through `recipients_tenant_status`, `recipients_tenant_domain`
    /// or `recipients_message`; without a tenant the narrow queue table (the work in flight) drives it.
    static func operableQuery(_ selection: QueueSelection, count: Bool) -> PostgresQuery {
        let needsMessage = selection.tag != nil || selection.since != nil || selection.until != nil
        var query = SQLBuilder("""
            SELECT \(count ? "count(*)::bigint" : "r.id")
            FROM recipients r JOIN queue q ON q.recipient_id = r.id\(needsMessage ? " JOIN messages m ON m.id = r.message_id" : "")
            WHERE (q.lease_owner IS NULL OR q.due_at <= now())
            """)
        if let status = selection.status {
            query.append(" AND r.status = \(query.bind(status.rawValue))")
        } else {
            query.append(" AND r.status IN ('queued', 'deferred')")
        }
        if let tenant = selection.tenantID { query.append(" AND r.tenant_id = \(query.bind(tenant))") }
        if let message = selection.messageID { query.append(" AND r.message_id = \(query.bind(message))") }
        if let domain = selection.domain {
            // On both sides: across tenants the narrow queue row can answer it before the recipient is read.
            let bound = query.bind(domain)
            query.append(" AND r.domain = \(bound) AND q.domain = \(bound)")
        }
        if let code = selection.enhancedCode { query.append(" AND r.last_enhanced = \(query.bind(code))") }
        if let tag = selection.tag { query.append(" AND m.tags @> ARRAY[\(query.bind(tag))::text]") }
        if let since = selection.since { query.append(" AND m.created_at >= \(query.bind(since))") }
        if let until = selection.until { query.append(" AND m.created_at < \(query.bind(until))") }
        if !count { query.append(" ORDER BY r.id") }
        return query.query
    }

    /// Applies `operation` to the batch's rows that are still operable, in one statement: the rows are locked in
    /// id order and a row a worker holds locked right now is skipped. Retry makes them due now (a held row of a
    /// paused tenant too: the claim holds it again). Cancel deletes the queue row, sets the recipient
    /// `canceled` and writes one event each (the events trigger queues the webhooks).
    private func applyBatch(_ operation: QueueOperation, ids: [Int64], detail: String) async throws -> Int {
        var query = SQLBuilder("WITH target AS (\n")
        let batch = query.bind(ids)
        query.append("""
                SELECT recipient_id FROM queue
                WHERE recipient_id = ANY(\(batch)::bigint[]) AND (lease_owner IS NULL OR due_at <= now())
                ORDER BY recipient_id FOR UPDATE SKIP LOCKED
            )
            """)
        switch operation {
        case .retry:
            query.append("""
                , due AS (
                    UPDATE queue q SET due_at = least(q.due_at, now())
                    FROM target WHERE q.recipient_id = target.recipient_id
                    RETURNING q.recipient_id
                ), upd AS (
                    UPDATE recipients r SET next_attempt_at = now(), updated_at = now()
                    FROM due WHERE r.id = due.recipient_id
                    RETURNING r.id
                )
                """)
        case .cancel:
            let text = query.bind(detail)
            query.append("""
                , gone AS (
                    DELETE FROM queue q USING target WHERE q.recipient_id = target.recipient_id
                    RETURNING q.recipient_id
                ), upd AS (
                    UPDATE recipients r SET status = 'canceled', next_attempt_at = NULL, reason = 'canceled', updated_at = now()
                    FROM gone WHERE r.id = gone.recipient_id AND r.status IN ('queued', 'deferred')
                    RETURNING r.id, r.message_id, r.tenant_id, r.attempts
                ), ev AS (
                    INSERT INTO events (tenant_id, message_id, recipient_id, type, attempt, reply_text)
                    SELECT tenant_id, message_id, id, 'canceled', attempts, \(text) FROM upd
                )
                """)
        }
        query.append("\nSELECT count(*)::bigint FROM upd")
        let rows = try await client.query(query.query, logger: logger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }

    /// How many of a message's recipients are still pending (after a cancel: the ones being delivered).
    public func pendingRecipientCount(messageID: UUID) async throws -> Int {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT count(*)::bigint FROM recipients WHERE message_id = \(messageID) AND status IN ('queued', 'deferred')
                """, logger: logger)
            for try await count in rows.decode(Int.self) { return count }
            return 0
        }
    }
}
