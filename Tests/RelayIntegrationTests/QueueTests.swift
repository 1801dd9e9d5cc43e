import Foundation
import NIOCore
import RelayCore
import RelayStore
import RelayTestSupport
import Testing

/// The PostgreSQL queue against a real server: enqueue, claim, lease expiry and takeover, batch completion,
/// and that concurrent claimers never get the same recipient twice.
@Suite struct QueueTests {
    func message(tenant: UUID, recipients: [String]) -> NewMessage {
        NewMessage(id: TimeOrderedUUID.make(), tenantID: tenant, mailFrom: "a@example.com", fromHeader: "a@example.com",
                   subject: "s", messageIDHeader: "x@relay.test", tags: ["t"], metadataJSON: "{}",
                   body: ByteBuffer(string: "Subject: s\r\n\r\nhi\r\n"), requiresSMTPUTF8: false,
                   recipients: recipients.map { ($0, String($0.split(separator: "@")[1])) }, lifetime: .seconds(3600))
    }

    @Test func enqueueThenClaimLeasesEachRecipientOnce() async throws {
        try await withMigratedStore { database, tenant in
            let message = message(tenant: tenant, recipients: ["b@one.test", "c@one.test", "d@two.test"])
            #expect(try await database.enqueue(message, idempotency: nil) == .stored)
            let owner = UUID()
            let claimed = try await database.claim(owner: owner, limit: 10, lease: .seconds(60))
            #expect(Set(claimed.map(\.email)) == ["b@one.test", "c@one.test", "d@two.test"])
            #expect(claimed.allSatisfy { $0.messageID == message.id && $0.attempts == 0 && $0.mailFrom == "a@example.com" })
            // Leased rows are not due again until the lease runs out.
            #expect(try await database.claim(owner: UUID(), limit: 10, lease: .seconds(60)).isEmpty)
            let depth = try await database.queueDepth()
            #expect(depth.waiting == 0 && depth.leased == 3)
        }
    }

    /// Group commit: concurrent single-message accepts are all stored, each once and whole (recipients, queue
    /// rows, tags, schedule), however the group writer batched them.
    @Test func concurrentAcceptsAreEachStoredOnceByTheGroupCommit() async throws {
        // These tests are about which messages are stored, not how fast: the integration tier runs some sixty suites
        // at once on two cores, where one CI run saw statements take seconds, so the deadline is generous.
        try await withMigratedStore(requestTimeout: .seconds(60)) { database, tenant in
            let sendAt = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 3600).rounded())
            let messages = (0..<80).map { index -> NewMessage in
                var message = message(tenant: tenant, recipients: (0...(index % 3)).map { "r\($0)-\(index)@group.test" })
                message.tags = Array(["a", "b", "c"].prefix(index % 4))
                if index % 10 == 0 { message.notBefore = sendAt }
                return message
            }
            try await withThrowingTaskGroup(of: EnqueueResult.self) { group in
                for message in messages { group.addTask { try await database.enqueue(message, idempotency: nil) } }
                for try await result in group { #expect(result == .stored) }
            }
            for (index, message) in messages.enumerated() {
                let record = try #require(try await database.message(id: message.id, tenantID: tenant))
                #expect(record.recipients.map(\.email) == message.recipients.map(\.email))
                #expect(record.tags == message.tags)
                #expect(record.sendAt == (index % 10 == 0 ? sendAt : nil))
            }
            let depth = try await database.queueDepth()
            #expect(depth.waiting + depth.leased == messages.reduce(0) { $0 + $1.recipients.count })
        }
    }

    /// A message the server refuses (here: an id that is taken) fails alone; the messages committed in the same
    /// group are stored.
    @Test func aRefusedMessageDoesNotFailItsGroup() async throws {
        try await withMigratedStore(requestTimeout: .seconds(60)) { database, tenant in
            let taken = message(tenant: tenant, recipients: ["first@group.test"])
            #expect(try await database.enqueue(taken, idempotency: nil) == .stored)
            var duplicate = message(tenant: tenant, recipients: ["second@group.test"])
            duplicate.id = taken.id
            let others = (0..<10).map { message(tenant: tenant, recipients: ["o\($0)@group.test"]) }
            let outcomes = try await withThrowingTaskGroup(of: (UUID, String?).self) { group in
                for message in others + [duplicate] + others.map({ var copy = $0; copy.id = TimeOrderedUUID.make(); return copy }) {
                    group.addTask {
                        do {
                            _ = try await database.enqueue(message, idempotency: nil)
                            return (message.id, nil)
                        } catch {
                            return (message.id, String(reflecting: error))
                        }
                    }
                }
                return try await group.reduce(into: [(UUID, String?)]()) { $0.append($1) }
            }
            let failures = outcomes.compactMap(\.1)
            #expect(failures.count == 1, "only the duplicate fails: \(failures.prefix(3))")
            #expect(outcomes.filter { $0.1 == nil }.count == 20)
            let record = try #require(try await database.message(id: taken.id, tenantID: tenant))
            #expect(record.recipients.map(\.email) == ["first@group.test"], "the original is untouched")
        }
    }

    /// A claim takes at most `perDomain` rows of one domain and none of an excluded (busy) domain, so a domain
    /// whose MX hangs cannot fill a worker with its mail.
    @Test func aClaimTakesABoundedShareOfEachDomainAndNoneOfABusyOne() async throws {
        try await withMigratedStore { database, tenant in
            let crowded = message(tenant: tenant, recipients: (0..<8).map { "r\($0)@crowded.test" })
            _ = try await database.enqueue(crowded, idempotency: nil)
            _ = try await database.enqueue(message(tenant: tenant, recipients: ["a@quiet.test", "b@quiet.test"]), idempotency: nil)
            _ = try await database.enqueue(message(tenant: tenant, recipients: ["c@other.test"]), idempotency: nil)
            let first = try await database.claim(owner: UUID(), limit: 50, lease: .seconds(60), perDomain: 3)
            let byDomain = Dictionary(grouping: first, by: \.domain).mapValues(\.count)
            #expect(byDomain == ["crowded.test": 3, "quiet.test": 2, "other.test": 1])
            // The crowded domain is busy on this node now: the next claim leaves it out entirely.
            #expect(try await database.claim(owner: UUID(), limit: 50, lease: .seconds(60), perDomain: 3,
                                             excluding: ["crowded.test"]).isEmpty)
            let rest = try await database.claim(owner: UUID(), limit: 50, lease: .seconds(60), perDomain: 10)
            #expect(rest.count == 5 && rest.allSatisfy { $0.domain == "crowded.test" })
        }
    }

    /// Behind a backlog of a busy domain longer than the claim's window, the other domains' mail is still found
    /// (domain by domain through `queue_domain_due`), each domain bounded by `perDomain`, the busy one left out.
    @Test func aBusyDomainsBacklogDoesNotHideTheOthersMail() async throws {
        try await withMigratedStore { database, tenant in
            let backlog = (0..<(RelayDatabase.claimWindow + 300)).map { "r\($0)@busy.test" }
            _ = try await database.enqueue(message(tenant: tenant, recipients: backlog), idempotency: nil)
            // Domains that sort before and after the busy one, accepted after its backlog.
            _ = try await database.enqueue(message(tenant: tenant, recipients: ["a@aaa.test", "b@aaa.test", "c@zzz.test", "d@zzz.test"]),
                                           idempotency: nil)
            let first = try await database.claim(owner: UUID(), limit: 50, lease: .seconds(60), perDomain: 1, excluding: ["busy.test"])
            #expect(Dictionary(grouping: first, by: \.domain).mapValues(\.count) == ["aaa.test": 1, "zzz.test": 1])
            let second = try await database.claim(owner: UUID(), limit: 50, lease: .seconds(60), perDomain: 5, excluding: ["busy.test"])
            #expect(Set(second.map(\.email)) == Set(["a@aaa.test", "b@aaa.test", "c@zzz.test", "d@zzz.test"]).subtracting(first.map(\.email)))
            #expect(try await database.claim(owner: UUID(), limit: 50, lease: .seconds(60), perDomain: 5, excluding: ["busy.test"]).isEmpty)
            // The backlog itself is untouched and comes oldest first once the domain is no longer left out.
            let busy = try await database.claim(owner: UUID(), limit: 10, lease: .seconds(60), perDomain: 10)
            #expect(busy.count == 10 && busy.allSatisfy { $0.domain == "busy.test" })
            #expect(try await database.queueDepth() == (RelayDatabase.claimWindow + 290, 14))
        }
    }

    @Test func expiredLeaseIsTakenOverAndTheOldOwnerCannotWrite() async throws {
        try await withMigratedStore { database, tenant in
            _ = try await database.enqueue(message(tenant: tenant, recipients: ["b@one.test"]), idempotency: nil)
            let crashed = UUID()
            let first = try await database.claim(owner: crashed, limit: 10, lease: .milliseconds(300))
            #expect(first.count == 1)
            let survivor = UUID()
            var taken: [ClaimedRecipient] = []
            try await waitUntil("the lease expires and another node claims the row", timeout: .seconds(10)) {
                taken = try await database.claim(owner: survivor, limit: 10, lease: .seconds(60))
                return !taken.isEmpty
            }
            #expect(taken.map(\.recipientID) == first.map(\.recipientID))
            let delivered = CompletedDelivery(recipientID: first[0].recipientID, status: .delivered, countsAsAttempt: true,
                                              nextAttemptAt: nil, reply: DeliveryReply(code: 250, enhanced: "2.0.0", text: "ok"),
                                              detail: nil, mx: "mx.one.test", reason: nil, durationMs: 5)
            #expect(try await database.complete([delivered], owner: crashed) == 0, "a node that lost its lease must not write")
            #expect(try await database.complete([delivered], owner: survivor) == 1)
            let record = try #require(try await database.message(id: first[0].messageID, tenantID: tenant))
            #expect(record.recipients[0].status == .delivered)
            #expect(record.recipients[0].attempts == 1)
            #expect(try await database.queueDepth() == (0, 0))
        }
    }

    @Test func deferredRecipientWaitsUntilItsNextAttempt() async throws {
        try await withMigratedStore { database, tenant in
            _ = try await database.enqueue(message(tenant: tenant, recipients: ["b@one.test"]), idempotency: nil)
            let owner = UUID()
            let claimed = try await database.claim(owner: owner, limit: 10, lease: .seconds(60))
            // Far enough ahead that the claim right after the write cannot see it due, even on a loaded machine.
            let next = Date().addingTimeInterval(3)
            let deferred = CompletedDelivery(recipientID: claimed[0].recipientID, status: .deferred, countsAsAttempt: true,
                                             nextAttemptAt: next, reply: DeliveryReply(code: 451, enhanced: "4.3.0", text: "later"),
                                             detail: nil, mx: "mx.one.test", reason: nil, durationMs: 7)
            #expect(try await database.complete([deferred], owner: owner) == 1)
            #expect(try await database.claim(owner: owner, limit: 10, lease: .seconds(60)).isEmpty)
            var again: [ClaimedRecipient] = []
            try await waitUntil("the deferred recipient becomes due", timeout: .seconds(20)) {
                again = try await database.claim(owner: owner, limit: 10, lease: .seconds(60))
                return !again.isEmpty
            }
            #expect(again[0].attempts == 1)
            let events = try #require(try await database.events(messageID: claimed[0].messageID, tenantID: tenant))
            #expect(events.map(\.type) == ["accepted", "deferred"])
            #expect(events[1].reply == DeliveryReply(code: 451, enhanced: "4.3.0", text: "later"))
            #expect(events[1].mx == "mx.one.test")
        }
    }

    @Test func concurrentClaimersNeverShareARecipient() async throws {
        try await withMigratedStore { database, tenant in
            for batch in 0..<10 {
                let recipients = (0..<50).map { "user\(batch)-\($0)@d\($0 % 7).test" }
                _ = try await database.enqueue(message(tenant: tenant, recipients: recipients), idempotency: nil)
            }
            let all = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let owner = UUID()
                        var mine: [Int64] = []
                        while true {
                            let claimed = try await database.claim(owner: owner, limit: 17, lease: .seconds(60))
                            if claimed.isEmpty { return mine }
                            mine += claimed.map(\.recipientID)
                            let done = claimed.map {
                                CompletedDelivery(recipientID: $0.recipientID, status: .delivered, countsAsAttempt: true,
                                                  nextAttemptAt: nil, reply: DeliveryReply(code: 250, enhanced: nil, text: "ok"),
                                                  detail: nil, mx: "mx", reason: nil, durationMs: 1)
                            }
                            #expect(try await database.complete(done, owner: owner) == claimed.count)
                        }
                    }
                }
                var all: [Int64] = []
                for try await ids in group { all += ids }
                return all
            }
            #expect(all.count == 500)
            #expect(Set(all).count == 500, "a recipient was claimed twice")
            #expect(try await database.queueDepth() == (0, 0))
        }
    }

    @Test func releasedLeasesAreDueAtOnce() async throws {
        try await withMigratedStore { database, tenant in
            _ = try await database.enqueue(message(tenant: tenant, recipients: ["b@one.test", "c@one.test"]), idempotency: nil)
            let owner = UUID()
            let claimed = try await database.claim(owner: owner, limit: 10, lease: .seconds(600))
            try await database.releaseLeases(owner: owner, recipientIDs: claimed.map(\.recipientID))
            #expect(try await database.claim(owner: UUID(), limit: 10, lease: .seconds(60)).count == 2)
        }
    }

    @Test func idempotencyKeyReplaysOrConflicts() async throws {
        try await withMigratedStore { database, tenant in
            let first = message(tenant: tenant, recipients: ["b@one.test"])
            let request = IdempotencyRequest(key: "k1", requestHash: [1, 2, 3], statusCode: 202, responseBody: "{\"id\":\"first\"}")
            let stored = try await database.enqueue(first, idempotency: request)
            #expect(stored == .stored)
            let second = message(tenant: tenant, recipients: ["b@one.test"])
            let replayed = try await database.enqueue(second, idempotency: request)
            #expect(replayed == .replay(statusCode: 202, body: "{\"id\":\"first\"}"))
            var changed = request
            changed.requestHash = [9]
            let conflicting = try await database.enqueue(second, idempotency: changed)
            #expect(conflicting == .idempotencyConflict)
            #expect(try await database.message(id: second.id, tenantID: tenant) == nil, "a replay stores nothing")
            #expect(try await database.queueDepth().waiting == 1)
        }
    }
}
