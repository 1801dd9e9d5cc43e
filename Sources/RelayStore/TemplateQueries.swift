import Foundation
import PostgresNIO

/// A stored message template (Mustache sources, compiled by the API before they are saved).
public struct StoredTemplate: Sendable, Equatable {
    /// 1–64 of `[A-Za-z0-9_.-]`, unique per tenant.
    public var name: String
    /// Subject template ("" when none).
    public var subject: String
    /// Plain-text body template.
    public var text: String?
    /// HTML body template.
    public var html: String?
    /// When it was first saved.
    public var createdAt: Date
    /// When it was last replaced.
    public var updatedAt: Date

    /// Creates the value.
    public init(name: String, subject: String, text: String?, html: String?, createdAt: Date = Date(), updatedAt: Date = Date()) {
        self.name = name
        self.subject = subject
        self.text = text
        self.html = html
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

extension RelayDatabase {
    /// How `saveTemplate` treats an existing template of the same name.
    public enum TemplateWrite: Sendable {
        /// Insert only; an existing one is a conflict (nothing changes).
        case create
        /// Insert or replace (keeps `created_at`).
        case upsert
    }

    /// Saves a template. Returns the stored row and whether it was newly created; with `.create` an existing
    /// name throws `StoreError.conflict`.
    public func saveTemplate(tenantID: UUID, _ template: StoredTemplate, mode: TemplateWrite) async throws
        -> (template: StoredTemplate, created: Bool) {
        try await withDeadline { [self] in
            let conflict = mode == .create ? "DO NOTHING" : """
                DO UPDATE SET subject = EXCLUDED.subject, text = EXCLUDED.text, html = EXCLUDED.html, updated_at = now()
                """
            let rows = try await client.query("""
                INSERT INTO templates AS t (tenant_id, name, subject, text, html)
                VALUES (\(tenantID), \(template.name), \(template.subject), \(template.text), \(template.html))
                ON CONFLICT (tenant_id, name) \(unescaped: conflict)
                RETURNING t.name, t.subject, t.text, t.html, t.created_at, t.updated_at, (xmax = 0)
                """, logger: logger)
            for try await (name, subject, text, html, created, updated, inserted) in rows.decode(
                (String, String, String?, String?, Date, Date, Bool).self) {
                return (StoredTemplate(name: name, subject: subject, text: text, html: html, createdAt: created, updatedAt: updated),
                        inserted)
            }
            throw StoreError(code: .conflict, description: "a template named \(template.name) exists")
        }
    }

    /// One template of the tenant, or nil.
    public func template(tenantID: UUID, name: String) async throws -> StoredTemplate? {
        try await templates(tenantID: tenantID, name: name).first
    }

    /// The tenant's templates sorted by name (byte order), or only the one named.
    public func templates(tenantID: UUID, name: String? = nil) async throws -> [StoredTemplate] {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                SELECT name, subject, text, html, created_at, updated_at FROM templates
                WHERE tenant_id = \(tenantID) AND (\(name)::text IS NULL OR name = \(name))
                ORDER BY name COLLATE "C"
                """, logger: logger)
            var result: [StoredTemplate] = []
            for try await (name, subject, text, html, created, updated) in rows.decode(
                (String, String, String?, String?, Date, Date).self) {
                result.append(StoredTemplate(name: name, subject: subject, text: text, html: html, createdAt: created, updatedAt: updated))
            }
            return result
        }
    }

    /// Deletes a template; false when the tenant has none of that name.
    public func deleteTemplate(tenantID: UUID, name: String) async throws -> Bool {
        try await withDeadline { [self] in
            let rows = try await client.query("""
                DELETE FROM templates WHERE tenant_id = \(tenantID) AND name = \(name) RETURNING 1
                """, logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }
}
