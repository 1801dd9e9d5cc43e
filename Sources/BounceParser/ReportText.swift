/// Small text tools shared by the recognisers: lines, addresses, reply codes and status codes in prose.
enum ReportText {
    /// Splits text into lines, without the LF or CRLF (a CRLF is one `Character` in Swift, so both are separators).
    static func lines(_ text: String) -> [Substring] {
        text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
    }

    /// Leading spaces and tabs (a tab counts as one).
    static func indentation(_ line: some StringProtocol) -> Int {
        var count = 0
        for character in line {
            guard character == " " || character == "\t" else { break }
            count += 1
        }
        return count
    }

    /// Whether the line has nothing but white space.
    static func isBlank(_ line: some StringProtocol) -> Bool { line.allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" } }

    /// The line without e-mail quoting (`> `, `>>`), for forwarded reports.
    static func unquoted(_ line: Substring) -> Substring {
        var rest = line
        while rest.first == ">" {
            rest = rest.dropFirst()
            if rest.first == " " { rest = rest.dropFirst() }
        }
        return rest
    }

    // MARK: - Addresses

    /// The address that `token` is, after removing angle brackets, quotes, `mailto:` and trailing punctuation;
    /// nil when it is not a plausible `local@domain`.
    static func address(in token: some StringProtocol) -> String? {
        var text = Substring(token)
        if let open = text.firstIndex(of: "<") {
            let inner = text[text.index(after: open)...]
            let close = inner.firstIndex(of: ">") ?? inner.endIndex
            let candidate = inner[..<close]
            // "addr<mailto:addr>" (Exchange): either side will do, the inner one is cleaner.
            if candidate.contains("@") { text = candidate } else { text = text[..<open] }
        }
        text = text.drop { "<([{\"'`".contains($0) || $0 == " " || $0 == "\t" }
        while let last = text.last, ">)]}\"'`,.;:".contains(last) || last == " " || last == "\t" { text = text.dropLast() }
        if text.lowercased().hasPrefix("mailto:") { text = text.dropFirst(7) }
        if text.lowercased().hasPrefix("rfc822;") { text = text.dropFirst(7).drop { $0 == " " } }
        guard let at = text.lastIndex(of: "@") else { return nil }
        let local = text[..<at]
        let domain = text[text.index(after: at)...]
        guard !local.isEmpty, local.utf8.count <= 64, !domain.isEmpty, domain.utf8.count <= 255,
              local.allSatisfy({ !$0.isWhitespace && !"<>()[],;:\\\"".contains($0) }),
              !local.hasPrefix("."), !local.hasSuffix("."),
              isDomain(domain)
        else { return nil }
        return String(text)
    }

    private static func isDomain(_ domain: Substring) -> Bool {
        if domain.hasPrefix("[") { return domain.hasSuffix("]") && domain.count > 2 }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                && label.unicodeScalars.allSatisfy { scalar in
                    scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "-" || scalar.value >= 0x80
                }
        }
    }

    /// The first plausible address in running text.
    static func firstAddress(in text: some StringProtocol) -> String? {
        for token in text.split(whereSeparator: { $0.isWhitespace || $0 == "," }) {
            if token.contains("@"), let address = address(in: token) { return address }
        }
        return nil
    }

    // MARK: - Reply codes and status codes

    /// The SMTP reply code and RFC 3463 status in a diagnostic such as `smtp; 550 5.1.1 <a@b>... User unknown`,
    /// `host mx[192.0.2.1] said: 550-5.7.26 …`, `Unknown address error 550-'5.7.1 …'`, or `… (#5.1.2)`.
    ///
    /// The reply code is the first three-digit number 2xx–5xx whose second digit is 0–5 (RFC 5321 §4.2) and that
    /// stands alone; the status is the one right after it, else the first one anywhere in the text.
    static func replyParts(in text: some StringProtocol) -> (code: Int?, status: String?) {
        let bytes = Array(text.utf8)
        guard let index = replyCodeIndex(bytes) else { return (nil, firstStatus(in: bytes)) }
        let code = (Int(bytes[index]) - 48) * 100 + (Int(bytes[index + 1]) - 48) * 10 + (Int(bytes[index + 2]) - 48)
        var after = index + 3
        // "550-5.7.1", "550 '5.7.1", "554 554 5.7.1" (Gmail repeats the code).
        func skipSeparators() { while after < bytes.count, " -'\"\t".utf8.contains(bytes[after]) { after += 1 } }
        skipSeparators()
        if after + 3 <= bytes.count, bytes[after..<(after + 3)].elementsEqual(bytes[index..<(index + 3)]),
           after + 3 == bytes.count || " -".utf8.contains(bytes[after + 3]) {
            after += 3
            skipSeparators()
        }
        return (code, statusCode(bytes, at: after)?.text ?? firstStatus(in: bytes))
    }

    /// The byte offset of the first reply code (see ``replyParts(in:)``).
    private static func replyCodeIndex(_ bytes: [UInt8]) -> Int? {
        var index = 0
        while index + 3 <= bytes.count {
            if isReplyCode(bytes, at: index) { return index }
            index += 1
        }
        return nil
    }

    /// The server's reply inside an MTA's sentence: from the reply code on, without Postfix's
    /// "(in reply to … command)" or qmail's "Giving up on …" after it. The text itself when it has no code.
    static func serverReply(in text: String) -> String {
        let bytes = Array(text.utf8)
        guard let index = replyCodeIndex(bytes) else { return text }
        var reply = String(decoding: bytes[index...], as: UTF8.self)
        for marker in [" (in reply to ", " Giving up on ", " I'm not going to try again"] {
            if let range = reply.firstRange(of: marker) { reply = String(reply[..<range.lowerBound]) }
        }
        return reply.trimmingWhitespace()
    }

    /// The first RFC 3463 status code standing alone in the text.
    static func firstStatus(in text: some StringProtocol) -> String? { firstStatus(in: Array(text.utf8)) }

    private static func firstStatus(in bytes: [UInt8]) -> String? {
        var index = 0
        while index < bytes.count {
            if index == 0 || statusLeftBoundary.contains(bytes[index - 1]), let found = statusCode(bytes, at: index) {
                return found.text
            }
            index += 1
        }
        return nil
    }

    private static let statusLeftBoundary: Set<UInt8> = Set(" \t(#'\"[<:;=-\n\r".utf8)

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }

    private static func isReplyCode(_ bytes: [UInt8], at index: Int) -> Bool {
        let first = bytes[index], second = bytes[index + 1], third = bytes[index + 2]
        guard (50...53).contains(first), (48...53).contains(second), isDigit(third) else { return false }
        if index > 0 {
            let before = bytes[index - 1]
            guard " \t:'\"(<[;\n\r".utf8.contains(before) else { return false }
        }
        let end = index + 3
        if end < bytes.count {
            let after = bytes[end]
            guard " -'\"\t\r\n)>".utf8.contains(after) else { return false }
            // "550-5.7.1" is a code; "250-300 ms" or "450.5" is not worth the risk of a number like "421.2".
            if after == UInt8(ascii: "-"), end + 1 < bytes.count, !isDigit(bytes[end + 1]), bytes[end + 1] != UInt8(ascii: " ") {
                return bytes[end + 1] == UInt8(ascii: "'") || bytes[end + 1] == UInt8(ascii: "\"") || isLetter(bytes[end + 1])
            }
        }
        return true
    }

    private static func isLetter(_ byte: UInt8) -> Bool { (65...90).contains(byte) || (97...122).contains(byte) }

    /// A status code starting exactly at `index`: class 2/4/5, subject and detail of 1–3 digits, not followed
    /// by another digit or by `.digit` (so `4.16.55.1` and IP addresses are not read as codes).
    private static func statusCode(_ bytes: [UInt8], at index: Int) -> (text: String, end: Int)? {
        guard index < bytes.count, [50, 52, 53].contains(bytes[index]) else { return nil }
        var position = index + 1
        func dot() -> Bool {
            guard position < bytes.count, bytes[position] == UInt8(ascii: ".") else { return false }
            position += 1
            return true
        }
        func number() -> Bool {
            let start = position
            while position < bytes.count, isDigit(bytes[position]), position - start < 4 { position += 1 }
            return (1...3).contains(position - start)
        }
        guard dot(), number(), dot(), number() else { return nil }
        if position < bytes.count {
            if isDigit(bytes[position]) { return nil }
            if bytes[position] == UInt8(ascii: "."), position + 1 < bytes.count, isDigit(bytes[position + 1]) { return nil }
        }
        return (String(decoding: bytes[index..<position], as: UTF8.self), position)
    }

    /// A multiline reply joined into one line without the repeated prefixes (RFC 5321 §4.2.1: every line but
    /// the last is `code-text`): "550-5.7.26 Unauthenticated … 550-5.7.26 DMARC policy … 550 5.7.26 https://…"
    /// becomes "550 5.7.26 Unauthenticated … DMARC policy … https://…".
    static func joiningContinuations(_ reply: String) -> String {
        let words = reply.split(separator: " ")
        guard let first = words.first, first.count >= 4, first.prefix(3).allSatisfy(\.isNumber),
              first.dropFirst(3).first == "-" else { return reply }
        let code = String(first.prefix(3))
        let inline = String(first.dropFirst(4))
        let status = leadingStatus(inline) ?? (words.count > 1 ? leadingStatus(words[1]) : nil)
        var body: [Substring] = []
        var index = 0
        while index < words.count {
            let word = String(words[index])
            index += 1
            if let status, word == "\(code)-\(status)" { continue }
            if word == code || word == code + "-" {
                if let status, index < words.count, words[index] == status { index += 1 }
                continue
            }
            if index == 1, inline.isEmpty == false, status == nil { body.append(Substring(inline)); continue }
            body.append(words[index - 1])
        }
        return ([code] + (status.map { [$0] } ?? []) + body.map(String.init)).joined(separator: " ")
    }

    /// The status code at the start of a field value such as `5.0.0 (permanent failure)`.
    static func leadingStatus(_ value: some StringProtocol) -> String? {
        let trimmed = value.trimmingWhitespace()
        let token = trimmed.prefix { !$0.isWhitespace && $0 != "(" && $0 != ";" }
        return statusCode(Array(token.utf8), at: 0).flatMap { $0.end == token.utf8.count ? $0.text : nil }
    }

    // MARK: - HTML

    /// Text of an HTML part: tags removed, block ends turned into line breaks, common entities decoded.
    static func strippingHTML(_ html: String) -> String {
        var output = ""
        var inTag = false
        var tag = ""
        for character in html.prefix(BounceParser.maxTextCharacters) {
            if inTag {
                if character == ">" {
                    inTag = false
                    let name = tag.lowercased()
                    if name.hasPrefix("br") || name.hasPrefix("/p") || name.hasPrefix("/div") || name.hasPrefix("/tr")
                        || name.hasPrefix("p ") || name == "p" || name.hasPrefix("/h") || name.hasPrefix("/li") {
                        output += "\n"
                    }
                } else if tag.count < 16 {
                    tag.append(character)
                }
            } else if character == "<" {
                inTag = true
                tag = ""
            } else {
                output.append(character)
            }
        }
        return output.replacingAll("&nbsp;", with: " ").replacingAll("&lt;", with: "<").replacingAll("&gt;", with: ">")
            .replacingAll("&quot;", with: "\"").replacingAll("&#39;", with: "'").replacingAll("&amp;", with: "&")
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and line ends.
    func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }

    /// The text with every run of white space (line ends included) turned into one space, trimmed.
    func collapsingWhitespace() -> String {
        var output = ""
        var pendingSpace = false
        for character in self {
            if character.isWhitespace {
                pendingSpace = !output.isEmpty
            } else {
                if pendingSpace { output.append(" ") }
                pendingSpace = false
                output.append(character)
            }
        }
        return output
    }

    /// Every occurrence of `target` replaced.
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return String(self) }
        var output = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            output += rest[..<range.lowerBound]
            output += replacement
            rest = rest[range.upperBound...]
        }
        output += rest
        return output
    }
}
