import Foundation
import Hummingbird
import RelayStore
import RelayTemplates

/// The tenant's message templates: `POST /v1/templates`, `GET /v1/templates`, and `GET`, `PUT` (create or
/// replace) and `DELETE /v1/templates/{name}`. Every part is compiled before it is saved, so a stored template
/// always parses; `POST /v1/messages` renders one with `"template": {"name", "data"}`.
struct TemplatesController {
    let database: RelayDatabase

    static let maximumBodyBytes = 1024 * 1024

    func register(on group: RouterGroup<RelayRequestContext>) {
        group.post("templates", use: create)
        group.get("templates", use: list)
        group.get("templates/:name", use: show)
        group.put("templates/:name", use: replace)
        group.delete("templates/:name", use: remove)
    }

    struct TemplateJSON: Encodable {
        var template: StoredTemplate
        enum CodingKeys: String, CodingKey {
            case name, subject, text, html, createdAt = "created_at", updatedAt = "updated_at"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(template.name, forKey: .name)
            try container.encode(template.subject, forKey: .subject)
            try container.encode(template.text, forKey: .text)
            try container.encode(template.html, forKey: .html)
            try container.encode(RFC3339.format(template.createdAt), forKey: .createdAt)
            try container.encode(RFC3339.format(template.updatedAt), forKey: .updatedAt)
        }
    }

    struct List: Encodable {
        var data: [TemplateJSON]
    }

    /// Reads and validates a template body; `name` comes from the body (POST) or the path (PUT).
    private func template(from request: Request, name pathName: String?) async throws -> StoredTemplate {
        let body = try await request.body.collect(upTo: Self.maximumBodyBytes)
        let reader = try JSONObjectReader(JSONValue.parse(body.readableBytesView))
        try reader.rejectUnknown(pathName == nil ? ["name", "subject", "text", "html"] : ["subject", "text", "html"])
        let name = try pathName ?? reader.string("name", required: true) ?? ""
        guard TemplateName.isValid(name) else { throw APIError.invalid("name", TemplateName.rule) }
        let subject = try reader.string("subject") ?? ""
        let text = try reader.string("text")
        let html = try reader.string("html")
        if (text ?? "").isEmpty && (html ?? "").isEmpty {
            throw APIError.invalid("text", "a template needs a text or an html body")
        }
        if subject.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) {
            throw APIError.invalid("subject", "subject must be one line (no CR or LF)")
        }
        for (field, value) in [("subject", subject), ("text", text ?? ""), ("html", html ?? "")] where value.contains("\0") {
            throw APIError.invalid(field, "\(field) must not contain NUL characters")
        }
        do {
            _ = try MessageTemplate(subject: subject, text: text, html: html)
        } catch {
            throw APIError.invalid(error.part.rawValue, "\(error.part.rawValue) is not a valid Mustache template: \(error.error)")
        }
        return StoredTemplate(name: name, subject: subject, text: text, html: html)
    }

    @Sendable func create(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let template = try await template(from: request, name: nil)
        do {
            let (stored, _) = try await database.saveTemplate(tenantID: tenant, template, mode: .create)
            return try JSONResponse.make(.created, TemplateJSON(template: stored))
        } catch let error as StoreError where error.code == .conflict {
            throw APIError(.conflict, code: "template_exists",
                           message: "a template named \"\(template.name)\" exists; replace it with PUT /v1/templates/\(template.name)",
                           field: "name")
        }
    }

    /// Creates the template when it does not exist (201) or replaces it (200).
    @Sendable func replace(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let name = context.parameters.get("name") ?? ""
        let template = try await template(from: request, name: name)
        let (stored, created) = try await database.saveTemplate(tenantID: tenant, template, mode: .upsert)
        return try JSONResponse.make(created ? .created : .ok, TemplateJSON(template: stored))
    }

    @Sendable func list(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        return try JSONResponse.make(.ok, List(data: try await database.templates(tenantID: tenant).map(TemplateJSON.init)))
    }

    @Sendable func show(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let name = context.parameters.get("name") ?? ""
        guard TemplateName.isValid(name), let template = try await database.template(tenantID: tenant, name: name) else {
            throw Self.notFound(name)
        }
        return try JSONResponse.make(.ok, TemplateJSON(template: template))
    }

    @Sendable func remove(request: Request, context: RelayRequestContext) async throws -> Response {
        let tenant = try context.requireTenant()
        let name = context.parameters.get("name") ?? ""
        guard TemplateName.isValid(name), try await database.deleteTemplate(tenantID: tenant, name: name) else {
            throw Self.notFound(name)
        }
        return Response(status: .noContent)
    }

    static func notFound(_ name: String) -> APIError {
        APIError(.notFound, code: "not_found", message: "no template named \"\(name)\"")
    }
}
