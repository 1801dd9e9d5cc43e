import Foundation
import RelayApp
import RelayTestSupport
import Testing

/// `POST /v1/queue/retry|cancel` through the API, and `relay queue retry|cancel` run as the operator runs it.
@Suite struct QueueOperationsTests {
    static func body(to: [String], tag: String? = nil, sendAt: Date? = nil) -> [String: any Sendable] {
        var body: [String: any Sendable] = ["from": "alice@example.com", "to": to, "subject": "s", "text": "t"]
        if let tag { body["tags"] = [tag] }
        if let sendAt { body["send_at"] = ScheduleTests.rfc3339(sendAt) }
        return body
    }

    /// The statuses of a message's recipients by address.
    static func statuses(_ relay: RelayHarness, _ id: String) async throws -> [String: String] {
        var result: [String: String] = [:]
        for recipient in try await relay.recipients(id) {
            result[recipient["email"] as? String ?? ""] = recipient["status"] as? String
        }
        return result
    }

    @Test func aDryRunCountsWithoutChangingAnythingAndARetrySendsScheduledMailNow() async throws {
        try await RelayHarness.withDestination { relay, sink in
            let inAnHour = Date().addingTimeInterval(3600)
            let first = try await relay.sendMessage(Self.body(to: ["a@dest.test", "b@dest.test"], tag: "later", sendAt: inAnHour))
            let second = try await relay.sendMessage(Self.body(to: ["c@dest.test"], tag: "other", sendAt: inAnHour))
            let before = try await relay.recipients(first).map { $0["next_attempt_at"] as? String }

            let dryRun: [String: any Sendable] = ["tag": "later", "dry_run": true]
            let dry = try await relay.send(.POST, "/v1/queue/retry", json: dryRun)
            #expect(dry.status == 200)
            #expect(dry.json["affected"] as? Int == 2)
            #expect(dry.json["dry_run"] as? Bool == true)
            #expect(try await relay.recipients(first).map { $0["next_attempt_at"] as? String } == before, "a dry run changes nothing")
            #expect(try await relay.send(.POST, "/v1/queue/cancel", json: dryRun).json["affected"] as? Int == 2)
            #expect(try await Self.statuses(relay, first) == ["a@dest.test": "queued", "b@dest.test": "queued"])

            let retried = try await relay.send(.POST, "/v1/queue/retry", json: ["tag": "later"])
            #expect(retried.status == 200)
            #expect(retried.json["affected"] as? Int == 2)
            #expect(retried.json["dry_run"] as? Bool == false)
            let recipients = try await relay.waitUntilFinal(first)
            #expect(recipients.map { $0["status"] as? String } == ["delivered", "delivered"])
            #expect(Set(try sink.received().flatMap(\.recipients)) == ["a@dest.test", "b@dest.test"])
            #expect(try await Self.statuses(relay, second) == ["c@dest.test": "queued"], "the other tag still waits for its time")
        }
    }

    @Test func aBulkCancelByDomainLeavesOtherDomainsAndTenantsAlone() async throws {
        let relay = try await RelayHarness.start { $0.roles = [.api] }
        do {
            let mixed = try await relay.sendMessage(Self.body(to: ["x@gone.test", "y@kept.test"]))
            let gone = try await relay.sendMessage(Self.body(to: ["z@gone.test"]))
            let (_, otherKey) = try await relay.database.createTenant(name: "other")
            #expect(try await relay.send(.POST, "/v1/domains", json: ["name": "example.com"], bearer: otherKey).status == 201)
            let foreign = try await relay.send(.POST, "/v1/messages", json: Self.body(to: ["w@gone.test"]), bearer: otherKey)
            let foreignID = try #require(foreign.json["id"] as? String)

            let canceled = try await relay.send(.POST, "/v1/queue/cancel", json: ["domain": "Gone.test"])
            #expect(canceled.status == 200)
            #expect(canceled.json["affected"] as? Int == 2)
            #expect(try await Self.statuses(relay, mixed) == ["x@gone.test": "canceled", "y@kept.test": "queued"])
            #expect(try await Self.statuses(relay, gone) == ["z@gone.test": "canceled"])
            let events = try await relay.send(.GET, "/v1/messages/\(mixed)/events").json["data"] as? [[String: Any]] ?? []
            #expect(events.filter { $0["type"] as? String == "canceled" }.map { $0["recipient"] as? String } == ["x@gone.test"])
            let foreignStatus = try await relay.send(.GET, "/v1/messages/\(foreignID)", bearer: otherKey).json["status"] as? String
            #expect(foreignStatus == "queued", "another tenant's recipients are not this tenant's to cancel")

            // Filters are required, and bad ones are refused without changing anything.
            let refusals: [([String: any Sendable], String)] = [
                ([:], "filter"), (["dry_run": true], "filter"), (["colour": "red"], "colour"), (["status": "delivered"], "status"),
                (["enhanced_code": "4.7"], "enhanced_code"), (["since": "yesterday"], "since"), (["domain": ""], "domain"),
                (["dry_run": "yes", "domain": "kept.test"], "dry_run"), (["all": 1], "all"),
            ]
            for (body, field) in refusals {
                let result = try await relay.send(.POST, "/v1/queue/retry", json: body)
                #expect(result.status == 422 && result.errorCode == "validation_failed" && result.errorField == field, "\(body)")
            }
            #expect(try await relay.send(.POST, "/v1/queue/cancel", rawBody: Array("not json".utf8)).status == 400)
            #expect(try await Self.statuses(relay, mixed)["y@kept.test"] == "queued")
            let all = try await relay.send(.POST, "/v1/queue/cancel", json: ["all": true, "dry_run": true] as [String: any Sendable])
            #expect(all.json["affected"] as? Int == 1, "only y@kept.test is still pending for this tenant")
        } catch {
            try? await relay.stop()
            throw error
        }
        try await relay.stop()
    }

    @Test func theCommandLineRetriesAndCancelsOnARealDatabase() async throws {
        let relay = try await RelayHarness.start { $0.roles = [.api] }
        do {
            let inAnHour = Date().addingTimeInterval(3600)
            let id = try await relay.sendMessage(Self.body(to: ["a@one.test", "b@two.test"], tag: "cli", sendAt: inAnHour))
            let binary = try ProcessTests.relayBinary()
            func run(_ arguments: [String]) async throws -> (status: Int32, output: String) {
                try await runToCompletion(binary, arguments + ["--database-url", relay.databaseURL, "--log-level", "warning"])
            }

            let refused = try await run(["queue", "cancel"])
            #expect(refused.status != 0 && refused.output.contains("at least one filter"), "no filter is refused: \(refused.output)")

            let dry = try await run(["queue", "cancel", "--domain", "two.test", "--dry-run"])
            #expect(dry.status == 0)
            #expect(dry.output.contains("1 recipient would be canceled"), "\(dry.output)")
            #expect(try await Self.statuses(relay, id) == ["a@one.test": "queued", "b@two.test": "queued"])

            let otherTenant = try await run(["queue", "cancel", "--tenant", UUID().uuidString, "--all"])
            #expect(otherTenant.output.contains("canceled 0 recipients"), "\(otherTenant.output)")

            let canceled = try await run(["queue", "cancel", "--tenant", relay.tenantID, "--domain", "two.test"])
            #expect(canceled.status == 0)
            #expect(canceled.output.contains("canceled 1 recipient"), "\(canceled.output)")
            #expect(try await Self.statuses(relay, id) == ["a@one.test": "queued", "b@two.test": "canceled"])

            let retried = try await run(["queue", "retry", "--tag", "cli", "--status", "queued"])
            #expect(retried.status == 0)
            #expect(retried.output.contains("retried 1 recipient"), "\(retried.output)")
            let next = try await relay.recipients(id).first { $0["email"] as? String == "a@one.test" }?["next_attempt_at"] as? String
            let due = try #require(next.flatMap { try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse($0) })
            #expect(due < inAnHour.addingTimeInterval(-3000), "the retried recipient is due now, not at send_at")
        } catch {
            try? await relay.stop()
            throw error
        }
        try await relay.stop()
    }
}
