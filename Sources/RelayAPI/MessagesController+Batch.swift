import Foundation
import HTTPTypes
import Hummingbird
import RelayStore

/// `POST /v1/messages/batch`: up to 500 messages, each validated and composed exactly as `POST /v1/messages`
/// does (`prepare`), refused or accepted one by one; the accepted ones are stored in one transaction.
extension MessagesController {
    static let maxBatchSize = 500

    /// One item's outcome, in input order: the single send's 202 body (its `status` string moved to
    /// `message_status`) with `index` and `status` 202, or the refusal's error with its HTTP status.
    struct BatchItemResult: Encodable {
        var index: Int
        var status: Int
        var accepted: Accepted?
        var error: APIError?

        enum CodingKeys: String, CodingKey {
            case index, status, id, messageStatus = "message_status", recipients, error
        }

        struct ErrorJSON: Encodable {
            var code: String
            var message: String
            var field: String?
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(status, forKey: .status)
            if let accepted {
                try container.encode(accepted.id, forKey: .id)
                try container.encode(accepted.status, forKey: .messageStatus)
                try container.encode(accepted.recipients, forKey: .recipients)
            }
            if let error {
                try container.encode(ErrorJSON(code: error.code, message: error.message, field: error.field), forKey: .error)
            }
        }
    }

    @Sendable func sendBatch(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let (json, idempotencyKey) = try await readSendBody(request)
        let items: [JSONValue]
        switch json {
        case .array(let array):
            items = array
        case .object(let fields) where fields.keys.sorted() == ["messages"]:
            guard case .array(let array)? = fields["messages"] else {
                throw APIError.invalid("messages", "messages must be an array of message objects, not \(fields["messages"]!.typeName)")
            }
            items = array
        default:
            throw APIError.invalid("messages", "the body must be a JSON array of messages, or an object with only a messages array")
        }
        guard !items.isEmpty, items.count <= Self.maxBatchSize else {
            throw APIError.invalid("messages", "a batch holds 1–\(Self.maxBatchSize) messages, got \(items.count)")
        }

        let templates = TemplateLookup(database: database, tenantID: tenant)
        var results: [BatchItemResult] = []
        var messages: [NewMessage] = []
        for (index, item) in items.enumerated() {
            do {
                let prepared = try await prepare(item, tenantID: tenant, templates: templates)
                messages.append(prepared.message)
                results.append(BatchItemResult(index: index, status: 202, accepted: prepared.accepted))
            } catch let error as APIError {
                results.append(BatchItemResult(index: index, status: Int(error.status.code), error: error))
            }
        }

        try await reserveSends(tenantID: tenant, count: messages.count)
        let multiStatus = HTTPResponse.Status(code: 207, reasonPhrase: "Multi-Status")
        let responseBody = try JSONResponse.encoder.encode(results)
        let result = try await database.enqueueBatch(
            messages, tenantID: tenant,
            idempotency: idempotency(idempotencyKey, json: json, status: multiStatus, body: responseBody))
        return try respond(to: result, status: multiStatus, body: responseBody, enqueued: !messages.isEmpty)
    }
}
