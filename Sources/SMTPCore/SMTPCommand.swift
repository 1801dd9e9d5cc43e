/// An ESMTP parameter on MAIL FROM or RCPT TO (RFC 5321 §4.1.2 `esmtp-param`), for example `SIZE=1234`
/// or `SMTPUTF8`.
public struct SMTPParameter: Sendable, Hashable, CustomStringConvertible {
    /// The keyword; ``SMTPCommand/parse(_:)`` normalises it to upper case (keywords are case-insensitive).
    public var keyword: String
    /// The value after `=`, or nil for a bare keyword.
    public var value: String?

    /// Creates a parameter.
    public init(keyword: String, value: String? = nil) {
        self.keyword = keyword
        self.value = value
    }

    /// The wire form, `KEYWORD` or `KEYWORD=value`.
    public var description: String {
        if let value { return "\(keyword)=\(value)" }
        return keyword
    }
}

/// Why a command line could not be parsed. The server answers ``Code/unrecognizedCommand`` with 500 and the
/// other codes with 501 (RFC 5321 §4.2.4).
public struct SMTPCommandParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong; an extensible set of values.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The verb is not one this type knows.
        public static let unrecognizedCommand = Code("unrecognized command")
        /// The verb is known but its arguments do not follow the grammar.
        public static let syntaxError = Code("syntax error")
        /// The line holds a control character, a bare CR or invalid UTF-8.
        public static let invalidCharacters = Code("invalid characters")
        /// The code's name.
        public var description: String { name }
    }

    /// What went wrong.
    public var code: Code
    /// A short human explanation, for the text of the 500/501 reply, for example "MAIL requires FROM:<path>".
    public var reason: String

    /// Creates an error.
    public init(code: Code, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// For example `syntax error: MAIL requires FROM:<path>`.
    public var description: String { "\(code): \(reason)" }
}

/// An SMTP command (RFC 5321 §4.1.1 and the extensions Relay uses), parsed and encoded on one type.
///
/// Paths are kept as bare addresses without angle brackets: `mailFrom(reversePath: "")` is the null reverse
/// path `<>` used for bounces.
public enum SMTPCommand: Sendable, Hashable {
    /// `EHLO domain` (RFC 5321 §4.1.1.1).
    case ehlo(String)
    /// `HELO domain`, the pre-ESMTP greeting.
    case helo(String)
    /// `MAIL FROM:<reverse-path> [parameters]` (RFC 5321 §4.1.1.2).
    case mailFrom(reversePath: String, parameters: [SMTPParameter])
    /// `RCPT TO:<forward-path> [parameters]` (RFC 5321 §4.1.1.3).
    case rcptTo(forwardPath: String, parameters: [SMTPParameter])
    /// `DATA` (RFC 5321 §4.1.1.4).
    case data
    /// `RSET`: abort the current mail transaction (RFC 5321 §4.1.1.5).
    case rset
    /// `NOOP` (an argument is accepted on parse and ignored, RFC 5321 §4.1.1.9).
    case noop
    /// `QUIT` (RFC 5321 §4.1.1.10).
    case quit
    /// `STARTTLS` (RFC 3207).
    case startTLS
    /// `VRFY string` (RFC 5321 §4.1.1.6).
    case vrfy(String)
    /// `AUTH mechanism [initial-response]` (RFC 4954); an empty initial response is written `=`.
    case auth(mechanism: String, initialResponse: String?)
    /// `BDAT size [LAST]` (RFC 3030 CHUNKING).
    case bdat(size: Int, last: Bool)

    /// The verb, upper case, for example `"MAIL"`.
    public var verb: String {
        switch self {
        case .ehlo: "EHLO"
        case .helo: "HELO"
        case .mailFrom: "MAIL"
        case .rcptTo: "RCPT"
        case .data: "DATA"
        case .rset: "RSET"
        case .noop: "NOOP"
        case .quit: "QUIT"
        case .startTLS: "STARTTLS"
        case .vrfy: "VRFY"
        case .auth: "AUTH"
        case .bdat: "BDAT"
        }
    }

    /// The command line in wire form, ending in CRLF.
    ///
    /// Arguments are written as given: callers sending data that came from outside must check them first
    /// (``isValidPath(_:)`` for addresses), since a CR or LF in an argument would end the line early.
    public func encode() -> String {
        switch self {
        case .ehlo(let domain): return "EHLO \(domain)\r\n"
        case .helo(let domain): return "HELO \(domain)\r\n"
        case .mailFrom(let path, let parameters):
            return "MAIL FROM:<\(path)>" + Self.encode(parameters) + "\r\n"
        case .rcptTo(let path, let parameters):
            return "RCPT TO:<\(path)>" + Self.encode(parameters) + "\r\n"
        case .data: return "DATA\r\n"
        case .rset: return "RSET\r\n"
        case .noop: return "NOOP\r\n"
        case .quit: return "QUIT\r\n"
        case .startTLS: return "STARTTLS\r\n"
        case .vrfy(let string): return "VRFY \(string)\r\n"
        case .auth(let mechanism, let initialResponse):
            guard let initialResponse else { return "AUTH \(mechanism)\r\n" }
            return "AUTH \(mechanism) \(initialResponse.isEmpty ? "=" : initialResponse)\r\n"
        case .bdat(let size, let last): return "BDAT \(size)\(last ? " LAST" : "")\r\n"
        }
    }

    /// The command as it may be logged or kept in a transcript: like ``encode()`` without CRLF, but with
    /// AUTH credentials replaced by `***`.
    public var redactedDescription: String {
        switch self {
        case .auth(let mechanism, let initialResponse):
            return initialResponse == nil ? "AUTH \(mechanism)" : "AUTH \(mechanism) ***"
        default:
            var line = encode()
            line.removeLast()  // "\r\n" is one Character
            return line
        }
    }

    private static func encode(_ parameters: [SMTPParameter]) -> String {
        var result = ""
        for parameter in parameters { result += " " + parameter.description }
        return result
    }

    /// True when `address` can be written as a path inside `<…>`: no control characters, spaces (outside a
    /// quoted local part) or angle brackets, and at most 254 octets so that `<path>` fits the 256-octet limit of
    /// RFC 5321 §4.5.3.1.3. The empty string (the null path) is valid.
    public static func isValidPath(_ address: String) -> Bool {
        let bytes = Array(address.utf8)
        guard bytes.count <= 254 else { return false }
        var inQuotes = false
        var escaped = false
        for byte in bytes {
            if byte < 0x20 || byte == 0x7F { return false }
            if escaped { escaped = false; continue }
            switch byte {
            case UInt8(ascii: "\\") where inQuotes: escaped = true
            case UInt8(ascii: "\""): inQuotes.toggle()
            case UInt8(ascii: " "), UInt8(ascii: "<"), UInt8(ascii: ">"):
                if !inQuotes { return false }
            default: break
            }
        }
        return !inQuotes && !escaped
    }
}

// MARK: - Parsing

extension SMTPCommand {
    /// Parses one command line, with or without its CRLF (or bare LF).
    ///
    /// Verbs and the `FROM:`/`TO:` keywords are case-insensitive. Like Postfix (and unlike a strict reading of
    /// RFC 5321 §4.1.2) it accepts spaces after the colon and a path without angle brackets; a source route
    /// (`<@a,@b:user@c>`) is accepted and dropped, as RFC 5321 §4.1.1.3 and appendix C ask.
    public static func parse(_ line: some Collection<UInt8>) throws(SMTPCommandParseError) -> SMTPCommand {
        var bytes = Array(line)[...]
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        if bytes.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
            throw SMTPCommandParseError(code: .invalidCharacters, reason: "control characters in command line")
        }
        var scanner = Scanner(bytes: bytes)
        let verb = scanner.takeWord().uppercased()
        switch verb {
        case "EHLO", "HELO":
            let domain = try scanner.remainingText()
            guard !domain.isEmpty, !domain.contains(" ") else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "\(verb) requires a domain name or address literal")
            }
            return verb == "EHLO" ? .ehlo(domain) : .helo(domain)
        case "MAIL":
            guard scanner.takeKeyword("FROM:") else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "MAIL requires FROM:<reverse-path>")
            }
            let path = try scanner.takePath(verb: "MAIL")
            let parameters = try scanner.takeParameters()
            return .mailFrom(reversePath: path, parameters: parameters)
        case "RCPT":
            guard scanner.takeKeyword("TO:") else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "RCPT requires TO:<forward-path>")
            }
            let path = try scanner.takePath(verb: "RCPT")
            guard !path.isEmpty else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "RCPT TO requires a non-empty forward path")
            }
            let parameters = try scanner.takeParameters()
            return .rcptTo(forwardPath: path, parameters: parameters)
        case "DATA", "RSET", "QUIT", "STARTTLS":
            guard try scanner.remainingText().isEmpty else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "\(verb) takes no arguments")
            }
            switch verb {
            case "DATA": return .data
            case "RSET": return .rset
            case "QUIT": return .quit
            default: return .startTLS
            }
        case "NOOP":
            return .noop
        case "VRFY":
            let argument = try scanner.remainingText()
            guard !argument.isEmpty else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "VRFY requires an argument")
            }
            return .vrfy(argument)
        case "AUTH":
            let mechanism = scanner.takeWord().uppercased()
            guard !mechanism.isEmpty else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "AUTH requires a mechanism")
            }
            let response = scanner.takeWord()
            guard try scanner.remainingText().isEmpty else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "AUTH takes a mechanism and an optional initial response")
            }
            if response.isEmpty { return .auth(mechanism: mechanism, initialResponse: nil) }
            return .auth(mechanism: mechanism, initialResponse: response == "=" ? "" : response)
        case "BDAT":
            let sizeText = scanner.takeWord()
            guard !sizeText.isEmpty, sizeText.utf8.count <= 18,
                  sizeText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let size = Int(sizeText)
            else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "BDAT requires a chunk size")
            }
            let last = scanner.takeWord()
            guard try scanner.remainingText().isEmpty, last.isEmpty || last.uppercased() == "LAST" else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "BDAT takes a chunk size and an optional LAST")
            }
            return .bdat(size: size, last: !last.isEmpty)
        default:
            throw SMTPCommandParseError(code: .unrecognizedCommand, reason: "command not recognized")
        }
    }

    /// A cursor over a command line.
    private struct Scanner {
        var bytes: ArraySlice<UInt8>

        mutating func skipSpaces() {
            while let first = bytes.first, first == UInt8(ascii: " ") || first == 0x09 { bytes.removeFirst() }
        }

        /// Takes the bytes up to the next space (after skipping leading spaces).
        mutating func takeWord() -> String {
            skipSpaces()
            let end = bytes.firstIndex(where: { $0 == UInt8(ascii: " ") || $0 == 0x09 }) ?? bytes.endIndex
            let word = bytes[bytes.startIndex..<end]
            bytes = bytes[end...]
            return String(decoding: word, as: UTF8.self)
        }

        /// The rest of the line, trimmed of spaces; must be valid UTF-8.
        mutating func remainingText() throws(SMTPCommandParseError) -> String {
            skipSpaces()
            while let last = bytes.last, last == UInt8(ascii: " ") || last == 0x09 { bytes.removeLast() }
            defer { bytes = bytes[bytes.endIndex...] }
            return try Self.utf8(bytes)
        }

        /// Takes `keyword` (case-insensitive) after optional spaces, then skips spaces after it.
        mutating func takeKeyword(_ keyword: String) -> Bool {
            skipSpaces()
            let expected = Array(keyword.utf8)
            guard bytes.count >= expected.count else { return false }
            for (offset, byte) in expected.enumerated() {
                let actual = bytes[bytes.startIndex + offset]
                let upper = actual >= UInt8(ascii: "a") && actual <= UInt8(ascii: "z") ? actual - 32 : actual
                guard upper == byte else { return false }
            }
            bytes = bytes.dropFirst(expected.count)
            skipSpaces()
            return true
        }

        /// Takes `<path>` (or a bare path up to the next space) and returns the address without brackets
        /// and without any source route.
        mutating func takePath(verb: String) throws(SMTPCommandParseError) -> String {
            var inner: ArraySlice<UInt8>
            if bytes.first == UInt8(ascii: "<") {
                var index = bytes.index(after: bytes.startIndex)
                var inQuotes = false
                var closing: Int?
                while index < bytes.endIndex {
                    let byte = bytes[index]
                    if inQuotes, byte == UInt8(ascii: "\\") {
                        index += 2
                        continue
                    }
                    if byte == UInt8(ascii: "\"") { inQuotes.toggle() }
                    if !inQuotes, byte == UInt8(ascii: ">") { closing = index; break }
                    if !inQuotes, byte == UInt8(ascii: "<") || byte == UInt8(ascii: " ") { break }
                    index += 1
                }
                guard let closing else {
                    throw SMTPCommandParseError(code: .syntaxError, reason: "\(verb) path is missing its closing '>'")
                }
                inner = bytes[(bytes.startIndex + 1)..<closing]
                bytes = bytes[(closing + 1)...]
                if let first = bytes.first, first != UInt8(ascii: " ") {
                    throw SMTPCommandParseError(code: .syntaxError, reason: "\(verb) path must be followed by a space")
                }
            } else {
                let end = bytes.firstIndex(of: UInt8(ascii: " ")) ?? bytes.endIndex
                inner = bytes[bytes.startIndex..<end]
                bytes = bytes[end...]
                guard !inner.isEmpty, !inner.contains(UInt8(ascii: "<")), !inner.contains(UInt8(ascii: ">")) else {
                    throw SMTPCommandParseError(code: .syntaxError, reason: "\(verb) requires a path in angle brackets")
                }
            }
            // A source route "@a,@b:" before the mailbox is obsolete and dropped (RFC 5321 §4.1.1.3, appendix C).
            if inner.first == UInt8(ascii: "@") {
                guard let colon = inner.firstIndex(of: UInt8(ascii: ":")) else {
                    throw SMTPCommandParseError(code: .syntaxError, reason: "\(verb) path has a malformed source route")
                }
                inner = inner[(colon + 1)...]
                guard !inner.isEmpty, inner.first != UInt8(ascii: "@") else {
                    throw SMTPCommandParseError(code: .syntaxError, reason: "\(verb) path has a source route but no mailbox")
                }
            }
            let path = try Self.utf8(inner)
            guard SMTPCommand.isValidPath(path) else {
                throw SMTPCommandParseError(code: .syntaxError, reason: "\(verb) path is not a valid address")
            }
            return path
        }

        /// Takes space-separated `keyword[=value]` parameters up to the end of the line.
        mutating func takeParameters() throws(SMTPCommandParseError) -> [SMTPParameter] {
            var parameters: [SMTPParameter] = []
            while true {
                let word = takeWord()
                if word.isEmpty { return parameters }
                let utf8 = Array(word.utf8)
                let equals = utf8.firstIndex(of: UInt8(ascii: "="))
                let keywordBytes = utf8[..<(equals ?? utf8.endIndex)]
                // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
                guard let first = keywordBytes.first, Self.isAlphanumeric(first),
                      keywordBytes.allSatisfy({ Self.isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
                else {
                    throw SMTPCommandParseError(code: .syntaxError, reason: "malformed parameter \"\(word)\"")
                }
                let keyword = String(decoding: keywordBytes, as: UTF8.self).uppercased()
                guard let equals else {
                    parameters.append(SMTPParameter(keyword: keyword))
                    continue
                }
                // esmtp-value = 1*(%d33-60 / %d62-126), widened to UTF-8 for RFC 6531.
                let valueBytes = utf8[(equals + 1)...]
                guard !valueBytes.isEmpty, !valueBytes.contains(UInt8(ascii: "=")) else {
                    throw SMTPCommandParseError(code: .syntaxError, reason: "malformed parameter \"\(word)\"")
                }
                parameters.append(SMTPParameter(keyword: keyword, value: try Self.utf8(valueBytes)))
            }
        }

        static func isAlphanumeric(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
        }

        static func utf8(_ bytes: ArraySlice<UInt8>) throws(SMTPCommandParseError) -> String {
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw SMTPCommandParseError(code: .invalidCharacters, reason: "invalid UTF-8")
            }
            return string
        }
    }
}
