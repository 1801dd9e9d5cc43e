import Foundation
import RelayCore
import RelayStore

/// The event types an endpoint can subscribe to, and the one only the test route sends.
public enum WebhookEventType {
    /// Recipient events, written to `events` by delivery, suppression and inbound bounce/complaint processing.
    public static let messageEvents = ["delivered", "deferred", "bounced", "failed", "suppressed", "complained", "unsubscribed",
                                       "canceled"]
    /// Everything an endpoint may list in `events`.
    public static let subscribable = messageEvents + ["tenant.paused"]
    /// Sent by `POST /v1/webhooks/{id}/test` to that endpoint only, whatever it subscribes to.
    public static let test = "webhook.test"
}

/// Renders the Standard Webhooks body `{"type": …, "timestamp": RFC 3339, "data": {…}}` of an outbox row.
/// Keys are sorted, so rendering is deterministic; the body is stored at the first attempt anyway.
public enum WebhookPayload {
    /// The body of `webhook`: the stored one when there is one, else rendered from its event or its data.
    public static func body(of webhook: ClaimedWebhook) -> String {
        if let payload = webhook.payload { return payload }
        if let event = webhook.messageEvent {
            return render(type: webhook.eventType, at: event.at, data: messageData(event))
        }
        let data = webhook.dataJSON.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } ?? [String: Any]()
        return render(type: webhook.eventType, at: webhook.createdAt, data: data)
    }

    static func render(type: String, at: Date, data: Any) -> String {
        let object: [String: Any] = ["type": type, "timestamp": timestamp(at), "data": data]
        let bytes = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The data of a recipient event. `status` is the recipient state the event records (its type);
    /// `bounce_type`/`bounce_reason` come from the same classification as the event log's.
    static func messageData(_ event: WebhookMessageEvent) -> [String: Any] {
        let bounce = BounceClassifier.classify(event: event.type, reply: event.reply, detail: event.detail)
        let metadata = (try? JSONSerialization.jsonObject(with: Data(event.metadataJSON.utf8))) ?? [String: Any]()
        let reply: Any = event.reply.map { reply -> [String: Any] in
            ["code": reply.code, "enhanced": reply.enhanced ?? NSNull(), "text": reply.text]
        } ?? NSNull()
        return [
            "event_id": String(event.eventID),
            "message_id": event.messageID.uuidString.lowercased(),
            "recipient": event.recipient,
            "status": event.type,
            "tags": event.tags,
            "metadata": metadata,
            "attempt": event.attempt,
            "mx": event.mx ?? NSNull(),
            "reply": reply,
            "detail": event.detail ?? NSNull(),
            "bounce_type": bounce?.type.rawValue ?? NSNull(),
            "bounce_reason": bounce?.reason.rawValue ?? NSNull(),
        ]
    }

    /// RFC 3339 in UTC with milliseconds, as everywhere in the API.
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }
}
