import Foundation
import Hummingbird
import RelayCore
import RelayStore

/// The delivery log beyond the message list: `GET /v1/events` (the tenant's event stream),
/// `GET /v1/messages/{id}/events` and `GET /v1/messages/{id}/attempts` (SMTP transcripts).
struct LogController {
    let database: RelayDatabase

    /// Event types a filter may name (some are written by later features: suppression, complaints, opens).
    static let eventTypes = ["accepted", "deferred", "delivered", "bounced", "failed", "suppressed", "complained", "unsubscribed",
                             "opened", "canceled"]

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.get("events", use: stream)
        group.get("messages/:id/events", use: messageEvents)
        group.get("messages/:id/attempts", use: attempts)
    }

    struct EventJSON: Encodable {
        var record: EventRecord
        enum CodingKeys: String, CodingKey {
            case id, type, messageID = "message_id", recipient, at, attempt, attemptID = "attempt_id", mx,
                 remoteIP = "remote_ip", tls, tlsVersion = "tls_version", reply, replyCode = "reply_code",
                 enhancedCode = "enhanced_code", replyText = "reply_text", detail, durationMs = "duration_ms",
                 bounceType = "bounce_type", bounceReason = "bounce_reason"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(String(record.id), forKey: .id)
            try container.encode(record.type, forKey: .type)
            try container.encode(record.messageID.apiString, forKey: .messageID)
            try container.encode(record.recipient, forKey: .recipient)
            try container.encode(RFC3339.format(record.at), forKey: .at)
            try container.encode(record.attempt, forKey: .attempt)
            try container.encode(record.attemptID?.apiString, forKey: .attemptID)
            try container.encode(record.mx, forKey: .mx)
            try container.encode(record.remoteIP, forKey: .remoteIP)
            // Only attempts that reached a server know whether the session was encrypted.
            try container.encode(record.remoteIP == nil ? nil : record.tlsVersion != nil, forKey: .tls)
            try container.encode(record.tlsVersion, forKey: .tlsVersion)
            try container.encode(record.reply.map(MessagesController.ReplyJSON.init), forKey: .reply)
            try container.encode(record.reply?.code, forKey: .replyCode)
            try container.encode(record.reply?.enhanced, forKey: .enhancedCode)
            try container.encode(record.reply?.text, forKey: .replyText)
            try container.encode(record.detail, forKey: .detail)
            try container.encode(record.durationMs, forKey: .durationMs)
            let bounce = BounceClassifier.classify(event: record.type, reply: record.reply, detail: record.detail)
            try container.encode(bounce?.type.rawValue, forKey: .bounceType)
            try container.encode(bounce?.reason.rawValue, forKey: .bounceReason)
        }
    }

    /// `GET /v1/events`: newest first (or `order=asc`), filtered by type, recipient and time.
    @Sendable func stream(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let query = QueryParameters(request: request)
        let filter = EventFilter(type: try query.choice("type", in: Self.eventTypes),
                                 recipient: try query.text("recipient"),
                                 since: try query.time("since"), until: try query.time("until"))
        let ascending = try query.choice("order", in: ["asc", "desc"]) == "asc"
        let limit = try query.limit(default: MessagesController.defaultPageSize, maximum: MessagesController.maximumPageSize)
        let cursor = try query.cursor(EventCursorCoding.decode)
        let (events, next) = try await database.events(tenantID: tenant, filter: filter, limit: limit,
                                                       ascending: ascending, after: cursor)
        return try JSONResponse.make(.ok, Page(data: events.map(EventJSON.init), nextCursor: next.map(EventCursorCoding.encode)))
    }

    struct EventList: Encodable {
        var data: [EventJSON]
    }

    /// `GET /v1/messages/{id}/events`: the message's history, oldest first.
    @Sendable func messageEvents(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
              let events = try await database.events(messageID: id, tenantID: tenant) else {
            throw APIError(.notFound, code: "not_found", message: "no such message")
        }
        return try JSONResponse.make(.ok, EventList(data: events.map(EventJSON.init)))
    }

    struct AttemptJSON: Encodable {
        struct Outcome: Encodable {
            var email: String
            var status: String
            var reply: MessagesController.ReplyJSON?
            var detail: String?
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(email, forKey: .email)
                try container.encode(status, forKey: .status)
                try container.encode(reply, forKey: .reply)
                try container.encode(detail, forKey: .detail)
            }
            enum CodingKeys: String, CodingKey { case email, status, reply, detail }
        }
        struct Line: Encodable {
            var at: String
            var direction: String
            var text: String
        }
        var record: AttemptRecord
        enum CodingKeys: String, CodingKey {
            case id, startedAt = "started_at", durationMs = "duration_ms", domain, mx, remoteIP = "remote_ip", tls,
                 tlsVersion = "tls_version", recipients, transcript
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(record.id.apiString, forKey: .id)
            try container.encode(RFC3339.format(record.startedAt), forKey: .startedAt)
            try container.encode(record.durationMs, forKey: .durationMs)
            try container.encode(record.domain, forKey: .domain)
            try container.encode(record.mx, forKey: .mx)
            try container.encode(record.remoteIP, forKey: .remoteIP)
            try container.encode(record.remoteIP == nil ? nil : record.tlsVersion != nil, forKey: .tls)
            try container.encode(record.tlsVersion, forKey: .tlsVersion)
            try container.encode(record.outcomes.map {
                Outcome(email: $0.recipient, status: $0.type, reply: $0.reply.map(MessagesController.ReplyJSON.init), detail: $0.detail)
            }, forKey: .recipients)
            try container.encode(record.transcript.map {
                Line(at: RFC3339.format($0.at), direction: $0.direction, text: $0.text)
            }, forKey: .transcript)
        }
    }

    struct AttemptList: Encodable {
        var data: [AttemptJSON]
    }

    /// `GET /v1/messages/{id}/attempts`: every SMTP attempt, oldest first, with its transcript.
    @Sendable func attempts(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
              let attempts = try await database.attempts(messageID: id, tenantID: tenant) else {
            throw APIError(.notFound, code: "not_found", message: "no such message")
        }
        return try JSONResponse.make(.ok, AttemptList(data: attempts.map(AttemptJSON.init)))
    }
}

/// The event stream's `next_cursor`: "<at µs>.<event id>", made opaque by `OpaqueCursor`.
enum EventCursorCoding {
    static func encode(_ cursor: RelayDatabase.EventCursor) -> String {
        OpaqueCursor.encode("\(cursor.atMicros).\(cursor.id)")
    }

    static func decode(_ plain: String) -> RelayDatabase.EventCursor? {
        guard let (micros, id) = OpaqueCursor.pair(plain), let micros = Int64(micros), let id = Int64(id) else { return nil }
        return RelayDatabase.EventCursor(atMicros: micros, id: id)
    }
}
