import Foundation
import RelayCore
@testable import RelayStore
import RelayWebhooks
import Testing

@Suite struct WebhookPayloadTests {
    func webhook(type: String, reply: DeliveryReply?, detail: String? = nil) -> ClaimedWebhook {
        let event = WebhookMessageEvent(
            eventID: 42, messageID: UUID(uuidString: "01A22520-5112-7E32-8C38-519DBFA1B805")!, recipient: "bob@dest.test",
            type: type, at: Date(timeIntervalSince1970: 1_800_000_000.5), attempt: 2, mx: "mx1.dest.test", reply: reply,
            detail: detail, tags: ["welcome"], metadataJSON: #"{"order": "1234"}"#)
        return ClaimedWebhook(outboxID: 7, endpointID: UUID(), url: "https://hooks.example.com/", secrets: [], eventType: type,
                              attempts: 0, createdAt: Date(), payload: nil, dataJSON: nil, messageEvent: event)
    }

    func object(_ body: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
    }

    @Test func aHardBounceCarriesTheReplyAndTheSharedClassification() throws {
        let body = WebhookPayload.body(of: webhook(type: "bounced", reply: DeliveryReply(code: 550, enhanced: "5.1.1", text: "User unknown")))
        let payload = try object(body)
        #expect(payload["type"] as? String == "bounced")
        #expect(payload["timestamp"] as? String == "2027-01-15T08:00:00.500Z")
        let data = try #require(payload["data"] as? [String: Any])
        #expect(data["event_id"] as? String == "42")
        #expect(data["message_id"] as? String == "01a22520-5112-7e32-8c38-519dbfa1b805")
        #expect(data["recipient"] as? String == "bob@dest.test")
        #expect(data["status"] as? String == "bounced")
        #expect(data["tags"] as? [String] == ["welcome"])
        #expect((data["metadata"] as? [String: String]) == ["order": "1234"])
        #expect(data["attempt"] as? Int == 2)
        #expect(data["mx"] as? String == "mx1.dest.test")
        let reply = try #require(data["reply"] as? [String: Any])
        #expect(reply["code"] as? Int == 550)
        #expect(reply["enhanced"] as? String == "5.1.1")
        #expect(data["bounce_type"] as? String == "hard")
        #expect(data["bounce_reason"] as? String == "mailbox_unknown")
        #expect(body == WebhookPayload.body(of: webhook(type: "bounced", reply: DeliveryReply(code: 550, enhanced: "5.1.1", text: "User unknown"))),
                "rendering is deterministic")
    }

    @Test func aDeliveryHasNoBounceFieldsAndAStoredBodyIsSentAsItIs() throws {
        let data = try #require(try object(WebhookPayload.body(of: webhook(type: "delivered", reply: DeliveryReply(code: 250, enhanced: "2.0.0", text: "Ok"))))["data"] as? [String: Any])
        #expect(data["bounce_type"] is NSNull)
        #expect(data["bounce_reason"] is NSNull)
        var stored = webhook(type: "delivered", reply: nil)
        stored.payload = #"{"stored":true}"#
        #expect(WebhookPayload.body(of: stored) == #"{"stored":true}"#)
    }

    @Test func aFailureWithoutReplyIsClassifiedFromItsDetail() throws {
        let data = try #require(try object(WebhookPayload.body(of: webhook(
            type: "failed", reply: nil, detail: "dest.test does not exist (NXDOMAIN)")))["data"] as? [String: Any])
        #expect(data["reply"] is NSNull)
        #expect(data["bounce_type"] as? String == "hard")
        #expect(data["bounce_reason"] as? String == "domain_not_found")
    }

    @Test func anEventWithoutMessageCarriesItsData() throws {
        var paused = webhook(type: "tenant.paused", reply: nil)
        paused.messageEvent = nil
        paused.dataJSON = #"{"tenant_id": "t", "reason": "bounce_rate", "bounce_rate": 0.12, "complaint_rate": 0.001}"#
        let payload = try object(WebhookPayload.body(of: paused))
        #expect(payload["type"] as? String == "tenant.paused")
        let data = try #require(payload["data"] as? [String: Any])
        #expect(data["reason"] as? String == "bounce_rate")
        #expect(data["bounce_rate"] as? Double == 0.12)
    }
}
