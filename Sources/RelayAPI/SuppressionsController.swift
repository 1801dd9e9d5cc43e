import Foundation
import HTTPTypes
import Hummingbird
import MailMessage
import RelayStore

/// The tenant's suppression list: `GET/POST /v1/suppressions`, `DELETE /v1/suppressions/{email}`, and bulk
/// `GET /v1/suppressions/export` / `POST /v1/suppressions/import` as CSV.
struct SuppressionsController {
    let database: RelayDatabase

    /// Reasons an entry may carry. Relay adds `hard_bounce` and `complaint` itself; users add any of them.
    static let reasons = ["manual", "hard_bounce", "soft_bounce", "complaint", "unsubscribed"]
    static let maximumImportBytes = 16 * 1024 * 1024
    static let maximumImportLines = 200_000

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.get("suppressions", use: list)
        group.post("suppressions", use: add)
        group.get("suppressions/export", use: export)
        group.post("suppressions/import", use: importCSV)
        group.delete("suppressions/:email", use: remove)
    }

    struct EntryJSON: Encodable {
        var entry: Suppression
        enum CodingKeys: String, CodingKey {
            case email, reason, sourceMessageID = "source_message_id", createdAt = "created_at", expiresAt = "expires_at"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(entry.email, forKey: .email)
            try container.encode(entry.reason, forKey: .reason)
            try container.encode(entry.sourceMessageID?.apiString, forKey: .sourceMessageID)
            try container.encode(RFC3339.format(entry.createdAt), forKey: .createdAt)
            try container.encode(entry.expiresAt.map(RFC3339.format), forKey: .expiresAt)
        }
    }

    @Sendable func list(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let query = QueryParameters(request: request)
        let reason = try query.choice("reason", in: Self.reasons)
        let email = try query.text("email")
        let limit = try query.limit(default: MessagesController.defaultPageSize, maximum: MessagesController.maximumPageSize)
        let cursor = try query.cursor(SuppressionCursorCoding.decode)
        let (entries, next) = try await database.suppressions(tenantID: tenant, reason: reason, email: email, limit: limit, after: cursor)
        return try JSONResponse.make(.ok, Page(data: entries.map(EntryJSON.init), nextCursor: next.map(SuppressionCursorCoding.encode)))
    }

    /// A valid address, as given (1–254 octets, RFC 5321 §4.5.3.1.3).
    static func address(_ text: String, field: String) throws -> String {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.utf8.count <= 254, let parsed = try? EmailAddress(parsing: trimmed) else {
            throw APIError.invalid(field, "\(field) must be an email address such as bob@example.org")
        }
        return parsed.description
    }

    @Sendable func add(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let body = try await request.body.collect(upTo: 64 * 1024)
        let reader = try JSONObjectReader(JSONValue.parse(body.readableBytesView))
        try reader.rejectUnknown(["email", "reason", "expires_at"])
        let email = try Self.address(try reader.string("email", required: true) ?? "", field: "email")
        let reason = try reader.string("reason") ?? "manual"
        guard Self.reasons.contains(reason) else {
            throw APIError.invalid("reason", "reason must be one of \(Self.reasons.joined(separator: ", "))")
        }
        var expiresAt: Date?
        if let text = try reader.string("expires_at") {
            guard let date = RFC3339.parse(text), date > Date() else {
                throw APIError.invalid("expires_at", "expires_at must be a future RFC 3339 timestamp")
            }
            expiresAt = date
        }
        try await database.addSuppressions(tenantID: tenant, [Suppression(email: email, reason: reason, expiresAt: expiresAt)])
        let (entries, _) = try await database.suppressions(tenantID: tenant, reason: nil, email: email, limit: 1, after: nil)
        guard let entry = entries.first else { throw APIError(.serviceUnavailable, code: "database_unavailable", message: "try again") }
        return try JSONResponse.make(.created, EntryJSON(entry: entry))
    }

    @Sendable func remove(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let email = context.parameters.get("email")?.removingPercentEncoding ?? ""
        guard !email.isEmpty, !email.contains("\0"), try await database.removeSuppression(tenantID: tenant, email: email) else {
            throw APIError(.notFound, code: "not_found", message: "this address is not on the suppression list")
        }
        return Response(status: .noContent)
    }

    /// Every entry as CSV (RFC 4180): `email,reason,source_message_id,created_at,expires_at`.
    @Sendable func export(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        var csv = "email,reason,source_message_id,created_at,expires_at\r\n"
        var cursor: RelayDatabase.SuppressionCursor?
        repeat {
            let (entries, next) = try await database.suppressions(tenantID: tenant, reason: nil, email: nil, limit: 5000, after: cursor)
            for entry in entries {
                csv += [entry.email, entry.reason, entry.sourceMessageID?.apiString ?? "", RFC3339.format(entry.createdAt),
                        entry.expiresAt.map(RFC3339.format) ?? ""].map(CSV.field).joined(separator: ",") + "\r\n"
            }
            cursor = next
        } while cursor != nil
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"suppressions.csv\""
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: csv)))
    }

    struct ImportResult: Encodable {
        struct LineError: Encodable {
            var line: Int
            var message: String
        }
        var imported: Int
        var errors: [LineError]
    }

    /// CSV with `email` and optionally `reason` columns (a header line naming them is optional). Valid lines are
    /// added (the latest reason wins); invalid ones are reported by line number and change nothing. A body with
    /// no valid line at all is 422.
    @Sendable func importCSV(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let body = try await request.body.collect(upTo: Self.maximumImportBytes)
        guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
            throw APIError.invalid("body", "the CSV must be UTF-8 text")
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw APIError.invalid("body", "the body must be CSV with an email column")
        }
        var lines = CSV.rows(text)
        var emailColumn = 0
        var reasonColumn: Int? = lines.first.map { $0.count > 1 ? 1 : nil } ?? nil
        if let header = lines.first?.map({ $0.lowercased().trimmingCharacters(in: .whitespaces) }), header.contains("email") {
            emailColumn = header.firstIndex(of: "email")!
            reasonColumn = header.firstIndex(of: "reason")
            lines[0] = []
        }
        guard lines.count <= Self.maximumImportLines else {
            throw APIError.invalid("body", "at most \(Self.maximumImportLines) lines per import")
        }
        var entries: [Suppression] = []
        var errors: [ImportResult.LineError] = []
        for (index, fields) in lines.enumerated() where !(fields.isEmpty || fields.allSatisfy { $0.isEmpty }) {
            guard emailColumn < fields.count, let email = try? Self.address(fields[emailColumn], field: "email") else {
                errors.append(.init(line: index + 1, message: "not an email address"))
                continue
            }
            let reason = reasonColumn.flatMap { $0 < fields.count ? fields[$0].trimmingCharacters(in: .whitespaces) : nil }
            let chosen = (reason?.isEmpty ?? true) ? "manual" : reason!
            guard Self.reasons.contains(chosen) else {
                errors.append(.init(line: index + 1, message: "reason must be one of \(Self.reasons.joined(separator: ", "))"))
                continue
            }
            entries.append(Suppression(email: email, reason: chosen))
        }
        if entries.isEmpty, let first = errors.first {
            throw APIError.invalid("body", "no valid line: line \(first.line): \(first.message)")
        }
        let imported = try await database.addSuppressions(tenantID: tenant, entries)
        return try JSONResponse.make(.ok, ImportResult(imported: imported, errors: errors))
    }
}

/// Minimal RFC 4180 CSV: fields quoted when they hold a comma, quote or line break.
enum CSV {
    static func field(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Splits text into rows of fields, honouring quoted fields.
    static func rows(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false
        var iterator = text.makeIterator()
        while let character = iterator.next() {
            if quoted {
                if character == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" { field.append("\"") } else {
                            quoted = false
                            if next == "," { row.append(field); field = "" }
                            else if next == "\n" || next == "\r\n" { row.append(field); rows.append(row); row = []; field = "" }
                            else { field.append(next) }
                        }
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(character)
                }
            } else if character == "\"" && field.isEmpty {
                quoted = true
            } else if character == "," {
                row.append(field)
                field = ""
            } else if character == "\n" || character == "\r\n" || character == "\r" {
                row.append(field)
                rows.append(row)
                row = []
                field = ""
            } else {
                field.append(character)
            }
        }
        if !field.isEmpty || !row.isEmpty {
            row.append(field)
            rows.append(row)
        }
        return rows
    }
}

/// The suppression list's `next_cursor`: "<created_at µs>.<lower-cased email>", made opaque by `OpaqueCursor`.
enum SuppressionCursorCoding {
    static func encode(_ cursor: RelayDatabase.SuppressionCursor) -> String {
        OpaqueCursor.encode("\(cursor.createdAtMicros).\(cursor.emailLower)")
    }

    static func decode(_ plain: String) -> RelayDatabase.SuppressionCursor? {
        guard let (micros, email) = OpaqueCursor.pair(plain), let micros = Int64(micros), !email.isEmpty,
              !email.contains("\0") else { return nil }
        return RelayDatabase.SuppressionCursor(createdAtMicros: micros, emailLower: String(email))
    }
}
