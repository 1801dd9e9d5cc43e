import Foundation
import Hummingbird
import RelayStore
import RelayWebhooks

/// The tenant's webhook endpoints: `/v1/webhooks` (create, list), `/v1/webhooks/{id}` (show, change, delete),
/// `/rotate-secret`, `/test`, and `/deliveries` (the log of every HTTP attempt). The secret is shown only when it
/// is made (create, rotate).
struct WebhooksController {
    let database: RelayDatabase
    let targetCheck: WebhookTargetCheck

    /// How long the replaced secret keeps signing after a rotation, so receivers can switch without a gap.
    static let secretOverlap: Duration = .seconds(86_400)

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.post("webhooks", use: create)
        group.get("webhooks", use: list)
        group.get("webhooks/:id", use: show)
        group.patch("webhooks/:id", use: update)
        group.delete("webhooks/:id", use: remove)
        group.post("webhooks/:id/rotate-secret", use: rotateSecret)
        group.post("webhooks/:id/test", use: test)
        group.get("webhooks/:id/deliveries", use: deliveries)
    }

    struct EndpointJSON: Encodable {
        var endpoint: WebhookEndpoint
        /// Only in the responses that create a secret.
        var secret: String?
        enum CodingKeys: String, CodingKey {
            case id, url, events, enabled, disabledReason = "disabled_reason", createdAt = "created_at",
                 updatedAt = "updated_at", secret
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(endpoint.id.apiString, forKey: .id)
            try container.encode(endpoint.url, forKey: .url)
            try container.encode(endpoint.events, forKey: .events)
            try container.encode(endpoint.enabled, forKey: .enabled)
            try container.encode(endpoint.disabledReason, forKey: .disabledReason)
            try container.encode(RFC3339.format(endpoint.createdAt), forKey: .createdAt)
            try container.encode(RFC3339.format(endpoint.updatedAt), forKey: .updatedAt)
            try container.encodeIfPresent(secret, forKey: .secret)
        }
    }

    struct DeliveryJSON: Encodable {
        var record: WebhookDeliveryRecord
        enum CodingKeys: String, CodingKey {
            case id, webhookID = "webhook_id", eventType = "event_type", attempt, status, responseCode = "response_code",
                 error, latencyMs = "latency_ms", at, nextAttemptAt = "next_attempt_at"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(String(record.id), forKey: .id)
            try container.encode("msg_\(record.outboxID)", forKey: .webhookID)
            try container.encode(record.eventType, forKey: .eventType)
            try container.encode(record.attempt, forKey: .attempt)
            try container.encode(record.status, forKey: .status)
            try container.encode(record.responseCode, forKey: .responseCode)
            try container.encode(record.error, forKey: .error)
            try container.encode(record.latencyMs, forKey: .latencyMs)
            try container.encode(RFC3339.format(record.at), forKey: .at)
            try container.encode(record.nextAttemptAt.map(RFC3339.format), forKey: .nextAttemptAt)
        }
    }

    static let notFound = APIError(.notFound, code: "not_found", message: "no such webhook endpoint")

    /// The `{id}` of the route; anything that is not a UUID is simply not found.
    static func endpointID(_ context: RelayRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else { throw notFound }
        return id
    }

    /// A URL that parses and whose host is not (and does not resolve to) a private address.
    func checkedURL(_ text: String) async throws -> String {
        let url: WebhookURL
        do {
            url = try WebhookURL(text)
        } catch {
            throw APIError.invalid("url", error.description)
        }
        if case .refused(let reason) = await targetCheck.check(url, requireResolution: false) {
            throw APIError.invalid("url", "url: \(reason)")
        }
        return url.text
    }

    /// `events`: absent, null or empty means every event; else known names, each kept once.
    static func events(_ reader: JSONObjectReader) throws -> [String]? {
        guard let value = reader.fields["events"], value != .null else { return nil }
        guard case .array(let items) = value else { throw APIError.invalid("events", "events must be an array of event names") }
        var events: [String] = []
        for item in items {
            guard case .string(let name) = item, WebhookEventType.subscribable.contains(name) else {
                throw APIError.invalid("events", "events may contain only \(WebhookEventType.subscribable.joined(separator: ", "))")
            }
            if !events.contains(name) { events.append(name) }
        }
        return events
    }

    static func body(_ request: Request, known: Set<String>) async throws -> JSONObjectReader {
        let body = try await request.body.collect(upTo: 64 * 1024)
        let reader = try JSONObjectReader(JSONValue.parse(body.readableBytesView))
        try reader.rejectUnknown(known)
        return reader
    }

    @Sendable func create(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let reader = try await Self.body(request, known: ["url", "events"])
        let url = try await checkedURL(try reader.string("url", required: true) ?? "")
        let events = try Self.events(reader) ?? []
        let secret = WebhookSecret.generate().description
        let endpoint = try await database.createWebhookEndpoint(tenantID: tenant, url: url, events: events, secret: secret)
        return try JSONResponse.make(.created, EndpointJSON(endpoint: endpoint, secret: secret))
    }

    @Sendable func list(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let query = QueryParameters(request: request)
        let limit = try query.limit(default: MessagesController.defaultPageSize, maximum: MessagesController.maximumPageSize)
        let cursor = try query.cursor(WebhookCursorCoding.decode)
        let (endpoints, next) = try await database.webhookEndpoints(tenantID: tenant, limit: limit, after: cursor)
        return try JSONResponse.make(.ok, Page(data: endpoints.map { EndpointJSON(endpoint: $0) },
                                              nextCursor: next.map(WebhookCursorCoding.encode)))
    }

    @Sendable func show(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        guard let endpoint = try await database.webhookEndpoint(id: try Self.endpointID(context), tenantID: tenant) else {
            throw Self.notFound
        }
        return try JSONResponse.make(.ok, EndpointJSON(endpoint: endpoint))
    }

    @Sendable func update(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let id = try Self.endpointID(context)
        let reader = try await Self.body(request, known: ["url", "events", "enabled"])
        var url: String?
        if let text = try reader.string("url") { url = try await checkedURL(text) }
        let events = try Self.events(reader)
        var enabled: Bool?
        switch reader.fields["enabled"] {
        case nil, .null?: break
        case .bool(let value)?: enabled = value
        case let other?: throw APIError.invalid("enabled", "enabled must be true or false, not \(other.typeName)")
        }
        guard let endpoint = try await database.updateWebhookEndpoint(
            id: id, tenantID: tenant, url: url, events: events, enabled: enabled,
            deliveryLifetime: WebhookRetrySchedule().lifetime) else { throw Self.notFound }
        return try JSONResponse.make(.ok, EndpointJSON(endpoint: endpoint))
    }

    @Sendable func remove(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        guard try await database.deleteWebhookEndpoint(id: try Self.endpointID(context), tenantID: tenant) else { throw Self.notFound }
        return Response(status: .noContent)
    }

    @Sendable func rotateSecret(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let secret = WebhookSecret.generate().description
        guard let endpoint = try await database.rotateWebhookSecret(id: try Self.endpointID(context), tenantID: tenant,
                                                                    newSecret: secret, overlap: Self.secretOverlap) else {
            throw Self.notFound
        }
        return try JSONResponse.make(.ok, EndpointJSON(endpoint: endpoint, secret: secret))
    }

    struct TestQueued: Encodable {
        var deliveryID: String
        enum CodingKeys: String, CodingKey { case deliveryID = "delivery_id" }
    }

    /// Queues a `webhook.test` event for this endpoint only, through the outbox like any event (also when the
    /// endpoint is disabled, so it can be checked before re-enabling it).
    @Sendable func test(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let id = try Self.endpointID(context)
        let data = #"{"webhook_endpoint_id": "\#(id.apiString)", "message": "a test event from Relay"}"#
        guard let outboxID = try await database.enqueueWebhook(endpointID: id, tenantID: tenant, type: WebhookEventType.test,
                                                                dataJSON: data) else { throw Self.notFound }
        return try JSONResponse.make(.accepted, TestQueued(deliveryID: "msg_\(outboxID)"))
    }

    @Sendable func deliveries(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let id = try Self.endpointID(context)
        let query = QueryParameters(request: request)
        let limit = try query.limit(default: MessagesController.defaultPageSize, maximum: MessagesController.maximumPageSize)
        let cursor = try query.cursor(WebhookCursorCoding.decode)
        guard let (records, next) = try await database.webhookDeliveries(endpointID: id, tenantID: tenant, limit: limit,
                                                                         after: cursor) else { throw Self.notFound }
        return try JSONResponse.make(.ok, Page(data: records.map(DeliveryJSON.init), nextCursor: next.map(WebhookCursorCoding.encode)))
    }
}

/// The `next_cursor` of the webhook lists: "<time µs>.<id>", made opaque by `OpaqueCursor`.
enum WebhookCursorCoding {
    static func encode(_ cursor: RelayDatabase.WebhookCursor) -> String {
        OpaqueCursor.encode("\(cursor.atMicros).\(cursor.id)")
    }

    static func decode(_ plain: String) -> RelayDatabase.WebhookCursor? {
        guard let (micros, id) = OpaqueCursor.pair(plain), let micros = Int64(micros), !id.isEmpty,
              UUID(uuidString: String(id)) != nil || Int64(id) != nil else { return nil }
        return RelayDatabase.WebhookCursor(atMicros: micros, id: String(id))
    }
}
