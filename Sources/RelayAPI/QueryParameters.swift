import Foundation
import Hummingbird

/// Reads and validates query parameters; every failure is a 422 naming the parameter.
struct QueryParameters {
    let request: Request

    /// The parameter as given (possibly empty); NUL can reach neither PostgreSQL nor a match.
    func raw(_ name: String) throws -> String? {
        guard let value = request.uri.queryParameters[name[...]].map(String.init) else { return nil }
        if value.contains("\0") { throw APIError.invalid(name, "\(name) must not contain NUL characters") }
        return value
    }

    /// A free-text filter: empty means "no filter".
    func text(_ name: String) throws -> String? {
        try raw(name).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// An RFC 3339 timestamp.
    func time(_ name: String) throws -> Date? {
        guard let value = try raw(name) else { return nil }
        guard let date = RFC3339.parse(value) else {
            throw APIError.invalid(name, "\(name) must be an RFC 3339 timestamp such as 2026-11-29T10:00:00Z")
        }
        return date
    }

    /// One of a fixed set of values.
    func choice(_ name: String, in allowed: [String]) throws -> String? {
        guard let value = try raw(name) else { return nil }
        guard allowed.contains(value) else {
            throw APIError.invalid(name, "\(name) must be one of \(allowed.joined(separator: ", "))")
        }
        return value
    }

    /// `limit`: a page size from 1 to `maximum`.
    func limit(default defaultValue: Int, maximum: Int) throws -> Int {
        guard let value = try raw("limit") else { return defaultValue }
        guard let parsed = Int(value), (1...maximum).contains(parsed) else {
            throw APIError.invalid("limit", "limit must be a whole number from 1 to \(maximum)")
        }
        return parsed
    }

    /// `cursor`: the `next_cursor` of a previous page, decoded by `decode`.
    func cursor<Cursor>(_ decode: (String) -> Cursor?) throws -> Cursor? {
        guard let value = try text("cursor") else { return nil }
        guard let decoded = OpaqueCursor.decode(value).flatMap(decode) else {
            throw APIError.invalid("cursor", "cursor is not a value returned as next_cursor")
        }
        return decoded
    }
}

/// Cursors are opaque to clients: base64url (no padding) of a small text the server parses back.
enum OpaqueCursor {
    static func encode(_ plain: String) -> String {
        Data(plain.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ text: String) -> String? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else { return nil }
        return String(data: data, encoding: .utf8)
    }

    /// Splits "<a>.<b>" as written by the cursor encoders.
    static func pair(_ plain: String) -> (Substring, Substring)? {
        let parts = plain.split(separator: ".", maxSplits: 1)
        return parts.count == 2 ? (parts[0], parts[1]) : nil
    }
}

/// One page of a list: `{"data":[…],"next_cursor":"…"|null}`.
struct Page<Item: Encodable>: Encodable {
    var data: [Item]
    var nextCursor: String?
    enum CodingKeys: String, CodingKey { case data, nextCursor = "next_cursor" }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(data, forKey: .data)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}
