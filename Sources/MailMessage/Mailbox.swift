/// An RFC 5322 §3.4 mailbox: an address with an optional display name, as in From, To, Cc and Reply-To.
public struct Mailbox: Sendable, Hashable, CustomStringConvertible {
    /// The display name, decoded (`Jürgen Müller`, `Smith, A.`); nil when there is none.
    public var displayName: String?
    /// The address.
    public var address: EmailAddress

    /// Creates a mailbox from its parts.
    public init(displayName: String?, address: EmailAddress) {
        self.displayName = displayName
        self.address = address
    }

    /// Parses `Alice <alice@example.com>`, `"Smith, A." <a@b.c>`, `alice@example.com`,
    /// `Jürgen <j@example.de>` or `=?UTF-8?Q?J=C3=BCrgen?= <j@example.de>`. Comments are ignored.
    /// Throws an ``AddressError`` naming what is wrong.
    public init(parsing string: String) throws {
        self = try MailboxParser.parse(Array(string.utf8)[...])
    }

    /// Parses a comma-separated address list such as a To field (RFC 5322 §3.4 address-list).
    /// Group syntax (`Team: a@b.c, d@e.f;`) is flattened to its members; empty groups yield nothing.
    public static func parseList(_ string: String) throws -> [Mailbox] {
        try MailboxParser.splitList(Array(string.utf8)).map { try MailboxParser.parse($0) }
    }

    /// The mailbox as a header value on one line: the display name as a phrase, quoted and escaped
    /// when it has specials, RFC 2047 encoded when it has non-ASCII; for example
    /// `"Smith, A." <a@b.c>` or `=?UTF-8?Q?J=C3=BCrgen?= <j@example.de>`.
    public func headerValue() -> String {
        var writer = HeaderWriter(capacity: 64, lineLimit: Int.max)
        writer.mailbox(self, trailingComma: false)
        return String(decoding: writer.out, as: UTF8.self)
    }

    /// A readable form for logs: `Name <addr>` with the name quoted when needed, but not encoded.
    public var description: String {
        guard let name = PhraseText.sanitizedDisplayName(displayName) else { return address.description }
        let bytes = Array(name.utf8)
        let shown = PhraseText.isPlainPhrase(bytes) ? bytes : PhraseText.quoted(bytes)
        return String(decoding: shown, as: UTF8.self) + " <" + address.description + ">"
    }
}

/// The RFC 5322 §3.4 mailbox grammar, tolerant of obs-phrase (dots in names) and comments.
enum MailboxParser {
    static func parse(_ input: ArraySlice<UInt8>) throws -> Mailbox {
        var bytes = input
        while let f = bytes.first, ASCII.isWhitespace(f) || f == ASCII.cr || f == ASCII.lf { bytes.removeFirst() }
        while let l = bytes.last, ASCII.isWhitespace(l) || l == ASCII.cr || l == ASCII.lf { bytes.removeLast() }
        guard !bytes.isEmpty else { throw AddressError("address is empty") }

        guard let lessThan = try findOutsideQuotes(ASCII.lessThan, in: bytes, from: bytes.startIndex) else {
            // addr-spec alone, perhaps with a trailing comment: "alice@example.com (Alice)".
            let stripped = try stripComments(bytes)
            return Mailbox(displayName: nil, address: try EmailAddress(bytes: stripped[...]))
        }
        guard let greaterThan = try findOutsideQuotes(ASCII.greaterThan, in: bytes, from: lessThan + 1) else {
            throw AddressError("missing closing \">\"")
        }
        let trailing = try stripComments(bytes[(greaterThan + 1)...])
        guard trailing.allSatisfy({ ASCII.isWhitespace($0) || $0 == ASCII.cr || $0 == ASCII.lf }) else {
            throw AddressError("unexpected text after \">\"")
        }
        var inner = bytes[(lessThan + 1)..<greaterThan]
        // obs-route (RFC 5322 §4.4): "<@relay1,@relay2:user@example.com>" — the route is ignored.
        if inner.first == ASCII.at, let colon = inner.firstIndex(of: ASCII.colon) {
            inner = inner[(colon + 1)...]
        }
        guard inner.contains(where: { !ASCII.isWhitespace($0) }) else { throw AddressError("empty address \"<>\"") }
        let address = try EmailAddress(bytes: inner)
        let name = try parsePhrase(bytes[bytes.startIndex..<lessThan])
        return Mailbox(displayName: name, address: address)
    }

    /// Finds `target` outside quoted strings and comments.
    static func findOutsideQuotes(_ target: UInt8, in bytes: ArraySlice<UInt8>, from start: Int) throws -> Int? {
        var i = start
        var inQuote = false
        var commentDepth = 0
        while i < bytes.endIndex {
            let c = bytes[i]
            if inQuote {
                if c == ASCII.backslash { i += 2; continue }
                if c == ASCII.quote { inQuote = false }
            } else if commentDepth > 0 {
                if c == ASCII.backslash { i += 2; continue }
                if c == ASCII.openParen { commentDepth += 1 }
                if c == ASCII.closeParen { commentDepth -= 1 }
            } else if c == target {
                return i
            } else if c == ASCII.quote {
                inQuote = true
            } else if c == ASCII.openParen {
                commentDepth = 1
            }
            i += 1
        }
        if inQuote { throw AddressError("unterminated quoted string") }
        return nil
    }

    /// Removes comments (RFC 5322 §3.2.2) outside quoted strings.
    static func stripComments(_ bytes: ArraySlice<UInt8>) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        var inQuote = false
        var depth = 0
        while i < bytes.endIndex {
            let c = bytes[i]
            if depth > 0 {
                if c == ASCII.backslash { i += 2; continue }
                if c == ASCII.openParen { depth += 1 }
                if c == ASCII.closeParen { depth -= 1 }
                i += 1
                continue
            }
            if inQuote {
                if c == ASCII.backslash, i + 1 < bytes.endIndex {
                    out.append(c)
                    out.append(bytes[i + 1])
                    i += 2
                    continue
                }
                if c == ASCII.quote { inQuote = false }
            } else if c == ASCII.quote {
                inQuote = true
            } else if c == ASCII.openParen {
                depth = 1
                i += 1
                continue
            }
            out.append(c)
            i += 1
        }
        if depth > 0 { throw AddressError("unterminated comment") }
        while let l = out.last, ASCII.isWhitespace(l) { out.removeLast() }
        while let f = out.first, ASCII.isWhitespace(f) { out.removeFirst() }
        return out
    }

    private enum Word {
        case atom([UInt8])
        case quoted([UInt8])
    }

    /// Parses a display name (phrase): atoms (dots allowed, as obs-phrase), quoted strings and
    /// RFC 2047 encoded words, joined by single spaces; nil when empty.
    static func parsePhrase(_ bytes: ArraySlice<UInt8>) throws -> String? {
        var words: [Word] = []
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let c = bytes[i]
            if ASCII.isWhitespace(c) || c == ASCII.cr || c == ASCII.lf {
                i += 1
            } else if c == ASCII.openParen {
                var depth = 1
                i += 1
                while i < bytes.endIndex && depth > 0 {
                    if bytes[i] == ASCII.backslash { i += 2; continue }
                    if bytes[i] == ASCII.openParen { depth += 1 }
                    if bytes[i] == ASCII.closeParen { depth -= 1 }
                    i += 1
                }
                if depth > 0 { throw AddressError("unterminated comment in display name") }
            } else if c == ASCII.quote {
                var content: [UInt8] = []
                i += 1
                var closed = false
                while i < bytes.endIndex {
                    let q = bytes[i]
                    if q == ASCII.backslash, i + 1 < bytes.endIndex {
                        content.append(bytes[i + 1])
                        i += 2
                        continue
                    }
                    if q == ASCII.quote { closed = true; i += 1; break }
                    // Folding inside a quoted string leaves CRLF + WSP; unfolding drops the CRLF.
                    if q != ASCII.cr && q != ASCII.lf { content.append(q) }
                    i += 1
                }
                if !closed { throw AddressError("unterminated quoted string in display name") }
                words.append(.quoted(content))
            } else {
                let start = i
                while i < bytes.endIndex {
                    let a = bytes[i]
                    if a >= 0x80 || ASCII.isAtext(a) || a == ASCII.dot { i += 1; continue }
                    break
                }
                if i == start {
                    if ASCII.isControl(c) {
                        throw AddressError("invalid character \(TextDecoding.describe(c)) in display name")
                    }
                    throw AddressError("display name contains unquoted \(TextDecoding.describe(c)); put the name in double quotes")
                }
                words.append(.atom(Array(bytes[start..<i])))
            }
        }
        // Join; adjacent encoded words are decoded together so the space between them disappears.
        var result = ""
        var pendingEncoded: [UInt8] = []
        func flush() {
            guard !pendingEncoded.isEmpty else { return }
            if !result.isEmpty { result += " " }
            result += EncodedWords.decode(String(decoding: pendingEncoded, as: UTF8.self))
            pendingEncoded = []
        }
        for word in words {
            switch word {
            case .atom(let atom) where isEncodedWord(atom):
                if !pendingEncoded.isEmpty { pendingEncoded.append(ASCII.space) }
                pendingEncoded += atom
            case .atom(let text), .quoted(let text):
                flush()
                if !result.isEmpty { result += " " }
                result += String(decoding: text, as: UTF8.self)
            }
        }
        flush()
        return result.isEmpty ? nil : result
    }

    static func isEncodedWord(_ atom: [UInt8]) -> Bool {
        atom.count >= 8 && atom[0] == ASCII.equals && atom[1] == ASCII.question
            && atom[atom.count - 2] == ASCII.question && atom[atom.count - 1] == ASCII.equals
    }

    /// Splits an address list at commas outside quotes, comments, angle brackets and domain literals;
    /// group names (`name:`) are dropped and `;` ends a group.
    static func splitList(_ bytes: [UInt8]) throws -> [ArraySlice<UInt8>] {
        var items: [ArraySlice<UInt8>] = []
        var start = 0
        var i = 0
        var inQuote = false
        var commentDepth = 0
        var inAngle = false
        var inLiteral = false
        func emit(_ end: Int) {
            let item = bytes[start..<end]
            if item.contains(where: { !(ASCII.isWhitespace($0) || $0 == ASCII.cr || $0 == ASCII.lf) }) { items.append(item) }
        }
        while i < bytes.count {
            let c = bytes[i]
            if inQuote {
                if c == ASCII.backslash { i += 2; continue }
                if c == ASCII.quote { inQuote = false }
            } else if commentDepth > 0 {
                if c == ASCII.backslash { i += 2; continue }
                if c == ASCII.openParen { commentDepth += 1 }
                if c == ASCII.closeParen { commentDepth -= 1 }
            } else if inLiteral {
                if c == ASCII.closeBracket { inLiteral = false }
            } else {
                switch c {
                case ASCII.quote: inQuote = true
                case ASCII.openParen: commentDepth = 1
                case ASCII.openBracket: inLiteral = true
                case ASCII.lessThan: inAngle = true
                case ASCII.greaterThan: inAngle = false
                case ASCII.comma where !inAngle, ASCII.semicolon where !inAngle:
                    emit(i)
                    start = i + 1
                case ASCII.colon where !inAngle:
                    start = i + 1   // a group's display name
                default: break
                }
            }
            i += 1
        }
        if inQuote { throw AddressError("unterminated quoted string") }
        emit(bytes.count)
        return items
    }
}

extension EmailAddress {
    /// Parses an address from UTF-8 bytes.
    init(bytes: ArraySlice<UInt8>) throws {
        try self.init(parsing: String(decoding: bytes, as: UTF8.self))
    }
}
