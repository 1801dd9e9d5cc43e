/// An RFC 5321 mailbox — what goes in `MAIL FROM` and `RCPT TO` — with the RFC 6531 (SMTPUTF8)
/// extensions: UTF-8 is accepted in the local part and in domain labels.
///
/// Equality and hashing compare the local part exactly (RFC 5321 §2.4: it is case-sensitive for
/// everyone but the receiving host) and the domain case-insensitively.
public struct EmailAddress: Sendable, Hashable, CustomStringConvertible {
    /// The local part, unquoted: `"john doe"@example.com` has the local part `john doe`.
    public let localPart: String
    /// The domain or address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) as written, without a trailing dot.
    public let domain: String
    private let lowercasedDomain: String

    /// RFC 5321 §4.5.3.1.1: the local part is at most 64 octets.
    public static let maxLocalPartLength = 64
    /// RFC 5321 §4.5.3.1.2: a domain is at most 255 octets.
    public static let maxDomainLength = 255
    /// RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets.
    public static let maxLength = 254

    /// Parses an address such as `alice@example.com`, `"john doe"@example.com`, `user+tag@[192.0.2.1]`
    /// or `用户@例子.广告`. Surrounding spaces are ignored. Throws an ``AddressError`` naming what is wrong.
    public init(parsing string: String) throws {
        let parsed = try AddressParser.parse(Array(string.utf8)[...])
        self.localPart = parsed.localPart
        self.domain = parsed.domain
        self.lowercasedDomain = parsed.domain.lowercased()
    }

    /// `local@domain`, with the local part quoted (and `"`/`\` escaped) when it is not a dot-atom.
    /// This is the form for `MAIL FROM:<…>`, `RCPT TO:<…>` and message headers.
    public var description: String {
        AddressParser.quotedLocalPartIfNeeded(localPart) + "@" + domain
    }

    /// The domain lower-cased and without a trailing dot: the key for MX lookups and per-domain queues.
    public var normalizedDomain: String { lowercasedDomain }

    /// Whether delivering to or from this address needs the SMTPUTF8 extension (RFC 6531 §3.2):
    /// true when the local part or the domain contains non-ASCII characters.
    public var requiresSMTPUTF8: Bool {
        localPart.utf8.contains { $0 >= 0x80 } || domain.utf8.contains { $0 >= 0x80 }
    }

    /// Whether the domain is an address literal such as `[192.0.2.1]` rather than a host name.
    public var isAddressLiteral: Bool { domain.hasPrefix("[") }

    /// Compares local parts exactly and domains case-insensitively.
    public static func == (lhs: EmailAddress, rhs: EmailAddress) -> Bool {
        lhs.localPart == rhs.localPart && lhs.lowercasedDomain == rhs.lowercasedDomain
    }

    /// Hashes the local part and the normalized domain, consistent with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(localPart)
        hasher.combine(lowercasedDomain)
    }
}

/// The RFC 5321 §4.1.2 `Mailbox` grammar, extended by RFC 6531 §3.3 for UTF-8.
enum AddressParser {
    struct Parsed {
        var localPart: String
        var domain: String
    }

    static func parse(_ input: ArraySlice<UInt8>) throws -> Parsed {
        var bytes = input
        while let f = bytes.first, ASCII.isWhitespace(f) { bytes.removeFirst() }
        while let l = bytes.last, ASCII.isWhitespace(l) { bytes.removeLast() }
        guard !bytes.isEmpty else { throw AddressError("address is empty") }

        var i = bytes.startIndex
        let end = bytes.endIndex
        var local: [UInt8] = []
        let atIndex: Int

        if bytes[i] == ASCII.quote {
            // Quoted-string = DQUOTE *QcontentSMTP DQUOTE (RFC 5321 §4.1.2).
            i += 1
            var closed = false
            while i < end {
                let c = bytes[i]
                if c == ASCII.quote { closed = true; i += 1; break }
                if c == ASCII.backslash {
                    guard i + 1 < end, bytes[i + 1] >= 0x20, bytes[i + 1] <= 0x7E else {
                        throw AddressError("invalid escape in quoted local part")
                    }
                    local.append(bytes[i + 1])
                    i += 2
                    continue
                }
                if ASCII.isControl(c) {
                    throw AddressError("invalid character \(TextDecoding.describe(c)) in quoted local part")
                }
                local.append(c)
                i += 1
            }
            guard closed else { throw AddressError("unterminated quoted local part") }
            guard i < end else { throw AddressError("missing @") }
            guard bytes[i] == ASCII.at else {
                throw AddressError("unexpected \(TextDecoding.describe(bytes[i])) after quoted local part")
            }
            atIndex = i
        } else {
            if bytes.contains(ASCII.lessThan) || bytes.contains(ASCII.greaterThan) {
                throw AddressError("unexpected angle bracket: a display name and <…> belong in a mailbox, not an address")
            }
            guard let at = bytes.firstIndex(of: ASCII.at) else { throw AddressError("missing @") }
            atIndex = at
            local = Array(bytes[i..<at])
            try validateDotAtom(local)
        }

        guard !local.isEmpty else { throw AddressError("missing local part") }
        let canonicalLocal = quotedLocalPartIfNeeded(String(decoding: local, as: UTF8.self))
        if canonicalLocal.utf8.count > EmailAddress.maxLocalPartLength {
            throw AddressError("local part longer than \(EmailAddress.maxLocalPartLength) octets")
        }

        var domain = Array(bytes[(atIndex + 1)..<end])
        guard !domain.isEmpty else { throw AddressError("missing domain") }
        if domain.contains(ASCII.at) { throw AddressError("more than one @") }
        if domain.first == ASCII.openBracket {
            try validateAddressLiteral(domain)
        } else {
            // A single trailing dot (an absolute name) is accepted and dropped.
            if domain.count > 1, domain.last == ASCII.dot { domain.removeLast() }
            try validateDomain(domain)
        }
        if canonicalLocal.utf8.count + 1 + domain.count > EmailAddress.maxLength {
            throw AddressError("address longer than \(EmailAddress.maxLength) octets")
        }
        return Parsed(localPart: String(decoding: local, as: UTF8.self), domain: String(decoding: domain, as: UTF8.self))
    }

    /// Dot-string = Atom *("." Atom), with UTF-8 allowed in atoms (RFC 6531 §3.3).
    static func validateDotAtom(_ local: [UInt8]) throws {
        guard !local.isEmpty else { throw AddressError("missing local part") }
        if local.first == ASCII.dot { throw AddressError("local part starts with a dot") }
        if local.last == ASCII.dot { throw AddressError("local part ends with a dot") }
        var previousWasDot = false
        for b in local {
            if b == ASCII.dot {
                if previousWasDot { throw AddressError("local part contains consecutive dots") }
                previousWasDot = true
                continue
            }
            previousWasDot = false
            if b >= 0x80 || ASCII.isAtext(b) { continue }
            throw AddressError("invalid character \(TextDecoding.describe(b)) in local part")
        }
    }

    /// Whether a local part can be written without quotes.
    static func isDotAtom(_ local: some Collection<UInt8>) -> Bool {
        guard let first = local.first, first != ASCII.dot else { return false }
        var previousWasDot = false
        var last: UInt8 = 0
        for b in local {
            last = b
            if b == ASCII.dot {
                if previousWasDot { return false }
                previousWasDot = true
                continue
            }
            previousWasDot = false
            if !(b >= 0x80 || ASCII.isAtext(b)) { return false }
        }
        return last != ASCII.dot
    }

    /// RFC 5321 §4.1.2: a local part SHOULD be sent in dot-atom form, and quoted only when it must be.
    static func quotedLocalPartIfNeeded(_ local: String) -> String {
        if isDotAtom(local.utf8) { return local }
        var out = "\""
        for ch in local.unicodeScalars {
            if ch == "\"" || ch == "\\" { out.unicodeScalars.append("\\") }
            out.unicodeScalars.append(ch)
        }
        out += "\""
        return out
    }

    /// Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] (RFC 5321 §4.1.2),
    /// or a U-label (RFC 6531 §3.3; IDNA2008 validity is left to the resolver).
    static func validateDomain(_ domain: [UInt8]) throws {
        if domain.count > EmailAddress.maxDomainLength {
            throw AddressError("domain longer than \(EmailAddress.maxDomainLength) octets")
        }
        let labels = domain.split(separator: ASCII.dot, omittingEmptySubsequences: false)
        var allNumeric = true
        for label in labels {
            guard !label.isEmpty else { throw AddressError("empty domain label") }
            if label.count > 63 { throw AddressError("domain label longer than 63 octets") }
            for b in label {
                if b >= 0x80 || ASCII.isAlpha(b) || ASCII.isDigit(b) || b == ASCII.hyphen { continue }
                throw AddressError("invalid character \(TextDecoding.describe(b)) in domain")
            }
            if label.first == ASCII.hyphen || label.last == ASCII.hyphen {
                throw AddressError("invalid domain label \"\(String(decoding: label, as: UTF8.self))\"")
            }
            if !label.allSatisfy(ASCII.isDigit) { allNumeric = false }
        }
        // RFC 3696 §2: a top-level domain is never all-numeric; a dotted quad is an IP address.
        if let tld = labels.last, tld.allSatisfy(ASCII.isDigit) {
            if allNumeric && labels.count == 4 {
                throw AddressError("an IP address must be written as an address literal, e.g. [192.0.2.1]")
            }
            throw AddressError("top-level domain cannot be all-numeric")
        }
    }

    /// address-literal = "[" ( IPv4-address-literal / IPv6-address-literal ) "]" (RFC 5321 §4.1.3).
    /// General-address-literal tags are refused: none is registered.
    static func validateAddressLiteral(_ domain: [UInt8]) throws {
        guard domain.count >= 2, domain.last == ASCII.closeBracket else {
            throw AddressError("unterminated address literal")
        }
        let inner = Array(domain[1..<(domain.count - 1)])
        let text = String(decoding: inner, as: UTF8.self)
        if text.count >= 5, text.prefix(5).lowercased() == "ipv6:" {
            guard IPText.isIPv6(Array(inner[5...])) else {
                throw AddressError("invalid IPv6 address literal \"\(String(decoding: domain, as: UTF8.self))\"")
            }
            return
        }
        if inner.contains(ASCII.colon) {
            throw AddressError("unsupported address literal \"\(String(decoding: domain, as: UTF8.self))\"")
        }
        guard IPText.isIPv4(inner[...]) else {
            throw AddressError("invalid IPv4 address literal \"\(String(decoding: domain, as: UTF8.self))\"")
        }
    }
}

/// Textual IP address checks for address literals.
enum IPText {
    /// Dotted-quad IPv4 with each part 0…255.
    static func isIPv4(_ bytes: ArraySlice<UInt8>) -> Bool {
        let parts = bytes.split(separator: ASCII.dot, omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(ASCII.isDigit) else { return false }
            let value = part.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            if value > 255 { return false }
        }
        return true
    }

    /// RFC 4291 §2.2 text forms, including `::` compression and an IPv4 tail.
    static func isIPv6(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return false }
        // Split on the first "::" (there may be at most one).
        var doubleColon: Int? = nil
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == ASCII.colon && bytes[i + 1] == ASCII.colon {
                if doubleColon != nil { return false }
                doubleColon = i
                i += 2
                continue
            }
            i += 1
        }
        func groupCount(_ part: ArraySlice<UInt8>, allowIPv4Tail: Bool) -> Int? {
            if part.isEmpty { return 0 }
            let groups = part.split(separator: ASCII.colon, omittingEmptySubsequences: false)
            var count = 0
            for (index, group) in groups.enumerated() {
                if allowIPv4Tail && index == groups.count - 1 && group.contains(ASCII.dot) {
                    guard isIPv4(group) else { return nil }
                    count += 2
                } else {
                    guard (1...4).contains(group.count), group.allSatisfy({ ASCII.hexValue($0) != nil }) else { return nil }
                    count += 1
                }
            }
            return count
        }
        if let dc = doubleColon {
            guard let head = groupCount(bytes[0..<dc], allowIPv4Tail: false),
                  let tail = groupCount(bytes[(dc + 2)...], allowIPv4Tail: true) else { return false }
            return head + tail <= 7
        }
        return groupCount(bytes[...], allowIPv4Tail: true) == 8
    }
}
