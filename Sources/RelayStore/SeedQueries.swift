import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Row counts of a `relay dev seed` run (or of one chunk of it).
public struct SeedCounts: Sendable, Equatable {
    public var messages = 0
    public var recipients = 0
    public var events = 0
    public var attempts = 0
    /// Recipients left in flight (queued or deferred, with a queue row).
    public var inFlight = 0

    public init() {}

    static func + (lhs: SeedCounts, rhs: SeedCounts) -> SeedCounts {
        var sum = lhs
        sum.messages += rhs.messages
        sum.recipients += rhs.recipients
        sum.events += rhs.events
        sum.attempts += rhs.attempts
        sum.inFlight += rhs.inFlight
        return sum
    }
}

/// How a seed run lays its messages out in time and how likely each outcome is. Derived from the message count
/// and the number of days only, so that a seed run is deterministic for a given `--seed` whatever the clock says.
///
/// Messages are numbered 0..<N in time order. The last 2% are accepted in the last hour (a campaign being sent
/// right now: half of their recipients are still queued); the others are spread evenly over the days before.
/// Outcomes are drawn per (message, recipient domain) group, like the worker attempts them, with probabilities
/// scaled by the share of messages old or young enough for them, so that the overall shares come out near the
/// targets: delivered 92%, bounced 3%, deferred then delivered 2.5%, failed (expired) 0.5%, still deferred 1%,
/// queued 1%.
struct SeedLayout: Sendable {
    var messages: Int
    var days: Int
    /// Messages placed in the last hour (indices mainCount..<messages).
    var recentCount: Int
    var mainCount: Int { messages - recentCount }
    /// Probability that a group is still queued (recent messages), still deferred (younger than the lifetime),
    /// failed as expired (older than the lifetime), deferred once then delivered (any), and that a recipient of
    /// a delivered group bounces instead.
    var queued: Double
    var stillDeferred: Double
    var expired: Double
    var deferredThenDelivered: Double
    var bounced: Double

    init(messages: Int, days: Int) {
        self.messages = messages
        self.days = days
        recentCount = messages >= 50 ? Int((Double(messages) * 0.02).rounded()) : 0
        let hour = 3600.0
        let lifetime = 5 * 86_400.0
        let span = Double(days) * 86_400 - hour
        let mainShare = messages == 0 ? 0 : Double(messages - recentCount) / Double(messages)
        let recentShare = 1 - mainShare
        // Ages in the main segment run from 1 h to `days`; "young" is under the lifetime (less an hour of
        // margin), "old" is past it (plus an hour), so that the expiry lies well in the past.
        let youngShare = mainShare * max(0, min(lifetime - hour, Double(days) * 86_400) - hour) / span
        let oldShare = mainShare * max(0, Double(days) * 86_400 - (lifetime + hour)) / span
        queued = recentShare > 0 ? min(0.9, 0.01 / recentShare) : 0
        stillDeferred = youngShare > 0 ? min(0.5, 0.01 / youngShare) : 0
        expired = oldShare > 0 ? min(0.5, 0.005 / oldShare) : 0
        deferredThenDelivered = 0.025 / 0.975
        bounced = 0.03 / 0.975
    }
}

/// Shared by the workers of one seed run: the next chunk to take and the totals so far.
private final class SeedState: Sendable {
    private let next = Mutex(0)
    private let totals = Mutex(SeedCounts())

    /// The first message index of the next chunk, or nil when all are taken.
    func nextChunk(step: Int, limit: Int) -> Int? {
        next.withLock { low in
            guard low < limit else { return nil }
            defer { low += step }
            return low
        }
    }

    /// Adds a finished chunk; returns the new totals.
    func add(_ chunk: SeedCounts) -> SeedCounts {
        totals.withLock { total in
            total = total + chunk
            return total
        }
    }

    var total: SeedCounts { totals.withLock { $0 } }
}

extension RelayDatabase {
    /// The oldest tenant with this name, if any (names are not unique; `relay dev seed` reuses the first).
    public func tenantID(named name: String) async throws -> UUID? {
        let rows = try await client.query(
            "SELECT id FROM tenants WHERE name = \(name) ORDER BY created_at, id LIMIT 1", logger: logger)
        for try await id in rows.decode(UUID.self) { return id }
        return nil
    }

    /// Registers a sender domain unless the tenant has it already; returns whether it was added.
    @discardableResult
    public func ensureDomain(tenantID: UUID, name: String) async throws -> Bool {
        let rows = try await client.query("""
            INSERT INTO domains (tenant_id, name) VALUES (\(tenantID), \(name)) ON CONFLICT DO NOTHING RETURNING 1
            """, logger: logger)
        for try await _ in rows { return true }
        return false
    }

    /// Fills the delivery log with `messages` realistic messages of one tenant, accepted over the last `days`
    /// days: messages, recipients, queue rows for those still in flight, events, attempts with transcripts, and
    /// the hourly and daily statistics that summarise exactly those events (written with each chunk, so they
    /// agree with the events after any committed chunk; no rebuild needed). Deterministic for a given `seed` (the rows'
    /// contents and counts; times are relative to `now`, generated ids are not reproduced).
    ///
    /// Everything is set-based SQL: one transaction per chunk of `chunkSize` messages, built in temporary tables,
    /// so memory stays flat; `parallelism` connections work on chunks at once (PostgreSQL does the work, one core
    /// per connection). `progress` is called after each chunk with the totals so far. The tables are analyzed at
    /// the end.
    /// Nothing seeded is ever due soon: rows left in the queue are due no earlier than a day from now and not
    /// before their message expires, so a worker fails them as expired instead of contacting their (real)
    /// recipient domains.
    @discardableResult
    public func seed(tenantID: UUID, messages: Int, days: Int = 30, seed: Int64 = 1, chunkSize: Int = 50_000,
                     parallelism: Int = 2, now: Date = Date(),
                     progress: @escaping @Sendable (SeedCounts) -> Void = { _ in }) async throws -> SeedCounts {
        precondition(messages >= 0 && days >= 1 && chunkSize >= 1 && parallelism >= 1)
        let layout = SeedLayout(messages: messages, days: days)
        let t0 = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let logger = self.logger
        // Day partitions for every day the rows fall on, so that nothing piles up in the default ones.
        try await client.query("""
            SELECT relay_ensure_day_partitions('events', 'at', d.first, d.last),
                   relay_ensure_day_partitions('attempts', 'started_at', d.first, d.last)
            FROM (SELECT ((\(t0)::timestamptz - make_interval(days => \(days)::integer)) AT TIME ZONE 'UTC')::date AS first,
                         (\(t0)::timestamptz AT TIME ZONE 'UTC')::date AS last) d
            """, logger: logger)
        let state = SeedState()
        let workers = max(1, min(parallelism, (messages + chunkSize - 1) / chunkSize))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<workers {
                group.addTask { [client] in
                    try await client.withConnection { connection in
                        do {
                            for statement in Self.seedSetup {
                                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                            }
                            try await connection.query("""
                                INSERT INTO seed_params VALUES (\(tenantID), \(seed), \(t0), \(Int64(messages)),
                                    \(Int64(layout.mainCount)), \(days), \(layout.queued), \(layout.stillDeferred),
                                    \(layout.expired), \(layout.deferredThenDelivered), \(layout.bounced), 'relay.seed.example',
                                    hashtextextended(\(tenantID)::text || '/' || \(Int64(t0.timeIntervalSince1970)), \(seed)))
                                """, logger: logger)
                            while let low = state.nextChunk(step: chunkSize, limit: messages) {
                                let high = min(messages, low + chunkSize)
                                let chunk = try await Self.seedChunk(on: connection, low: low, high: high, logger: logger)
                                progress(state.add(chunk))
                            }
                            for statement in Self.seedTeardown {
                                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                            }
                        } catch {
                            for statement in Self.seedTeardown {
                                _ = try? await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                            }
                            throw error
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        // Fresh planner statistics, so that queries measured right after seeding get realistic plans (autovacuum
        // never analyzes the partitioned parents).
        try await client.query("""
            ANALYZE messages, recipients, queue, events, attempts, stats_hourly, stats_daily, stats_latency_hourly,
                    stats_errors_hourly
            """, logger: logger)
        return state.total
    }

    /// One chunk in one transaction, tried again after a deadlock or serialization failure (concurrent chunks
    /// add to the same statistics rows; they lock them in the same order, so this should not happen).
    private static func seedChunk(on connection: PostgresConnection, low: Int, high: Int, logger: Logger) async throws -> SeedCounts {
        var tries = 0
        while true {
            do {
                return try await connection.withTransaction(logger: logger) { connection in
                    try await seedChunkBody(on: connection, low: low, high: high, logger: logger)
                }
            } catch let error as PostgresTransactionError {
                let cause = error.closureError ?? error.commitError
                tries += 1
                guard tries < 3, cause?.isRetryableTransactionConflict == true else { throw cause ?? error }
            }
        }
    }

    private static func seedChunkBody(on connection: PostgresConnection, low: Int, high: Int, logger: Logger) async throws -> SeedCounts {
        try await connection.query("SET LOCAL synchronous_commit = off", logger: logger)
        try await connection.query("SET LOCAL work_mem = '64MB'", logger: logger)
        // JIT compilation costs more than it saves on these one-off statements (up to a second each).
        try await connection.query("SET LOCAL jit = off", logger: logger)
        for statement in seedChunkStatements {
            var binds = PostgresBindings()
            if statement.contains("$1") {
                binds.append(Int64(low))
                binds.append(Int64(high))
            }
            try await connection.query(PostgresQuery(unsafeSQL: statement, binds: binds), logger: logger)
        }
        let rows = try await connection.query("""
            SELECT (SELECT count(*) FROM seed_m)::bigint, (SELECT count(*) FROM seed_r)::bigint,
                   (SELECT count(*) FROM seed_e)::bigint, (SELECT count(*) FROM seed_a)::bigint,
                   (SELECT count(*) FROM seed_r r JOIN seed_g g ON g.idx = r.idx AND g.dn = r.dn
                    WHERE g.class IN ('Q', 'SD'))::bigint
            """, logger: logger)
        var counts = SeedCounts()
        for try await (m, r, e, a, q) in rows.decode((Int, Int, Int, Int, Int).self) {
            counts.messages = m
            counts.recipients = r
            counts.events = e
            counts.attempts = a
            counts.inFlight = q
        }
        return counts
    }

    // MARK: The SQL

    /// Session setup: deterministic random helpers, the recipient domains, and the per-chunk work tables
    /// (emptied at each commit).
    static let seedSetup: [String] = seedTeardown + [
        // A uniform number in [0, 1) from (seed, salt, n): the same inputs always give the same number.
        """
        CREATE FUNCTION pg_temp.seed_u(seed bigint, salt integer, n bigint) RETURNS double precision
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
        $$ SELECT (hashint8extended(n, seed # (salt::bigint * 2654435761)) & 9007199254740991)::double precision
                  / 9007199254740992.0 $$
        """,
        // A version-7 UUID whose first 48 bits are the Unix milliseconds of `ts` (so ids sort by time) and whose
        // other bits come from md5(seed, salt, n); ids use `id_seed`, which also depends on the tenant and the
        // clock, so that seeding twice (or two tenants) with the same --seed gives new ids. Declared STABLE like
        // extract(epoch FROM timestamptz): an IMMUTABLE one would not be inlined (7 µs a call instead of 2).
        """
        CREATE FUNCTION pg_temp.seed_uuid(ts timestamptz, seed bigint, salt integer, n bigint) RETURNS uuid
        LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT (lpad(to_hex(floor(extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7'
                   || substr(md5(seed::text || '/' || salt::text || '/' || n::text), 13, 3)
                   || substr('89ab', 1 + (hashint8extended(n, seed # salt) & 3)::integer, 1)
                   || substr(md5(seed::text || '/' || salt::text || '/' || n::text), 17, 15))::uuid $$
        """,
        // One transcript line as JSON, at position `pos` of 32 steps through an attempt of `dur` milliseconds.
        """
        CREATE FUNCTION pg_temp.seed_line(started timestamptz, dur integer, pos integer, direction text, body text)
        RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT '{"at":"' || to_char((started + make_interval(secs => (dur * pos)::double precision / 32000))
                                       AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                  || '","direction":"' || direction || '","text":' || to_json(body)::text || '}' $$
        """,
        """
        CREATE TEMP TABLE seed_params (
            tenant uuid NOT NULL, seed bigint NOT NULL, t0 timestamptz NOT NULL, n bigint NOT NULL,
            main_count bigint NOT NULL, days integer NOT NULL, pq double precision NOT NULL,
            psd double precision NOT NULL, pfx double precision NOT NULL, pdd double precision NOT NULL,
            pb double precision NOT NULL, helo text NOT NULL, id_seed bigint NOT NULL)
        """,
        // Recipient domains: the big consumer providers and 200 companies with Zipf-like volumes, a quarter of
        // them hosted at Google or Microsoft. MX names classify like MailboxProvider.classify; addresses are
        // from TEST-NET ranges (never contacted).
        """
        CREATE TEMP TABLE seed_domains (
            dn integer PRIMARY KEY, domain text NOT NULL, weight double precision NOT NULL, mx text NOT NULL,
            ip_prefix text NOT NULL, ip_first integer NOT NULL, ip_count integer NOT NULL, tls text,
            mx_provider text NOT NULL, domain_provider text NOT NULL, pooled boolean NOT NULL)
        """,
        """
        INSERT INTO seed_domains VALUES
            (1, 'gmail.com', 28, 'gmail-smtp-in.l.google.com', '192.0.2.', 26, 6, 'TLSv1.3', 'google', 'google', true),
            (2, 'outlook.com', 8, 'outlook-com.olc.protection.outlook.com', '192.0.2.', 100, 6, 'TLSv1.3', 'microsoft', 'microsoft', true),
            (3, 'hotmail.com', 5, 'hotmail-com.olc.protection.outlook.com', '192.0.2.', 110, 6, 'TLSv1.3', 'microsoft', 'microsoft', true),
            (4, 'yahoo.com', 6, 'mta5.am0.yahoodns.net', '192.0.2.', 200, 4, 'TLSv1.3', 'yahoo', 'yahoo', true),
            (5, 'icloud.com', 4, 'mx01.mail.icloud.com', '198.51.100.', 10, 4, 'TLSv1.3', 'apple', 'apple', true)
        """,
        """
        INSERT INTO seed_domains
        SELECT 5 + n, 'corp' || n || '.example', 49 * w / sum(w) OVER (),
               CASE n % 8 WHEN 0 THEN 'aspmx.l.google.com'
                          WHEN 4 THEN 'corp' || n || '-example.mail.protection.outlook.com'
                          ELSE 'mx.corp' || n || '.example' END,
               CASE WHEN n % 4 = 0 THEN '192.0.2.' ELSE '198.51.100.' END,
               CASE n % 8 WHEN 0 THEN 32 WHEN 4 THEN 120 ELSE 20 + n END,
               CASE WHEN n % 4 = 0 THEN 4 ELSE 1 END,
               CASE WHEN n % 4 = 0 THEN 'TLSv1.3' WHEN n % 10 = 3 THEN NULL WHEN n % 10 IN (1, 7) THEN 'TLSv1.2'
                    ELSE 'TLSv1.3' END,
               CASE n % 8 WHEN 0 THEN 'google' WHEN 4 THEN 'microsoft' ELSE 'other' END,
               'other', n % 4 = 0
        FROM (SELECT n, power(n, -0.9) AS w FROM generate_series(1, 200) n) c
        """,
        // 10,000 slots, each naming a domain in proportion to its weight: a uniform draw picks a slot.
        "CREATE TEMP TABLE seed_slots (slot integer PRIMARY KEY, dn integer NOT NULL)",
        """
        WITH c AS (SELECT dn, sum(weight) OVER (ORDER BY dn) / sum(weight) OVER () AS hi FROM seed_domains),
             r AS (SELECT dn, COALESCE(lag(hi) OVER (ORDER BY dn), 0) AS lo, hi FROM c)
        INSERT INTO seed_slots
        SELECT s, r.dn FROM r CROSS JOIN generate_series(round(r.lo * 10000)::integer, round(r.hi * 10000)::integer - 1) s
        """,
        """
        CREATE TEMP TABLE seed_m (
            idx bigint, id uuid, created_at timestamptz, age_class text, nrcpt integer, mail_from text,
            from_header text, subject text, tags text[], size integer
        ) ON COMMIT DELETE ROWS
        """,
        """
        CREATE TEMP TABLE seed_r (
            idx bigint, j integer, rkey bigint, message_id uuid, created_at timestamptz, age_class text, dn integer,
            email text, rid bigint
        ) ON COMMIT DELETE ROWS
        """,
        """
        CREATE TEMP TABLE seed_g (
            gkey bigint, idx bigint, dn integer, message_id uuid, created_at timestamptz, class text, k integer
        ) ON COMMIT DELETE ROWS
        """,
        """
        CREATE TEMP TABLE seed_a (
            id uuid, akey bigint, idx bigint, dn integer, message_id uuid, a integer, kind text, started_at timestamptz,
            dur integer, ip text, reuse integer, rcode integer, renh text, rtext text, dcode integer, denh text, dtext text
        ) ON COMMIT DELETE ROWS
        """,
        """
        CREATE TEMP TABLE seed_e (
            rkey bigint, message_id uuid, created_at timestamptz, dn integer, type text, ord integer, at timestamptz,
            attempt integer, attempt_id uuid, mx text, remote_ip text, tls text, code integer, enhanced text, text text,
            duration integer, provider text
        ) ON COMMIT DELETE ROWS
        """,
    ]

    /// Drops the session's seed tables and functions (one statement each: the extended protocol takes one).
    static let seedTeardown: [String] = [
        """
        DROP TABLE IF EXISTS pg_temp.seed_params, pg_temp.seed_domains, pg_temp.seed_slots, pg_temp.seed_m,
            pg_temp.seed_r, pg_temp.seed_g, pg_temp.seed_a, pg_temp.seed_e
        """,
        "DROP FUNCTION IF EXISTS pg_temp.seed_u(bigint, integer, bigint)",
        "DROP FUNCTION IF EXISTS pg_temp.seed_uuid(timestamptz, bigint, integer, bigint)",
        "DROP FUNCTION IF EXISTS pg_temp.seed_line(timestamptz, integer, integer, text, text)",
    ]

    /// One chunk, messages $1 ..< $2, in one transaction.
    static let seedChunkStatements: [String] = [
        // Messages, evenly spread in time by index (ids and times grow together), with a template each.
        """
        INSERT INTO seed_m
        SELECT x.i, pg_temp.seed_uuid(x.created_at, x.id_seed, 1, x.i), x.created_at,
               CASE WHEN x.i >= x.main_count THEN CASE WHEN x.t0 - x.created_at < interval '10 minutes' THEN 'R0' ELSE 'R' END
                    WHEN x.t0 - x.created_at < interval '5 days' - interval '1 hour' THEN 'Y'
                    WHEN x.t0 - x.created_at > interval '5 days' + interval '1 hour' THEN 'O'
                    ELSE 'M' END,
               CASE WHEN x.nr < 0.85 THEN 1 WHEN x.nr < 0.95 THEN 2 ELSE 3 + floor(pg_temp.seed_u(x.seed, 4, x.i) * 3)::integer END,
               (ARRAY['app@seed.example', 'billing@seed.example', 'noreply@seed.example', 'app@seed.example',
                      'noreply@seed.example', 'billing@seed.example'])[x.tmpl + 1],
               (ARRAY['Seed <app@seed.example>', 'Seed Billing <billing@seed.example>', 'Seed <noreply@seed.example>',
                      'Seed <app@seed.example>', 'Seed <noreply@seed.example>', 'Seed Billing <billing@seed.example>'])[x.tmpl + 1],
               CASE x.tmpl WHEN 0 THEN 'Welcome to Seed, let''s get you started'
                           WHEN 1 THEN 'Your receipt #' || (100000 + x.num % 900000)
                           WHEN 2 THEN 'Reset your Seed password'
                           WHEN 3 THEN 'Seed weekly, issue ' || to_char(x.created_at AT TIME ZONE 'UTC', 'IYYY-IW')
                           WHEN 4 THEN 'Your Seed sign-in code is ' || lpad((x.num % 1000000)::text, 6, '0')
                           ELSE 'Invoice INV-' || lpad((x.num % 10000000)::text, 7, '0') || ' is ready' END,
               CASE x.tmpl WHEN 0 THEN CASE WHEN x.extra < 0.33 THEN '{welcome,newsletter}'::text[] ELSE '{welcome}'::text[] END
                           WHEN 1 THEN '{receipt}'::text[] WHEN 2 THEN '{reset}'::text[] WHEN 3 THEN '{newsletter}'::text[]
                           WHEN 4 THEN '{}'::text[] ELSE '{receipt}'::text[] END,
               2048 + floor(pg_temp.seed_u(x.seed, 6, x.i) ^ 2 * 79872)::integer
        FROM (
            SELECT i, p.seed, p.id_seed, p.t0, p.main_count,
                   date_trunc('milliseconds', CASE WHEN i < p.main_count
                       THEN p.t0 - make_interval(days => p.days)
                            + (make_interval(days => p.days) - interval '1 hour') * ((i + pg_temp.seed_u(p.seed, 0, i)) / p.main_count)
                       ELSE p.t0 - interval '1 hour'
                            + interval '59 minutes' * ((i - p.main_count + pg_temp.seed_u(p.seed, 0, i)) / (p.n - p.main_count))
                       END) AS created_at,
                   pg_temp.seed_u(p.seed, 3, i) AS nr,
                   -- Templates: welcome 10%, receipt 25%, reset 10%, newsletter 15%, sign-in code 25%, invoice 15%.
                   CASE WHEN pg_temp.seed_u(p.seed, 5, i) < 0.10 THEN 0 WHEN pg_temp.seed_u(p.seed, 5, i) < 0.35 THEN 1
                        WHEN pg_temp.seed_u(p.seed, 5, i) < 0.45 THEN 2 WHEN pg_temp.seed_u(p.seed, 5, i) < 0.60 THEN 3
                        WHEN pg_temp.seed_u(p.seed, 5, i) < 0.85 THEN 4 ELSE 5 END AS tmpl,
                   floor(pg_temp.seed_u(p.seed, 7, i) * 1000000000)::bigint AS num, pg_temp.seed_u(p.seed, 2, i) AS extra
            FROM seed_params p CROSS JOIN generate_series($1::bigint, $2::bigint - 1) i
            OFFSET 0
        ) x
        """,
        // Recipients: 1 (85%), 2 (10%) or 3–5 (5%), at weighted domains; user numbers differ within a message.
        // Their ids are drawn from the recipients' identity sequence here, in time order, so that the rows can
        // be inserted with them and need no mapping back.
        """
        INSERT INTO seed_r
        SELECT x.*, nextval(pg_get_serial_sequence('recipients', 'id'))
        FROM (
            SELECT m.idx, j, m.idx * 8 + j, m.id, m.created_at, m.age_class, s.dn,
                   'user' || (floor(pg_temp.seed_u(p.seed, 8, m.idx) * 1000000)::bigint + j - 1) || '@' || d.domain
            FROM seed_params p
            CROSS JOIN seed_m m
            CROSS JOIN generate_series(1, m.nrcpt) j
            JOIN seed_slots s ON s.slot = floor(pg_temp.seed_u(p.seed, 9, m.idx * 8 + j) * 10000)::integer
            JOIN seed_domains d ON d.dn = s.dn
            ORDER BY m.idx, j
        ) x
        """,
        // One delivery group per (message, domain), as the worker attempts them, with its fate and attempt count:
        // Q queued, D1 delivered at once, DD deferred then delivered, SD still deferred, FX failed as expired.
        """
        INSERT INTO seed_g
        SELECT g.gkey, g.idx, g.dn, g.message_id, g.created_at, c.class,
               CASE c.class WHEN 'Q' THEN 0 WHEN 'D1' THEN 1 WHEN 'DD' THEN 2
                            WHEN 'SD' THEN CASE WHEN g.age_class = 'Y' THEN 1 + floor(pg_temp.seed_u(p.seed, 12, g.gkey) * 4)::integer
                                                ELSE 1 END
                            ELSE 2 + floor(pg_temp.seed_u(p.seed, 12, g.gkey) * 4)::integer END
        FROM seed_params p
        CROSS JOIN (SELECT DISTINCT idx * 256 + dn AS gkey, idx, dn, message_id, created_at, age_class FROM seed_r) g
        CROSS JOIN LATERAL (
            SELECT CASE WHEN g.age_class IN ('R', 'R0') AND pg_temp.seed_u(p.seed, 10, g.gkey) < p.pq THEN 'Q'
                        WHEN g.age_class = 'Y' AND pg_temp.seed_u(p.seed, 10, g.gkey) < p.psd THEN 'SD'
                        WHEN g.age_class = 'O' AND pg_temp.seed_u(p.seed, 10, g.gkey) < p.pfx THEN 'FX'
                        WHEN pg_temp.seed_u(p.seed, 11, g.gkey) < p.pdd THEN CASE WHEN g.age_class = 'R0' THEN 'SD' ELSE 'DD' END
                        ELSE 'D1' END AS class
        ) c
        """,
        // Attempts: the first one shortly after accept, retries after the worker's backoff (5 min doubling, ±20%).
        // Kinds: ok (a session that ends in delivery or a 5xx per recipient), greet421 (refused at the greeting),
        // rcpt4xx (temporary failure per recipient), timeout (no answer).
        """
        INSERT INTO seed_a
        SELECT pg_temp.seed_uuid(s.started_at, p.id_seed, 20, s.akey), s.akey, s.idx, s.dn, s.message_id, s.a, s.kind,
               s.started_at, s.dur, s.ip, s.reuse,
               CASE s.kind WHEN 'greet421' THEN 421 WHEN 'rcpt4xx' THEN CASE d.mx_provider WHEN 'google' THEN 450 ELSE 451 END END,
               CASE s.kind WHEN 'greet421' THEN '4.7.0'
                           WHEN 'rcpt4xx' THEN CASE d.mx_provider WHEN 'google' THEN '4.2.1' WHEN 'microsoft' THEN '4.7.500' ELSE '4.3.0' END END,
               CASE s.kind WHEN 'greet421' THEN 'Try again later, closing connection.'
                           WHEN 'rcpt4xx' THEN CASE d.mx_provider
                               WHEN 'google' THEN 'The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered. - gsmtp'
                               WHEN 'microsoft' THEN 'Server busy. Please try again later.'
                               ELSE 'Temporary local problem, please try again later' END
                           WHEN 'timeout' THEN d.mx || ' [' || s.ip || ']: timed out while connecting to ' || s.ip || ':25' END,
               CASE WHEN s.kind = 'ok' THEN 250 END,
               CASE WHEN s.kind = 'ok' THEN CASE d.mx_provider WHEN 'yahoo' THEN NULL WHEN 'microsoft' THEN '2.6.0' ELSE '2.0.0' END END,
               CASE WHEN s.kind = 'ok' THEN CASE d.mx_provider
                   WHEN 'google' THEN 'OK  ' || floor(extract(epoch FROM s.started_at))::bigint || ' '
                                      || substr(md5(s.akey::text), 1, 12) || 'si' || (s.akey % 1000000) || '.' || d.dn || ' - gsmtp'
                   WHEN 'microsoft' THEN '<' || s.message_id || '@seed.example> Queued mail for delivery'
                   WHEN 'yahoo' THEN 'ok dirdel'
                   ELSE 'Ok: queued as ' || upper(substr(md5(s.akey::text), 1, 10)) END END
        FROM seed_params p
        CROSS JOIN LATERAL (
            SELECT x.*, x.created_at + make_interval(secs => sum(x.gap + x.dur / 1000.0) OVER w - x.dur / 1000.0) AS started_at
            FROM (
                SELECT y.*,
                       CASE y.kind WHEN 'ok' THEN 120 + floor(pg_temp.seed_u(p.seed, 22, y.akey) ^ 2 * 2800)::integer
                                                  + CASE WHEN y.dn > 5 THEN 300 ELSE 0 END
                                   WHEN 'greet421' THEN 40 + floor(pg_temp.seed_u(p.seed, 22, y.akey) * 260)::integer
                                   WHEN 'rcpt4xx' THEN 150 + floor(pg_temp.seed_u(p.seed, 22, y.akey) * 1200)::integer
                                   ELSE 30000 + floor(pg_temp.seed_u(p.seed, 22, y.akey) * 40)::integer END AS dur,
                       CASE WHEN y.a = 1 THEN least(25.0, 0.02 - 0.8 * ln(1 - pg_temp.seed_u(p.seed, 23, y.akey)))
                            ELSE least(300 * 2 ^ (y.a - 2), 3600) * (0.8 + 0.4 * pg_temp.seed_u(p.seed, 23, y.akey)) END AS gap
                FROM (
                    SELECT g.gkey * 8 + a AS akey, g.gkey, g.idx, g.dn, g.message_id, g.created_at, a,
                           CASE WHEN g.class IN ('D1', 'DD') AND a = g.k THEN 'ok'
                                WHEN g.class = 'DD' THEN CASE WHEN pg_temp.seed_u(p.seed, 21, g.gkey * 8 + a) < 0.5 THEN 'greet421' ELSE 'rcpt4xx' END
                                WHEN pg_temp.seed_u(p.seed, 21, g.gkey * 8 + a) < 0.35 THEN 'greet421'
                                WHEN pg_temp.seed_u(p.seed, 21, g.gkey * 8 + a) < 0.7 THEN 'rcpt4xx'
                                ELSE 'timeout' END AS kind
                    FROM seed_g g CROSS JOIN generate_series(1, g.k) a
                ) y
            ) x
            WINDOW w AS (PARTITION BY x.gkey ORDER BY x.a ROWS UNBOUNDED PRECEDING)
        ) s0
        CROSS JOIN LATERAL (
            SELECT s0.*, dd.ip_prefix || (dd.ip_first + floor(pg_temp.seed_u(p.seed, 25, s0.akey) * dd.ip_count)::integer) AS ip,
                   CASE WHEN s0.kind IN ('ok', 'rcpt4xx') AND dd.pooled AND pg_temp.seed_u(p.seed, 24, s0.akey) < 0.4
                        THEN 2 + floor(pg_temp.seed_u(p.seed, 26, s0.akey) * 20)::integer END AS reuse
            FROM seed_domains dd WHERE dd.dn = s0.dn
        ) s
        JOIN seed_domains d ON d.dn = s.dn
        """,
        // Events: accepted per recipient; one per attempt per recipient of its group; failed at expiry.
        """
        INSERT INTO seed_e
        SELECT r.rkey, r.message_id, r.created_at, r.dn, 'accepted', 0, r.created_at, 0, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, d.domain_provider
        FROM seed_r r JOIN seed_domains d ON d.dn = r.dn
        UNION ALL
        SELECT r.rkey, r.message_id, r.created_at, r.dn, o.type, a.a, a.started_at + make_interval(secs => a.dur / 1000.0),
               a.a, a.id, d.mx,
               CASE WHEN a.kind IN ('ok', 'rcpt4xx') THEN a.ip END, CASE WHEN a.kind IN ('ok', 'rcpt4xx') THEN d.tls END,
               o.code, o.enhanced, o.text, a.dur, d.mx_provider
        FROM seed_a a
        JOIN seed_r r ON r.idx = a.idx AND r.dn = a.dn
        JOIN seed_domains d ON d.dn = a.dn
        CROSS JOIN seed_params p
        CROSS JOIN LATERAL (
            SELECT CASE WHEN a.kind <> 'ok' THEN 'deferred' WHEN b.bounce THEN 'bounced' ELSE 'delivered' END AS type,
                   CASE WHEN a.kind <> 'ok' THEN a.rcode WHEN b.bounce THEN CASE WHEN b.v < 0.9 THEN 550 ELSE 552 END ELSE a.dcode END AS code,
                   CASE WHEN a.kind <> 'ok' THEN a.renh WHEN b.bounce THEN CASE WHEN b.v < 0.7 THEN '5.1.1' WHEN b.v < 0.9 THEN '5.7.1' ELSE '5.2.2' END
                        ELSE a.denh END AS enhanced,
                   CASE WHEN a.kind <> 'ok' THEN a.rtext
                        WHEN b.bounce THEN CASE WHEN b.v < 0.7 THEN CASE d.mx_provider
                                WHEN 'google' THEN 'The email account that you tried to reach does not exist. Please try double-checking the recipient''s email address for typos or unnecessary spaces. - gsmtp'
                                ELSE '<' || r.email || '>: Recipient address rejected: User unknown' END
                            WHEN b.v < 0.9 THEN 'Message rejected due to local policy'
                            ELSE '<' || r.email || '>: Mailbox full' END
                        ELSE a.dtext END AS text
            FROM (SELECT pg_temp.seed_u(p.seed, 13, r.rkey) < p.pb AS bounce, pg_temp.seed_u(p.seed, 14, r.rkey) AS v) b
        ) o
        UNION ALL
        SELECT r.rkey, r.message_id, r.created_at, r.dn, 'failed', g.k + 1,
               r.created_at + interval '5 days' + make_interval(secs => 0.05 + 4 * pg_temp.seed_u(p.seed, 15, g.gkey)),
               g.k, NULL, NULL, NULL, NULL, NULL, NULL, 'the message expired before it could be delivered', 0, d.domain_provider
        FROM seed_g g
        JOIN seed_r r ON r.idx = g.idx AND r.dn = g.dn
        JOIN seed_domains d ON d.dn = g.dn
        CROSS JOIN seed_params p
        WHERE g.class = 'FX'
        """,
        """
        INSERT INTO messages (id, tenant_id, mail_from, from_header, subject, message_id_header, tags, metadata,
                              size_bytes, smtputf8, created_at, expires_at)
        SELECT m.id, p.tenant, m.mail_from, m.from_header, m.subject, m.id::text || '@seed.example', m.tags, '{}',
               m.size, false, m.created_at, m.created_at + interval '5 days'
        FROM seed_m m CROSS JOIN seed_params p
        ORDER BY m.created_at, m.id
        """,
        // Bodies only for messages still in flight (the worker reads nothing else).
        """
        INSERT INTO message_bodies (message_id, body)
        SELECT m.id, convert_to('From: ' || m.from_header || E'\\r\\nTo: undisclosed-recipients:;\\r\\nSubject: ' || m.subject
                                || E'\\r\\nMessage-ID: <' || m.id || E'@seed.example>\\r\\nMIME-Version: 1.0\\r\\n'
                                || E'Content-Type: text/plain; charset=utf-8\\r\\n\\r\\nGenerated by relay dev seed.\\r\\n', 'UTF8')
        FROM seed_m m
        WHERE EXISTS (SELECT 1 FROM seed_g g WHERE g.idx = m.idx AND g.class IN ('Q', 'SD'))
        ORDER BY m.id
        """,
        // Recipients in their final state, as the worker's `complete` leaves them.
        """
        WITH last AS (
            SELECT DISTINCT ON (rkey) rkey, type, at, attempt, text FROM seed_e ORDER BY rkey, ord DESC
        ), tried AS (
            SELECT DISTINCT ON (rkey) rkey, code, enhanced, text, mx FROM seed_e WHERE attempt_id IS NOT NULL
            ORDER BY rkey, ord DESC
        )
        INSERT INTO recipients (id, message_id, tenant_id, email, domain, status, attempts, next_attempt_at, last_code,
                                last_enhanced, last_text, last_mx, reason, updated_at)
        OVERRIDING SYSTEM VALUE
        SELECT r.rid, r.message_id, p.tenant, r.email, d.domain,
               CASE l.type WHEN 'accepted' THEN 'queued' ELSE l.type END, l.attempt,
               CASE WHEN l.type IN ('accepted', 'deferred')
                    THEN greatest(p.t0 + interval '1 day', r.created_at + interval '5 days') END,
               t.code, t.enhanced, CASE WHEN l.type = 'failed' THEN l.text ELSE t.text END, t.mx,
               CASE WHEN l.type = 'failed' THEN 'expired' END, l.at
        FROM seed_r r
        JOIN last l ON l.rkey = r.rkey
        LEFT JOIN tried t ON t.rkey = r.rkey
        JOIN seed_domains d ON d.dn = r.dn
        CROSS JOIN seed_params p
        ORDER BY r.rid
        """,
        // Queue rows of those still in flight, due when their message expires and no earlier than a day from
        // now: a worker then fails them as expired without any network traffic.
        """
        INSERT INTO queue (recipient_id, message_id, domain, due_at)
        SELECT r.rid, r.message_id, d.domain, greatest(p.t0 + interval '1 day', r.created_at + interval '5 days')
        FROM seed_r r
        JOIN seed_g g ON g.idx = r.idx AND g.dn = r.dn
        JOIN seed_domains d ON d.dn = r.dn
        CROSS JOIN seed_params p
        WHERE g.class IN ('Q', 'SD')
        ORDER BY r.rid
        """,
        """
        INSERT INTO events (tenant_id, message_id, recipient_id, type, at, attempt, attempt_id, mx, remote_ip, tls_version,
                            reply_code, reply_enhanced, reply_text, duration_ms)
        SELECT p.tenant, e.message_id, r.rid, e.type, e.at, e.attempt, e.attempt_id, e.mx, e.remote_ip, e.tls, e.code,
               e.enhanced, e.text, e.duration
        FROM seed_e e JOIN seed_r r ON r.rkey = e.rkey CROSS JOIN seed_params p
        ORDER BY e.at, r.rid, e.ord
        """,
        // Attempts with transcripts that say what the events say.
        """
        WITH rc AS (
            SELECT e.attempt_id,
                   string_agg(pg_temp.seed_line(a.started_at, a.dur, 14 + 2 * (r.j - 1), 'client', 'RCPT TO:<' || r.email || '>')
                              || ',' || pg_temp.seed_line(a.started_at, a.dur, 15 + 2 * (r.j - 1), 'server',
                                  CASE WHEN e.type = 'delivered' THEN '250 2.1.5 OK'
                                       ELSE e.code || COALESCE(' ' || e.enhanced, '') || ' ' || e.text END),
                              ',' ORDER BY r.j) AS lines,
                   bool_or(e.type = 'delivered') AS any_delivered
            FROM seed_e e
            JOIN seed_a a ON a.id = e.attempt_id
            JOIN seed_r r ON r.rkey = e.rkey
            WHERE e.attempt_id IS NOT NULL AND a.kind IN ('ok', 'rcpt4xx')
            GROUP BY e.attempt_id
        )
        INSERT INTO attempts (id, tenant_id, message_id, started_at, domain, mx, remote_ip, tls_version, duration_ms, transcript)
        SELECT x.id, x.tenant, x.message_id, x.started_at, x.domain, x.mx, CASE WHEN x.session THEN x.ip END,
               CASE WHEN x.session THEN x.tls END, x.dur,
               -- concat_ws skips the NULL lines that do not apply to this kind of attempt.
               ('[' || concat_ws(',',
                   CASE WHEN x.reuse IS NOT NULL
                        THEN pg_temp.seed_line(x.started_at, x.dur, 0, 'info', 'reusing the open connection to ' || x.mx || ' ['
                                               || x.ip || '] (' || COALESCE(x.tls, 'no TLS') || ', message ' || x.reuse || ' on it)')
                        ELSE pg_temp.seed_line(x.started_at, x.dur, 0, 'info', 'connecting to ' || x.mx || ' [' || x.ip || ']:25') END,
                   CASE WHEN x.kind = 'timeout'
                        THEN pg_temp.seed_line(x.started_at, x.dur, 32, 'info', 'timed out while connecting to ' || x.ip || ':25')
                        WHEN x.reuse IS NULL THEN pg_temp.seed_line(x.started_at, x.dur, 1, 'info', 'connected to ' || x.ip || ':25') END,
                   CASE WHEN x.kind = 'greet421'
                        THEN pg_temp.seed_line(x.started_at, x.dur, 32, 'server', '421 4.7.0 Try again later, closing connection.') || ','
                             || pg_temp.seed_line(x.started_at, x.dur, 32, 'info',
                                    'server refused to talk to us while receiving the initial server greeting with ' || x.ip
                                    || ':25: 421 4.7.0 Try again later, closing connection.') END,
                   CASE WHEN x.fresh THEN concat_ws(',',
                       pg_temp.seed_line(x.started_at, x.dur, 2, 'server', '220 ' || x.mx || ' ESMTP ready'),
                       pg_temp.seed_line(x.started_at, x.dur, 3, 'client', 'EHLO ' || x.helo),
                       pg_temp.seed_line(x.started_at, x.dur, 4, 'server', '250-' || x.mx || E' at your service\\n250-SIZE 157286400\\n250-8BITMIME\\n'
                                         || CASE WHEN x.tls IS NOT NULL THEN E'250-STARTTLS\\n' ELSE '' END
                                         || E'250-ENHANCEDSTATUSCODES\\n250-PIPELINING\\n250 SMTPUTF8')) END,
                   CASE WHEN x.fresh AND x.tls IS NOT NULL THEN concat_ws(',',
                       pg_temp.seed_line(x.started_at, x.dur, 5, 'client', 'STARTTLS'),
                       pg_temp.seed_line(x.started_at, x.dur, 6, 'server', '220 2.0.0 Ready to start TLS'),
                       pg_temp.seed_line(x.started_at, x.dur, 7, 'info', 'TLS established (' || x.tls || ')'),
                       pg_temp.seed_line(x.started_at, x.dur, 8, 'client', 'EHLO ' || x.helo),
                       pg_temp.seed_line(x.started_at, x.dur, 9, 'server', '250-' || x.mx
                           || E' at your service\\n250-SIZE 157286400\\n250-8BITMIME\\n250-ENHANCEDSTATUSCODES\\n250-PIPELINING\\n250 SMTPUTF8')) END,
                   CASE WHEN x.session THEN concat_ws(',',
                       pg_temp.seed_line(x.started_at, x.dur, 10, 'client', 'MAIL FROM:<' || x.mail_from || '> SIZE=' || x.size),
                       pg_temp.seed_line(x.started_at, x.dur, 11, 'server', '250 2.1.0 OK'),
                       x.lines) END,
                   CASE WHEN x.session AND x.any_delivered THEN concat_ws(',',
                       pg_temp.seed_line(x.started_at, x.dur, 28, 'client', 'DATA'),
                       pg_temp.seed_line(x.started_at, x.dur, 29, 'server', '354 Go ahead'),
                       pg_temp.seed_line(x.started_at, x.dur, 30, 'info', 'message content sent (' || x.size || ' bytes)'),
                       pg_temp.seed_line(x.started_at, x.dur, 32, 'server', '250 ' || COALESCE(x.denh || ' ', '') || x.dtext))
                        WHEN x.session THEN concat_ws(',',
                       pg_temp.seed_line(x.started_at, x.dur, 30, 'client', 'RSET'),
                       pg_temp.seed_line(x.started_at, x.dur, 32, 'server', '250 2.0.0 OK')) END
               ) || ']')::jsonb
        FROM (
            SELECT a.id, p.tenant, p.helo, a.message_id, a.started_at, a.dur, a.kind, a.ip, a.reuse, a.denh, a.dtext,
                   d.domain, d.mx, d.tls, m.mail_from, m.size, rc.lines, rc.any_delivered,
                   a.kind IN ('ok', 'rcpt4xx') AS session, a.kind IN ('ok', 'rcpt4xx') AND a.reuse IS NULL AS fresh
            FROM seed_a a
            JOIN seed_domains d ON d.dn = a.dn
            JOIN seed_m m ON m.idx = a.idx
            LEFT JOIN rc ON rc.attempt_id = a.id
            CROSS JOIN seed_params p
        ) x
        """,
        // Statistics, from exactly the events above (added to what other chunks or the server wrote).
        """
        INSERT INTO stats_hourly AS s (tenant_id, hour, domain, provider, accepted, delivered, deferred, bounced_hard,
                                       bounced_soft, failed)
        SELECT p.tenant, date_trunc('hour', e.at, 'UTC'), d.domain, e.provider,
               count(*) FILTER (WHERE e.type = 'accepted'), count(*) FILTER (WHERE e.type = 'delivered'),
               count(*) FILTER (WHERE e.type = 'deferred'),
               -- The seed's hard bounces are its 5.1.x replies (unknown mailbox or domain), as BounceClassifier says.
               count(*) FILTER (WHERE e.type = 'bounced' AND e.enhanced LIKE '5.1.%'),
               count(*) FILTER (WHERE e.type = 'bounced' AND e.enhanced NOT LIKE '5.1.%'),
               count(*) FILTER (WHERE e.type = 'failed')
        FROM seed_e e JOIN seed_domains d ON d.dn = e.dn CROSS JOIN seed_params p
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, hour, domain, provider) DO UPDATE SET
            accepted = s.accepted + excluded.accepted, delivered = s.delivered + excluded.delivered,
            deferred = s.deferred + excluded.deferred, bounced_hard = s.bounced_hard + excluded.bounced_hard,
            bounced_soft = s.bounced_soft + excluded.bounced_soft, failed = s.failed + excluded.failed
        """,
        // The daily rollups (migration 0004) from the same events, as relay_fold_stats feeds both.
        """
        INSERT INTO stats_daily AS s (tenant_id, day, domain, provider, accepted, delivered, deferred, bounced_hard,
                                      bounced_soft, failed)
        SELECT p.tenant, date_trunc('day', e.at, 'UTC'), d.domain, e.provider,
               count(*) FILTER (WHERE e.type = 'accepted'), count(*) FILTER (WHERE e.type = 'delivered'),
               count(*) FILTER (WHERE e.type = 'deferred'),
               -- The seed's hard bounces are its 5.1.x replies (unknown mailbox or domain), as BounceClassifier says.
               count(*) FILTER (WHERE e.type = 'bounced' AND e.enhanced LIKE '5.1.%'),
               count(*) FILTER (WHERE e.type = 'bounced' AND e.enhanced NOT LIKE '5.1.%'),
               count(*) FILTER (WHERE e.type = 'failed')
        FROM seed_e e JOIN seed_domains d ON d.dn = e.dn CROSS JOIN seed_params p
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, day, domain, provider) DO UPDATE SET
            accepted = s.accepted + excluded.accepted, delivered = s.delivered + excluded.delivered,
            deferred = s.deferred + excluded.deferred, bounced_hard = s.bounced_hard + excluded.bounced_hard,
            bounced_soft = s.bounced_soft + excluded.bounced_soft, failed = s.failed + excluded.failed
        """,
        """
        INSERT INTO stats_latency_hourly AS s (tenant_id, hour, bucket, count)
        SELECT p.tenant, date_trunc('hour', e.at, 'UTC'), relay_latency_bucket(extract(epoch FROM e.at - e.created_at) * 1000),
               count(*)
        FROM seed_e e CROSS JOIN seed_params p WHERE e.type = 'delivered'
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (tenant_id, hour, bucket) DO UPDATE SET count = s.count + excluded.count
        """,
        """
        INSERT INTO stats_errors_hourly AS s (tenant_id, hour, code, enhanced, count, sample)
        SELECT p.tenant, date_trunc('hour', e.at, 'UTC'), e.code, COALESCE(e.enhanced, ''), count(*), left(max(e.text), 200)
        FROM seed_e e CROSS JOIN seed_params p WHERE e.code >= 400
        GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (tenant_id, hour, code, enhanced) DO UPDATE SET count = s.count + excluded.count, sample = excluded.sample
        """,
    ]
}
