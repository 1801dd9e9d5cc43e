import Foundation
import NIOCore
import PostgresNIO
import RelayCore

/// A recipient claimed for delivery, with what the worker needs to deliver it.
public struct ClaimedRecipient: Sendable, Hashable {
    public var recipientID: Int64
    public var messageID: UUID
    public var tenantID: UUID
    public var email: String
    public var domain: String
    /// Attempts made before this one.
    public var attempts: Int
    public var mailFrom: String
    public var requiresSMTPUTF8: Bool
    public var expiresAt: Date
    /// The suppression list's reason when the address was listed after the message was accepted: then it is
    /// not attempted.
    public var suppressedReason: String?
    /// Relay hosts the message's unsubscribe link: List-Unsubscribe is added for this recipient at delivery.
    public var hostedUnsubscribe = false

    /// Creates the value (the store builds these from claim rows; tests build them directly).
    public init(recipientID: Int64, messageID: UUID, tenantID: UUID, email: String, domain: String, attempts: Int,
                mailFrom: String, requiresSMTPUTF8: Bool, expiresAt: Date, suppressedReason: String? = nil) {
        self.suppressedReason = suppressedReason
        self.recipientID = recipientID
        self.messageID = messageID
        self.tenantID = tenantID
        self.email = email
        self.domain = domain
        self.attempts = attempts
        self.mailFrom = mailFrom
        self.requiresSMTPUTF8 = requiresSMTPUTF8
        self.expiresAt = expiresAt
    }
}

/// The result of one attempt for one recipient, to be written in a batch.
public struct CompletedDelivery: Sendable {
    public var recipientID: Int64
    /// The new state (`queued` for a 452 re-queue, `deferred`, or a final state).
    public var status: RecipientStatus
    /// Whether this counts as an attempt (a re-queue or an expiry found at claim time does not).
    public var countsAsAttempt: Bool
    /// When the recipient may be tried again (only for `queued`/`deferred`).
    public var nextAttemptAt: Date?
    public var reply: DeliveryReply?
    /// Text for humans when there was no SMTP reply (network or DNS failure, expiry).
    public var detail: String?
    /// The MX host that answered (or that was tried last).
    public var mx: String?
    /// Failure reason label for `failed` (e.g. `expired`).
    public var reason: String?
    public var durationMs: Int
    /// The `attempts` row that holds this attempt's transcript (nil when no SMTP attempt was made).
    public var attemptID: UUID?
    /// The address of the server that answered, and the TLS version of the session (nil: not encrypted).
    public var remoteIP: String?
    public var tlsVersion: String?
    /// The mailbox provider, for the statistics.
    public var provider: MailboxProvider
    /// Whether the address goes on the tenant's suppression list (a hard bounce), with the message as source.
    public var suppress: Bool = false

    /// Creates the value.
    public init(recipientID: Int64, status: RecipientStatus, countsAsAttempt: Bool, nextAttemptAt: Date?,
                reply: DeliveryReply?, detail: String?, mx: String?, reason: String?, durationMs: Int,
                attemptID: UUID? = nil, remoteIP: String? = nil, tlsVersion: String? = nil,
                provider: MailboxProvider = .other) {
        self.recipientID = recipientID
        self.status = status
        self.countsAsAttempt = countsAsAttempt
        self.nextAttemptAt = nextAttemptAt
        self.reply = reply
        self.detail = detail
        self.mx = mx
        self.reason = reason
        self.durationMs = durationMs
        self.attemptID = attemptID
        self.remoteIP = remoteIP
        self.tlsVersion = tlsVersion
        self.provider = provider
    }
}

/// One SMTP attempt (one message to one domain) with its transcript, stored with the outcomes it produced.
public struct AttemptLog: Sendable {
    public var id: UUID
    public var tenantID: UUID
    public var messageID: UUID
    public var startedAt: Date
    public var domain: String
    public var mx: String?
    public var remoteIP: String?
    public var tlsVersion: String?
    public var durationMs: Int
    public var transcript: [TranscriptLine]

    /// Creates the value.
    public init(id: UUID, tenantID: UUID, messageID: UUID, startedAt: Date, domain: String, mx: String?,
                remoteIP: String?, tlsVersion: String?, durationMs: Int, transcript: [TranscriptLine]) {
        self.id = id
        self.tenantID = tenantID
        self.messageID = messageID
        self.startedAt = startedAt
        self.domain = domain
        self.mx = mx
        self.remoteIP = remoteIP
        self.tlsVersion = tlsVersion
        self.durationMs = durationMs
        self.transcript = transcript
    }
}

extension RelayDatabase {
    /// Claims up to `limit` due recipients for `owner`, stamping a lease of `lease`: the row's `due_at` becomes
    /// the lease expiry, so if the owner dies the row is due again after the lease without any sweeper.
    /// `FOR UPDATE SKIP LOCKED` lets any number of workers on any number of nodes claim concurrently without
    /// waiting on each other or claiming the same row.
    ///
    /// With `perDomain`, at most that many rows of one recipient domain are claimed, and none of the domains in
    /// `excluding` (those this node already has enough of in flight): a domain whose MX hosts are slow or dead
    /// then holds a bounded share of the worker, and the other domains keep flowing.
    public func claim(owner: UUID, limit: Int, lease: Duration, perDomain: Int? = nil,
                      excluding: [String] = []) async throws -> [ClaimedRecipient] {
        // Bounded like request-path calls, so that a worker whose database is down still notices a shutdown.
        try await withDeadline { [self] in
            try await claimNow(owner: owner, limit: limit, lease: lease, perDomain: perDomain, excluding: excluding)
        }
    }

    /// How many of the oldest due rows a claim that leaves out busy domains reads in due order before it looks
    /// domain by domain instead.
    public static let claimWindow = 2000

    private func claimNow(owner: UUID, limit: Int, lease: Duration, perDomain: Int?, excluding: [String]) async throws -> [ClaimedRecipient] {
        // The due rows: the oldest `limit` of a window 4 × wider, at most `perDomain` of them per domain.
        // Busy domains are left out. Reading the due rows in order and skipping theirs would cost the length of
        // their backlog (29 ms with 184,000 rows of one busy domain; docs/benchmarks.md), so
        // only the oldest `Self.claimWindow` due rows are read that way. When all of those are left out, the due
        // rows of the other domains are found through `queue_domain_due` instead: a skip scan over the distinct
        // domains (recursive CTE, one index probe per domain), then each one's oldest rows.
        let perDomain = perDomain ?? limit
        let window = excluding.isEmpty ? limit * 4 : Self.claimWindow
        let rows = try await client.query("""
            WITH RECURSIVE oldest AS (
                SELECT recipient_id, domain, due_at FROM queue WHERE due_at <= now() ORDER BY due_at LIMIT \(window)
            ), in_order AS (
                SELECT recipient_id, domain, due_at FROM oldest
                WHERE NOT (domain = ANY(\(excluding)::text[])) ORDER BY due_at LIMIT \(limit * 4)
            ), domains AS (
                (SELECT domain FROM queue ORDER BY domain LIMIT 1)
                UNION ALL
                SELECT (SELECT q.domain FROM queue q WHERE q.domain > d.domain ORDER BY q.domain LIMIT 1)
                FROM domains d WHERE d.domain IS NOT NULL
            ), by_domain AS (
                SELECT o.recipient_id, o.domain, o.due_at
                FROM domains d CROSS JOIN LATERAL (
                    SELECT q.recipient_id, q.domain, q.due_at FROM queue q
                    WHERE q.domain = d.domain AND q.due_at <= now() ORDER BY q.due_at LIMIT \(perDomain)
                ) o
                WHERE d.domain IS NOT NULL AND NOT (d.domain = ANY(\(excluding)::text[]))
                ORDER BY o.due_at LIMIT \(limit * 4)
            ), candidates AS (
                SELECT * FROM in_order
                UNION ALL
                -- Only when the window was full and held nothing but busy domains' rows (a one-time filter:
                -- otherwise by_domain is not run at all).
                SELECT * FROM by_domain
                WHERE cardinality(\(excluding)::text[]) > 0 AND (SELECT count(*) FROM oldest) >= \(window)
                  AND NOT EXISTS (SELECT 1 FROM in_order)
            ), ranked AS (
                SELECT recipient_id, due_at, row_number() OVER (PARTITION BY domain ORDER BY due_at) AS n FROM candidates
            ), due AS (
                SELECT q.recipient_id, q.message_id FROM queue q JOIN ranked ON ranked.recipient_id = q.recipient_id
                WHERE ranked.n <= \(perDomain) AND q.due_at <= now()
                ORDER BY ranked.due_at LIMIT \(limit) FOR UPDATE OF q SKIP LOCKED
            ), checked AS (
                -- Rows of a tenant the reputation guard paused are held, not claimed: due at 'infinity' until an
                -- admin resumes the tenant (resumeTenant makes them due again).
                SELECT due.recipient_id,
                       EXISTS (SELECT 1 FROM messages m JOIN tenants t ON t.id = m.tenant_id
                               WHERE m.id = due.message_id AND t.paused_at IS NOT NULL) AS held
                FROM due
            ), claimed AS (
                UPDATE queue q
                SET due_at = CASE WHEN checked.held THEN 'infinity'::timestamptz
                                  ELSE now() + make_interval(secs => \(lease.seconds)) END,
                    lease_owner = CASE WHEN checked.held THEN NULL ELSE \(owner)::uuid END
                FROM checked WHERE q.recipient_id = checked.recipient_id
                RETURNING q.recipient_id, q.message_id, q.domain, q.lease_owner
            )
            SELECT c.recipient_id, c.message_id, m.tenant_id, r.email, c.domain, r.attempts, m.mail_from, m.smtputf8, m.expires_at,
                   m.hosted_unsubscribe,
                   -- Listed since the accept (e.g. a hard bounce of another message): not to be attempted.
                   (SELECT s.reason FROM suppressions s
                    WHERE s.tenant_id = m.tenant_id AND s.email_lower = lower(r.email)
                      AND (s.expires_at IS NULL OR s.expires_at > now()))
            FROM claimed c JOIN recipients r ON r.id = c.recipient_id JOIN messages m ON m.id = c.message_id
            WHERE c.lease_owner IS NOT NULL
            ORDER BY c.message_id, c.domain, c.recipient_id
            """, logger: logger)
        var claimed: [ClaimedRecipient] = []
        for try await (id, messageID, tenantID, email, domain, attempts, mailFrom, utf8, expires, hosted, suppressed) in rows.decode(
            (Int64, UUID, UUID, String, String, Int, String, Bool, Date, Bool, String?).self) {
            var recipient = ClaimedRecipient(recipientID: id, messageID: messageID, tenantID: tenantID, email: email,
                                             domain: domain, attempts: attempts, mailFrom: mailFrom,
                                             requiresSMTPUTF8: utf8, expiresAt: expires, suppressedReason: suppressed)
            recipient.hostedUnsubscribe = hosted
            claimed.append(recipient)
        }
        return claimed
    }

    /// Writes many outcomes in one statement: queue rows of in-flight recipients get their next due time and lose
    /// the lease, final ones leave the queue, recipients get their new state, every attempt an event, the
    /// attempts their transcript rows, and the statistics their deltas (`stats_*_pending`).
    /// Only rows still leased by `owner` are touched, so a node that lost its lease cannot overwrite the work of
    /// the node that took over. Rows are given in id order so concurrent writers lock in the same order.
    /// Returns how many outcomes were applied.
    @discardableResult
    public func complete(_ outcomes: [CompletedDelivery], attempts: [AttemptLog] = [], owner: UUID,
                         softBounces: SoftBouncePolicy = SoftBouncePolicy()) async throws -> Int {
        let softLimit = softBounces.limit
        let softSeconds = Double(softBounces.suppression.components.seconds)
        if outcomes.isEmpty && attempts.isEmpty { return 0 }
        let sorted = outcomes.sorted { $0.recipientID < $1.recipientID }
        let ids = sorted.map(\.recipientID)
        let statuses = sorted.map(\.status.rawValue)
        let increments = sorted.map { $0.countsAsAttempt ? 1 : 0 }
        let epoch = Date(timeIntervalSince1970: 0)
        let nexts = sorted.map { $0.nextAttemptAt ?? epoch }
        let codes = sorted.map { $0.reply?.code ?? 0 }
        let enhanced = sorted.map { $0.reply?.enhanced ?? "" }
        let texts = sorted.map { $0.reply?.text ?? $0.detail ?? "" }
        let mxs = sorted.map { $0.mx ?? "" }
        let reasons = sorted.map { $0.reason ?? "" }
        let durations = sorted.map(\.durationMs)
        let attemptIDs = sorted.map { $0.attemptID?.uuidString ?? "" }
        let remoteIPs = sorted.map { $0.remoteIP ?? "" }
        let tlsVersions = sorted.map { $0.tlsVersion ?? "" }
        let providers = sorted.map(\.provider.rawValue)
        let suppress = sorted.map(\.suppress)

        let attemptRowIDs = attempts.map(\.id)
        let attemptTenants = attempts.map(\.tenantID)
        let attemptMessages = attempts.map(\.messageID)
        let attemptStarts = attempts.map(\.startedAt)
        let attemptDomains = attempts.map(\.domain)
        let attemptMXs = attempts.map { $0.mx ?? "" }
        let attemptIPs = attempts.map { $0.remoteIP ?? "" }
        let attemptTLS = attempts.map { $0.tlsVersion ?? "" }
        let attemptDurations = attempts.map(\.durationMs)
        let transcripts = try attempts.map { try TranscriptCoding.encode($0.transcript) }
        // Bounded, so a call lost in an outage cannot stall the writer for good; a retry after a commit the
        // client never heard of is harmless (only rows still leased by `owner` change, attempts are kept once).
        return try await withDeadline(requestTimeout * 6) { [self] in
        let rows = try await client.query("""
            WITH o AS (
                SELECT * FROM unnest(\(ids)::bigint[], \(statuses)::text[], \(increments)::int[], \(nexts)::timestamptz[],
                                     \(codes)::int[], \(enhanced)::text[], \(texts)::text[], \(mxs)::text[],
                                     \(reasons)::text[], \(durations)::int[], \(attemptIDs)::text[], \(remoteIPs)::text[],
                                     \(tlsVersions)::text[], \(providers)::text[], \(suppress)::bool[])
                    AS o(id, status, inc, next_at, code, enhanced, text, mx, reason, duration, attempt_id, remote_ip,
                         tls_version, provider, suppress)
            ), kept AS (
                UPDATE queue q SET due_at = o.next_at, lease_owner = NULL
                FROM o WHERE q.recipient_id = o.id AND q.lease_owner = \(owner) AND o.status IN ('queued', 'deferred')
                RETURNING q.recipient_id
            ), gone AS (
                DELETE FROM queue q USING o
                WHERE q.recipient_id = o.id AND q.lease_owner = \(owner) AND o.status NOT IN ('queued', 'deferred')
                RETURNING q.recipient_id
            ), owned AS (
                SELECT recipient_id FROM kept UNION ALL SELECT recipient_id FROM gone
            ), upd AS (
                UPDATE recipients r SET
                    status = o.status,
                    attempts = r.attempts + o.inc,
                    next_attempt_at = CASE WHEN o.status IN ('queued', 'deferred') THEN o.next_at END,
                    last_code = CASE WHEN o.inc = 1 OR o.code <> 0 THEN NULLIF(o.code, 0) ELSE r.last_code END,
                    last_enhanced = CASE WHEN o.inc = 1 OR o.code <> 0 THEN NULLIF(o.enhanced, '') ELSE r.last_enhanced END,
                    last_text = CASE WHEN o.inc = 1 OR o.text <> '' THEN NULLIF(o.text, '') ELSE r.last_text END,
                    last_mx = COALESCE(NULLIF(o.mx, ''), r.last_mx),
                    reason = NULLIF(o.reason, ''),
                    updated_at = now()
                FROM o JOIN owned ON owned.recipient_id = o.id
                WHERE r.id = o.id
                RETURNING r.id, r.message_id, r.tenant_id, r.attempts, r.domain, r.email
            ), written AS (
                SELECT upd.*, o.status, o.code, o.enhanced, o.text, o.mx, o.duration, o.attempt_id, o.remote_ip,
                       o.tls_version, o.provider, o.suppress
                FROM upd JOIN o ON o.id = upd.id WHERE o.status <> 'queued'
            ), streak AS (
                -- A soft bounce (a 5xx about the message, not the address) counts towards the address's streak.
                INSERT INTO soft_bounce_streaks AS s (tenant_id, email_lower, count, first_at, last_at)
                SELECT DISTINCT ON (tenant_id, lower(email)) tenant_id, lower(email), 1, now(), now()
                FROM written WHERE status = 'bounced' AND NOT suppress
                ORDER BY tenant_id, lower(email)
                ON CONFLICT (tenant_id, email_lower) DO UPDATE SET
                    count = CASE WHEN s.first_at > now() - interval '1 day' THEN s.count + 1 ELSE 1 END,
                    first_at = CASE WHEN s.first_at > now() - interval '1 day' THEN s.first_at ELSE now() END,
                    last_at = now()
                RETURNING s.tenant_id, s.email_lower, s.count
            ), suppressed AS (
                -- A hard bounce puts the address on the tenant's list for good, a soft-bounce streak for a while
                -- (a live entry is kept as it is; an expired or expiring one gives way to a permanent one).
                INSERT INTO suppressions AS s (tenant_id, email_lower, email, reason, source_message_id, expires_at)
                SELECT DISTINCT ON (w.tenant_id, lower(w.email)) w.tenant_id, lower(w.email), w.email,
                       CASE WHEN w.suppress THEN 'hard_bounce' ELSE 'soft_bounce' END, w.message_id,
                       CASE WHEN w.suppress THEN NULL ELSE now() + make_interval(secs => \(softSeconds)) END
                FROM written w
                LEFT JOIN streak ON streak.tenant_id = w.tenant_id AND streak.email_lower = lower(w.email)
                WHERE w.suppress OR (w.status = 'bounced' AND streak.count >= \(softLimit))
                ORDER BY w.tenant_id, lower(w.email), w.suppress DESC
                ON CONFLICT (tenant_id, email_lower) DO UPDATE SET
                    reason = excluded.reason, source_message_id = excluded.source_message_id, created_at = now(),
                    expires_at = excluded.expires_at
                WHERE s.expires_at IS NOT NULL AND (s.expires_at <= now() OR excluded.expires_at IS NULL)
            ), ev AS (
                INSERT INTO events (tenant_id, message_id, recipient_id, type, attempt, attempt_id, mx, remote_ip, tls_version,
                                    reply_code, reply_enhanced, reply_text, duration_ms)
                SELECT tenant_id, message_id, id, status, attempts, NULLIF(attempt_id, '')::uuid, NULLIF(mx, ''),
                       NULLIF(remote_ip, ''), NULLIF(tls_version, ''), NULLIF(code, 0), NULLIF(enhanced, ''),
                       NULLIF(text, ''), duration
                FROM written
            ), counts AS (
                INSERT INTO stats_hourly_pending (tenant_id, hour, domain, provider, delivered, deferred, bounced_hard,
                                                  bounced_soft, failed, suppressed)
                SELECT tenant_id, date_trunc('hour', now(), 'UTC'), domain, provider,
                       count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'deferred'),
                       count(*) FILTER (WHERE status = 'bounced' AND suppress),
                       count(*) FILTER (WHERE status = 'bounced' AND NOT suppress),
                       count(*) FILTER (WHERE status = 'failed'), count(*) FILTER (WHERE status = 'suppressed')
                FROM written GROUP BY tenant_id, domain, provider
            ), latency AS (
                INSERT INTO stats_latency_pending (tenant_id, hour, bucket, count)
                SELECT w.tenant_id, date_trunc('hour', now(), 'UTC'),
                       relay_latency_bucket(extract(epoch FROM now() - m.created_at) * 1000), count(*)
                FROM written w JOIN messages m ON m.id = w.message_id
                WHERE w.status = 'delivered' GROUP BY 1, 2, 3
            ), errors AS (
                INSERT INTO stats_errors_pending (tenant_id, hour, code, enhanced, count, sample)
                SELECT tenant_id, date_trunc('hour', now(), 'UTC'), code, enhanced, count(*), left(max(text), 200)
                FROM written WHERE code >= 400 GROUP BY tenant_id, code, enhanced
            ), att AS (
                INSERT INTO attempts (id, tenant_id, message_id, started_at, domain, mx, remote_ip, tls_version,
                                      duration_ms, transcript)
                SELECT a.id, a.tenant_id, a.message_id, a.started_at, a.domain, NULLIF(a.mx, ''), NULLIF(a.remote_ip, ''),
                       NULLIF(a.tls_version, ''), a.duration, a.transcript::jsonb
                FROM unnest(\(attemptRowIDs)::uuid[], \(attemptTenants)::uuid[], \(attemptMessages)::uuid[],
                            \(attemptStarts)::timestamptz[], \(attemptDomains)::text[], \(attemptMXs)::text[],
                            \(attemptIPs)::text[], \(attemptTLS)::text[], \(attemptDurations)::int[], \(transcripts)::text[])
                    AS a(id, tenant_id, message_id, started_at, domain, mx, remote_ip, tls_version, duration, transcript)
                ON CONFLICT DO NOTHING
            )
            SELECT count(*)::bigint FROM upd
            """, logger: logger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
        }
    }

    /// Extends the lease of rows this owner is still working on (deliveries can outlast a lease: RFC 5321
    /// allows 10 minutes for the reply to end of data).
    public func renewLeases(owner: UUID, recipientIDs: [Int64], lease: Duration) async throws {
        if recipientIDs.isEmpty { return }
        try await withDeadline { [self] in
            try await client.query("""
                UPDATE queue SET due_at = now() + make_interval(secs => \(lease.seconds))
                WHERE lease_owner = \(owner) AND recipient_id = ANY(\(recipientIDs)::bigint[])
                """, logger: logger)
        }
    }

    /// Gives claimed rows back (graceful shutdown before they were attempted): due at once, no owner.
    public func releaseLeases(owner: UUID, recipientIDs: [Int64]) async throws {
        if recipientIDs.isEmpty { return }
        try await withDeadline { [self] in
            try await client.query("""
                UPDATE queue SET due_at = now(), lease_owner = NULL
                WHERE lease_owner = \(owner) AND recipient_id = ANY(\(recipientIDs)::bigint[])
                """, logger: logger)
        }
    }

    /// The stored message bytes.
    public func messageBody(messageID: UUID) async throws -> ByteBuffer? {
        try await withDeadline(requestTimeout * 6) { [self] in
            let rows = try await client.query("SELECT body FROM message_bodies WHERE message_id = \(messageID)", logger: logger)
            for try await body in rows.decode(ByteBuffer.self) { return body }
            return nil
        }
    }

    /// Counts queue rows by state (waiting vs leased), for readiness output and tests.
    public func queueDepth() async throws -> (waiting: Int, leased: Int) {
        let rows = try await client.query("""
            SELECT count(*) FILTER (WHERE lease_owner IS NULL)::bigint, count(*) FILTER (WHERE lease_owner IS NOT NULL)::bigint FROM queue
            """, logger: logger)
        for try await (waiting, leased) in rows.decode((Int, Int).self) { return (waiting, leased) }
        return (0, 0)
    }
}
