import Foundation
import RelayApp
import RelayTestSupport
import Testing

/// The suppression list: its API, and that a suppressed address is never attempted while the message's other
/// recipients go ahead (real MX peer on loopback).
@Suite struct SuppressionTests {
    @Test func aSuppressedRecipientIsNotAttemptedAndTheOthersAreDelivered() async throws {
        try await RelayHarness.withDestination { relay, sink in
            let added = try await relay.send(.POST, "/v1/suppressions", json: ["email": "Bob@Dest.test", "reason": "manual"])
            #expect(added.status == 201)
            #expect(added.json["email"] as? String == "Bob@Dest.test")
            #expect(added.json["reason"] as? String == "manual")

            // Case does not matter; the other recipient goes ahead.
            let body: [String: any Sendable] = ["from": "alice@example.com", "to": ["bob@dest.test", "carol@dest.test"],
                                                "subject": "s", "text": "t"]
            let sent = try await relay.send(.POST, "/v1/messages", json: body)
            #expect(sent.status == 202)
            let statuses = (sent.json["recipients"] as? [[String: Any]] ?? []).map { $0["status"] as? String ?? "" }
            #expect(statuses == ["suppressed", "queued"])
            let id = try #require(sent.json["id"] as? String)
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients.map { $0["status"] as? String } == ["suppressed", "delivered"])
            #expect(recipients[0]["reason"] as? String == "manual")
            #expect(try await relay.message(id)["status"] as? String == "partially_delivered")
            #expect(try sink.received().flatMap(\.recipients) == ["carol@dest.test"], "bob was never attempted")
            let events = try await relay.send(.GET, "/v1/messages/\(id)/events").json["data"] as? [[String: Any]] ?? []
            #expect(events.filter { $0["recipient"] as? String == "bob@dest.test" }.map { $0["type"] as? String } == ["accepted", "suppressed"])
            let stats = try await relay.send(.GET, "/v1/stats").json["totals"] as? [String: Any] ?? [:]
            #expect(stats["suppressed"] as? Int == 1)
            #expect(stats["accepted"] as? Int == 2)

            // Removed from the list, the address is attempted again.
            #expect(try await relay.send(.DELETE, "/v1/suppressions/BOB@dest.test").status == 204)
            #expect(try await relay.send(.DELETE, "/v1/suppressions/bob@dest.test").status == 404)
            let again = try await relay.sendMessage(["from": "alice@example.com", "to": "bob@dest.test", "subject": "s", "text": "t"])
            #expect(try await relay.waitUntilFinal(again).first?["status"] as? String == "delivered")
        }
    }

    @Test func theListPagesFiltersImportsExportsAndIsPerTenant() async throws {
        let relay = try await RelayHarness.start { $0.roles = [.api] }
        do {
            let csv = "email,reason\r\nA1@x.test,hard_bounce\r\n\"a2@x.test\",complaint\r\nnot an address,manual\r\na3@x.test,\r\na4@x.test,bogus\r\n"
            let imported = try await relay.send(.POST, "/v1/suppressions/import", rawBody: Array(csv.utf8),
                                                headers: ["Content-Type": "text/csv"])
            #expect(imported.status == 200)
            #expect(imported.json["imported"] as? Int == 3)
            let errors = imported.json["errors"] as? [[String: Any]] ?? []
            #expect(errors.compactMap { $0["line"] as? Int } == [4, 6])

            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try await relay.send(.GET, "/v1/suppressions?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")).json
                seen += (page["data"] as? [[String: Any]] ?? []).compactMap { $0["email"] as? String }
                cursor = page["next_cursor"] as? String
            } while cursor != nil
            #expect(Set(seen) == ["A1@x.test", "a2@x.test", "a3@x.test"])
            #expect(seen.count == 3)
            let complaints = try await relay.send(.GET, "/v1/suppressions?reason=complaint").json["data"] as? [[String: Any]] ?? []
            #expect(complaints.compactMap { $0["email"] as? String } == ["a2@x.test"])
            let one = try await relay.send(.GET, "/v1/suppressions?email=a1@X.TEST").json["data"] as? [[String: Any]] ?? []
            #expect(one.first?["reason"] as? String == "hard_bounce")

            let export = try await relay.send(.GET, "/v1/suppressions/export")
            #expect(export.status == 200)
            #expect(export.headers.contains { $0.0.lowercased() == "content-type" && $0.1.hasPrefix("text/csv") })
            let rows = export.text.split(separator: "\r\n")
            #expect(rows.first == "email,reason,source_message_id,created_at,expires_at")
            #expect(rows.count == 4)
            #expect(rows.contains { $0.hasPrefix("a3@x.test,manual,,") })

            #expect(try await relay.send(.POST, "/v1/suppressions", json: ["email": "nope"]).errorField == "email")
            #expect(try await relay.send(.POST, "/v1/suppressions", json: ["email": "b@x.test", "reason": "whim"]).errorField == "reason")
            let unknownField: [String: any Sendable] = ["email": "b@x.test", "extra": 1]
            #expect(try await relay.send(.POST, "/v1/suppressions", json: unknownField).status == 422)

            let (_, otherKey) = try await relay.database.createTenant(name: "other")
            #expect((try await relay.send(.GET, "/v1/suppressions", bearer: otherKey).json["data"] as? [Any])?.isEmpty == true)
            #expect(try await relay.send(.DELETE, "/v1/suppressions/a3@x.test", bearer: otherKey).status == 404)
        } catch {
            try? await relay.stop()
            throw error
        }
        try await relay.stop()
    }

    /// An MX that answers 550 5.1.1 → hard bounce → on the list → the next message to the address is suppressed;
    /// a content rejection (554 5.6.0, soft: the address is fine) does not suppress.
    @Test func aHardBounceSuppressesTheAddressAndAContentRejectionDoesNot() async throws {
        try await RelayHarness.withDestination { relay, sink in
            let first = try await relay.sendMessage(["from": "alice@example.com", "to": "bounce@dest.test", "subject": "s", "text": "t"])
            let content = try await relay.sendMessage(["from": "alice@example.com", "to": "datafail@dest.test", "subject": "s", "text": "t"])
            #expect(try await relay.waitUntilFinal(first).first?["status"] as? String == "bounced")
            #expect(try await relay.waitUntilFinal(content).first?["status"] as? String == "bounced")

            let listed = try await relay.send(.GET, "/v1/suppressions").json["data"] as? [[String: Any]] ?? []
            #expect(listed.count == 1)
            #expect(listed.first?["email"] as? String == "bounce@dest.test")
            #expect(listed.first?["reason"] as? String == "hard_bounce")
            #expect(listed.first?["source_message_id"] as? String == first)

            let again = try await relay.send(.POST, "/v1/messages", json: [
                "from": "alice@example.com", "to": "Bounce@dest.test", "subject": "s", "text": "t"])
            #expect((again.json["recipients"] as? [[String: Any]])?.first?["status"] as? String == "suppressed")
            let sentTo = try sink.received().flatMap(\.recipients)
            #expect(!sentTo.contains { $0.lowercased() == "bounce@dest.test" }, "550 at RCPT: nothing was ever accepted for it")
        }
    }

    /// An address listed after its message was accepted (here while it waits for a retry) is not attempted again.
    @Test func anAddressListedWhileItsMessageWaitsIsNotAttemptedAgain() async throws {
        try await RelayHarness.withDestination({ configuration in
            configuration.retryPolicy.initialDelay = .seconds(3)
            configuration.retryPolicy.maximumDelay = .seconds(3)
        }) { relay, sink in
            // "defer…" is greylisted once by the sink, then accepted.
            let id = try await relay.sendMessage(["from": "alice@example.com", "to": "defer-later@dest.test", "subject": "s", "text": "t"])
            try await waitUntil("the first attempt is deferred") {
                try await relay.recipients(id).first?["status"] as? String == "deferred"
            }
            #expect(try await relay.send(.POST, "/v1/suppressions", json: ["email": "defer-later@dest.test", "reason": "complaint"]).status == 201)
            let final = try await relay.waitUntilFinal(id)
            #expect(final.first?["status"] as? String == "suppressed")
            #expect(final.first?["reason"] as? String == "complaint")
            #expect(final.first?["attempts"] as? Int == 1, "the retry was not made")
            #expect(try sink.received().isEmpty)
            let events = try await relay.send(.GET, "/v1/messages/\(id)/events").json["data"] as? [[String: Any]] ?? []
            #expect(events.map { $0["type"] as? String } == ["accepted", "deferred", "suppressed"])
        }
    }
}
