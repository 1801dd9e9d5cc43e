import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A swift-log handler that writes one JSON object per line (JSON Lines), for `RELAY_LOG_FORMAT=json`.
///
/// Each line holds `ts` (RFC 3339 UTC with milliseconds), `level`, `logger` (the label) and `msg`, then every
/// metadata key at the top level: handler metadata, then the provider's, then the call's (later wins). A metadata
/// key named like one of the four fixed fields is written as `meta_<key>`. Keys after the fixed four are sorted.
/// Level filtering is `Logger`'s job, not this handler's: `log(event:)` writes whatever it is given.
public struct JSONLogHandler: LogHandler {
    /// Where lines go.
    public enum Stream: Sendable {
        case standardError
        case standardOutput
    }

    /// The fixed fields, in the order they are written.
    static let reservedKeys = ["ts", "level", "logger", "msg"]

    private let label: String
    private let sink: @Sendable (String) -> Void

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// Writes to standard error (or standard output) with one `write(2)` per line, so lines never interleave.
    public init(label: String, stream: Stream = .standardError) {
        let fd = stream == .standardOutput ? STDOUT_FILENO : STDERR_FILENO
        self.init(label: label, metadataProvider: LoggingSystem.metadataProvider) { Self.writeLine($0, to: fd) }
    }

    /// Hands each finished line (with its trailing newline) to `sink`: for tests, or another destination.
    public init(
        label: String,
        metadataProvider: Logger.MetadataProvider? = nil,
        sink: @escaping @Sendable (String) -> Void
    ) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() {
            merged.merge(provided) { _, new in new }
        }
        if let explicit = event.metadata {
            merged.merge(explicit) { _, new in new }
        }
        if let error = event.error {  // as StreamLogHandler does
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        self.sink(Self.line(label: self.label, level: event.level, message: event.message.description, metadata: merged) + "\n")
    }

    /// One JSON object, without the newline. Pure apart from reading the clock when `date` is omitted.
    static func line(
        label: String,
        level: Logger.Level,
        message: String,
        metadata: Logger.Metadata,
        date: Date = Date()
    ) -> String {
        var fields: [String: Any] = [:]
        // Sorted, so that if both `ts` and `meta_ts` are present the renamed `ts` wins, every time.
        for key in metadata.keys.sorted() {
            fields[Self.reservedKeys.contains(key) ? "meta_" + key : key] = Self.jsonValue(metadata[key]!)
        }
        let fixed: [(String, Any)] = [
            ("ts", date.formatted(Self.timestampStyle)),
            ("level", level.rawValue),
            ("logger", label),
            ("msg", message),
        ]
        // Each pair is encoded by JSONSerialization as a one-key object and the braces are dropped, so the
        // encoder does all escaping while the key order stays fixed: ts, level, logger, msg, then sorted metadata.
        let pairs = (fixed + fields.sorted { $0.key < $1.key }).map { key, value -> String in
            let object = String(decoding: Self.encode([key: value]), as: UTF8.self)
            return String(object.dropFirst().dropLast())
        }
        return "{" + pairs.joined(separator: ",") + "}"
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-29T02:26:44.627Z`.
    static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    /// A Foundation value that JSONSerialization accepts.
    static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let array): array.map(jsonValue)
        case .dictionary(let dictionary): dictionary.mapValues(jsonValue)
        }
    }

    private static func encode(_ object: [String: Any]) -> Data {
        do {
            return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        } catch {
            // Unreachable for the value kinds above; keep the line valid rather than lose it.
            let fallback = ["log_encoding_error": "\(error)"]
            return (try? JSONSerialization.data(withJSONObject: fallback)) ?? Data("{\"\":\"\"}".utf8)
        }
    }

    /// One `write(2)` for the whole line; loops only on a short write or EINTR.
    static func writeLine(_ line: String, to fd: Int32) {
        let bytes = Array(line.utf8)
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
