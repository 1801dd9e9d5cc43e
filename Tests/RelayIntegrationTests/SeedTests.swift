import Foundation
import Logging
import PostgresNIO
import RelayCore
import RelayStore
import RelayTestSupport
import Testing

/// `relay dev seed`'s generator against a real PostgreSQL: the rows it writes agree with each other the way the
/// accept path and the worker's `complete` would leave them, and the statistics agree exactly with the events.
private let testLogger = Logger(label: "test")

@Suite struct SeedTests {
    func withStore(_ body: (RelayDatabase) async throws -> Void) async throws {
        let url = try await TestDatabase.create()
        let (database, task) = try TestDatabase.connect(url)
        defer { task.cancel() }
        try await Migrator(client: database.client, logger: testLogger).migrate()
        try await body(database)
    }

    func count(_ database: RelayDatabase, _ sql: String) async throws -> Int {
        let rows = try await database.client.query(PostgresQuery(unsafeSQL: sql), logger: testLogger)
        for try await value in rows.decode(Int.self) { return value }
        return 0
    }

    /// Counts per recipient status, event type and attempts of one tenant.
    func profile(_ database: RelayDatabase, tenant: UUID) async throws -> [String: Int] {
        let rows = try await database.client.query("""
            SELECT 'status:' || status, count(*)::bigint FROM recipients WHERE tenant_id = \(tenant) GROUP BY status
            UNION ALL
            SELECT 'event:' || type, count(*)::bigint FROM events WHERE tenant_id = \(tenant) GROUP BY type
            UNION ALL
            SELECT 'attempts', count(*)::bigint FROM attempts WHERE tenant_id = \(tenant)
            UNION ALL
            SELECT 'messages', count(*)::bigint FROM messages WHERE tenant_id = \(tenant)
            UNION ALL
            SELECT 'queue', count(*)::bigint FROM queue q JOIN recipients r ON r.id = q.recipient_id WHERE r.tenant_id = \(tenant)
            """, logger: testLogger)
        var result: [String: Int] = [:]
        for try await (key, value) in rows.decode((String, Int).self) { result[key] = value }
        return result
    }

    @Test func seededLogIsConsistentAndTheStatisticsMatchTheEvents() async throws {
        try await withStore { database in
            let (tenant, _) = try await database.createTenant(name: "seed")
            // Several chunks, so that rollups of one hour are added to across transactions.
            let counts = try await database.seed(tenantID: tenant.id, messages: 5000, days: 30, seed: 7, chunkSize: 1500)
            #expect(counts.messages == 5000)
            #expect(try await count(database, "SELECT count(*)::bigint FROM messages") == 5000)
            #expect(try await count(database, "SELECT count(*)::bigint FROM recipients") == counts.recipients)
            #expect(try await count(database, "SELECT count(*)::bigint FROM events") == counts.events)
            #expect(try await count(database, "SELECT count(*)::bigint FROM attempts") == counts.attempts)
            #expect(try await count(database, "SELECT count(*)::bigint FROM queue") == counts.inFlight)
            #expect(counts.recipients > 5500 && counts.recipients < 7000, "1.25 recipients per message on average")

            // Every message has a recipient; every recipient an accepted event at the message's creation.
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM messages m WHERE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id)
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM recipients r JOIN messages m ON m.id = r.message_id
                WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.recipient_id = r.id AND e.type = 'accepted' AND e.at = m.created_at)
                """) == 0)
            // A recipient's status is its last event's type (accepted: still queued); its attempts count is the
            // last event's attempt number.
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM recipients r
                CROSS JOIN LATERAL (SELECT type, attempt FROM events e WHERE e.recipient_id = r.id ORDER BY e.at DESC, e.id DESC LIMIT 1) l
                WHERE r.status <> CASE l.type WHEN 'accepted' THEN 'queued' ELSE l.type END OR r.attempts <> l.attempt
                """) == 0)
            // Event ids follow time within each recipient's history (the API orders a message's events by id).
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM (
                    SELECT at, lag(at) OVER (PARTITION BY recipient_id ORDER BY id) AS previous FROM events) x
                WHERE at < previous
                """) == 0)
            // Nothing in the default partitions; nothing in the future.
            #expect(try await count(database, "SELECT count(*)::bigint FROM events_default") == 0)
            #expect(try await count(database, "SELECT count(*)::bigint FROM attempts_default") == 0)
            #expect(try await count(database, "SELECT count(*)::bigint FROM events WHERE at > now()") == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM messages WHERE created_at < now() - interval '30 days 1 minute'
                """) == 0)
            // Message ids sort like created_at (UUIDv7 from the creation time).
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM (SELECT created_at, lag(created_at) OVER (ORDER BY id) AS previous FROM messages) x
                WHERE created_at < previous
                """) == 0)

            // Only queued and deferred recipients are in the queue, none due within a day (nothing is ever sent).
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM recipients r
                WHERE (r.status IN ('queued', 'deferred')) <> EXISTS (SELECT 1 FROM queue q WHERE q.recipient_id = r.id)
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM queue q JOIN recipients r ON r.id = q.recipient_id
                WHERE q.due_at < now() + interval '23 hours' OR q.lease_owner IS NOT NULL OR r.next_attempt_at <> q.due_at
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM message_bodies b WHERE NOT EXISTS (
                    SELECT 1 FROM queue q WHERE q.message_id = b.message_id)
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM queue q WHERE NOT EXISTS (SELECT 1 FROM message_bodies b WHERE b.message_id = q.message_id)
                """) == 0)

            // Roughly the intended mix (the exact shares depend on the seed).
            let total = Double(counts.recipients)
            let status = try await profile(database, tenant: tenant.id)
            let share = { (name: String) in Double(status["status:" + name] ?? 0) / total }
            #expect(share("delivered") > 0.92 && share("delivered") < 0.97)
            #expect(share("bounced") > 0.015 && share("bounced") < 0.045)
            #expect(share("queued") > 0.003 && share("queued") < 0.02)
            #expect(share("deferred") > 0.003 && share("deferred") < 0.02)
            #expect(share("failed") > 0.001 && share("failed") < 0.012)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM recipients WHERE status = 'queued' AND updated_at < now() - interval '1 hour'
                """) == 0, "queued recipients were accepted in the last hour")
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM recipients WHERE status = 'failed' AND reason IS DISTINCT FROM 'expired'
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM recipients WHERE status = 'delivered' AND (last_code <> 250 OR last_mx IS NULL)
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM recipients WHERE status = 'bounced' AND last_code NOT IN (550, 552)
                """) == 0)

            // The hourly rollups agree exactly with the events, per tenant and hour.
            #expect(try await count(database, """
                WITH ev AS (
                    SELECT tenant_id, date_trunc('hour', at, 'UTC') AS hour,
                           count(*) FILTER (WHERE type = 'accepted') AS accepted, count(*) FILTER (WHERE type = 'delivered') AS delivered,
                           count(*) FILTER (WHERE type = 'deferred') AS deferred, count(*) FILTER (WHERE type = 'bounced' AND reply_enhanced LIKE '5.1.%') AS bounced_hard,
                           count(*) FILTER (WHERE type = 'bounced' AND reply_enhanced NOT LIKE '5.1.%') AS bounced_soft,
                           count(*) FILTER (WHERE type = 'failed') AS failed
                    FROM events GROUP BY 1, 2
                ), st AS (
                    SELECT tenant_id, hour, sum(accepted)::bigint AS accepted, sum(delivered)::bigint AS delivered,
                           sum(deferred)::bigint AS deferred, sum(bounced_hard)::bigint AS bounced_hard,
                           sum(bounced_soft)::bigint AS bounced_soft, sum(failed)::bigint AS failed
                    FROM stats_hourly GROUP BY 1, 2
                )
                SELECT count(*)::bigint FROM ev FULL JOIN st USING (tenant_id, hour)
                WHERE (ev.accepted, ev.delivered, ev.deferred, ev.bounced_hard, ev.bounced_soft, ev.failed)
                      IS DISTINCT FROM (st.accepted, st.delivered, st.deferred, st.bounced_hard, st.bounced_soft, st.failed)
                """) == 0)
            // The daily rollups too.
            #expect(try await count(database, """
                WITH ev AS (
                    SELECT tenant_id, date_trunc('day', at, 'UTC') AS day,
                           count(*) FILTER (WHERE type = 'accepted') AS accepted, count(*) FILTER (WHERE type = 'delivered') AS delivered,
                           count(*) FILTER (WHERE type = 'deferred') AS deferred, count(*) FILTER (WHERE type = 'bounced' AND reply_enhanced LIKE '5.1.%') AS bounced_hard,
                           count(*) FILTER (WHERE type = 'bounced' AND reply_enhanced NOT LIKE '5.1.%') AS bounced_soft,
                           count(*) FILTER (WHERE type = 'failed') AS failed
                    FROM events GROUP BY 1, 2
                ), st AS (
                    SELECT tenant_id, day, sum(accepted)::bigint AS accepted, sum(delivered)::bigint AS delivered,
                           sum(deferred)::bigint AS deferred, sum(bounced_hard)::bigint AS bounced_hard,
                           sum(bounced_soft)::bigint AS bounced_soft, sum(failed)::bigint AS failed
                    FROM stats_daily GROUP BY 1, 2
                )
                SELECT count(*)::bigint FROM ev FULL JOIN st USING (tenant_id, day)
                WHERE (ev.accepted, ev.delivered, ev.deferred, ev.bounced_hard, ev.bounced_soft, ev.failed)
                      IS DISTINCT FROM (st.accepted, st.delivered, st.deferred, st.bounced_hard, st.bounced_soft, st.failed)
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM (
                    SELECT tenant_id, date_trunc('day', hour, 'UTC'), domain, provider, sum(accepted), sum(delivered),
                           sum(deferred), sum(bounced_hard), sum(bounced_soft), sum(failed) FROM stats_hourly GROUP BY 1, 2, 3, 4
                    EXCEPT ALL
                    SELECT tenant_id, day, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft, failed
                    FROM stats_daily) x
                """) == 0, "daily rows are the sums of the hourly rows, per domain and provider")
            #expect(try await count(database, "SELECT count(*)::bigint FROM stats_hourly_pending") == 0)
            let delivered = try await count(database, "SELECT count(*)::bigint FROM events WHERE type = 'delivered'")
            #expect(delivered > 0)
            #expect(try await count(database, "SELECT COALESCE(sum(count), 0)::bigint FROM stats_latency_hourly") == delivered)
            // Latency per hour and bucket, recomputed from the events.
            #expect(try await count(database, """
                WITH ev AS (
                    SELECT e.tenant_id, date_trunc('hour', e.at, 'UTC') AS hour,
                           relay_latency_bucket(extract(epoch FROM e.at - m.created_at) * 1000) AS bucket, count(*) AS n
                    FROM events e JOIN messages m ON m.id = e.message_id WHERE e.type = 'delivered' GROUP BY 1, 2, 3
                )
                SELECT count(*)::bigint FROM ev FULL JOIN stats_latency_hourly s USING (tenant_id, hour, bucket)
                WHERE ev.n IS DISTINCT FROM s.count
                """) == 0)
            #expect(try await count(database, """
                WITH ev AS (
                    SELECT tenant_id, date_trunc('hour', at, 'UTC') AS hour, reply_code AS code,
                           COALESCE(reply_enhanced, '') AS enhanced, count(*) AS n
                    FROM events WHERE reply_code >= 400 GROUP BY 1, 2, 3, 4
                )
                SELECT count(*)::bigint FROM ev FULL JOIN stats_errors_hourly s USING (tenant_id, hour, code, enhanced)
                WHERE ev.n IS DISTINCT FROM s.count
                """) == 0)

            // Providers in the rollups are what MailboxProvider.classify says for the MX each domain was tried at.
            let pairs = try await database.client.query("""
                SELECT DISTINCT e.mx, r.domain, s.provider FROM events e
                JOIN recipients r ON r.id = e.recipient_id
                JOIN stats_hourly s ON s.tenant_id = e.tenant_id AND s.hour = date_trunc('hour', e.at, 'UTC') AND s.domain = r.domain
                WHERE e.type IN ('delivered', 'bounced') AND s.delivered + s.bounced_hard > 0
                """, logger: testLogger)
            var checked = 0
            var providers: Set<String> = []
            for try await (mx, domain, provider) in pairs.decode((String, String, String).self) {
                #expect(MailboxProvider.classify(mx: mx, domain: domain).rawValue == provider, "\(mx) for \(domain)")
                providers.insert(provider)
                checked += 1
            }
            #expect(checked > 0)
            #expect(providers == ["google", "microsoft", "yahoo", "apple", "other"])

            // Attempts: each one has events, each attempt event its attempt; transcripts name the recipients.
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM events e WHERE e.attempt_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.id = e.attempt_id AND a.message_id = e.message_id)
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM attempts a WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.attempt_id = a.id)
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM events e JOIN recipients r ON r.id = e.recipient_id JOIN attempts a ON a.id = e.attempt_id
                WHERE e.remote_ip IS NOT NULL AND position('RCPT TO:<' || r.email || '>' IN a.transcript::text) = 0
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM events WHERE type IN ('delivered', 'bounced', 'deferred')
                AND (attempt_id IS NULL OR mx IS NULL OR attempt < 1 OR duration_ms IS NULL)
                """) == 0)
            #expect(try await count(database, """
                SELECT count(*)::bigint FROM events WHERE remote_ip IS NOT NULL
                AND NOT (remote_ip LIKE '192.0.2.%' OR remote_ip LIKE '198.51.100.%')
                """) == 0)

            // The API's own readers take the seeded rows: a delivered message's attempts with decoded transcripts,
            // and statistics whose totals are the event counts.
            let sample = try await database.client.query("""
                SELECT e.message_id FROM events e WHERE e.type = 'delivered' AND e.remote_ip IS NOT NULL ORDER BY e.id LIMIT 1
                """, logger: testLogger)
            var messageID: UUID?
            for try await id in sample.decode(UUID.self) { messageID = id }
            let delivered1 = try #require(messageID)
            let attempts = try #require(try await database.attempts(messageID: delivered1, tenantID: tenant.id))
            #expect(!attempts.isEmpty)
            let last = try #require(attempts.last)
            #expect(last.transcript.count >= 6)
            #expect(last.transcript.first?.direction == "info")
            #expect(last.transcript.last.map { $0.direction == "server" && $0.text.hasPrefix("250") } == true)
            #expect(last.outcomes.contains { $0.type == "delivered" })
            #expect(zip(last.transcript, last.transcript.dropFirst()).allSatisfy { $0.at <= $1.at })
            let events = try #require(try await database.events(messageID: delivered1, tenantID: tenant.id))
            #expect(events.first?.type == "accepted")

            let profile = try await profile(database, tenant: tenant.id)
            for bucket in [RelayDatabase.StatsBucket.day, .hour] {
                // A range that starts and ends mid-day, so that both whole days and edge hours are read.
                let report = try await database.stats(tenantID: tenant.id, since: Date().addingTimeInterval(-35.5 * 86_400),
                                                      until: Date().addingTimeInterval(3600), bucket: bucket,
                                                      domainLimit: 1000)
                let totals = report.series.map(\.counters).reduce(StatsCounters(), +)
                #expect(totals.accepted == counts.recipients)
                #expect(totals.delivered == profile["event:delivered"] ?? 0)
                #expect(totals.deferred == profile["event:deferred"] ?? 0)
                #expect(totals.bouncedHard + totals.bouncedSoft == profile["event:bounced"] ?? 0)
                #expect(totals.failed == profile["event:failed"] ?? 0)
                let byProvider = report.providers.map(\.counters).reduce(StatsCounters(), +)
                let byDomain = report.domains.map(\.counters).reduce(StatsCounters(), +)
                #expect(byProvider == totals)
                #expect(byDomain == totals)
                #expect(report.providers.count == 5)
                #expect(!report.topErrors.isEmpty)
            }
        }
    }

    @Test func theSameSeedGivesTheSameCounts() async throws {
        try await withStore { database in
            let (first, _) = try await database.createTenant(name: "first")
            let (second, _) = try await database.createTenant(name: "second")
            let (other, _) = try await database.createTenant(name: "other")
            // Different clocks (a second apart), same seed: the same rows, shifted in time.
            let now = Date()
            let a = try await database.seed(tenantID: first.id, messages: 2000, days: 10, seed: 42, chunkSize: 700, now: now)
            let b = try await database.seed(tenantID: second.id, messages: 2000, days: 10, seed: 42, chunkSize: 2000,
                                            now: now.addingTimeInterval(-1))
            let c = try await database.seed(tenantID: other.id, messages: 2000, days: 10, seed: 43, now: now)
            #expect(a == b)
            let profileA = try await profile(database, tenant: first.id)
            #expect(profileA == (try await profile(database, tenant: second.id)))
            #expect(profileA != (try await profile(database, tenant: other.id)) || a != c)
            // Row by row: the same recipients, subjects and outcomes in the same order.
            let digest = { (tenant: UUID) async throws -> String in
                let rows = try await database.client.query("""
                    SELECT md5(string_agg(m.subject || '|' || r.email || '|' || r.status || '|' || r.attempts || '|'
                                          || COALESCE(r.last_code::text, '-'), ',' ORDER BY m.created_at, r.id))
                    FROM messages m JOIN recipients r ON r.message_id = m.id WHERE m.tenant_id = \(tenant)
                    """, logger: testLogger)
                for try await value in rows.decode(String.self) { return value }
                return ""
            }
            #expect(try await digest(first.id) == (try await digest(second.id)))
            #expect(try await digest(first.id) != (try await digest(other.id)))
        }
    }
}
