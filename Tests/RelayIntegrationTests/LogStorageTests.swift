import Foundation
import Logging
import NIOCore
import PostgresNIO
import RelayCore
import RelayStore
import RelayTestSupport
import Testing

/// The log tables' day partitions and retention, and the statistics rollups, against a real PostgreSQL.
private let testLogger = Logger(label: "test")

@Suite struct LogStorageTests {
    func count(_ database: RelayDatabase, _ sql: String) async throws -> Int {
        let rows = try await database.client.query(PostgresQuery(unsafeSQL: sql), logger: testLogger)
        for try await value in rows.decode(Int.self) { return value }
        return 0
    }

    func partitions(_ database: RelayDatabase, of parent: String) async throws -> [String] {
        let rows = try await database.client.query("""
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = \(parent)::regclass ORDER BY c.relname
            """, logger: testLogger)
        var names: [String] = []
        for try await name in rows.decode(String.self) { names.append(name) }
        return names
    }

    func insertEvent(_ database: RelayDatabase, tenant: UUID, daysAgo: Int) async throws {
        try await database.client.query("""
            INSERT INTO events (tenant_id, message_id, recipient_id, type, at)
            VALUES (\(tenant), \(UUID()), 1, 'delivered', now() - make_interval(days => \(daysAgo)::int))
            """, logger: testLogger)
    }

    @Test func retentionDropsWholeDayPartitionsAndKeepsRecentOnes() async throws {
        try await withMigratedStore { database, tenant in
            let utc = Calendar(identifier: .gregorian)
            var calendar = utc
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let name = { (offset: Int) -> String in
                let day = calendar.date(byAdding: .day, value: offset, to: Date())!
                let parts = calendar.dateComponents([.year, .month, .day], from: day)
                return String(format: "events_p%04d%02d%02d", parts.year!, parts.month!, parts.day!)
            }
            // The migration prepared yesterday to a week ahead, plus the default partition.
            let initial = try await partitions(database, of: "events")
            #expect(initial.contains(name(-1)) && initial.contains(name(0)) && initial.contains(name(7)))
            #expect(initial.contains("events_default"))

            // An event 40 days old has no day partition: it lands in the default one. Creating its day partition
            // moves it there; retention of 30 days then drops that partition as a whole.
            try await insertEvent(database, tenant: tenant, daysAgo: 40)
            try await insertEvent(database, tenant: tenant, daysAgo: 0)
            #expect(try await count(database, "SELECT count(*)::bigint FROM events_default") == 1)
            try await database.client.query(
                "SELECT relay_ensure_day_partitions('events', 'at', (now() AT TIME ZONE 'UTC')::date - 40, (now() AT TIME ZONE 'UTC')::date - 40)",
                logger: testLogger)
            #expect(try await count(database, "SELECT count(*)::bigint FROM events_default") == 0)
            #expect(try await count(database, "SELECT count(*)::bigint FROM \(name(-40))") == 1)

            let (_, dropped) = try await database.maintainLogPartitions(retention: .seconds(30 * 86_400))
            #expect(dropped == 1)
            let after = try await partitions(database, of: "events")
            #expect(!after.contains(name(-40)))
            #expect(after.contains(name(0)))
            #expect(try await count(database, "SELECT count(*)::bigint FROM events") == 1, "today's event is kept")

            // Running it again changes nothing; a longer look-ahead creates the missing days.
            let again = try await database.maintainLogPartitions(retention: .seconds(30 * 86_400))
            #expect(again.created == 0 && again.dropped == 0)
            let ahead = try await database.maintainLogPartitions(retention: .seconds(30 * 86_400), daysAhead: 9)
            #expect(ahead.created == 4, "days 8 and 9 for events and attempts")
        }
    }

    @Test func theSQLLatencyBucketsAgreeWithLatencyHistogram() async throws {
        try await withMigratedStore { database, _ in
            let samples: [Double] = [0, 1, 9.99, 10, 11.9, 12, 12.1, 100, 999, 1000, 1234.5, 60_000, 3_600_000, 86_400_000,
                                     7 * 86_400_000, 30 * 86_400_000]
            for ms in samples {
                let rows = try await database.client.query("SELECT relay_latency_bucket(\(ms))::int", logger: testLogger)
                var bucket = -1
                for try await value in rows.decode(Int.self) { bucket = value }
                #expect(bucket == LatencyHistogram.bucket(milliseconds: ms), "\(ms) ms")
            }
        }
    }

    @Test func foldingWhileWritersAppendCountsEveryDeltaOnce() async throws {
        try await withMigratedStore { database, tenant in
            let writers = 4
            let perWriter = 200
            // One hour for every delta, fixed up front: `now()` would split the rows across two hours when the
            // test runs over an hour boundary (it did, at 10:00:13 in CI).
            let hour = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 3600).rounded(.down) * 3600)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        for index in 0..<perWriter {
                            try await database.client.query("""
                                INSERT INTO stats_hourly_pending (tenant_id, hour, domain, provider, accepted, delivered)
                                VALUES (\(tenant), \(hour), \("d\(index % 7).test"), 'other', 1, \(writer))
                                """, logger: testLogger)
                        }
                    }
                }
                group.addTask {
                    for _ in 0..<50 { try await database.foldStats() }
                }
                try await group.waitForAll()
            }
            try await database.foldStats()
            #expect(try await count(database, "SELECT count(*)::bigint FROM stats_hourly_pending") == 0)
            #expect(try await count(database, "SELECT sum(accepted)::bigint FROM stats_hourly") == writers * perWriter)
            #expect(try await count(database, "SELECT sum(delivered)::bigint FROM stats_hourly")
                    == (0..<writers).reduce(0) { $0 + $1 * perWriter })
            #expect(try await count(database, "SELECT count(*)::bigint FROM stats_hourly") == 7)
        }
    }

    /// Breakdowns mix daily rows (whole days), hourly rows (the partial days at the ends) and unfolded deltas;
    /// every combination must give the same figures as summing the hours of the range.
    @Test func breakdownsOverPartialDaysAgreeWithTheHourlyRows() async throws {
        try await withMigratedStore { database, tenant in
            // One delta per hour for 4 days, alternating two domains; hour h delivers h+1 messages.
            let start = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 86_400).rounded(.down) * 86_400 - 3 * 86_400)
            for hour in 0..<96 {
                let at = start.addingTimeInterval(Double(hour) * 3600)
                try await database.client.query("""
                    INSERT INTO stats_hourly_pending (tenant_id, hour, domain, provider, accepted, delivered, bounced_hard)
                    VALUES (\(tenant), \(at), \(hour % 2 == 0 ? "a.test" : "gmail.com"), \(hour % 2 == 0 ? "other" : "google"),
                            \(hour + 1), \(hour + 1), \(hour % 5 == 0 ? 1 : 0))
                    """, logger: testLogger)
            }
            // From 05:00 of day 0 to 19:00 of day 2: partial day, one whole day, partial day.
            let since = start.addingTimeInterval(5 * 3600)
            let until = start.addingTimeInterval((48 + 19) * 3600)
            let expectedHours = (5..<(48 + 19))
            let expectedDelivered = expectedHours.reduce(0) { $0 + $1 + 1 }
            let expectedGmail = expectedHours.filter { $0 % 2 == 1 }.reduce(0) { $0 + $1 + 1 }
            let expectedBounced = expectedHours.filter { $0 % 5 == 0 }.count

            func check(_ label: String) async throws {
                for bucket in [RelayDatabase.StatsBucket.hour, .day] {
                    let report = try await database.stats(tenantID: tenant, since: since, until: until, bucket: bucket)
                    let seriesTotal = report.series.reduce(StatsCounters()) { $0 + $1.counters }
                    if bucket == .hour {
                        #expect(seriesTotal.delivered == expectedDelivered, "\(label): hourly series")
                    }
                    let domains = Dictionary(uniqueKeysWithValues: report.domains.map { ($0.domain, $0.counters) })
                    #expect(domains["gmail.com"]?.delivered == expectedGmail, "\(label) \(bucket): gmail.com")
                    #expect((domains["a.test"]?.delivered ?? 0) + (domains["gmail.com"]?.delivered ?? 0) == expectedDelivered,
                            "\(label) \(bucket): domains")
                    let providers = Dictionary(uniqueKeysWithValues: report.providers.map { ($0.provider, $0.counters) })
                    #expect(providers["google"]?.delivered == expectedGmail, "\(label) \(bucket): google")
                    #expect(report.domains.reduce(0) { $0 + $1.counters.bouncedHard } == expectedBounced, "\(label) \(bucket): bounces")
                    #expect(report.domains.first { $0.domain == "gmail.com" }?.provider == "google")
                }
            }
            try await check("unfolded")
            try await database.foldStats()
            #expect(try await count(database, "SELECT count(*)::bigint FROM stats_daily") == 8, "4 days × 2 domains")
            try await check("folded")
        }
    }
}
