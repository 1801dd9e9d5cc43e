import Foundation

/// RFC 2047 encoded words: `=?charset?B|Q?text?=`.
enum EncodedWords {
    /// `=?UTF-8?X?` + `?=`: the fixed overhead of each word we write.
    static let overhead = 12
    /// RFC 2047 §2: an encoded word is at most 75 characters.
    static let maxWordLength = 75

    /// Whether a byte may appear literally in Q-encoded text. In a phrase (display names) only the
    /// RFC 2047 §5(3) set is allowed; in unstructured text anything printable but `=`, `?`, `_`.
    @inline(__always) static func isQSafe(_ b: UInt8, phrase: Bool) -> Bool {
        if phrase {
            if ASCII.isAlpha(b) || ASCII.isDigit(b) { return true }
            return b == 0x21 || b == ASCII.star || b == 0x2B || b == ASCII.hyphen || b == ASCII.slash
        }
        return b > 0x20 && b < 0x7F && b != ASCII.equals && b != ASCII.question && b != ASCII.underscore
    }

    /// The Q-encoded width of one byte (space becomes `_`).
    @inline(__always) static func qCost(_ b: UInt8, phrase: Bool) -> Int {
        (b == ASCII.space || isQSafe(b, phrase: phrase)) ? 1 : 3
    }

    /// Appends the Q encoding of one byte (RFC 2047 §4.2).
    @inline(__always) static func appendQ(_ b: UInt8, phrase: Bool, to out: inout [UInt8]) {
        if b == ASCII.space {
            out.append(ASCII.underscore)
        } else if isQSafe(b, phrase: phrase) {
            out.append(b)
        } else {
            out.append(ASCII.equals)
            out.append(ASCII.hexDigits[Int(b >> 4)])
            out.append(ASCII.hexDigits[Int(b & 0x0F)])
        }
    }

    /// Picks B when it is shorter than Q for this text (mostly non-ASCII text), Q otherwise, so
    /// that mostly-ASCII text stays readable in the raw message.
    static func prefersBase64(_ text: some Collection<UInt8>, phrase: Bool) -> Bool {
        var q = 0
        for b in text { q += qCost(b, phrase: phrase) }
        return Base64.encodedLength(text.count) < q
    }

    /// The length of the UTF-8 sequence that starts with `lead` (1 for stray continuation bytes).
    @inline(__always) static func sequenceLength(_ lead: UInt8) -> Int {
        switch lead {
        case 0xF0...0xFF: return 4
        case 0xE0...0xEF: return 3
        case 0xC0...0xDF: return 2
        default: return 1
        }
    }

    /// Whether the text contains `=?`, which a decoder could mistake for the start of an encoded word.
    static func containsEncodedWordOpener(_ text: some Collection<UInt8>) -> Bool {
        var previous: UInt8 = 0
        for b in text {
            if previous == ASCII.equals && b == ASCII.question { return true }
            previous = b
        }
        return false
    }

    // MARK: Decoding

    /// Decodes every encoded word in a header value (RFC 2047 §6). Whitespace between two adjacent
    /// encoded words is dropped; adjacent words in the same charset are joined before conversion, so a
    /// multi-byte character split across words by a careless encoder still decodes. Malformed words
    /// are kept as they are.
    static func decode(_ value: String) -> String {
        guard value.contains("=?") else { return value }
        let bytes = Array(value.utf8)
        var result = ""
        var literalStart = 0
        var pendingCharset: String? = nil
        var pendingBytes: [UInt8] = []
        var i = 0

        func flush() {
            if let charset = pendingCharset {
                result += Charsets.decode(pendingBytes, charset: charset)
                pendingCharset = nil
                pendingBytes = []
            }
        }

        while i + 1 < bytes.count {
            guard bytes[i] == ASCII.equals, bytes[i + 1] == ASCII.question, let word = parseWord(bytes, at: i) else {
                i += 1
                continue
            }
            let between = bytes[literalStart..<i]
            let onlySpace = between.allSatisfy { ASCII.isWhitespace($0) || $0 == ASCII.cr || $0 == ASCII.lf }
            if pendingCharset != nil && onlySpace {
                if pendingCharset != word.charset { flush() }
            } else {
                flush()
                result += String(decoding: between, as: UTF8.self)
            }
            if pendingCharset == nil { pendingCharset = word.charset }
            pendingBytes += word.bytes
            i = word.end
            literalStart = i
        }
        flush()
        result += String(decoding: bytes[literalStart...], as: UTF8.self)
        return result
    }

    struct ParsedWord {
        var charset: String
        var bytes: [UInt8]
        var end: Int
    }

    /// Parses `=?charset?enc?text?=` starting at `start`; nil when it is not a well-formed encoded word.
    static func parseWord(_ b: [UInt8], at start: Int) -> ParsedWord? {
        var i = start + 2
        let charsetStart = i
        while i < b.count, b[i] != ASCII.question {
            guard ASCII.isTokenChar(b[i]) || b[i] == ASCII.star else { return nil }
            i += 1
        }
        guard i < b.count, i > charsetStart, i + 2 < b.count, b[i + 2] == ASCII.question else { return nil }
        let charset = String(decoding: b[charsetStart..<i], as: UTF8.self)
        let encoding = ASCII.lower(b[i + 1])
        guard encoding == UInt8(ascii: "b") || encoding == UInt8(ascii: "q") else { return nil }
        i += 3
        let textStart = i
        while i + 1 < b.count, !(b[i] == ASCII.question && b[i + 1] == ASCII.equals) {
            let c = b[i]
            guard c > 0x20, c < 0x7F else { return nil }
            i += 1
        }
        guard i + 1 < b.count else { return nil }
        let text = b[textStart..<i]
        var decoded: [UInt8] = []
        if encoding == UInt8(ascii: "b") {
            decoded = Base64.decode(text)
        } else {
            decoded.reserveCapacity(text.count)
            var j = text.startIndex
            while j < text.endIndex {
                let c = text[j]
                if c == ASCII.underscore {
                    decoded.append(ASCII.space)
                    j += 1
                } else if c == ASCII.equals, j + 2 < text.endIndex,
                          let hi = ASCII.hexValue(text[j + 1]), let lo = ASCII.hexValue(text[j + 2]) {
                    decoded.append(hi << 4 | lo)
                    j += 3
                } else {
                    decoded.append(c)
                    j += 1
                }
            }
        }
        return ParsedWord(charset: charset, bytes: decoded, end: i + 2)
    }
}

/// Conversion of bytes in a named charset (MIME `charset` parameter, RFC 2047/2231 charset) to text.
enum Charsets {
    /// Converts `bytes` to a String. UTF-8 and US-ASCII are decoded with replacement of invalid
    /// sequences, ISO-8859-1 byte for byte; other charsets go through Foundation when it knows them,
    /// and fall back to UTF-8-or-Latin-1 otherwise.
    static func decode(_ bytes: [UInt8], charset rawCharset: String) -> String {
        // RFC 2231 §5 allows "charset*language" in encoded words.
        var charset = rawCharset.lowercased()
        if let star = charset.firstIndex(of: "*") { charset = String(charset[..<star]) }
        switch charset {
        case "utf-8", "utf8", "us-ascii", "ascii", "":
            return String(decoding: bytes, as: UTF8.self)
        case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "iso_8859-1":
            var scalars = String.UnicodeScalarView()
            for b in bytes { scalars.append(Unicode.Scalar(b)) }
            return String(scalars)
        default:
            if let encoding = foundationEncoding(charset), let s = String(bytes: bytes, encoding: encoding) {
                return s
            }
            return TextDecoding.string(fromHeaderBytes: bytes)
        }
    }

    private static func foundationEncoding(_ charset: String) -> String.Encoding? {
        switch charset {
        case "windows-1252", "cp1252": return .windowsCP1252
        case "windows-1250", "cp1250": return .windowsCP1250
        case "windows-1251", "cp1251": return .windowsCP1251
        case "iso-8859-2", "latin2": return .isoLatin2
        case "utf-16": return .utf16
        case "utf-16be": return .utf16BigEndian
        case "utf-16le": return .utf16LittleEndian
        case "shift_jis", "shift-jis", "sjis": return .shiftJIS
        case "euc-jp": return .japaneseEUC
        case "iso-2022-jp": return .iso2022JP
        default: return nil
        }
    }
}
