import Foundation
import NIOCore
import PostgresNIO
import RelayCore
import RelayStore
import RelayTestSupport
import Testing

/// `RelayDatabase.enqueueBatch` against a real server: every message of a batch or none, and one wake-up.
@Suite struct BatchStoreTests {
    func message(tenant: UUID, to recipient: String) -> NewMessage {
        NewMessage(id: TimeOrderedUUID.make(), tenantID: tenant, mailFrom: "a@example.com", fromHeader: "a@example.com",
                   subject: "s", messageIDHeader: "x@relay.test", tags: [], metadataJSON: "{}",
                   body: ByteBuffer(string: "Subject: s\r\n\r\nhi\r\n"), requiresSMTPUTF8: false,
                   recipients: [(recipient, String(recipient.split(separator: "@")[1]))], lifetime: .seconds(3600))
    }

    func count(_ database: RelayDatabase, _ table: String) async throws -> Int {
        let rows = try await database.client.query(PostgresQuery(unsafeSQL: "SELECT count(*)::bigint FROM \(table)"),
                                                   logger: .init(label: "test"))
        for try await value in rows.decode(Int.self) { return value }
        return -1
    }

    @Test func aBatchIsStoredWholeAndWakesWorkersOnce() async throws {
        try await withMigratedStore { database, tenant in
            try await database.client.withConnection { connection in
                try await connection.listen(on: RelayDatabase.queueChannel) { notifications in
                    let batch = (0..<20).map { message(tenant: tenant, to: "r\($0)@dest.test") }
                    #expect(try await database.enqueueBatch(batch, tenantID: tenant, idempotency: nil) == .stored)
                    // Notifications arrive in commit order: those before this marker are the batch's.
                    try await database.client.query("SELECT pg_notify(\(RelayDatabase.queueChannel), 'marker')",
                                                    logger: .init(label: "test"))
                    var wakeups = 0
                    for try await notification in notifications {
                        if notification.payload == "marker" { break }
                        wakeups += 1
                    }
                    #expect(wakeups == 1, "one NOTIFY per batch, not one per message")
                }
            }
            #expect(try await count(database, "messages") == 20)
            #expect(try await count(database, "recipients") == 20)
            #expect(try await count(database, "queue") == 20)
        }
    }

    @Test func aFailingMessageLeavesNothingOfItsBatch() async throws {
        try await withMigratedStore { (database: RelayDatabase, tenant: UUID) async throws in
            var batch = (0..<5).map { message(tenant: tenant, to: "r\($0)@dest.test") }
            batch[3].id = batch[1].id  // a primary-key violation on the fourth insert
            await #expect(throws: (any Error).self) {
                _ = try await database.enqueueBatch(batch, tenantID: tenant, idempotency: nil)
            }
            let stored = (try await count(database, "messages"), try await count(database, "queue"), try await count(database, "events"))
            #expect(stored == (0, 0, 0), "messages, queue rows, events")
        }
    }
}
