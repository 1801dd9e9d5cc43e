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
    func withStore(_ body: (RelayDatabase, UUID) async throws -> Void) async throws {
        let url = try await TestDatabase.create()
        let (database, task) = try TestDatabase.connect(url)
        defer { task.cancel() }
        try await Migrator(client: database.client, logger: .init(label: "test")).migrate()
        let (tenant, _) = try await database.createTenant(name: "acme")
        try await body(database, tenant.id)
    }

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
        try await withStore { database, tenant in
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
        try await withStore { database, _ in
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
        try await withStore { database, tenant in
            let writers = 4
            let perWriter = 200
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        for index in 0..<perWriter {
                            try await database.client.query("""
                                INSERT INTO stats_hourly_pending (tenant_id, hour, domain, provider, accepted, delivered)
                                VALUES (\(tenant), date_trunc('hour', now(), 'UTC'), \("d\(index % 7).test"), 'other', 1, \(writer))
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
}
