import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import MailMessage
import RelayCore
import RelayStore

/// `POST /v1/messages`, `POST /v1/messages/batch` (MessagesController+Batch.swift), `GET /v1/messages`,
/// `GET /v1/messages/{id}`, `POST /v1/messages/{id}/cancel`.
struct MessagesController {
    let dependencies: APIDependencies
    var database: RelayDatabase { dependencies.database }

    static let maxIdempotencyKeyLength = 256

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.post("messages", use: send)
        group.post("messages/batch", use: sendBatch)
        group.get("messages", use: list)
        group.get("messages/:id", use: show)
        group.post("messages/:id/cancel", use: cancel)
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
        var sendAt: Date?
        enum CodingKeys: String, CodingKey { case id, status, recipients, sendAt = "send_at" }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(status, forKey: .status)
            try container.encode(recipients, forKey: .recipients)
            try container.encode(sendAt.map(RFC3339.format), forKey: .sendAt)
        }
    }

    /// One send request validated and composed: the message to store and the 202 body that answers it.
    struct PreparedMessage {
        var message: NewMessage
        var accepted: Accepted
    }

    @Sendable func send(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let (json, idempotencyKey) = try await readSendBody(request)
        let prepared = try await prepare(json, tenantID: tenant, templates: TemplateLookup(database: database, tenantID: tenant))
        try await reserveSends(tenantID: tenant, count: 1)
        let responseBody = try JSONResponse.encoder.encode(prepared.accepted)
        let result = try await database.enqueue(
            prepared.message, idempotency: idempotency(idempotencyKey, json: json, status: .accepted, body: responseBody))
        return try respond(to: result, status: .accepted, body: responseBody, enqueued: true)
    }

    /// The body of a send (one message or a batch) parsed as JSON, and its validated `Idempotency-Key`.
    func readSendBody(_ request: Request) async throws -> (JSONValue, String?) {
        // base64 attachments are 4/3 of their size, plus JSON around them.
        let bodyLimit = dependencies.maxMessageBytes / 3 * 4 + 1024 * 1024
        let body = try await request.body.collect(upTo: bodyLimit)
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]
        if let idempotencyKey, idempotencyKey.isEmpty || idempotencyKey.count > Self.maxIdempotencyKeyLength {
            throw APIError.invalid("Idempotency-Key", "the Idempotency-Key header must be 1–\(Self.maxIdempotencyKeyLength) characters")
        }
        return (try JSONValue.parse(body.readableBytesView), idempotencyKey)
    }

    /// Validates one message of a send request, renders its template, checks the sender domain, the tenant's
    /// pause and the suppression list, and composes it. Every refusal throws an `APIError` (422, 403 or 413) and
    /// stores nothing; database failures throw as they are.
    func prepare(_ json: JSONValue, tenantID tenant: UUID, templates: TemplateLookup) async throws -> PreparedMessage {
        var send = try SendRequest(json: json)
        try await templates.render(into: &send)
        let senderDomain = send.from.address.normalizedDomain
        let recipients = send.envelopeRecipients
        // One round trip: the sender domain must be the tenant's; suppressed recipients are stored as
        // `suppressed` and never attempted while the others go ahead.
        let checks = try await database.sendChecks(tenantID: tenant, senderDomain: senderDomain,
                                                   recipients: recipients.map(\.description))
        if let reason = checks.pausedReason {
            throw APIError.sendingPaused(reason: reason)
        }
        guard checks.domainRegistered else {
            throw APIError(.forbidden, code: "sender_domain_not_allowed",
                           message: "the domain \(senderDomain) is not registered to this account (POST /v1/domains)",
                           field: "from")
        }
        if dependencies.requireVerifiedDomains && !checks.domainVerified {
            throw APIError(.forbidden, code: "domain_not_verified",
                           message: "the domain \(senderDomain) has no verified DKIM record: publish the records GET /v1/domains/\(senderDomain) lists, then POST /v1/domains/\(senderDomain)/verify",
                           field: "from")
        }

        let id = TimeOrderedUUID.make()
        let messageID = "\(id.apiString)@\(dependencies.hostname)"
        let draft = MessageDraft(
            from: send.from, to: send.to, cc: send.cc, replyTo: send.replyTo, subject: send.subject,
            text: send.text, html: send.html,
            extraHeaders: send.headers + send.unsubscribeHeaders,
            attachments: send.attachments, messageID: messageID, date: Date())
        let composed = MessageComposer.compose(draft)
        if composed.count > dependencies.maxMessageBytes {
            throw APIError(.contentTooLarge, code: "message_too_large",
                           message: "the composed message is \(composed.count) bytes; the limit is \(dependencies.maxMessageBytes)")
        }

        let suppressed = checks.suppressed
        let statuses = recipients.map {
            suppressed[$0.description.lowercased()] == nil ? RecipientStatus.queued : RecipientStatus.suppressed
        }
        let accepted = Accepted(id: id.apiString, status: MessageStatus.aggregate(statuses),
                                recipients: zip(recipients, statuses).map { .init(email: $0.description, status: $1.rawValue) },
                                sendAt: send.sendAt)
        let metadata = try JSONResponse.encoder.encode(send.metadata)
        var message = NewMessage(
            id: id, tenantID: tenant, mailFrom: send.from.address.description, fromHeader: send.from.description,
            subject: send.subject ?? "", messageIDHeader: messageID, tags: send.tags,
            metadataJSON: String(decoding: metadata, as: UTF8.self), body: ByteBuffer(bytes: composed),
            requiresSMTPUTF8: send.from.address.requiresSMTPUTF8 || recipients.contains(where: \.requiresSMTPUTF8),
            recipients: recipients.map { ($0.description, $0.normalizedDomain) },
            lifetime: dependencies.messageLifetime)
        message.suppressed = suppressed
        message.hostedUnsubscribe = send.unsubscribe == .hosted
        message.notBefore = send.sendAt
        return PreparedMessage(message: message, accepted: accepted)
    }

    /// Counts the sends against the tenant's cluster-wide budget (`RELAY_TENANT_RATE_LIMIT` per minute);
    /// over it, `429 rate_limited` with `Retry-After` and nothing stored.
    func reserveSends(tenantID: UUID, count: Int) async throws {
        guard let limit = dependencies.tenantRateLimit, count > 0 else { return }
        if case .refused(let seconds) = try await database.reserveSends(tenantID: tenantID, count: count, limit: limit) {
            var error = APIError(.tooManyRequests, code: "rate_limited",
                                 message: "this account may send \(limit) messages per minute (RELAY_TENANT_RATE_LIMIT); retry after \(seconds) s")
            error.headers[.retryAfter] = "\(seconds)"
            throw error
        }
    }

    /// The idempotency record of a send: the key, the hash of the canonical JSON body, the response to replay.
    func idempotency(_ key: String?, json: JSONValue, status: HTTPResponse.Status, body: Data) -> IdempotencyRequest? {
        key.map {
            IdempotencyRequest(key: $0, requestHash: Array(SHA256.hash(data: json.canonicalBytes)), statusCode: status.code,
                               responseBody: String(decoding: body, as: UTF8.self))
        }
    }

    /// The response to a store: the rendered body, a replay of the first response, or 409 for a reused key.
    func respond(to result: EnqueueResult, status: HTTPResponse.Status, body: Data, enqueued: Bool) throws -> Response {
        switch result {
        case .stored:
            if enqueued { dependencies.onEnqueued() }
            return JSONResponse.make(status, bytes: body)
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
                 lastError = "last_error", mx, reason, bounceType = "bounce_type", bounceReason = "bounce_reason",
                 updatedAt = "updated_at"
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
            let bounce = BounceClassifier.classify(outcome: record.status.rawValue, reply: record.lastReply,
                                                   failureReason: record.reason)
            try container.encode(bounce?.type.rawValue, forKey: .bounceType)
            try container.encode(bounce?.reason.rawValue, forKey: .bounceReason)
            try container.encode(RFC3339.format(record.updatedAt), forKey: .updatedAt)
        }
    }

    struct MessageJSON: Encodable {
        var record: MessageRecord
        enum CodingKeys: String, CodingKey {
            case id, status, from, subject, tags, metadata, createdAt = "created_at", sendAt = "send_at", recipients
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
            try container.encode(record.sendAt.map(RFC3339.format), forKey: .sendAt)
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

    // MARK: cancel

    /// The message resource with what a cancel did: `canceled` recipients now, `in_flight` ones being delivered.
    struct CancelJSON: Encodable {
        var message: MessageJSON
        var canceled: Int
        var inFlight: Int
        enum CodingKeys: String, CodingKey { case canceled, inFlight = "in_flight" }
        func encode(to encoder: any Encoder) throws {
            try message.encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(canceled, forKey: .canceled)
            try container.encode(inFlight, forKey: .inFlight)
        }
    }

    /// `POST /v1/messages/{id}/cancel`: cancels the recipients not delivered yet and not being delivered right
    /// now; 409 `not_cancelable` when there is none.
    @Sendable func cancel(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
              try await database.message(id: id, tenantID: tenant) != nil else {
            throw APIError(.notFound, code: "not_found", message: "no such message")
        }
        let canceled = try await database.apply(.cancel, to: QueueSelection(tenantID: tenant, messageID: id),
                                                detail: "canceled by the sender (POST /v1/messages/{id}/cancel)")
        let inFlight = try await database.pendingRecipientCount(messageID: id)
        guard canceled > 0 else {
            let why = inFlight > 0
                ? "its \(inFlight) pending recipient(s) are being delivered right now and cannot be canceled"
                : "every recipient has reached a final state"
            throw APIError(.conflict, code: "not_cancelable", message: "nothing to cancel: \(why)")
        }
        guard let record = try await database.message(id: id, tenantID: tenant) else {
            throw APIError(.notFound, code: "not_found", message: "no such message")
        }
        return try JSONResponse.make(.ok, CancelJSON(message: MessageJSON(record: record), canceled: canceled, inFlight: inFlight))
    }

    // MARK: list

    static let defaultPageSize = 50
    static let maximumPageSize = 500

    /// `GET /v1/messages`: the delivery log, newest first, filtered and paginated with an opaque cursor.
    @Sendable func list(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let query = QueryParameters(request: request)
        var filter = RelayDatabase.MessageFilter()
        filter.status = try query.choice("status", in: RecipientStatus.allCases.map(\.rawValue))
        filter.recipient = try query.text("recipient")
        filter.domain = try query.text("domain")?.lowercased()
        filter.tag = try query.text("tag")
        filter.from = try query.text("from")
        filter.since = try query.time("since")
        filter.until = try query.time("until")
        let limit = try query.limit(default: Self.defaultPageSize, maximum: Self.maximumPageSize)
        let cursor = try query.cursor(MessageCursorCoding.decode)
        let (messages, next) = try await database.messages(tenantID: tenant, filter: filter, limit: limit, after: cursor)
        return try JSONResponse.make(.ok, Page(data: messages.map(MessageJSON.init), nextCursor: next.map(MessageCursorCoding.encode)))
    }
}

/// The message list's `next_cursor`: "<created_at µs>.<id>", made opaque by `OpaqueCursor`.
enum MessageCursorCoding {
    static func encode(_ cursor: RelayDatabase.MessageCursor) -> String {
        OpaqueCursor.encode("\(cursor.createdAtMicros).\(cursor.id.apiString)")
    }

    static func decode(_ plain: String) -> RelayDatabase.MessageCursor? {
        guard let (micros, id) = OpaqueCursor.pair(plain), let micros = Int64(micros),
              let id = UUID(uuidString: String(id)) else { return nil }
        return RelayDatabase.MessageCursor(createdAtMicros: micros, id: id)
    }
}
