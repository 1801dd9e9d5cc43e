import Foundation
import Hummingbird
import RelayCore
import RelayStore

/// `POST /v1/queue/retry` and `POST /v1/queue/cancel`: operations on the tenant's pending recipients, selected
/// by filters. Recipients being delivered right now are never touched (see `QueueSelection`).
struct QueueController {
    let database: RelayDatabase

    /// The body's fields.
    static let knownFields: Set<String> = ["domain", "status", "tag", "enhanced_code", "since", "until", "dry_run", "all"]

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.post("queue/retry") { request, context in try await run(.retry, request: request, context: context) }
        group.post("queue/cancel") { request, context in try await run(.cancel, request: request, context: context) }
    }

    /// `{"affected": N, "dry_run": bool}`.
    struct Result: Encodable {
        var affected: Int
        var dryRun: Bool
        enum CodingKeys: String, CodingKey { case affected, dryRun = "dry_run" }
    }

    @Sendable func run(_ operation: QueueOperation, request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let body = try await request.body.collect(upTo: 64 * 1024)
        let (selection, dryRun) = try Self.selection(JSONValue.parse(body.readableBytesView), tenantID: tenant)
        let affected = if dryRun {
            try await database.countOperable(selection)
        } else {
            try await database.apply(operation, to: selection, detail: "canceled by the sender (POST /v1/queue/cancel)")
        }
        return try JSONResponse.make(.ok, Result(affected: affected, dryRun: dryRun))
    }

    /// Validates a body into a selection of the tenant's recipients and the dry-run flag. At least one filter is
    /// required, or `"all": true` to operate on every pending recipient of the tenant.
    static func selection(_ json: JSONValue, tenantID: UUID) throws -> (QueueSelection, dryRun: Bool) {
        let body = try JSONObjectReader(json)
        try body.rejectUnknown(knownFields)
        var selection = QueueSelection(tenantID: tenantID)
        selection.domain = try nonEmpty(body, "domain")?.lowercased()
        if let status = try body.string("status") {
            guard let parsed = RecipientStatus(rawValue: status), !parsed.isFinal else {
                throw APIError.invalid("status", "status must be queued or deferred")
            }
            selection.status = parsed
        }
        selection.tag = try nonEmpty(body, "tag")
        if let code = try body.string("enhanced_code") {
            guard isEnhancedCode(code) else {
                throw APIError.invalid("enhanced_code", "enhanced_code must be an enhanced status code such as 4.7.1 (RFC 3463)")
            }
            selection.enhancedCode = code
        }
        selection.since = try time(body, "since")
        selection.until = try time(body, "until")
        let dryRun = try flag(body, "dry_run")
        let all = try flag(body, "all")
        if selection.isUnfiltered && !all {
            throw APIError.invalid("filter", "give at least one filter (domain, status, tag, enhanced_code, since, until), or \"all\": true for every pending recipient")
        }
        return (selection, dryRun)
    }

    /// RFC 3463 `class.subject.detail`: class 2, 4 or 5, subject and detail of 1–3 digits.
    static func isEnhancedCode(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 3 && ["2", "4", "5"].contains(parts[0])
            && parts.dropFirst().allSatisfy { (1...3).contains($0.count) && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }

    private static func nonEmpty(_ body: JSONObjectReader, _ name: String) throws -> String? {
        guard let value = try body.string(name) else { return nil }
        guard !value.isEmpty, !value.contains("\0") else { throw APIError.invalid(name, "\(name) must be a non-empty string") }
        return value
    }

    private static func time(_ body: JSONObjectReader, _ name: String) throws -> Date? {
        guard let value = try body.string(name) else { return nil }
        guard let date = RFC3339.parse(value) else {
            throw APIError.invalid(name, "\(name) must be an RFC 3339 timestamp such as 2026-11-29T10:00:00Z")
        }
        return date
    }

    private static func flag(_ body: JSONObjectReader, _ name: String) throws -> Bool {
        try body.bool(name) ?? false
    }
}
