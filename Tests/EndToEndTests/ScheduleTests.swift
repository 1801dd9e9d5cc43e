import Foundation
import RelayApp
import RelayTestSupport
import Testing

/// Scheduled send (`send_at`) and `POST /v1/messages/{id}/cancel`, through the API to a real MX peer on loopback.
@Suite struct ScheduleTests {
    /// RFC 3339 with a +02:00 offset, whole seconds (so the parsed time equals `date` exactly).
    static func rfc3339(_ date: Date, offsetHours: Int = 2) -> String {
        let seconds = Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.up))
        let style = Date.ISO8601FormatStyle(timeZoneSeparator: .colon, timeZone: TimeZone(secondsFromGMT: offsetHours * 3600)!)
        return seconds.formatted(style)
    }

    static func body(to: String, sendAt: String? = nil) -> [String: any Sendable] {
        var body: [String: any Sendable] = ["from": "alice@example.com", "to": to, "subject": "later", "text": "t"]
        if let sendAt { body["send_at"] = sendAt }
        return body
    }

    @Test func aScheduledMessageIsDeliveredAtItsSendTimeAndNotBefore() async throws {
        try await RelayHarness.withDestination { relay, sink in
            let text = Self.rfc3339(Date().addingTimeInterval(3))
            let sendAt = try #require(try? Date.ISO8601FormatStyle().parse(text))
            let sent = try await relay.send(.POST, "/v1/messages", json: Self.body(to: "bob@dest.test", sendAt: text))
            #expect(sent.status == 202)
            let accepted = try #require(sent.json["send_at"] as? String)
            #expect(try Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(accepted) == sendAt)
            let id = try #require(sent.json["id"] as? String)

            let message = try await relay.message(id)
            #expect(message["send_at"] as? String == accepted)
            let recipient = try #require((message["recipients"] as? [[String: Any]])?.first)
            #expect(recipient["next_attempt_at"] as? String == accepted, "the first attempt is due at send_at")

            let recipients = try await relay.waitUntilFinal(id, timeout: .seconds(40))
            #expect(recipients[0]["status"] as? String == "delivered")
            let received = try sink.received()
            try #require(received.count == 1)
            let receivedAt = try #require(received[0].receivedAt)
            #expect(receivedAt >= sendAt, "received at \(receivedAt), scheduled for \(sendAt)")
        }
    }

    @Test func sendAtIsValidated() async throws {
        let relay = try await RelayHarness.start { $0.roles = [.api] }
        do {
            for bad in [Self.rfc3339(Date().addingTimeInterval(31 * 86_400)), "2026-11-29T10:00:00", "tomorrow", "2026-11-29"] {
                let result = try await relay.send(.POST, "/v1/messages", json: Self.body(to: "bob@dest.test", sendAt: bad))
                #expect(result.status == 422, "\(bad)")
                #expect(result.errorCode == "validation_failed")
                #expect(result.errorField == "send_at")
            }
            let numeric: [String: any Sendable] = ["from": "alice@example.com", "to": "b@dest.test", "text": "t", "send_at": 5]
            let wrongType = try await relay.send(.POST, "/v1/messages", json: numeric)
            #expect(wrongType.status == 422 && wrongType.errorField == "send_at")
            #expect(try await relay.database.queueDepth() == (0, 0), "a refused request stores nothing")

            // Now or in the past: at once, shown as not scheduled.
            let past = try await relay.send(.POST, "/v1/messages", json: Self.body(to: "bob@dest.test", sendAt: "2020-01-01T00:00:00Z"))
            #expect(past.status == 202)
            #expect(past.json.keys.contains("send_at") && past.json["send_at"] is NSNull)
            let id = try #require(past.json["id"] as? String)
            #expect(try await relay.message(id)["send_at"] is NSNull)

            // Just under 30 days ahead is accepted.
            let far = try await relay.send(.POST, "/v1/messages",
                                           json: Self.body(to: "bob@dest.test", sendAt: Self.rfc3339(Date().addingTimeInterval(29 * 86_400))))
            #expect(far.status == 202)
        } catch {
            try? await relay.stop()
            throw error
        }
        try await relay.stop()
    }

    @Test func cancelingAScheduledMessageCancelsItForGood() async throws {
        try await RelayHarness.withDestination { relay, sink in
            let text = Self.rfc3339(Date().addingTimeInterval(3600))
            let id = try await relay.sendMessage(Self.body(to: "bob@dest.test", sendAt: text))
            let (_, otherKey) = try await relay.database.createTenant(name: "other")
            let foreign = try await relay.send(.POST, "/v1/messages/\(id)/cancel", bearer: otherKey)
            #expect(foreign.status == 404 && foreign.errorCode == "not_found", "another tenant's message does not exist for it")
            #expect(try await relay.send(.POST, "/v1/messages/\(UUID().uuidString)/cancel").status == 404)
            #expect(try await relay.send(.POST, "/v1/messages/not-a-uuid/cancel").status == 404)
            #expect(try await relay.recipients(id).first?["status"] as? String == "queued", "a 404 changes nothing")

            let canceled = try await relay.send(.POST, "/v1/messages/\(id)/cancel")
            #expect(canceled.status == 200)
            #expect(canceled.json["canceled"] as? Int == 1)
            #expect(canceled.json["in_flight"] as? Int == 0)
            #expect(canceled.json["status"] as? String == "canceled")
            #expect(canceled.json["id"] as? String == id)
            #expect(canceled.json["send_at"] as? String != nil)
            let recipient = try #require((canceled.json["recipients"] as? [[String: Any]])?.first)
            #expect(recipient["status"] as? String == "canceled")
            #expect(recipient["next_attempt_at"] is NSNull)

            let again = try await relay.send(.POST, "/v1/messages/\(id)/cancel")
            #expect(again.status == 409 && again.errorCode == "not_cancelable")

            let events = try await relay.send(.GET, "/v1/messages/\(id)/events").json["data"] as? [[String: Any]] ?? []
            #expect(events.map { $0["type"] as? String } == ["accepted", "canceled"])
            let stream = try await relay.send(.GET, "/v1/events?type=canceled").json["data"] as? [[String: Any]] ?? []
            #expect(stream.map { $0["message_id"] as? String } == [id])

            // Nothing can make it go out any more: a bulk retry finds nothing, and the queue is empty.
            let retried = try await relay.send(.POST, "/v1/queue/retry", json: ["all": true])
            #expect(retried.json["affected"] as? Int == 0)
            #expect(try await relay.database.queueDepth() == (0, 0))
            #expect(try sink.received().isEmpty)
        }
    }

    @Test func aRecipientBeingDeliveredIsNotCanceled() async throws {
        // slow* makes the sink hold the end of data for 3 s: the recipient stays leased meanwhile.
        try await RelayHarness.withDestination(sinkSlowSeconds: 3) { relay, _ in
            let id = try await relay.sendMessage(Self.body(to: "slow@dest.test"))
            try await waitUntil("a worker holds the recipient", timeout: .seconds(20)) {
                try await relay.database.queueDepth().leased == 1
            }
            let refused = try await relay.send(.POST, "/v1/messages/\(id)/cancel")
            #expect(refused.status == 409 && refused.errorCode == "not_cancelable")
            let reason = (refused.json["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(reason.contains("being delivered right now"), "the refusal says why: \(reason)")
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients[0]["status"] as? String == "delivered", "the delivery under way finished and counted")
        }
    }
}
