import Foundation
import PostgresNIO
import RelayCore

/// Outcome counters of the statistics (one rollup row, a bucket of the series, or a total).
public struct StatsCounters: Sendable, Hashable {
    public var accepted = 0
    public var delivered = 0
    public var deferred = 0
    public var bouncedHard = 0
    public var bouncedSoft = 0
    public var failed = 0
    public var suppressed = 0
    public var complained = 0

    public init() {}

    public static func + (lhs: StatsCounters, rhs: StatsCounters) -> StatsCounters {
        var sum = lhs
        sum.accepted += rhs.accepted
        sum.delivered += rhs.delivered
        sum.deferred += rhs.deferred
        sum.bouncedHard += rhs.bouncedHard
        sum.bouncedSoft += rhs.bouncedSoft
        sum.failed += rhs.failed
        sum.suppressed += rhs.suppressed
        sum.complained += rhs.complained
        return sum
    }
}

/// An SMTP error reply with how often it was seen.
public struct StatsError: Sendable, Hashable {
    public var code: Int
    public var enhanced: String?
    public var sample: String
    public var count: Int
}

/// Everything `GET /v1/stats` shows, read from the hourly rollups (plus the deltas not folded in yet).
public struct StatsReport: Sendable {
    public var series: [(start: Date, counters: StatsCounters)]
    public var latencyCounts: [Int: Int]
    public var topErrors: [StatsError]
    public var domains: [(domain: String, provider: String, counters: StatsCounters)]
    public var providers: [(provider: String, counters: StatsCounters)]
}

/// Queue depth across all tenants, by state.
public struct QueueDepth: Sendable {
    /// Due now and waiting for a worker.
    public var due: Int
    /// Waiting for their next attempt time (deferred, or scheduled).
    public var scheduled: Int
    /// Claimed by a worker (being delivered).
    public var inFlight: Int
    /// Age of the oldest message still in the queue, and how long the longest-waiting due row has waited.
    public var oldestQueuedAge: Double?
    public var oldestDueAge: Double?
}

extension RelayDatabase {
    /// Statistics bucket sizes.
    public enum StatsBucket: String, Sendable {
        case hour, day
    }

    private static let counterSums = """
        sum(accepted)::bigint, sum(delivered)::bigint, sum(deferred)::bigint, sum(bounced_hard)::bigint,
        sum(bounced_soft)::bigint, sum(failed)::bigint, sum(suppressed)::bigint, sum(complained)::bigint
        """

    private static func counters(_ values: (Int, Int, Int, Int, Int, Int, Int, Int)) -> StatsCounters {
        var counters = StatsCounters()
        (counters.accepted, counters.delivered, counters.deferred, counters.bouncedHard, counters.bouncedSoft,
         counters.failed, counters.suppressed, counters.complained) = values
        return counters
    }

    /// The statistics of one tenant (or of all tenants when `tenantID` is nil) for hours in [since, until).
    /// Reads only rollup rows of the range, never events: whole days of the domain and provider breakdowns
    /// come from `stats_daily`, the partial days at either end from `stats_hourly`, and the deltas not folded
    /// yet from `stats_hourly_pending`, so the cost grows with days × recipient domains.
    public func stats(tenantID: UUID?, since: Date, until: Date, bucket: StatsBucket, domainLimit: Int = 100) async throws -> StatsReport {
        try await withDeadline { [self] in
            let hourly = """
                SELECT hour, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft, failed, suppressed, complained
                FROM stats_hourly WHERE hour >= $2 AND hour < $3 AND ($1::uuid IS NULL OR tenant_id = $1)
                UNION ALL
                SELECT hour, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft, failed, suppressed, complained
                FROM stats_hourly_pending WHERE hour >= $2 AND hour < $3 AND ($1::uuid IS NULL OR tenant_id = $1)
                """
            // Whole UTC days inside the range ($4 ..< $5); when there are none, both are `until` and the
            // hourly rows cover everything.
            let day: TimeInterval = 86_400
            var fullStart = Date(timeIntervalSince1970: (since.timeIntervalSince1970 / day).rounded(.up) * day)
            var fullEnd = Date(timeIntervalSince1970: (until.timeIntervalSince1970 / day).rounded(.down) * day)
            if fullStart >= fullEnd { (fullStart, fullEnd) = (until, until) }
            let mixed = """
                SELECT day AS hour, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft, failed, suppressed, complained
                FROM stats_daily WHERE day >= $4 AND day < $5 AND ($1::uuid IS NULL OR tenant_id = $1)
                UNION ALL
                SELECT hour, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft, failed, suppressed, complained
                FROM stats_hourly WHERE ((hour >= $2 AND hour < $4) OR (hour >= $5 AND hour < $3))
                                    AND ($1::uuid IS NULL OR tenant_id = $1)
                UNION ALL
                SELECT hour, domain, provider, accepted, delivered, deferred, bounced_hard, bounced_soft, failed, suppressed, complained
                FROM stats_hourly_pending WHERE hour >= $2 AND hour < $3 AND ($1::uuid IS NULL OR tenant_id = $1)
                """
            var bindings = PostgresBindings()
            bindings.append(tenantID)
            bindings.append(since)
            bindings.append(until)
            var mixedBindings = bindings
            mixedBindings.append(fullStart)
            mixedBindings.append(fullEnd)

            var series: [(Date, StatsCounters)] = []
            var query = PostgresQuery(unsafeSQL: """
                WITH s AS (\(bucket == .hour ? hourly : mixed))
                SELECT date_trunc('\(bucket.rawValue)', hour, 'UTC') AS b, \(Self.counterSums)
                FROM s GROUP BY b ORDER BY b
                """, binds: bucket == .hour ? bindings : mixedBindings)
            for try await (start, a, d, df, bh, bs, f, su, c) in try await client.query(query, logger: logger).decode(
                (Date, Int, Int, Int, Int, Int, Int, Int, Int).self) {
                series.append((start, Self.counters((a, d, df, bh, bs, f, su, c))))
            }

            var domains: [(String, String, StatsCounters)] = []
            query = PostgresQuery(unsafeSQL: """
                WITH s AS (\(mixed))
                SELECT domain, COALESCE(max(provider) FILTER (WHERE provider <> 'other'), 'other'), \(Self.counterSums)
                FROM s GROUP BY domain
                ORDER BY sum(accepted + delivered + deferred + bounced_hard + failed + suppressed) DESC, domain
                LIMIT \(domainLimit)
                """, binds: mixedBindings)
            for try await (domain, provider, a, d, df, bh, bs, f, su, c) in try await client.query(query, logger: logger).decode(
                (String, String, Int, Int, Int, Int, Int, Int, Int, Int).self) {
                domains.append((domain, provider, Self.counters((a, d, df, bh, bs, f, su, c))))
            }

            var providers: [(String, StatsCounters)] = []
            query = PostgresQuery(unsafeSQL: """
                WITH s AS (\(mixed))
                SELECT provider, \(Self.counterSums) FROM s GROUP BY provider ORDER BY provider
                """, binds: mixedBindings)
            for try await (provider, a, d, df, bh, bs, f, su, c) in try await client.query(query, logger: logger).decode(
                (String, Int, Int, Int, Int, Int, Int, Int, Int).self) {
                providers.append((provider, Self.counters((a, d, df, bh, bs, f, su, c))))
            }

            var latency: [Int: Int] = [:]
            query = PostgresQuery(unsafeSQL: """
                SELECT bucket, sum(count)::bigint FROM (
                    SELECT bucket, count FROM stats_latency_hourly WHERE hour >= $2 AND hour < $3 AND ($1::uuid IS NULL OR tenant_id = $1)
                    UNION ALL
                    SELECT bucket, count FROM stats_latency_pending WHERE hour >= $2 AND hour < $3 AND ($1::uuid IS NULL OR tenant_id = $1)
                ) s GROUP BY bucket
                """, binds: bindings)
            for try await (bucket, count) in try await client.query(query, logger: logger).decode((Int, Int).self) {
                latency[bucket] = count
            }

            var errors: [StatsError] = []
            query = PostgresQuery(unsafeSQL: """
                SELECT code, enhanced, max(sample), sum(count)::bigint FROM (
                    SELECT code, enhanced, sample, count FROM stats_errors_hourly
                    WHERE hour >= $2 AND hour < $3 AND ($1::uuid IS NULL OR tenant_id = $1)
                    UNION ALL
                    SELECT code, enhanced, sample, count FROM stats_errors_pending
                    WHERE hour >= $2 AND hour < $3 AND ($1::uuid IS NULL OR tenant_id = $1)
                ) s GROUP BY code, enhanced ORDER BY sum(count) DESC, code, enhanced LIMIT 10
                """, binds: bindings)
            for try await (code, enhanced, sample, count) in try await client.query(query, logger: logger).decode(
                (Int, String, String, Int).self) {
                errors.append(StatsError(code: code, enhanced: enhanced.isEmpty ? nil : enhanced, sample: sample, count: count))
            }
            return StatsReport(series: series, latencyCounts: latency, topErrors: errors, domains: domains, providers: providers)
        }
    }

    /// Moves the statistics deltas into the hourly rollups (see migration 0004). Returns the rollup rows touched;
    /// 0 also when another node is folding at the moment.
    @discardableResult
    public func foldStats() async throws -> Int {
        try await withDeadline { [self] in
            let rows = try await client.query("SELECT relay_fold_stats()", logger: logger)
            for try await count in rows.decode(Int.self) { return count }
            return 0
        }
    }

    /// Creates the day partitions of the log tables for the coming days and drops those older than `retention`.
    public func maintainLogPartitions(retention: Duration, daysAhead: Int = 7) async throws -> (created: Int, dropped: Int) {
        // Moving strays out of a default partition can take a while; a minute before giving up until next time.
        try await withDeadline(.seconds(60)) { [self] in
            let rows = try await client.query(
                "SELECT created, dropped FROM relay_maintain_partitions(make_interval(secs => \(retention.seconds)), \(daysAhead)::int)",
                logger: logger)
            for try await (created, dropped) in rows.decode((Int, Int).self) { return (created, dropped) }
            return (0, 0)
        }
    }

    /// A tenant's recipients still in flight: (queued, deferred).
    public func tenantQueueDepth(tenantID: UUID) async throws -> (queued: Int, deferred: Int) {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT count(*) FILTER (WHERE status = 'queued')::bigint, count(*) FILTER (WHERE status = 'deferred')::bigint
                FROM recipients WHERE tenant_id = \(tenantID) AND status IN ('queued', 'deferred')
                """, logger: logger)
            for try await (queued, deferred) in rows.decode((Int, Int).self) { return (queued, deferred) }
            return (0, 0)
        }
    }

    /// The queue across all tenants by state, with the age of its oldest message and of its longest-waiting row.
    public func queueDepthByState() async throws -> QueueDepth {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT count(*) FILTER (WHERE lease_owner IS NULL AND due_at <= now())::bigint,
                       count(*) FILTER (WHERE lease_owner IS NULL AND due_at > now())::bigint,
                       count(*) FILTER (WHERE lease_owner IS NOT NULL)::bigint,
                       -- Message ids are time-ordered (UUIDv7): the smallest is the oldest message.
                       extract(epoch FROM now() - (SELECT m.created_at FROM messages m
                                                   WHERE m.id = (SELECT message_id FROM queue ORDER BY message_id LIMIT 1)))::float8,
                       extract(epoch FROM now() - min(due_at) FILTER (WHERE lease_owner IS NULL AND due_at <= now()))::float8
                FROM queue
                """, logger: logger)
            for try await (due, scheduled, inFlight, oldest, oldestDue) in rows.decode((Int, Int, Int, Double?, Double?).self) {
                return QueueDepth(due: due, scheduled: scheduled, inFlight: inFlight, oldestQueuedAge: oldest, oldestDueAge: oldestDue)
            }
            return QueueDepth(due: 0, scheduled: 0, inFlight: 0, oldestQueuedAge: nil, oldestDueAge: nil)
        }
    }
}
