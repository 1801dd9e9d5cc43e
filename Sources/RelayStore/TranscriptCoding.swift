import Foundation
import RelayCore

/// The JSON form of a transcript in `attempts.transcript`: `[{"at","direction","text"}]` with RFC 3339 times.
public enum TranscriptCoding {
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    public static func encode(_ lines: [TranscriptLine]) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(style))
        }
        return String(decoding: try encoder.encode(lines), as: UTF8.self)
    }

    public static func decode(_ json: String) throws -> [TranscriptLine] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            return try style.parse(text)
        }
        return try decoder.decode([TranscriptLine].self, from: Data(json.utf8))
    }
}
