import Foundation
import Hummingbird

/// Encodes response bodies: snake_case keys come from each type's CodingKeys, dates are RFC 3339 with
/// milliseconds in UTC.
enum JSONResponse {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.format(date))
        }
        return encoder
    }()

    static func make(_ status: HTTPResponse.Status, _ value: some Encodable, headers: HTTPFields = [:]) throws -> Response {
        try make(status, bytes: encoder.encode(value), headers: headers)
    }

    static func make(_ status: HTTPResponse.Status, bytes: some Sequence<UInt8>, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// RFC 3339 timestamps as the API writes them.
enum RFC3339 {
    static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt))
    }

    /// Parses an RFC 3339 timestamp with or without fractional seconds.
    static func parse(_ text: String) -> Date? {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
    }
}

extension UUID {
    /// Ids as the API writes them: lowercase (RFC 9562's canonical form); input accepts either case.
    var apiString: String { uuidString.lowercased() }
}
