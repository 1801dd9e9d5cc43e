import Foundation
import NIOCore
import PostgresNIO
import RelayCore
import RelayStore
import RelayTestSupport
import Testing

/// The selection SQL of cancel and the bulk queue operations against a real server: each filter narrows, a dry
/// run changes nothing, rows a worker holds are left alone (until their lease runs out), cancel writes status
/// and events, and batches add up.
@Suite struct QueueOperationTests {
    /// One tenant's fixture: every row due in an hour, none leased.
    ///   m1 tags [news]     x1@a.test queued, x2@b.test queued
    ///   m2 tags [receipt]  y1@a.test deferred, last reply 4.7.1
    ///   m3 no tags         z1@b.test deferred, last reply 4.2.2, accepted two days ago
    /// and another tenant's m4 with w1@a.test queued.
    struct Fixture {
        var tenant: UUID
        var other: UUID
        var m1: UUID
        var m2: UUID
        var m3: UUID
        var m4: UUID
    }

    static func message(tenant: UUID, tags: [String], recipients: [String], notBefore: Date? = nil) -> NewMessage {
        var message = NewMessage(
            id: TimeOrderedUUID.make(), tenantID: tenant, mailFrom: "a@example.com", fromHeader: "a@example.com",
            subject: "s", messageIDHeader: "x@relay.test", tags: tags, metadataJSON: "{}",
            body: ByteBuffer(string: "Subject: s\r\n\r\nhi\r\n"), requiresSMTPUTF8: false,
            recipients: recipients.map { ($0, String($0.split(separator: "@")[1])) }, lifetime: .seconds(3600))
        message.notBefore = notBefore
        return message
    }

    static func makeFixture(_ database: RelayDatabase, tenant: UUID) async throws -> Fixture {
        let (other, _) = try await database.createTenant(name: "other")
        let m1 = message(tenant: tenant, tags: ["news"], recipients: ["x1@a.test", "x2@b.test"])
        let m2 = message(tenant: tenant, tags: ["receipt"], recipients: ["y1@a.test"])
        let m3 = message(tenant: tenant, tags: [], recipients: ["z1@b.test"])
        let m4 = message(tenant: other.id, tags: ["news"], recipients: ["w1@a.test"])
        for message in [m1, m2, m3, m4] { _ = try await database.enqueue(message, idempotency: nil) }
        let owner = UUID()
        let claimed = try await database.claim(owner: owner, limit: 10, lease: .seconds(60))
        #expect(claimed.count == 5)
        let later = Date().addingTimeInterval(3600)
        let outcomes = claimed.map { recipient -> CompletedDelivery in
            switch recipient.email {
            case "y1@a.test", "z1@b.test":
                let enhanced = recipient.email == "y1@a.test" ? "4.7.1" : "4.2.2"
                return CompletedDelivery(recipientID: recipient.recipientID, status: .deferred, countsAsAttempt: true,
                                         nextAttemptAt: later, reply: DeliveryReply(code: 451, enhanced: enhanced, text: "later"),
                                         detail: nil, mx: "mx", reason: nil, durationMs: 1)
            default:
                return CompletedDelivery(recipientID: recipient.recipientID, status: .queued, countsAsAttempt: false,
                                         nextAttemptAt: later, reply: nil, detail: nil, mx: nil, reason: nil, durationMs: 0)
            }
        }
        #expect(try await database.complete(outcomes, owner: owner) == 5)
        try await database.client.query("UPDATE messages SET created_at = now() - interval '2 days' WHERE id = \(m3.id)",
                                         logger: .init(label: "test"))
        return Fixture(tenant: tenant, other: other.id, m1: m1.id, m2: m2.id, m3: m3.id, m4: m4.id)
    }

    /// The emails of a tenant's recipients in `status`.
    static func emails(_ database: RelayDatabase, tenant: UUID, messages: [UUID], status: RecipientStatus) async throws -> Set<String> {
        var result = Set<String>()
        for id in messages {
            let record = try #require(try await database.message(id: id, tenantID: tenant))
            result.formUnion(record.recipients.filter { $0.status == status }.map(\.email))
        }
        return result
    }

    @Test func eachFilterNarrowsTheSelection() async throws {
        try await withMigratedStore { database, tenant in
            let f = try await Self.makeFixture(database, tenant: tenant)
            let dayAgo = Date().addingTimeInterval(-86_400)
            let cases: [(QueueSelection, Int)] = [
                (QueueSelection(tenantID: tenant), 4),
                (QueueSelection(), 5),
                (QueueSelection(tenantID: f.other), 1),
                (QueueSelection(tenantID: tenant, domain: "a.test"), 2),
                (QueueSelection(domain: "a.test"), 3),
                (QueueSelection(tenantID: tenant, status: .deferred), 2),
                (QueueSelection(tenantID: tenant, status: .queued), 2),
                (QueueSelection(tenantID: tenant, tag: "news"), 2),
                (QueueSelection(tenantID: tenant, tag: "receipt"), 1),
                (QueueSelection(tenantID: tenant, enhancedCode: "4.7.1"), 1),
                (QueueSelection(tenantID: tenant, enhancedCode: "5.1.1"), 0),
                (QueueSelection(tenantID: tenant, messageID: f.m1), 2),
                (QueueSelection(tenantID: f.other, messageID: f.m1), 0),
                (QueueSelection(tenantID: tenant, since: dayAgo), 3),
                (QueueSelection(tenantID: tenant, until: dayAgo), 1),
                (QueueSelection(tenantID: tenant, domain: "b.test", status: .deferred), 1),
                (QueueSelection(tenantID: tenant, domain: "b.test", tag: "news", since: dayAgo), 1),
            ]
            for (selection, expected) in cases {
                #expect(try await database.countOperable(selection) == expected, "\(selection)")
            }
        }
    }

    @Test func aDryRunCountsAndChangesNothingThenRetryMakesTheRowsDueNow() async throws {
        try await withMigratedStore { database, tenant in
            let f = try await Self.makeFixture(database, tenant: tenant)
            let selection = QueueSelection(tenantID: tenant, domain: "a.test")
            #expect(try await database.countOperable(selection) == 2)
            #expect(try await database.claim(owner: UUID(), limit: 10, lease: .seconds(60)).isEmpty,
                    "a dry run makes nothing due")
            let before = try #require(try await database.message(id: f.m2, tenantID: tenant)).recipients[0]

            #expect(try await database.apply(.retry, to: selection, detail: "test") == 2)
            let claimed = try await database.claim(owner: UUID(), limit: 10, lease: .seconds(60))
            #expect(Set(claimed.map(\.email)) == ["x1@a.test", "y1@a.test"], "exactly the selected rows are due now")
            let after = try #require(try await database.message(id: f.m2, tenantID: tenant)).recipients[0]
            #expect(after.status == .deferred && after.attempts == before.attempts, "a retry keeps status and attempts")
            #expect((after.nextAttemptAt ?? .distantFuture) < (before.nextAttemptAt ?? .distantPast))
        }
    }

    @Test func leasedRowsAreLeftAloneUntilTheirLeaseRunsOut() async throws {
        try await withMigratedStore { database, tenant in
            let f = try await Self.makeFixture(database, tenant: tenant)
            // A worker holds x1 and y1.
            #expect(try await database.apply(.retry, to: QueueSelection(tenantID: tenant, domain: "a.test"), detail: "") == 2)
            #expect(try await database.claim(owner: UUID(), limit: 10, lease: .seconds(60)).count == 2)
            #expect(try await database.countOperable(QueueSelection(tenantID: tenant)) == 2)
            #expect(try await database.apply(.cancel, to: QueueSelection(tenantID: tenant), detail: "canceled by test") == 2)
            let messages = [f.m1, f.m2, f.m3]
            #expect(try await Self.emails(database, tenant: tenant, messages: messages, status: .canceled) == ["x2@b.test", "z1@b.test"])
            #expect(try await Self.emails(database, tenant: tenant, messages: messages, status: .queued) == ["x1@a.test"])
            #expect(try await Self.emails(database, tenant: tenant, messages: messages, status: .deferred) == ["y1@a.test"])
            #expect(try await database.queueDepth() == (waiting: 1, leased: 2), "the other tenant's row and the two leased ones stay")

            // A lease that ran out (a dead worker) no longer protects its row.
            #expect(try await database.apply(.retry, to: QueueSelection(tenantID: f.other), detail: "") == 1)
            // A 3 s lease: long enough that the check right after the claim runs inside it on a loaded machine.
            #expect(try await database.claim(owner: UUID(), limit: 10, lease: .seconds(3)).map(\.email) == ["w1@a.test"])
            #expect(try await database.countOperable(QueueSelection(tenantID: f.other)) == 0)
            try await waitUntil("the lease runs out", timeout: .seconds(20)) {
                try await database.countOperable(QueueSelection(tenantID: f.other)) == 1
            }
            #expect(try await database.apply(.cancel, to: QueueSelection(tenantID: f.other), detail: "canceled by test") == 1)
            #expect(try await Self.emails(database, tenant: f.other, messages: [f.m4], status: .canceled) == ["w1@a.test"])
        }
    }

    @Test func cancelWritesStatusAndOneEventPerRecipientInBatches() async throws {
        try await withMigratedStore { database, tenant in
            let message = Self.message(tenant: tenant, tags: [], recipients: (0..<5).map { "r\($0)@c.test" },
                                       notBefore: Date().addingTimeInterval(3600))
            _ = try await database.enqueue(message, idempotency: nil)
            let selection = QueueSelection(tenantID: tenant, messageID: message.id)
            #expect(try await database.apply(.cancel, to: selection, detail: "canceled by test", batchSize: 2) == 5)
            let record = try #require(try await database.message(id: message.id, tenantID: tenant))
            #expect(record.recipients.allSatisfy { $0.status == .canceled && $0.reason == "canceled" && $0.nextAttemptAt == nil })
            let events = try #require(try await database.events(messageID: message.id, tenantID: tenant))
            #expect(events.filter { $0.type == "canceled" }.count == 5)
            #expect(events.filter { $0.type == "canceled" }.allSatisfy { $0.detail == "canceled by test" })
            #expect(try await database.queueDepth() == (0, 0))
            #expect(try await database.pendingRecipientCount(messageID: message.id) == 0)
            #expect(try await database.apply(.cancel, to: selection, detail: "again") == 0, "nothing is left to cancel")
        }
    }

    @Test func aCancelReachesTheWebhooksSubscribedToCanceled() async throws {
        try await withMigratedStore { database, tenant in
            let canceled = try await database.createWebhookEndpoint(tenantID: tenant, url: "https://a.example/", events: ["canceled"],
                                                                    secret: "whsec_AAAA")
            let bounced = try await database.createWebhookEndpoint(tenantID: tenant, url: "https://b.example/", events: ["bounced"],
                                                                   secret: "whsec_AAAA")
            let message = Self.message(tenant: tenant, tags: [], recipients: ["r@c.test"])
            _ = try await database.enqueue(message, idempotency: nil)
            #expect(try await database.apply(.cancel, to: QueueSelection(tenantID: tenant, messageID: message.id), detail: "test") == 1)
            let claimed = try await database.claimWebhooks(owner: UUID(), limit: 10, lease: .seconds(60))
            #expect(claimed.map(\.endpointID) == [canceled.id], "only the endpoint subscribed to canceled, not \(bounced.id)")
            #expect(claimed.map(\.eventType) == ["canceled"])
        }
    }

    @Test func aScheduledMessageIsDueAtItsSendTimeAndExpiresAfterIt() async throws {
        try await withMigratedStore { database, tenant in
            let sendAt = Date().addingTimeInterval(2)
            let message = Self.message(tenant: tenant, tags: [], recipients: ["s@d.test"], notBefore: sendAt)
            _ = try await database.enqueue(message, idempotency: nil)
            let record = try #require(try await database.message(id: message.id, tenantID: tenant))
            #expect(abs((record.sendAt ?? .distantPast).timeIntervalSince(sendAt)) < 0.001)
            #expect(abs((record.recipients[0].nextAttemptAt ?? .distantPast).timeIntervalSince(sendAt)) < 0.001)
            // Not claimable before send_at. (On a loaded machine the send time may already have come by now; then
            // the claim may take it, which is right.)
            var claimed = try await database.claim(owner: UUID(), limit: 10, lease: .seconds(60))
            #expect(claimed.isEmpty || Date() >= sendAt, "not due before send_at")
            if claimed.isEmpty {
                try await waitUntil("the scheduled recipient becomes due", timeout: .seconds(30)) {
                    claimed = try await database.claim(owner: UUID(), limit: 10, lease: .seconds(60))
                    return !claimed.isEmpty
                }
            }
            #expect(Date() >= sendAt)
            #expect(abs(claimed[0].expiresAt.timeIntervalSince(sendAt.addingTimeInterval(3600))) < 0.001,
                    "the lifetime counts from send_at")
        }
    }
}
