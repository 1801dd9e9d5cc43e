import Foundation
import Hummingbird

/// Every API error renders as `{"error":{"code":"…","message":"…","field":"…"?}}` with its HTTP status.
public struct APIError: Error, HTTPResponseError, Sendable, Equatable {
    /// HTTP status.
    public var status: HTTPResponse.Status
    /// Stable machine-readable code (part of the API contract).
    public var code: String
    /// A sentence for humans saying what is wrong.
    public var message: String
    /// The request field at fault, when there is one (dotted path, e.g. `attachments[1].content`).
    public var field: String?
    /// Extra headers (e.g. `Retry-After`).
    public var headers: HTTPFields = [:]

    /// Creates an error.
    public init(_ status: HTTPResponse.Status, code: String, message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    /// 422 `validation_failed` for one field.
    public static func invalid(_ field: String, _ message: String) -> APIError {
        APIError(.unprocessableContent, code: "validation_failed", message: message, field: field)
    }

    /// 403 `sending_paused`: the reputation guard paused the tenant (`reason`: bounce_rate or complaint_rate).
    static func sendingPaused(reason: String) -> APIError {
        let why = reason == "complaint_rate" ? "complaint rate" : reason == "bounce_rate" ? "bounce rate" : "reputation"
        return APIError(.forbidden, code: "sending_paused",
                        message: "sending is paused for this account: its \(why) passed the reputation guard's threshold; nothing was accepted. An operator resumes it with POST /admin/tenants/{id}/resume (see GET /v1/stats, `reputation`)")
    }

    static let unauthorized = APIError(.unauthorized, code: "unauthorized",
                                       message: "missing or invalid API key (send Authorization: Bearer <key>)")
    static let notFound = APIError(.notFound, code: "not_found", message: "no such resource")
    static let databaseUnavailable = APIError(.serviceUnavailable, code: "database_unavailable",
                                              message: "the database is unreachable; the request was not completed, retry it (with the same Idempotency-Key to be safe)")

    private struct Body: Encodable {
        struct Inner: Encodable {
            var code: String
            var message: String
            var field: String?
        }
        var error: Inner
    }

    /// Renders the JSON error body.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        let data = (try? JSONEncoder().encode(Body(error: .init(code: code, message: message, field: field)))) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Turns every error into the JSON error shape: API errors as they are, Hummingbird's own errors
/// (unknown route, body too large) by status, database outages as 503, anything else as a logged 500.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            throw Self.translate(error)
        } catch let error as any HTTPResponseError {
            let message = error.status == .contentTooLarge ? "the request body is too large" : error.status.reasonPhrase
            throw APIError(error.status, code: Self.code(for: error.status), message: message)
        } catch where error.isDatabaseUnavailableError {
            context.logger.warning("database unavailable", metadata: ["error": "\(String(reflecting: error))"])
            throw APIError.databaseUnavailable
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(String(reflecting: error))"])
            throw APIError(.internalServerError, code: "internal_error", message: "an unexpected error occurred")
        }
    }

    static func translate(_ error: HTTPError) -> APIError {
        let message: String
        switch error.status {
        case .notFound: message = "no such route"
        case .contentTooLarge: message = "the request body is too large"
        case .methodNotAllowed: message = "method not allowed on this route"
        default: message = error.body ?? error.status.reasonPhrase
        }
        var api = APIError(error.status, code: code(for: error.status), message: message)
        api.headers = error.headers
        return api
    }

    static func code(for status: HTTPResponse.Status) -> String {
        switch status {
        case .badRequest: "invalid_request"
        case .unauthorized: "unauthorized"
        case .forbidden: "forbidden"
        case .notFound: "not_found"
        case .methodNotAllowed: "method_not_allowed"
        case .contentTooLarge: "payload_too_large"
        case .unsupportedMediaType: "unsupported_media_type"
        default: "http_\(status.code)"
        }
    }
}

/// Lets the API module ask the store's classification without importing PostgresNIO types here.
extension Error {
    var isDatabaseUnavailableError: Bool { isDatabaseUnavailable }
}

import RelayStore
