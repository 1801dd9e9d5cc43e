import Foundation

/// Any JSON value, decoded first so that validation can name the exact field at fault and refuse unknown
/// fields, which typed `Decodable` structs cannot do with useful messages.
enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// A canonical serialisation (sorted keys, normalised numbers and escapes), so that two bodies that mean
    /// the same JSON compare equal whatever their key order or whitespace (used for Idempotency-Key).
    var canonicalBytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// Parses a request body; throws 400 `invalid_json` for anything that is not JSON.
    static func parse(_ bytes: some Collection<UInt8>) throws -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw APIError(.badRequest, code: "invalid_json", message: "the request body is not valid JSON")
        }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Reads fields of a JSON object for validation, remembering which ones were read so unknown ones are refused.
struct JSONObjectReader {
    let fields: [String: JSONValue]
    let path: String

    init(_ value: JSONValue, path: String = "") throws {
        guard case .object(let fields) = value else {
            throw APIError.invalid(path.isEmpty ? "body" : path, "\(path.isEmpty ? "the body" : path) must be a JSON object, not \(value.typeName)")
        }
        self.fields = fields
        self.path = path
    }

    func fieldPath(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    /// Refuses any field not in `known`.
    func rejectUnknown(_ known: Set<String>) throws {
        if let unknown = fields.keys.sorted().first(where: { !known.contains($0) }) {
            throw APIError.invalid(fieldPath(unknown), "unknown field \"\(unknown)\"")
        }
    }

    func string(_ name: String, required: Bool = false) throws -> String? {
        switch fields[name] {
        case nil, .null?:
            if required { throw APIError.invalid(fieldPath(name), "\(fieldPath(name)) is required") }
            return nil
        case .string(let value)?: return value
        case let other?: throw APIError.invalid(fieldPath(name), "\(fieldPath(name)) must be a string, not \(other.typeName)")
        }
    }

    /// A boolean, or nil when absent or null.
    func bool(_ name: String) throws -> Bool? {
        switch fields[name] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        case let other?: throw APIError.invalid(fieldPath(name), "\(fieldPath(name)) must be a boolean, not \(other.typeName)")
        }
    }

    /// A whole number, or nil when absent or null.
    func integer(_ name: String) throws -> Int? {
        switch fields[name] {
        case nil, .null?: return nil
        case .number(let value)? where value.rounded() == value && abs(value) < 1e15: return Int(value)
        case let other?: throw APIError.invalid(fieldPath(name), "\(fieldPath(name)) must be a whole number, not \(other.typeName)")
        }
    }

    /// A string or an array of strings (`to`, `cc`, `bcc`, `reply_to`).
    func stringOrArray(_ name: String) throws -> [String] {
        switch fields[name] {
        case nil, .null?: return []
        case .string(let value)?: return [value]
        case .array(let items)?:
            return try items.enumerated().map { index, item in
                guard case .string(let value) = item else {
                    throw APIError.invalid("\(fieldPath(name))[\(index)]", "\(fieldPath(name))[\(index)] must be a string, not \(item.typeName)")
                }
                return value
            }
        case let other?:
            throw APIError.invalid(fieldPath(name), "\(fieldPath(name)) must be a string or an array of strings, not \(other.typeName)")
        }
    }
}
