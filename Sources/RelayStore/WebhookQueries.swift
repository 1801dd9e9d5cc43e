import Foundation
import PostgresNIO
import RelayCore

/// A tenant's webhook endpoint as the API shows it (the secret is never read back through this type).
public struct WebhookEndpoint: Sendable, Equatable {
    public var id: UUID
    public var url: String
    /// Subscribed event types; empty means every type.
    public var events: [String]
    public var enabled: Bool
    /// Why Relay (or the user, `manual`) disabled it: `gone_410`, `failure_streak`, `manual`.
    public var disabledReason: String?
    public var createdAt: Date
    public var updatedAt: Date
}

/// One HTTP attempt of the delivery log.
public struct WebhookDeliveryRecord: Sendable {
    public var id: Int64
    public var outboxID: Int64
    public var eventType: String
    public var attempt: Int
    public var status: String
    public var responseCode: Int?
    public var error: String?
    public var latencyMs: Int
    public var at: Date
    /// When a failed attempt is retried; nil after a success or the last attempt.
    public var nextAttemptAt: Date?
}

/// The `events` row behind a message webhook, with what the payload needs from its recipient and message.
public struct WebhookMessageEvent: Sendable {
    public var eventID: Int64
    public var messageID: UUID
    public var recipient: String
    public var type: String
    public var at: Date
    public var attempt: Int
    public var mx: String?
    public var reply: DeliveryReply?
    /// The failure sentence of an event without an SMTP reply.
    public var detail: String?
    public var tags: [String]
    /// The message's metadata object as JSON text.
    public var metadataJSON: String
}

/// An outbox row claimed by a dispatcher, with its endpoint's URL and signing secrets.
public struct ClaimedWebhook: Sendable {
    public var outboxID: Int64
    public var endpointID: UUID
    public var url: String
    /// The current secret, then the previous one while it is still valid after a rotation.
    public var secrets: [String]
    public var eventType: String
    /// Attempts made before this one.
    public var attempts: Int
    public var createdAt: Date
    /// The body rendered at the first attempt; nil until then.
    public var payload: String?
    /// The data object (JSON text) of an event that concerns no message.
    public var dataJSON: String?
    /// The events row of a message event, read while `payload` is still nil.
    public var messageEvent: WebhookMessageEvent?
}

extension RelayDatabase {
    /// Position in the endpoint list or the delivery log: (time, id) of a page's last row.
    public struct WebhookCursor: Sendable, Hashable {
        public var atMicros: Int64
        public var id: String
        public init(atMicros: Int64, id: String) {
            self.atMicros = atMicros
            self.id = id
        }
    }

    private static let endpointColumns = """
        id, url, events, enabled, disabled_reason, created_at, updated_at, (extract(epoch FROM created_at) * 1000000)::bigint
        """

    private static func decodeEndpoints(_ rows: PostgresRowSequence) async throws -> [(WebhookEndpoint, Int64)] {
        var endpoints: [(WebhookEndpoint, Int64)] = []
        for try await (id, url, events, enabled, reason, created, updated, micros) in rows.decode(
            (UUID, String, [String], Bool, String?, Date, Date, Int64).self) {
            endpoints.append((WebhookEndpoint(id: id, url: url, events: events, enabled: enabled, disabledReason: reason,
                                              createdAt: created, updatedAt: updated), micros))
        }
        return endpoints
    }

    /// Stores a new endpoint with its secret.
    public func createWebhookEndpoint(tenantID: UUID, url: String, events: [String], secret: String) async throws -> WebhookEndpoint {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret)
                VALUES (\(TimeOrderedUUID.make()), \(tenantID), \(url), \(events), \(secret))
                RETURNING \(unescaped: Self.endpointColumns)
                """, logger: logger)
            guard let endpoint = try await Self.decodeEndpoints(rows).first?.0 else {
                throw StoreError(code: .unavailable, description: "the new webhook endpoint was not returned")
            }
            return endpoint
        }
    }

    /// The tenant's endpoint, or nil (also for another tenant's).
    public func webhookEndpoint(id: UUID, tenantID: UUID) async throws -> WebhookEndpoint? {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT \(unescaped: Self.endpointColumns) FROM webhook_endpoints WHERE id = \(id) AND tenant_id = \(tenantID)
                """, logger: logger)
            return try await Self.decodeEndpoints(rows).first?.0
        }
    }

    /// One page of the tenant's endpoints, newest first.
    public func webhookEndpoints(tenantID: UUID, limit: Int, after cursor: WebhookCursor?)
        async throws -> (endpoints: [WebhookEndpoint], next: WebhookCursor?) {
        try await withDeadline { [self] in
            var query = SQLBuilder("SELECT \(Self.endpointColumns) FROM webhook_endpoints")
            query.append(" WHERE tenant_id = \(query.bind(tenantID))")
            if let cursor, let id = UUID(uuidString: cursor.id) {
                query.append("""
                     AND (created_at, id) < ('1970-01-01 00:00:00+00'::timestamptz + \(query.bind(cursor.atMicros)) * interval '1 microsecond', \(query.bind(id)))
                    """)
            }
            query.append(" ORDER BY created_at DESC, id DESC LIMIT \(limit + 1)")
            var page = try await Self.decodeEndpoints(try await client.query(query.query, logger: logger))
            var next: WebhookCursor?
            if page.count > limit {
                page.removeLast()
                next = WebhookCursor(atMicros: page[limit - 1].1, id: page[limit - 1].0.id.uuidString)
            }
            return (page.map(\.0), next)
        }
    }

    /// Changes what is given (nil leaves a field as it is). Disabling by hand records `manual`; re-enabling clears
    /// the reason and the failure streak and makes the endpoint's waiting deliveries due at once, except those
    /// older than `deliveryLifetime`, which become `failed` without another attempt.
    public func updateWebhookEndpoint(id: UUID, tenantID: UUID, url: String?, events: [String]?, enabled: Bool?,
                                      deliveryLifetime: Duration = .seconds(3 * 86_400)) async throws -> WebhookEndpoint? {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH resumed AS (
                    UPDATE webhook_outbox SET due_at = now(),
                        state = CASE WHEN created_at < now() - make_interval(secs => \(deliveryLifetime.seconds)) THEN 'failed'
                                     ELSE 'pending' END,
                        finished_at = CASE WHEN created_at < now() - make_interval(secs => \(deliveryLifetime.seconds)) THEN now() END
                    WHERE endpoint_id = \(id) AND state = 'pending' AND \(enabled)::boolean IS TRUE
                      AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = \(id) AND tenant_id = \(tenantID) AND NOT enabled)
                )
                UPDATE webhook_endpoints SET
                    url = COALESCE(\(url)::text, url),
                    events = COALESCE(\(events)::text[], events),
                    disabled_reason = CASE WHEN \(enabled)::boolean IS TRUE THEN NULL
                                           WHEN \(enabled)::boolean IS FALSE AND enabled THEN 'manual'
                                           ELSE disabled_reason END,
                    failure_streak = CASE WHEN \(enabled)::boolean IS TRUE AND NOT enabled THEN 0 ELSE failure_streak END,
                    failure_streak_since = CASE WHEN \(enabled)::boolean IS TRUE AND NOT enabled THEN NULL ELSE failure_streak_since END,
                    enabled = COALESCE(\(enabled)::boolean, enabled),
                    updated_at = now()
                WHERE id = \(id) AND tenant_id = \(tenantID)
                RETURNING \(unescaped: Self.endpointColumns)
                """, logger: logger)
            return try await Self.decodeEndpoints(rows).first?.0
        }
    }

    /// Deletes an endpoint with its queued deliveries and log; false when the tenant has no such endpoint.
    public func deleteWebhookEndpoint(id: UUID, tenantID: UUID) async throws -> Bool {
        try await withDeadline(.seconds(30)) { [self] in
            let rows = try await client.query(
                "DELETE FROM webhook_endpoints WHERE id = \(id) AND tenant_id = \(tenantID) RETURNING 1", logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    /// Replaces the signing secret; the one it replaces keeps being signed with for `overlap`. Nil when the tenant
    /// has no such endpoint.
    public func rotateWebhookSecret(id: UUID, tenantID: UUID, newSecret: String, overlap: Duration) async throws -> WebhookEndpoint? {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                UPDATE webhook_endpoints SET previous_secret = secret, secret = \(newSecret),
                    previous_secret_expires_at = now() + make_interval(secs => \(overlap.seconds)),
                    updated_at = now()
                WHERE id = \(id) AND tenant_id = \(tenantID)
                RETURNING \(unescaped: Self.endpointColumns)
                """, logger: logger)
            return try await Self.decodeEndpoints(rows).first?.0
        }
    }

    /// Queues an event of `type` with `dataJSON` for this one endpoint (whatever it subscribes to); returns the
    /// outbox id, or nil when the tenant has no such endpoint.
    public func enqueueWebhook(endpointID: UUID, tenantID: UUID, type: String, dataJSON: String) async throws -> Int64? {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                INSERT INTO webhook_outbox (endpoint_id, tenant_id, event_type, data)
                SELECT id, tenant_id, \(type), \(dataJSON)::jsonb FROM webhook_endpoints WHERE id = \(endpointID) AND tenant_id = \(tenantID)
                RETURNING id
                """, logger: logger)
            for try await id in rows.decode(Int64.self) { return id }
            return nil
        }
    }

    /// Queues an event that concerns no message for every subscribed endpoint of the tenant (SQL function
    /// `relay_enqueue_webhook_event`); returns how many were queued.
    @discardableResult
    public func enqueueWebhookEvent(tenantID: UUID, type: String, dataJSON: String) async throws -> Int {
        try await withDeadline { [self] in
            let rows = try await client.query(
                "SELECT relay_enqueue_webhook_event(\(tenantID), \(type), \(dataJSON)::jsonb)", logger: logger)
            for try await count in rows.decode(Int.self) { return count }
            return 0
        }
    }

    /// One page of an endpoint's delivery log, newest first; nil when the tenant has no such endpoint.
    public func webhookDeliveries(endpointID: UUID, tenantID: UUID, limit: Int, after cursor: WebhookCursor?)
        async throws -> (deliveries: [WebhookDeliveryRecord], next: WebhookCursor?)? {
        try await withDeadline { [self] in
            var query = SQLBuilder("""
                SELECT d.id, d.outbox_id, d.event_type, d.attempt, d.status, d.response_code, d.error, d.latency_ms, d.at,
                       d.next_attempt_at, (extract(epoch FROM d.at) * 1000000)::bigint, e.id IS NOT NULL
                FROM (SELECT id FROM webhook_endpoints
                """)
            query.append(" WHERE id = \(query.bind(endpointID)) AND tenant_id = \(query.bind(tenantID))) e")
            query.append(" LEFT JOIN LATERAL (SELECT * FROM webhook_deliveries WHERE endpoint_id = e.id")
            if let cursor, let id = Int64(cursor.id) {
                query.append("""
                     AND (at, id) < ('1970-01-01 00:00:00+00'::timestamptz + \(query.bind(cursor.atMicros)) * interval '1 microsecond', \(query.bind(id)))
                    """)
            }
            query.append(" ORDER BY at DESC, id DESC LIMIT \(limit + 1)) d ON true")
            query.append(" RIGHT JOIN (SELECT 1) AS one ON true ORDER BY d.at DESC, d.id DESC")
            var found = false
            var page: [(WebhookDeliveryRecord, Int64)] = []
            for try await (id, outbox, type, attempt, status, code, error, latency, at, next, micros, exists) in try await client.query(query.query, logger: logger)
                .decode((Int64?, Int64?, String?, Int?, String?, Int?, String?, Int?, Date?, Date?, Int64?, Bool).self) {
                found = exists
                guard let id, let outbox, let type, let attempt, let status, let latency, let at, let micros else { continue }
                page.append((WebhookDeliveryRecord(id: id, outboxID: outbox, eventType: type, attempt: attempt, status: status,
                                                   responseCode: code, error: error, latencyMs: latency, at: at,
                                                   nextAttemptAt: next), micros))
            }
            guard found else { return nil }
            var next: WebhookCursor?
            if page.count > limit {
                page.removeLast()
                next = WebhookCursor(atMicros: page[limit - 1].1, id: String(page[limit - 1].0.id))
            }
            return (page.map(\.0), next)
        }
    }
}

// The dispatcher's side.
extension RelayDatabase {
    /// Claims up to `limit` due outbox rows of enabled endpoints (test events also of disabled ones) for `owner`:
    /// `due_at` becomes the lease expiry, so a node that dies mid-delivery gives its rows back after `lease`.
    /// `FOR UPDATE SKIP LOCKED` keeps nodes from claiming the same row. Rows not rendered yet come with their event.
    /// Rows of the endpoints in `skipping` (those this node is already busy with) are left for later or for others.
    public func claimWebhooks(owner: UUID, limit: Int, lease: Duration, skipping: [UUID] = []) async throws -> [ClaimedWebhook] {
        try await withDeadline { [self] in
            // Kept apart from the events join, whose planning over every day partition (several ms) an idle poll
            // should not pay four times a second.
            let rows = try await client.query("""
                WITH due AS (
                    SELECT o.id FROM webhook_outbox o JOIN webhook_endpoints e ON e.id = o.endpoint_id
                    WHERE o.state = 'pending' AND o.due_at <= now() AND (e.enabled OR o.event_type = 'webhook.test')
                      AND o.endpoint_id <> ALL(\(skipping)::uuid[])
                    ORDER BY o.due_at LIMIT \(limit) FOR UPDATE OF o SKIP LOCKED
                ), claimed AS (
                    UPDATE webhook_outbox o SET due_at = now() + make_interval(secs => \(lease.seconds)),
                                                lease_owner = \(owner)
                    FROM due WHERE o.id = due.id
                    RETURNING o.id, o.endpoint_id, o.event_type, o.attempts, o.created_at, o.payload, o.data, o.message_id,
                              o.event_id, o.event_at
                )
                SELECT c.id, c.endpoint_id, e.url, e.secret,
                       CASE WHEN e.previous_secret_expires_at > now() THEN e.previous_secret END,
                       c.event_type, c.attempts, c.created_at, c.payload, c.data::text, c.message_id, c.event_id, c.event_at
                FROM claimed c JOIN webhook_endpoints e ON e.id = c.endpoint_id
                """, logger: logger)
            var claimed: [ClaimedWebhook] = []
            var unrendered: [(outboxID: Int64, messageID: UUID, eventID: Int64, at: Date)] = []
            for try await (id, endpoint, url, secret, previous, type, attempts, created, payload, data, messageID, eventID, eventAt)
                in rows.decode((Int64, UUID, String, String, String?, String, Int, Date, String?, String?, UUID?, Int64?, Date?).self) {
                claimed.append(ClaimedWebhook(outboxID: id, endpointID: endpoint, url: url, secrets: [secret] + (previous.map { [$0] } ?? []),
                                              eventType: type, attempts: attempts, createdAt: created, payload: payload, dataJSON: data))
                if payload == nil, let messageID, let eventID, let eventAt { unrendered.append((id, messageID, eventID, eventAt)) }
            }
            if unrendered.isEmpty { return claimed }
            let events = try await messageEvents(unrendered)
            return claimed.map { webhook in
                var webhook = webhook
                webhook.messageEvent = events[webhook.outboxID]
                return webhook
            }
        }
    }

    /// The events rows behind outbox rows (by outbox id), with their recipient and message. The `at` of each
    /// lets PostgreSQL open only that day's partition.
    private func messageEvents(_ rows: [(outboxID: Int64, messageID: UUID, eventID: Int64, at: Date)]) async throws
        -> [Int64: WebhookMessageEvent] {
        let found = try await client.query("""
            SELECT x.outbox_id, ev.id, ev.message_id, ev.type, r.email, ev.at, ev.attempt, ev.mx, ev.reply_code, ev.reply_enhanced,
                   ev.reply_text, m.tags, m.metadata::text
            FROM unnest(\(rows.map(\.outboxID))::bigint[], \(rows.map(\.messageID))::uuid[], \(rows.map(\.eventID))::bigint[],
                        \(rows.map(\.at))::timestamptz[]) AS x(outbox_id, message_id, event_id, event_at)
            JOIN events ev ON ev.message_id = x.message_id AND ev.id = x.event_id AND ev.at = x.event_at
            JOIN recipients r ON r.id = ev.recipient_id
            JOIN messages m ON m.id = ev.message_id
            """, logger: logger)
        var events: [Int64: WebhookMessageEvent] = [:]
        for try await (outboxID, eventID, messageID, type, email, at, attempt, mx, code, enhanced, text, tags, metadata) in found.decode(
            (Int64, Int64, UUID, String, String, Date, Int, String?, Int?, String?, String?, [String], String).self) {
            events[outboxID] = WebhookMessageEvent(
                eventID: eventID, messageID: messageID, recipient: email, type: type, at: at, attempt: attempt, mx: mx,
                reply: code.map { DeliveryReply(code: $0, enhanced: enhanced, text: text ?? "") },
                detail: code == nil ? text : nil, tags: tags, metadataJSON: metadata)
        }
        return events
    }

    /// Stores the bodies rendered for rows' first attempts, so that every retry sends the same bytes (a body
    /// already stored, e.g. by a node whose lease ran out, is kept).
    public func storeWebhookPayloads(_ payloads: [(outboxID: Int64, body: String)]) async throws {
        if payloads.isEmpty { return }
        try await withDeadline { [self] in
            try await client.query("""
                UPDATE webhook_outbox o SET payload = x.body
                FROM unnest(\(payloads.map(\.outboxID))::bigint[], \(payloads.map(\.body))::text[]) AS x(id, body)
                WHERE o.id = x.id AND o.payload IS NULL
                """, logger: logger)
        }
    }

    /// What one attempt did.
    public struct WebhookAttemptOutcome: Sendable {
        public var outboxID: Int64
        public var endpointID: UUID
        public var eventType: String
        /// 1 for the first attempt.
        public var attempt: Int
        public var succeeded: Bool
        public var responseCode: Int?
        public var error: String?
        public var latencyMs: Int
        /// The next attempt of a failed delivery; nil makes a failure final.
        public var nextAttemptAt: Date?

        public init(outboxID: Int64, endpointID: UUID, eventType: String, attempt: Int, succeeded: Bool, responseCode: Int?,
                    error: String?, latencyMs: Int, nextAttemptAt: Date?) {
            self.outboxID = outboxID
            self.endpointID = endpointID
            self.eventType = eventType
            self.attempt = attempt
            self.succeeded = succeeded
            self.responseCode = responseCode
            self.error = error
            self.latencyMs = latencyMs
            self.nextAttemptAt = nextAttemptAt
        }
    }

    /// Logs the attempt, moves the outbox row on (done, failed for good, or due again; only while `owner` still
    /// holds its lease) and keeps the endpoint's failure streak, in one statement. Returns the streak after this
    /// attempt and when it began (nil after a success).
    public func recordWebhookAttempt(_ outcome: WebhookAttemptOutcome, owner: UUID) async throws -> (streak: Int, since: Date?) {
        let state = outcome.succeeded ? "succeeded" : (outcome.nextAttemptAt == nil ? "failed" : "pending")
        return try await withDeadline { [self] in
            let rows = try await client.query("""
                WITH logged AS (
                    INSERT INTO webhook_deliveries (outbox_id, endpoint_id, event_type, attempt, status, response_code, error, latency_ms,
                                                    next_attempt_at)
                    VALUES (\(outcome.outboxID), \(outcome.endpointID), \(outcome.eventType), \(outcome.attempt),
                            \(outcome.succeeded ? "succeeded" : "failed"), \(outcome.responseCode), \(outcome.error), \(outcome.latencyMs),
                            \(outcome.nextAttemptAt))
                ), moved AS (
                    UPDATE webhook_outbox SET attempts = \(outcome.attempt), lease_owner = NULL, state = \(state),
                        due_at = COALESCE(\(outcome.nextAttemptAt), now()),
                        finished_at = CASE WHEN \(state) = 'pending' THEN NULL ELSE now() END
                    WHERE id = \(outcome.outboxID) AND lease_owner = \(owner)
                )
                UPDATE webhook_endpoints SET
                    failure_streak = CASE WHEN \(outcome.succeeded) THEN 0 ELSE failure_streak + 1 END,
                    failure_streak_since = CASE WHEN \(outcome.succeeded) THEN NULL ELSE COALESCE(failure_streak_since, now()) END
                WHERE id = \(outcome.endpointID)
                RETURNING failure_streak, failure_streak_since
                """, logger: logger)
            for try await (streak, since) in rows.decode((Int, Date?).self) { return (streak, since) }
            return (0, nil)
        }
    }

    /// Disables an endpoint (Relay's decision: `gone_410`, `failure_streak`); its queued deliveries wait.
    public func disableWebhookEndpoint(id: UUID, reason: String) async throws {
        try await withDeadline { [self] in
            try await client.query("""
                UPDATE webhook_endpoints SET enabled = false, disabled_reason = \(reason), updated_at = now()
                WHERE id = \(id) AND enabled
                """, logger: logger)
        }
    }

    /// Gives back claims that were not attempted (graceful shutdown), so another node takes them at once.
    public func releaseWebhookClaims(owner: UUID, outboxIDs: [Int64]) async throws {
        if outboxIDs.isEmpty { return }
        try await withDeadline { [self] in
            try await client.query("""
                UPDATE webhook_outbox SET due_at = now(), lease_owner = NULL
                WHERE id = ANY(\(outboxIDs)::bigint[]) AND lease_owner = \(owner) AND state = 'pending'
                """, logger: logger)
        }
    }

    /// Deletes delivery log rows and finished outbox rows older than `retention`; returns how many rows went.
    @discardableResult
    public func pruneWebhookHistory(retention: Duration) async throws -> Int {
        try await withDeadline(.seconds(60)) { [self] in
            let seconds = retention.seconds
            let rows = try await client.query("""
                WITH log AS (
                    DELETE FROM webhook_deliveries WHERE at < now() - make_interval(secs => \(seconds)) RETURNING 1
                ), outbox AS (
                    DELETE FROM webhook_outbox
                    WHERE state <> 'pending' AND finished_at < now() - make_interval(secs => \(seconds)) RETURNING 1
                )
                SELECT (SELECT count(*) FROM log) + (SELECT count(*) FROM outbox)
                """, logger: logger)
            for try await count in rows.decode(Int.self) { return count }
            return 0
        }
    }
}
