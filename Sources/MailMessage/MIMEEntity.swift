/// One header field as it appeared, unfolded (RFC 5322 §2.2.3: CRLF removed, whitespace kept).
public struct MIMEHeader: Sendable, Hashable {
    /// The field name as written (compare case-insensitively).
    public var name: String
    /// The raw value with surrounding whitespace trimmed; encoded words are left as they are.
    public var value: String

    /// Creates a header field.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// The value with RFC 2047 encoded words decoded, for display and comparison.
    public var decodedValue: String { EncodedWords.decode(value) }
}

/// Why bytes could not be read as a MIME entity.
public struct MIMEParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The human-readable reason.
    public var message: String

    /// Creates an error with the given reason.
    public init(_ message: String) { self.message = message }

    /// The same text as ``message``.
    public var description: String { message }
}

/// A parsed message or body part (RFC 2045–2049): headers, raw body, and for `multipart/*` its parts,
/// for `message/rfc822` its encapsulated message. Used to check composition round-trips and to read
/// bounces (RFC 3464 reports are `multipart/report` with `message/delivery-status` parts; see
/// ``fieldGroups``). Parsing is tolerant: LF-only line ends, missing close delimiters, sloppy
/// base64 and quoted-printable are all read as well as possible.
public struct MIMEEntity: Sendable, Hashable {
    /// Header fields in order, unfolded.
    public var headers: [MIMEHeader]
    /// The media type, lower-cased `type/subtype`. Defaults to `text/plain` (RFC 2045 §5.2), or
    /// `message/rfc822` inside `multipart/digest` (RFC 2046 §5.1.5). Computed at parse time.
    public var contentType: String
    /// Content-Type parameters with lower-cased names and decoded values (RFC 2231 continuations and
    /// charsets, and RFC 2047 words that some senders put in `name`, are decoded).
    public var parameters: [String: String]
    /// The body bytes as they appeared, before any Content-Transfer-Encoding is undone.
    public var body: [UInt8]
    /// For `multipart/*`, the body parts; for `message/rfc822` and `message/global`, one element:
    /// the encapsulated message (also ``encapsulatedMessage``). Empty otherwise.
    public var parts: [MIMEEntity]

    /// The deepest nesting parsed; deeper multiparts are kept as unsplit bodies.
    public static let maxDepth = 32

    /// Parses a message. Throws ``MIMEParseError`` when the input is empty or does not start with a
    /// header field (an mbox `From ` line is skipped).
    public init(parsing bytes: some Collection<UInt8>) throws {
        let array = Array(bytes)
        guard !array.isEmpty else { throw MIMEParseError("empty input") }
        self = try MIMEParser.parseEntity(array[...], defaultType: "text/plain", depth: 0, strict: true)
    }

    /// Creates an entity from headers and a body; the content type and parameters are read from the headers.
    public init(headers: [MIMEHeader], body: [UInt8], parts: [MIMEEntity] = []) {
        self.init(headers: headers, body: body, parts: parts, defaultType: "text/plain")
    }

    init(headers: [MIMEHeader], body: [UInt8], parts: [MIMEEntity], defaultType: String) {
        self.headers = headers
        self.body = body
        self.parts = parts
        if let value = headers.first(where: { ByteSearch.equalsIgnoringASCIICase($0.name, "Content-Type") })?.value {
            let parsed = HeaderParameters.parse(value)
            if parsed.value.split(separator: "/").count == 2 {
                contentType = parsed.value
                parameters = parsed.parameters
            } else {
                contentType = "text/plain"
                parameters = [:]
            }
        } else {
            contentType = defaultType
            parameters = [:]
        }
    }

    /// The first field with this name (case-insensitive), RFC 2047 decoded.
    public func header(_ name: String) -> String? {
        headers.first { ByteSearch.equalsIgnoringASCIICase($0.name, name) }?.decodedValue
    }

    /// Every field with this name (case-insensitive), in order, RFC 2047 decoded.
    public func headerValues(_ name: String) -> [String] {
        headers.filter { ByteSearch.equalsIgnoringASCIICase($0.name, name) }.map(\.decodedValue)
    }

    /// The Content-Transfer-Encoding, lower-cased; `7bit` when absent (RFC 2045 §6.1).
    public var contentTransferEncoding: String {
        guard let raw = headers.first(where: { ByteSearch.equalsIgnoringASCIICase($0.name, "Content-Transfer-Encoding") })?.value else {
            return "7bit"
        }
        return HeaderParameters.parse(raw).value
    }

    /// The body with its Content-Transfer-Encoding undone (base64, quoted-printable; 7bit, 8bit,
    /// binary and unknown encodings are returned as they are).
    public var decodedBody: [UInt8] {
        switch contentTransferEncoding {
        case "base64": return Base64.decode(body)
        case "quoted-printable": return QuotedPrintable.decode(body)
        default: return body
        }
    }

    /// The decoded body as text in its `charset` (US-ASCII when absent; unknown charsets are read as
    /// UTF-8, or Latin-1 when that fails).
    public var decodedText: String {
        Charsets.decode(decodedBody, charset: parameters["charset"] ?? "us-ascii")
    }

    /// Whether this is a `multipart/*` entity.
    public var isMultipart: Bool { contentType.hasPrefix("multipart/") }

    /// The message carried by a `message/rfc822` or `message/global` entity (for example the
    /// returned message in a bounce).
    public var encapsulatedMessage: MIMEEntity? {
        MIMEParser.isEncapsulation(contentType) ? parts.first : nil
    }

    /// The Content-Disposition type, lower-cased (`inline`, `attachment`), if present.
    public var disposition: String? {
        guard let raw = headers.first(where: { ByteSearch.equalsIgnoringASCIICase($0.name, "Content-Disposition") })?.value else {
            return nil
        }
        return HeaderParameters.parse(raw).value
    }

    /// Content-Disposition parameters, decoded like ``parameters``.
    public var dispositionParameters: [String: String] {
        guard let raw = headers.first(where: { ByteSearch.equalsIgnoringASCIICase($0.name, "Content-Disposition") })?.value else {
            return [:]
        }
        return HeaderParameters.parse(raw).parameters
    }

    /// The file name: Content-Disposition `filename`, else Content-Type `name`.
    public var filename: String? {
        dispositionParameters["filename"] ?? parameters["name"]
    }

    /// The Content-ID without angle brackets.
    public var contentID: String? {
        guard var value = header("Content-ID")?.trimmingASCIIWhitespace() else { return nil }
        if value.hasPrefix("<") && value.hasSuffix(">") && value.count >= 2 { value = String(value.dropFirst().dropLast()) }
        return value
    }

    /// The decoded body read as blocks of header fields separated by blank lines — the layout of
    /// `message/delivery-status` (RFC 3464 §2.1: per-message fields, then one block per recipient)
    /// and of `text/rfc822-headers`.
    public var fieldGroups: [[MIMEHeader]] {
        MIMEEntity.parseFieldGroups(decodedBody)
    }

    /// Reads bytes as blocks of header fields separated by blank lines (see ``fieldGroups``).
    public static func parseFieldGroups(_ bytes: some Collection<UInt8>) -> [[MIMEHeader]] {
        let array = Array(bytes)
        var groups: [[MIMEHeader]] = []
        var index = 0
        while index < array.count {
            let section = MIMEParser.parseHeaderSection(array[index...])
            if !section.headers.isEmpty { groups.append(section.headers) }
            if section.bodyStart > index {
                index = section.bodyStart
            } else {
                // A line that is not a field: skip it.
                while index < array.count && array[index] != ASCII.lf { index += 1 }
                index += 1
            }
        }
        return groups
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        var bytes = Substring(self).utf8[...]
        while let f = bytes.first, f == ASCII.space || f == ASCII.tab { bytes = bytes.dropFirst() }
        while let l = bytes.last, l == ASCII.space || l == ASCII.tab { bytes = bytes.dropLast() }
        return String(Substring(bytes))
    }
}

enum MIMEParser {
    static func isEncapsulation(_ type: String) -> Bool {
        type == "message/rfc822" || type == "message/global"
    }

    static func parseEntity(_ bytes: ArraySlice<UInt8>, defaultType: String, depth: Int, strict: Bool) throws -> MIMEEntity {
        let section = parseHeaderSection(bytes)
        if strict && section.headers.isEmpty && section.stoppedAtNonHeader {
            throw MIMEParseError("input does not start with a header field")
        }
        var entity = MIMEEntity(headers: section.headers, body: Array(bytes[section.bodyStart...]), parts: [], defaultType: defaultType)
        guard depth < MIMEEntity.maxDepth else { return entity }
        if entity.isMultipart, let boundary = entity.parameters["boundary"], !boundary.isEmpty {
            let childDefault = entity.contentType == "multipart/digest" ? "message/rfc822" : "text/plain"
            entity.parts = try splitMultipart(entity.body, boundary: Array(boundary.utf8)).map {
                try parseEntity($0, defaultType: childDefault, depth: depth + 1, strict: false)
            }
        } else if isEncapsulation(entity.contentType) {
            let inner = entity.decodedBody
            if !inner.isEmpty {
                entity.parts = [try parseEntity(inner[...], defaultType: "text/plain", depth: depth + 1, strict: false)]
            }
        }
        return entity
    }

    struct HeaderSection {
        var headers: [MIMEHeader]
        var bodyStart: Int
        var stoppedAtNonHeader: Bool
    }

    /// Reads header lines up to the first empty line. Lines may end in CRLF or bare LF. A line that is
    /// neither a field nor a continuation ends the section there (the body starts with it).
    static func parseHeaderSection(_ b: ArraySlice<UInt8>) -> HeaderSection {
        var headers: [MIMEHeader] = []
        var name: ArraySlice<UInt8>? = nil
        var value: [UInt8] = []
        var i = b.startIndex
        let end = b.endIndex
        var firstLine = true

        func flush() {
            guard let n = name else { return }
            var v = value[...]
            while let f = v.first, ASCII.isWhitespace(f) { v = v.dropFirst() }
            while let l = v.last, ASCII.isWhitespace(l) { v = v.dropLast() }
            headers.append(MIMEHeader(name: String(decoding: n, as: UTF8.self), value: TextDecoding.string(fromHeaderBytes: v)))
            name = nil
            value = []
        }

        while i < end {
            var lineEnd = i
            while lineEnd < end && b[lineEnd] != ASCII.lf { lineEnd += 1 }
            var contentEnd = lineEnd
            if contentEnd > i && b[contentEnd - 1] == ASCII.cr { contentEnd -= 1 }
            let next = lineEnd < end ? lineEnd + 1 : end
            if contentEnd == i {
                flush()
                return HeaderSection(headers: headers, bodyStart: next, stoppedAtNonHeader: false)
            }
            let line = b[i..<contentEnd]
            if ASCII.isWhitespace(line[line.startIndex]) && name != nil {
                value += line
            } else if firstLine && line.starts(with: "From ".utf8) {
                // mbox separator line
            } else if let colon = line.firstIndex(of: ASCII.colon), isFieldName(line[line.startIndex..<colon]) {
                flush()
                var n = line[line.startIndex..<colon]
                while let l = n.last, ASCII.isWhitespace(l) { n = n.dropLast() }
                name = n
                value = Array(line[(colon + 1)...])
            } else {
                flush()
                return HeaderSection(headers: headers, bodyStart: i, stoppedAtNonHeader: true)
            }
            firstLine = false
            i = next
        }
        flush()
        return HeaderSection(headers: headers, bodyStart: end, stoppedAtNonHeader: false)
    }

    /// RFC 5322 §3.6.8 field-name, allowing whitespace before the colon (obs-optional, §4.5.8).
    static func isFieldName(_ bytes: ArraySlice<UInt8>) -> Bool {
        var n = bytes
        while let l = n.last, ASCII.isWhitespace(l) { n = n.dropLast() }
        return !n.isEmpty && n.allSatisfy { $0 >= 33 && $0 <= 126 && $0 != ASCII.colon }
    }

    /// Splits a multipart body at its delimiter lines (RFC 2046 §5.1.1). The line break before a
    /// delimiter belongs to the delimiter; transport padding after it is ignored; the preamble and
    /// epilogue are dropped. A missing close delimiter ends the last part at the end of the body.
    static func splitMultipart(_ body: [UInt8], boundary: [UInt8]) -> [ArraySlice<UInt8>] {
        let dash: [UInt8] = [ASCII.hyphen, ASCII.hyphen] + boundary
        var parts: [ArraySlice<UInt8>] = []
        var partStart: Int? = nil
        var i = 0
        let n = body.count
        while i < n {
            var lineEnd = i
            while lineEnd < n && body[lineEnd] != ASCII.lf { lineEnd += 1 }
            if lineEnd - i >= dash.count && body[i] == ASCII.hyphen && body[i..<(i + dash.count)].elementsEqual(dash) {
                var rest = body[(i + dash.count)..<lineEnd]
                let isClose = rest.starts(with: [ASCII.hyphen, ASCII.hyphen])
                if isClose { rest = rest.dropFirst(2) }
                if rest.allSatisfy({ ASCII.isWhitespace($0) || $0 == ASCII.cr }) {
                    if let start = partStart {
                        var end = i
                        if end > start && body[end - 1] == ASCII.lf {
                            end -= 1
                            if end > start && body[end - 1] == ASCII.cr { end -= 1 }
                        }
                        parts.append(body[start..<max(start, end)])
                    }
                    if isClose { return parts }
                    partStart = min(lineEnd + 1, n)
                }
            }
            i = lineEnd + 1
        }
        if let start = partStart, start < n { parts.append(body[start..<n]) }
        return parts
    }
}

/// Parsing of `value; name=value; …` headers (Content-Type, Content-Disposition; RFC 2045 §5.1,
/// RFC 2183) with RFC 2231 parameter continuations and charsets.
enum HeaderParameters {
    static func parse(_ text: String) -> (value: String, parameters: [String: String]) {
        let b = Array(text.utf8)
        let n = b.count
        var i = 0

        func skipCFWS() {
            while i < n {
                let c = b[i]
                if ASCII.isWhitespace(c) || c == ASCII.cr || c == ASCII.lf {
                    i += 1
                } else if c == ASCII.openParen {
                    var depth = 0
                    while i < n {
                        if b[i] == ASCII.backslash { i += 2; continue }
                        if b[i] == ASCII.openParen { depth += 1 }
                        if b[i] == ASCII.closeParen { depth -= 1; if depth == 0 { i += 1; break } }
                        i += 1
                    }
                } else {
                    return
                }
            }
        }

        // The main value, such as "text/plain" or "attachment"; whitespace and comments inside are dropped.
        var main: [UInt8] = []
        skipCFWS()
        while i < n && b[i] != ASCII.semicolon {
            if b[i] == ASCII.openParen { skipCFWS(); continue }
            if !ASCII.isWhitespace(b[i]) && b[i] != ASCII.cr && b[i] != ASCII.lf { main.append(ASCII.lower(b[i])) }
            i += 1
        }

        var raw: [(name: String, value: String)] = []
        while i < n {
            i += 1   // the ';'
            skipCFWS()
            var name: [UInt8] = []
            while i < n && b[i] != ASCII.equals && b[i] != ASCII.semicolon && !ASCII.isWhitespace(b[i]) {
                name.append(ASCII.lower(b[i]))
                i += 1
            }
            skipCFWS()
            guard i < n, b[i] == ASCII.equals, !name.isEmpty else {
                while i < n && b[i] != ASCII.semicolon { i += 1 }
                continue
            }
            i += 1
            skipCFWS()
            var value: [UInt8] = []
            if i < n && b[i] == ASCII.quote {
                i += 1
                while i < n && b[i] != ASCII.quote {
                    if b[i] == ASCII.backslash && i + 1 < n { i += 1 }
                    if b[i] != ASCII.cr && b[i] != ASCII.lf { value.append(b[i]) }
                    i += 1
                }
                i += 1
                while i < n && b[i] != ASCII.semicolon { i += 1 }
            } else {
                while i < n && b[i] != ASCII.semicolon { value.append(b[i]); i += 1 }
                while let l = value.last, ASCII.isWhitespace(l) { value.removeLast() }
            }
            raw.append((String(decoding: name, as: UTF8.self), TextDecoding.string(fromHeaderBytes: value)))
        }
        return (String(decoding: main, as: UTF8.self), assemble(raw))
    }

    /// Joins RFC 2231 §3 continuations (`name*0`, `name*1*`, …) and decodes §4 `charset'lang'%XX` values.
    /// An extended value wins over a plain one of the same name.
    static func assemble(_ raw: [(name: String, value: String)]) -> [String: String] {
        var result: [String: String] = [:]
        var segments: [String: [(index: Int, encoded: Bool, value: String)]] = [:]
        var plain: [(String, String)] = []
        for (name, value) in raw {
            guard let star = name.firstIndex(of: "*") else {
                plain.append((name, value))
                continue
            }
            let base = String(name[..<star])
            var rest = name[name.index(after: star)...]
            // "name*" is a single encoded value; "name*N" and "name*N*" are continuations.
            let encoded = rest.isEmpty || rest.hasSuffix("*")
            if rest.hasSuffix("*") { rest = rest.dropLast() }
            let index: Int
            if rest.isEmpty {
                index = 0
            } else if let number = Int(rest), number >= 0 {
                index = number
            } else {
                plain.append((name, value))
                continue
            }
            segments[base, default: []].append((index, encoded, value))
        }
        for (base, list) in segments {
            var bytes: [UInt8] = []
            var charset = "utf-8"
            for (position, segment) in list.sorted(by: { $0.index < $1.index }).enumerated() {
                guard segment.encoded else {
                    bytes += segment.value.utf8
                    continue
                }
                var data = Array(segment.value.utf8)[...]
                if position == 0 {
                    let quotes = data.indices.filter { data[$0] == ASCII.apostrophe }
                    if quotes.count >= 2 {
                        let declared = String(decoding: data[data.startIndex..<quotes[0]], as: UTF8.self)
                        if !declared.isEmpty { charset = declared }
                        data = data[(quotes[1] + 1)...]
                    }
                }
                var k = data.startIndex
                while k < data.endIndex {
                    if data[k] == ASCII.percent, k + 2 < data.endIndex,
                       let hi = ASCII.hexValue(data[k + 1]), let lo = ASCII.hexValue(data[k + 2]) {
                        bytes.append(hi << 4 | lo)
                        k += 3
                    } else {
                        bytes.append(data[k])
                        k += 1
                    }
                }
            }
            result[base] = Charsets.decode(bytes, charset: charset)
        }
        for (name, value) in plain where result[name] == nil {
            result[name] = value.contains("=?") ? EncodedWords.decode(value) : value
        }
        return result
    }
}
