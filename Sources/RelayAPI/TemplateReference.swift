import Foundation
import MailMessage
import RelayStore
import RelayTemplates

/// `"template": {"name": "welcome", "data": {…}}` in a send request: the stored template to render in place of
/// subject, text and html, and the values for its names.
struct TemplateReference: Sendable {
    var name: String
    var data: [String: TemplateValue]

    /// Validates the `template` field of a send request (422 naming `template.name` or `template.data`).
    init(json: JSONValue) throws {
        let reader = try JSONObjectReader(json, path: "template")
        try reader.rejectUnknown(["name", "data"])
        name = try reader.string("name", required: true) ?? ""
        guard TemplateName.isValid(name) else {
            throw APIError.invalid("template.name", TemplateName.rule)
        }
        switch reader.fields["data"] {
        case nil, .null?: data = [:]
        case .object(let fields)?: data = fields.mapValues(TemplateValue.init)
        case let other?: throw APIError.invalid("template.data", "template.data must be an object, not \(other.typeName)")
        }
    }
}

/// The rules of a template's name.
enum TemplateName {
    static let maxLength = 64
    static let rule = "a template name is 1–64 characters of A–Z, a–z, 0–9, underscore, dot and hyphen, not starting with a dot"

    static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= maxLength && !name.hasPrefix(".")
            && name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }
    }
}

extension TemplateValue {
    /// The same JSON value in the template module's terms.
    init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let value): self = .bool(value)
        case .number(let value): self = .number(value)
        case .string(let value): self = .string(value)
        case .array(let items): self = .array(items.map(TemplateValue.init))
        case .object(let fields): self = .object(fields.mapValues(TemplateValue.init))
        }
    }
}

/// Loads and compiles a tenant's templates for the send path, each name once per request (a batch that uses one
/// template for 500 messages reads and compiles it once). Used by one request's task only.
final class TemplateLookup {
    private let database: RelayDatabase
    private let tenantID: UUID
    private var compiled: [String: MessageTemplate?] = [:]

    init(database: RelayDatabase, tenantID: UUID) {
        self.database = database
        self.tenantID = tenantID
    }

    /// The compiled template, or nil when the tenant has none of that name.
    func template(named name: String) async throws -> MessageTemplate? {
        if let known = compiled[name] { return known }
        var template: MessageTemplate?
        if let stored = try await database.template(tenantID: tenantID, name: name) {
            do {
                template = try MessageTemplate(subject: stored.subject, text: stored.text, html: stored.html)
            } catch {
                // Templates are compiled before they are saved; one that no longer compiles (a newer parser) is
                // the sender's to fix, as at save time.
                throw APIError.invalid("template.name", "template \"\(name)\" no longer compiles: \(error.part.rawValue): \(error.error)")
            }
        }
        compiled[name] = .some(template)
        return template
    }

    /// Renders the referenced template into `send` (subject, text, html); every failure is a 422.
    func render(into send: inout SendRequest) async throws {
        guard let reference = send.template else { return }
        guard let template = try await template(named: reference.name) else {
            throw APIError(.unprocessableContent, code: "template_not_found",
                           message: "this account has no template named \"\(reference.name)\" (see GET /v1/templates)",
                           field: "template.name")
        }
        let rendered: MessageTemplate.Rendered
        do {
            rendered = try template.render(reference.data)
        } catch {
            throw APIError(.unprocessableContent, code: "template_variable_missing",
                           message: "template \"\(reference.name)\" uses {{\(error.path)}}, which template.data does not have (give it a value; null, false or [] count)",
                           field: "template.data.\(error.path)")
        }
        guard HeaderRules.isValidValue(rendered.subject) else {
            throw APIError.invalid("template.data", "the subject rendered from template \"\(reference.name)\" contains CR, LF or NUL characters; a subject is one line")
        }
        send.subject = rendered.subject
        send.text = rendered.text
        send.html = rendered.html
    }
}
