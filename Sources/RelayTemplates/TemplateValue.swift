import Foundation

/// The data a template renders with: JSON's data model, so an API request's `template.data` maps onto it
/// one to one.
public enum TemplateValue: Sendable, Equatable {
    /// JSON null: present, renders as nothing, a false section.
    case null
    /// A boolean: a section is shown when true.
    case bool(Bool)
    /// A number: integral values render without a fraction (`3`, not `3.0`).
    case number(Double)
    /// A string.
    case string(String)
    /// An array: a section repeats once per element.
    case array([TemplateValue])
    /// An object: a section pushes it on the context stack; dotted names reach into it.
    case object([String: TemplateValue])
}

extension TemplateValue: Encodable {
    /// Encodes the value as the JSON it came from (an object rendered with `{{name}}` shows as JSON).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if let integer = Int(exactly: value) { try container.encode(integer) } else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
