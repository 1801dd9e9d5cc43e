import Foundation
import NIOCore
import PostgresNIO
import RelayCore
import RelayStore
import RelayTestSupport
import Testing

/// The webhook outbox against a real PostgreSQL: the trigger on `events` (which events, which endpoints), and that
/// claims never hand one row to two dispatchers and are taken over after the lease.
@Suite struct WebhookOutboxTests {
    /// Stores a message to one recipient (its `accepted` event included) and returns (message id, recipient id).
    func storeMessage(_ database: RelayDatabase, tenant: UUID) async throws -> (UUID, Int64) {
        let message = NewMessage(id: TimeOrderedUUID.make(), tenantID: tenant, mailFrom: "a@example.com", fromHeader: "a@example.com",
                                 subject: "s", messageIDHeader: "x@relay.test", tags: ["t1"], metadataJSON: #"{"k":"v"}"#,
                                 body: ByteBuffer(string: "Subject: s\r\n\r\nhi\r\n"), requiresSMTPUTF8: false,
                                 recipients: [("bob@dest.test", "dest.test")], lifetime: .seconds(3600))
        _ = try await database.enqueue(message, idempotency: nil)
        let rows = try await database.client.query("SELECT id FROM recipients WHERE message_id = \(message.id)", logger: .init(label: "t"))
        for try await id in rows.decode(Int64.self) { return (message.id, id) }
        throw TestSupportError("no recipient stored")
    }

    func insertEvent(_ database: RelayDatabase, tenant: UUID, message: UUID, recipient: Int64, type: String) async throws {
        try await database.client.query("""
            INSERT INTO events (tenant_id, message_id, recipient_id, type, attempt, mx, reply_code, reply_enhanced, reply_text)
            VALUES (\(tenant), \(message), \(recipient), \(type), 1, 'mx.dest.test', 550, '5.1.1', 'User unknown')
            """, logger: .init(label: "t"))
    }

    func outboxCount(_ database: RelayDatabase, endpoint: UUID) async throws -> Int {
        let rows = try await database.client.query("SELECT count(*)::int FROM webhook_outbox WHERE endpoint_id = \(endpoint)",
                                                   logger: .init(label: "t"))
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }

    @Test func theTriggerQueuesSubscribedEventsForEnabledEndpointsOnly() async throws {
        try await withMigratedStore { database, tenant in
            let all = try await database.createWebhookEndpoint(tenantID: tenant, url: "https://a.example/", events: [], secret: "whsec_AAAA")
            let bounces = try await database.createWebhookEndpoint(tenantID: tenant, url: "https://b.example/", events: ["bounced"],
                                                                   secret: "whsec_AAAA")
            let off = try await database.createWebhookEndpoint(tenantID: tenant, url: "https://c.example/", events: [], secret: "whsec_AAAA")
            _ = try await database.updateWebhookEndpoint(id: off.id, tenantID: tenant, url: nil, events: nil, enabled: false)
            let (other, _) = try await database.createTenant(name: "other")
            let foreign = try await database.createWebhookEndpoint(tenantID: other.id, url: "https://d.example/", events: [],
                                                                   secret: "whsec_AAAA")

            let (message, recipient) = try await storeMessage(database, tenant: tenant)   // writes an `accepted` event
            try await insertEvent(database, tenant: tenant, message: message, recipient: recipient, type: "deferred")
            try await insertEvent(database, tenant: tenant, message: message, recipient: recipient, type: "bounced")
            #expect(try await outboxCount(database, endpoint: all.id) == 2, "deferred and bounced, not accepted")
            #expect(try await outboxCount(database, endpoint: bounces.id) == 1)
            #expect(try await outboxCount(database, endpoint: off.id) == 0)
            #expect(try await outboxCount(database, endpoint: foreign.id) == 0)
            #expect(try await database.enqueueWebhookEvent(tenantID: tenant, type: "tenant.paused", dataJSON: "{}") == 1,
                    "only the endpoint subscribed to every type")

            // A claim brings the event with its recipient and message.
            let claimed = try await database.claimWebhooks(owner: UUID(), limit: 10, lease: .seconds(60))
            #expect(claimed.count == 4)
            let bounce = try #require(claimed.first { $0.endpointID == bounces.id })
            #expect(bounce.messageEvent?.recipient == "bob@dest.test")
            #expect(bounce.messageEvent?.tags == ["t1"])
            #expect(bounce.messageEvent?.metadataJSON.contains("\"k\"") == true)
            #expect(bounce.messageEvent?.reply?.enhanced == "5.1.1")
            #expect(claimed.first { $0.eventType == "tenant.paused" }?.dataJSON == "{}")
        }
    }

    @Test func concurrentDispatchersNeverClaimTheSameRowAndALostLeaseIsTakenOver() async throws {
        try await withMigratedStore { store, tenant in
            // This test is about exclusivity, not latency: a loaded CI machine may take longer than the API's 5 s.
            let database = RelayDatabase(client: store.client, logger: .init(label: "test"), requestTimeout: .seconds(60))
            let endpoint = try await database.createWebhookEndpoint(tenantID: tenant, url: "https://a.example/", events: [],
                                                                    secret: "whsec_AAAA")
            for _ in 0..<60 { try await database.enqueueWebhookEvent(tenantID: tenant, type: "tenant.paused", dataJSON: "{}") }
            let claims = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        var mine: [Int64] = []
                        while true {
                            let batch = try await database.claimWebhooks(owner: UUID(), limit: 7, lease: .seconds(60))
                            if batch.isEmpty { return mine }
                            mine += batch.map(\.outboxID)
                        }
                    }
                }
                var all: [[Int64]] = []
                for try await ids in group { all.append(ids) }
                return all
            }
            let ids = claims.flatMap { $0 }
            #expect(ids.count == 60)
            #expect(Set(ids).count == 60, "no row claimed twice")

            // A dispatcher that dies holding a row: another takes it after the lease; the late one cannot move it.
            try await database.enqueueWebhookEvent(tenantID: tenant, type: "tenant.paused", dataJSON: "{}")
            let crashed = UUID()
            let first = try await database.claimWebhooks(owner: crashed, limit: 10, lease: .milliseconds(300))
            #expect(first.count == 1)
            let survivor = UUID()
            var taken: [ClaimedWebhook] = []
            try await waitUntil("the lease expires and another dispatcher claims the row", timeout: .seconds(10)) {
                taken = try await database.claimWebhooks(owner: survivor, limit: 10, lease: .seconds(60))
                return !taken.isEmpty
            }
            #expect(taken.map(\.outboxID) == first.map(\.outboxID))
            let late = RelayDatabase.WebhookAttemptOutcome(
                outboxID: first[0].outboxID, endpointID: endpoint.id, eventType: "tenant.paused", attempt: 1, succeeded: true,
                responseCode: 200, error: nil, latencyMs: 3, nextAttemptAt: nil)
            _ = try await database.recordWebhookAttempt(late, owner: crashed)
            let state = try await database.client.query(
                "SELECT state, lease_owner FROM webhook_outbox WHERE id = \(first[0].outboxID)", logger: .init(label: "t"))
            for try await (value, owner) in state.decode((String, UUID?).self) {
                #expect(value == "pending", "the node that lost its lease does not move the row")
                #expect(owner == survivor)
            }
        }
    }

    @Test func reEnablingResumesWaitingDeliveriesAndFailsThoseTooOld() async throws {
        try await withMigratedStore { database, tenant in
            let endpoint = try await database.createWebhookEndpoint(tenantID: tenant, url: "https://a.example/", events: [],
                                                                    secret: "whsec_AAAA")
            try await database.enqueueWebhookEvent(tenantID: tenant, type: "tenant.paused", dataJSON: #"{"n":1}"#)
            try await database.enqueueWebhookEvent(tenantID: tenant, type: "tenant.paused", dataJSON: #"{"n":2}"#)
            try await database.disableWebhookEndpoint(id: endpoint.id, reason: "gone_410")
            #expect(try await database.claimWebhooks(owner: UUID(), limit: 10, lease: .seconds(60)).isEmpty, "a disabled endpoint waits")
            // One delivery waited past its lifetime, the other is due in an hour (a scheduled retry).
            try await database.client.query("""
                UPDATE webhook_outbox SET created_at = now() - interval '4 days' WHERE data->>'n' = '1'
                """, logger: .init(label: "t"))
            try await database.client.query("""
                UPDATE webhook_outbox SET due_at = now() + interval '1 hour' WHERE data->>'n' = '2'
                """, logger: .init(label: "t"))
            let enabled = try await database.updateWebhookEndpoint(id: endpoint.id, tenantID: tenant, url: nil, events: nil, enabled: true)
            #expect(enabled?.enabled == true)
            #expect(enabled?.disabledReason == nil)
            let claimed = try await database.claimWebhooks(owner: UUID(), limit: 10, lease: .seconds(60))
            #expect(claimed.map(\.dataJSON) == [#"{"n": 2}"#], "resumed at once; the expired one is failed")
        }
    }

    @Test func aBusyEndpointIsSkippedSoOthersAreClaimed() async throws {
        try await withMigratedStore { database, tenant in
            let slow = try await database.createWebhookEndpoint(tenantID: tenant, url: "https://slow.example/", events: ["tenant.paused"],
                                                                secret: "whsec_AAAA")
            for _ in 0..<20 { try await database.enqueueWebhookEvent(tenantID: tenant, type: "tenant.paused", dataJSON: "{}") }
            let other = try await database.createWebhookEndpoint(tenantID: tenant, url: "https://other.example/", events: [],
                                                                 secret: "whsec_AAAA")
            _ = try await database.enqueueWebhook(endpointID: other.id, tenantID: tenant, type: "webhook.test", dataJSON: "{}")
            // The slow endpoint's rows are older, but while it is busy the other endpoint's row comes first.
            let claimed = try await database.claimWebhooks(owner: UUID(), limit: 5, lease: .seconds(60), skipping: [slow.id])
            #expect(claimed.map(\.endpointID) == [other.id])
            #expect(try await database.claimWebhooks(owner: UUID(), limit: 5, lease: .seconds(60)).count == 5)
        }
    }
}
