import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import MailMessage
import RelayCore
import RelayStore

/// `POST /v1/messages`, `GET /v1/messages/{id}`, `GET /v1/messages/{id}/events`.
struct MessagesController {
    let dependencies: APIDependencies
    var database: RelayDatabase { dependencies.database }

    static let maxIdempotencyKeyLength = 256

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.post("messages", use: send)
        group.get("messages", use: list)
        group.get("messages/:id", use: show)
        group.get("messages/:id/events", use: events)
    }

    // MARK: send

    struct Accepted: Encodable {
        struct Recipient: Encodable {
            var email: String
            var status: String
        }
        var id: String
        var status: String
        var recipients: [Recipient]
    }

    @Sendable func send(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        // base64 attachments are 4/3 of their size, plus JSON around them.
        let bodyLimit = dependencies.maxMessageBytes / 3 * 4 + 1024 * 1024
        let body = try await request.body.collect(upTo: bodyLimit)
        let bytes = Array(body.readableBytesView)

        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]
        if let idempotencyKey, idempotencyKey.isEmpty || idempotencyKey.count > Self.maxIdempotencyKeyLength {
            throw APIError.invalid("Idempotency-Key", "the Idempotency-Key header must be 1–\(Self.maxIdempotencyKeyLength) characters")
        }

        let json = try JSONValue.parse(bytes)
        let send = try SendRequest(json: json)
        let senderDomain = send.from.address.normalizedDomain
        guard try await database.hasDomain(tenantID: tenant, name: senderDomain) else {
            throw APIError(.forbidden, code: "sender_domain_not_allowed",
                           message: "the domain \(senderDomain) is not registered to this account (POST /v1/domains)",
                           field: "from")
        }

        let id = TimeOrderedUUID.make()
        let messageID = "\(id.apiString)@\(dependencies.hostname)"
        let draft = MessageDraft(
            from: send.from, to: send.to, cc: send.cc, replyTo: send.replyTo, subject: send.subject,
            text: send.text, html: send.html,
            extraHeaders: send.headers,
            attachments: send.attachments, messageID: messageID, date: Date())
        let composed = MessageComposer.compose(draft)
        if composed.count > dependencies.maxMessageBytes {
            throw APIError(.contentTooLarge, code: "message_too_large",
                           message: "the composed message is \(composed.count) bytes; the limit is \(dependencies.maxMessageBytes)")
        }

        let recipients = send.envelopeRecipients
        let accepted = Accepted(id: id.apiString, status: RecipientStatus.queued.rawValue,
                                recipients: recipients.map { .init(email: $0.description, status: RecipientStatus.queued.rawValue) })
        let responseBody = try JSONResponse.encoder.encode(accepted)
        let metadata = try JSONResponse.encoder.encode(send.metadata)
        let message = NewMessage(
            id: id, tenantID: tenant, mailFrom: send.from.address.description, fromHeader: send.from.description,
            subject: send.subject ?? "", messageIDHeader: messageID, tags: send.tags,
            metadataJSON: String(decoding: metadata, as: UTF8.self), body: ByteBuffer(bytes: composed),
            requiresSMTPUTF8: send.from.address.requiresSMTPUTF8 || recipients.contains(where: \.requiresSMTPUTF8),
            recipients: recipients.map { ($0.description, $0.normalizedDomain) },
            lifetime: dependencies.messageLifetime)
        let idempotency = idempotencyKey.map {
            IdempotencyRequest(key: $0, requestHash: Array(SHA256.hash(data: json.canonicalBytes)), statusCode: 202,
                               responseBody: String(decoding: responseBody, as: UTF8.self))
        }

        switch try await database.enqueue(message, idempotency: idempotency) {
        case .stored:
            dependencies.onEnqueued()
            return JSONResponse.make(.accepted, bytes: responseBody)
        case .replay(let status, let body):
            var headers = HTTPFields()
            headers[HTTPField.Name("Idempotent-Replayed")!] = "true"
            return JSONResponse.make(.init(code: status), bytes: Array(body.utf8), headers: headers)
        case .idempotencyConflict:
            throw APIError(.conflict, code: "idempotency_conflict",
                           message: "this Idempotency-Key was used with a different request body in the last 24 hours",
                           field: "Idempotency-Key")
        }
    }

    // MARK: show

    struct ReplyJSON: Encodable {
        var code: Int
        var enhanced: String?
        var text: String
        init(_ reply: DeliveryReply) {
            code = reply.code
            enhanced = reply.enhanced
            text = reply.text
        }
        enum CodingKeys: String, CodingKey { case code, enhanced, text }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(code, forKey: .code)
            try container.encode(enhanced, forKey: .enhanced)
            try container.encode(text, forKey: .text)
        }
    }

    struct RecipientJSON: Encodable {
        var record: RecipientRecord
        enum CodingKeys: String, CodingKey {
            case email, status, attempts, nextAttemptAt = "next_attempt_at", lastReply = "last_reply",
                 lastError = "last_error", mx, reason, updatedAt = "updated_at"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(record.email, forKey: .email)
            try container.encode(record.status.rawValue, forKey: .status)
            try container.encode(record.attempts, forKey: .attempts)
            try container.encode(record.nextAttemptAt.map(RFC3339.format), forKey: .nextAttemptAt)
            try container.encode(record.lastReply.map(ReplyJSON.init), forKey: .lastReply)
            try container.encode(record.lastReply == nil ? record.lastText : nil, forKey: .lastError)
            try container.encode(record.lastMX, forKey: .mx)
            try container.encode(record.reason, forKey: .reason)
            try container.encode(RFC3339.format(record.updatedAt), forKey: .updatedAt)
        }
    }

    struct MessageJSON: Encodable {
        var record: MessageRecord
        enum CodingKeys: String, CodingKey {
            case id, status, from, subject, tags, metadata, createdAt = "created_at", recipients
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(record.id.apiString, forKey: .id)
            try container.encode(MessageStatus.aggregate(record.recipients.map(\.status)), forKey: .status)
            try container.encode(record.fromHeader, forKey: .from)
            try container.encode(record.subject, forKey: .subject)
            try container.encode(record.tags, forKey: .tags)
            let metadata = (try? JSONDecoder().decode([String: String].self, from: Data(record.metadataJSON.utf8))) ?? [:]
            try container.encode(metadata, forKey: .metadata)
            try container.encode(RFC3339.format(record.createdAt), forKey: .createdAt)
            try container.encode(record.recipients.map(RecipientJSON.init), forKey: .recipients)
        }
    }

    @Sendable func show(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
              let record = try await database.message(id: id, tenantID: tenant) else {
            throw APIError(.notFound, code: "not_found", message: "no such message")
        }
        return try JSONResponse.make(.ok, MessageJSON(record: record))
    }

    // MARK: list

    struct MessageList: Encodable {
        var data: [MessageJSON]
        var nextCursor: String?
        enum CodingKeys: String, CodingKey { case data, nextCursor = "next_cursor" }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(data, forKey: .data)
            try container.encode(nextCursor, forKey: .nextCursor)
        }
    }

    static let defaultPageSize = 50
    static let maximumPageSize = 500

    /// `GET /v1/messages`: the delivery log, newest first, filtered and paginated with an opaque cursor.
    @Sendable func list(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let query = request.uri.queryParameters
        /// The parameter as given (possibly empty); NUL can reach neither PostgreSQL nor a match.
        func raw(_ name: String) throws -> String? {
            guard let value = query[name[...]].map(String.init) else { return nil }
            if value.contains("\0") { throw APIError.invalid(name, "\(name) must not contain NUL characters") }
            return value
        }
        /// Free-text filters: empty means "no filter".
        func text(_ name: String) throws -> String? {
            try raw(name).flatMap { $0.isEmpty ? nil : $0 }
        }
        func time(_ name: String) throws -> Date? {
            guard let value = try raw(name) else { return nil }
            guard let date = RFC3339.parse(value) else {
                throw APIError.invalid(name, "\(name) must be an RFC 3339 timestamp such as 2026-11-29T10:00:00Z")
            }
            return date
        }
        var filter = RelayDatabase.MessageFilter()
        if let status = try raw("status") {
            guard RecipientStatus(rawValue: status) != nil else {
                throw APIError.invalid("status", "status must be one of \(RecipientStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            filter.status = status
        }
        filter.recipient = try text("recipient")
        filter.domain = try text("domain")?.lowercased()
        filter.tag = try text("tag")
        filter.from = try text("from")
        filter.since = try time("since")
        filter.until = try time("until")
        var limit = Self.defaultPageSize
        if let value = try raw("limit") {
            guard let parsed = Int(value), (1...Self.maximumPageSize).contains(parsed) else {
                throw APIError.invalid("limit", "limit must be a whole number from 1 to \(Self.maximumPageSize)")
            }
            limit = parsed
        }
        var cursor: RelayDatabase.MessageCursor?
        if let value = try text("cursor") {
            guard let decoded = MessageCursorCoding.decode(value) else {
                throw APIError.invalid("cursor", "cursor is not a value returned as next_cursor")
            }
            cursor = decoded
        }
        let (messages, next) = try await database.messages(tenantID: tenant, filter: filter, limit: limit, after: cursor)
        return try JSONResponse.make(.ok, MessageList(data: messages.map(MessageJSON.init), nextCursor: next.map(MessageCursorCoding.encode)))
    }

    // MARK: events

    struct EventJSON: Encodable {
        var record: EventRecord
        enum CodingKeys: String, CodingKey {
            case type, recipient, at, attempt, mx, reply, detail, durationMs = "duration_ms"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(record.type, forKey: .type)
            try container.encode(record.recipient, forKey: .recipient)
            try container.encode(RFC3339.format(record.at), forKey: .at)
            try container.encode(record.attempt, forKey: .attempt)
            try container.encode(record.mx, forKey: .mx)
            try container.encode(record.reply.map(ReplyJSON.init), forKey: .reply)
            try container.encode(record.detail, forKey: .detail)
            try container.encode(record.durationMs, forKey: .durationMs)
        }
    }

    struct EventList: Encodable {
        var data: [EventJSON]
    }

    @Sendable func events(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
              let events = try await database.events(messageID: id, tenantID: tenant) else {
            throw APIError(.notFound, code: "not_found", message: "no such message")
        }
        return try JSONResponse.make(.ok, EventList(data: events.map(EventJSON.init)))
    }
}

/// The opaque `next_cursor`: base64url of "<created_at µs>.<id>".
enum MessageCursorCoding {
    static func encode(_ cursor: RelayDatabase.MessageCursor) -> String {
        Data("\(cursor.createdAtMicros).\(cursor.id.apiString)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> RelayDatabase.MessageCursor? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let plain = String(data: data, encoding: .utf8) else { return nil }
        let parts = plain.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let micros = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else { return nil }
        return RelayDatabase.MessageCursor(createdAtMicros: micros, id: id)
    }
}
