import NIOCore

/// One SMTP reply (RFC 5321 §4.2): a three-digit code and one or more lines of text.
///
/// This is the one place where replies are classified: ``isPositiveCompletion``, ``isTransient``,
/// ``isPermanent`` and the ``enhancedCode`` are all that delivery logic needs to decide between
/// delivered, retry later and bounce. Parse with ``SMTPReplyParser``; write with ``encode()``.
public struct SMTPReply: Sendable, Hashable {
    /// The three-digit reply code, 200...599.
    public var code: Int
    /// The RFC 3463 enhanced status code at the start of the first line, when there is one whose class matches
    /// the first digit of ``code`` (RFC 2034 §3 requires that match; a mismatching one is left in the text).
    public var enhancedCode: EnhancedStatusCode?
    /// The text of each line, after the code and its separator, with the enhanced code (and the space after it)
    /// removed from every line that starts with it. Always at least one element, possibly empty.
    public var lines: [String]

    /// Creates a reply from already separated parts; `lines` must not contain the enhanced code.
    public init(code: Int, enhancedCode: EnhancedStatusCode? = nil, lines: [String]) {
        self.code = code
        self.enhancedCode = enhancedCode
        self.lines = lines.isEmpty ? [""] : lines
    }

    /// Creates a one-line reply, for example `SMTPReply(code: 250, enhancedCode: EnhancedStatusCode("2.0.0"), text: "OK")`.
    public init(code: Int, enhancedCode: EnhancedStatusCode? = nil, text: String) {
        self.init(code: code, enhancedCode: enhancedCode, lines: [text])
    }

    /// Creates a reply from the text of each line as it came off the wire (everything after `250-` or `250 `),
    /// taking the enhanced status code out of the text when the first line starts with one (RFC 2034 §3).
    public init(code: Int, wireLines: [String]) {
        var lines = wireLines.isEmpty ? [""] : wireLines
        var enhanced: EnhancedStatusCode?
        if let first = lines.first, let (candidate, length) = Self.leadingEnhancedCode(first),
           candidate.statusClass == code / 100 {
            enhanced = candidate
            let prefix = candidate.description
            for index in lines.indices {
                let utf8 = lines[index].utf8
                guard utf8.starts(with: prefix.utf8) else { continue }
                let rest = utf8.dropFirst(length)
                if rest.isEmpty {
                    lines[index] = ""
                } else if rest.first == UInt8(ascii: " ") {
                    lines[index] = String(Substring(rest.dropFirst()))
                }
            }
        }
        self.init(code: code, enhancedCode: enhanced, lines: lines)
    }

    private static func leadingEnhancedCode(_ line: String) -> (EnhancedStatusCode, Int)? {
        let bytes = Array(line.utf8.prefix(12))[...]
        guard let (code, length) = EnhancedStatusCode.parse(bytes) else { return nil }
        // The code must be followed by a space or end the line.
        if length < bytes.count, bytes[bytes.startIndex + length] != UInt8(ascii: " ") { return nil }
        return (code, length)
    }

    /// All lines joined with a single space, enhanced code excluded: one line of text that is safe to log,
    /// store and show in a bounce (multi-line replies read as one sentence, as Postfix reports them).
    public var text: String { lines.joined(separator: " ") }

    /// True for 2xx: the command was accepted (RFC 5321 §4.2.1).
    public var isPositiveCompletion: Bool { (200...299).contains(code) }
    /// True for 3xx: the server waits for more (354 after DATA).
    public var isPositiveIntermediate: Bool { (300...399).contains(code) }
    /// True for 4xx: a transient failure; the same command may succeed later.
    public var isTransient: Bool { (400...499).contains(code) }
    /// True for 5xx: a permanent failure; repeating the same command will fail again.
    public var isPermanent: Bool { (500...599).contains(code) }

    /// The reply in wire form, with `-` continuation lines and CRLF line ends. The enhanced code, when present,
    /// is written at the start of every line (RFC 2034 §3).
    public func encode() -> String {
        var result = ""
        let codeText = String(code)
        for (index, line) in lines.enumerated() {
            let isLast = index == lines.count - 1
            var text = line
            if let enhancedCode {
                text = text.isEmpty ? enhancedCode.description : "\(enhancedCode) \(text)"
            }
            result += codeText
            if isLast {
                // RFC 5321 §4.2: the last line is Reply-code [ SP textstring ] CRLF; the space is always
                // written because an empty AUTH challenge must be "334 " (RFC 4954 §4).
                result += " " + text
            } else {
                result += "-" + text
            }
            result += "\r\n"
        }
        return result
    }

    /// Appends the wire form to `buffer`.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeString(encode())
    }
}

extension SMTPReply: CustomStringConvertible {
    /// The reply as one line, for example `550 5.1.1 No such user`.
    public var description: String {
        var result = String(code)
        if let enhancedCode { result += " \(enhancedCode)" }
        let text = self.text
        if !text.isEmpty { result += " " + text }
        return result
    }
}
