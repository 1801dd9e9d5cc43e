import NIOCore

/// Why a server's reply could not be parsed. The connection should be closed after one of these:
/// the byte stream can no longer be trusted to line up with the commands sent.
public struct SMTPReplyParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong; an extensible set of values (new ones break no `switch`).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A line that does not start with a three-digit code followed by space, `-` or the line end.
        public static let malformedLine = Code("malformed reply line")
        /// A line longer than the parser's limit (RFC 5321 §4.5.3.1.5 allows 512 octets).
        public static let lineTooLong = Code("reply line too long")
        /// More lines in one multi-line reply than the parser's limit.
        public static let tooManyLines = Code("too many lines in one reply")
        /// A continuation line whose code differs from the first line's (RFC 5321 §4.2.1 requires the same code).
        public static let inconsistentCode = Code("reply code changed within a multi-line reply")
        /// The code's name, for example "malformed reply line".
        public var description: String { name }
    }

    /// What went wrong.
    public var code: Code
    /// The offending line (truncated to 200 characters, control characters replaced), for logs.
    public var line: String

    /// Creates an error for `line`.
    public init(code: Code, line: String) {
        self.code = code
        self.line = line
    }

    /// For example `malformed reply line: "hello"`.
    public var description: String { "\(code): \"\(line)\"" }
}

/// An incremental parser of SMTP replies: feed it bytes as they arrive, take out whole replies.
///
/// Multi-line replies (`250-…` continuation lines, RFC 5321 §4.2.1) come out as one ``SMTPReply``.
/// Lines may end in CRLF or, from broken servers, a bare LF. Line length and the number of lines per reply are
/// bounded so that a hostile server cannot make the client buffer without limit.
public struct SMTPReplyParser: Sendable {
    /// The longest line accepted, without its line end. RFC 5321 §4.5.3.1.5 says 512 octets including CRLF;
    /// the default allows some slack for servers that exceed it, as Postfix's `line_length_limit` (2048) does.
    public let maximumLineLength: Int
    /// The most lines accepted in one reply (an EHLO reply has one per extension).
    public let maximumLineCount: Int

    private var buffer: ByteBuffer
    private var pendingCode: Int?
    private var pendingLines: [String] = []

    /// Creates a parser with the given bounds.
    public init(maximumLineLength: Int = 2048, maximumLineCount: Int = 256) {
        self.maximumLineLength = maximumLineLength
        self.maximumLineCount = maximumLineCount
        self.buffer = ByteBuffer()
    }

    /// Adds bytes received from the server.
    public mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            // Common case: adopt the incoming buffer without copying.
            buffer = bytes
            return
        }
        if buffer.readerIndex > 4096 { buffer.discardReadBytes() }
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// True when bytes are buffered that do not yet make a whole reply. After the 220 reply to STARTTLS this
    /// must be false: anything the server sent before the TLS handshake was not protected (RFC 3207 §4.2 and
    /// the 2011 "STARTTLS command injection" attacks).
    public var hasBufferedBytes: Bool { buffer.readableBytes > 0 || pendingCode != nil }

    /// Returns the next complete reply, or nil when more bytes are needed.
    /// Throws ``SMTPReplyParseError`` for malformed input; the parser is unusable afterwards.
    public mutating func nextReply() throws(SMTPReplyParseError) -> SMTPReply? {
        while true {
            let view = buffer.readableBytesView
            guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
                if view.count > maximumLineLength + 1 {
                    throw SMTPReplyParseError(code: .lineTooLong, line: Self.printable(view.prefix(200)))
                }
                return nil
            }
            var lineEnd = newline
            // Strip CR(s) before the LF; a bare LF is tolerated.
            while lineEnd > view.startIndex, view[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            let line = view[view.startIndex..<lineEnd]
            let consumed = newline - view.startIndex + 1
            if line.count > maximumLineLength {
                throw SMTPReplyParseError(code: .lineTooLong, line: Self.printable(line.prefix(200)))
            }
            let parsed = try Self.parseLine(line)
            buffer.moveReaderIndex(forwardBy: consumed)

            if let pendingCode, pendingCode != parsed.code {
                throw SMTPReplyParseError(code: .inconsistentCode, line: Self.printable(line.prefix(200)))
            }
            pendingCode = parsed.code
            pendingLines.append(parsed.text)
            if pendingLines.count > maximumLineCount {
                throw SMTPReplyParseError(code: .tooManyLines, line: Self.printable(line.prefix(200)))
            }
            if parsed.isLast {
                let reply = SMTPReply(code: parsed.code, wireLines: pendingLines)
                self.pendingCode = nil
                pendingLines.removeAll(keepingCapacity: true)
                if buffer.readableBytes == 0 { buffer.clear() }
                return reply
            }
        }
    }

    private static func parseLine(_ line: ByteBufferView.SubSequence) throws(SMTPReplyParseError) -> (code: Int, isLast: Bool, text: String) {
        var index = line.startIndex
        var code = 0
        for position in 0..<3 {
            guard index < line.endIndex else {
                throw SMTPReplyParseError(code: .malformedLine, line: printable(line.prefix(200)))
            }
            let byte = line[index]
            let lowest: UInt8 = position == 0 ? UInt8(ascii: "2") : UInt8(ascii: "0")
            let highest: UInt8 = position == 0 ? UInt8(ascii: "5") : UInt8(ascii: "9")
            guard byte >= lowest, byte <= highest else {
                throw SMTPReplyParseError(code: .malformedLine, line: printable(line.prefix(200)))
            }
            code = code * 10 + Int(byte - UInt8(ascii: "0"))
            index += 1
        }
        guard index < line.endIndex else { return (code, true, "") }
        let separator = line[index]
        let isLast: Bool
        switch separator {
        case UInt8(ascii: " "): isLast = true
        case UInt8(ascii: "-"): isLast = false
        default: throw SMTPReplyParseError(code: .malformedLine, line: printable(line.prefix(200)))
        }
        let textBytes = line[(index + 1)...]
        // Control characters other than TAB have no place in reply text (RFC 5321 §4.2: textstring).
        if textBytes.contains(where: { $0 < 0x20 && $0 != 0x09 || $0 == 0x7F }) {
            throw SMTPReplyParseError(code: .malformedLine, line: printable(line.prefix(200)))
        }
        // Invalid UTF-8 (some servers send Latin-1) is repaired with U+FFFD rather than rejected.
        return (code, isLast, String(decoding: textBytes, as: UTF8.self))
    }

    private static func printable(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
    }
}
