// Byte-level Content-Transfer-Encoding codecs (RFC 2045 §6.7 quoted-printable, §6.8 base64).
// The encoders run on every composed message, so they write straight into the output array.

enum Base64 {
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Decoding table: the 6-bit value of each alphabet byte, or 0xFF.
    static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (value, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(value) }
        // RFC 4648 §5 URL-safe letters are accepted when decoding; some generators use them.
        table[Int(UInt8(ascii: "-"))] = 62
        table[Int(UInt8(ascii: "_"))] = 63
        return table
    }()

    /// The length of the unwrapped encoding of `count` bytes.
    @inline(__always) static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Appends the base64 encoding of `source`, wrapped with CRLF after every `lineLength` characters
    /// (a multiple of 4; RFC 2045 §6.8 allows at most 76). No line break follows the last line.
    static func append(_ source: [UInt8], to out: inout [UInt8], lineLength: Int = 76) {
        let n = source.count
        guard n > 0 else { return }
        let encoded = encodedLength(n)
        let lines = (encoded + lineLength - 1) / lineLength
        let total = encoded + (lines - 1) * 2
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: total))
        out.withUnsafeMutableBufferPointer { dst in
            source.withUnsafeBufferPointer { src in
                alphabet.withUnsafeBufferPointer { table in
                    var o = start
                    var i = 0
                    var column = 0
                    while i + 3 <= n {
                        let v = UInt32(src[i]) << 16 | UInt32(src[i + 1]) << 8 | UInt32(src[i + 2])
                        dst[o] = table[Int(v >> 18 & 63)]
                        dst[o + 1] = table[Int(v >> 12 & 63)]
                        dst[o + 2] = table[Int(v >> 6 & 63)]
                        dst[o + 3] = table[Int(v & 63)]
                        o += 4
                        i += 3
                        column += 4
                        if column == lineLength && i < n {
                            dst[o] = ASCII.cr
                            dst[o + 1] = ASCII.lf
                            o += 2
                            column = 0
                        }
                    }
                    let remaining = n - i
                    if remaining > 0 {
                        let b0 = UInt32(src[i])
                        let b1 = remaining == 2 ? UInt32(src[i + 1]) : 0
                        let v = b0 << 16 | b1 << 8
                        dst[o] = table[Int(v >> 18 & 63)]
                        dst[o + 1] = table[Int(v >> 12 & 63)]
                        dst[o + 2] = remaining == 2 ? table[Int(v >> 6 & 63)] : ASCII.equals
                        dst[o + 3] = ASCII.equals
                    }
                }
            }
        }
    }

    /// Appends the unwrapped base64 encoding of a short byte run (used for RFC 2047 B encoding).
    static func appendUnwrapped(_ source: some Collection<UInt8>, to out: inout [UInt8]) {
        let bytes = Array(source)
        append(bytes, to: &out, lineLength: max(4, encodedLength(bytes.count)))
    }

    /// Decodes base64 leniently: line breaks, spaces and other stray bytes are skipped, decoding stops
    /// at the first `=`, and missing padding is tolerated (real-world bounces are not always tidy).
    static func decode(_ source: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(source.count / 4 * 3 + 3)
        decodeTable.withUnsafeBufferPointer { table in
            var accumulator: UInt32 = 0
            var bits = 0
            for byte in source {
                if byte == ASCII.equals { break }
                let value = table[Int(byte)]
                if value == 0xFF { continue }
                accumulator = accumulator << 6 | UInt32(value)
                bits += 6
                if bits >= 8 {
                    bits -= 8
                    out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                    accumulator &= (1 << UInt32(bits)) - 1
                }
            }
        }
        return out
    }
}

enum QuotedPrintable {
    /// Appends the quoted-printable encoding of `source` (RFC 2045 §6.7). CR, LF and CRLF in the input
    /// are all treated as line breaks and written as CRLF; encoded lines are at most 76 characters,
    /// using soft line breaks (`=` CRLF); `=`, non-ASCII, controls and whitespace at the end of a line
    /// are written as `=XX`.
    static func append(_ source: [UInt8], to out: inout [UInt8]) {
        out.reserveCapacity(out.count + source.count + source.count / 2 + 64)
        source.withUnsafeBufferPointer { src in
            ASCII.hexDigits.withUnsafeBufferPointer { hex in
                let n = src.count
                var column = 0
                var i = 0
                while i < n {
                    let b = src[i]
                    if b == ASCII.cr || b == ASCII.lf {
                        out.append(ASCII.cr)
                        out.append(ASCII.lf)
                        column = 0
                        i += (b == ASCII.cr && i + 1 < n && src[i + 1] == ASCII.lf) ? 2 : 1
                        continue
                    }
                    let atLineEnd = i + 1 == n || src[i + 1] == ASCII.cr || src[i + 1] == ASCII.lf
                    let literal: Bool
                    if b == ASCII.space || b == ASCII.tab {
                        // Rule 3: whitespace at the end of an encoded line must be encoded.
                        literal = !atLineEnd
                    } else {
                        literal = b >= 0x21 && b <= 0x7E && b != ASCII.equals
                    }
                    let width = literal ? 1 : 3
                    // Rule 5: at most 76 characters per line; a line that continues also needs room for "=".
                    if column + width > (atLineEnd ? 76 : 75) {
                        out.append(ASCII.equals)
                        out.append(ASCII.cr)
                        out.append(ASCII.lf)
                        column = 0
                    }
                    if literal {
                        out.append(b)
                    } else {
                        out.append(ASCII.equals)
                        out.append(hex[Int(b >> 4)])
                        out.append(hex[Int(b & 0x0F)])
                    }
                    column += width
                    i += 1
                }
            }
        }
    }

    /// Decodes quoted-printable leniently: `=XX` in either case, soft breaks after CRLF or bare LF,
    /// trailing whitespace on lines dropped (RFC 2045 §6.7 rule 3), a malformed `=` kept literally.
    static func decode(_ source: some Collection<UInt8>) -> [UInt8] {
        let src = Array(source)
        var out: [UInt8] = []
        out.reserveCapacity(src.count)
        let n = src.count
        var lineStart = 0
        while lineStart < n {
            var lineEnd = lineStart
            while lineEnd < n && src[lineEnd] != ASCII.lf { lineEnd += 1 }
            let hasLF = lineEnd < n
            var contentEnd = lineEnd
            let hadCR = contentEnd > lineStart && src[contentEnd - 1] == ASCII.cr
            if hadCR { contentEnd -= 1 }
            while contentEnd > lineStart && ASCII.isWhitespace(src[contentEnd - 1]) { contentEnd -= 1 }
            var soft = false
            if contentEnd > lineStart && src[contentEnd - 1] == ASCII.equals {
                soft = true
                contentEnd -= 1
            }
            var i = lineStart
            while i < contentEnd {
                let b = src[i]
                if b == ASCII.equals, i + 2 < contentEnd,
                   let hi = ASCII.hexValue(src[i + 1]), let lo = ASCII.hexValue(src[i + 2]) {
                    out.append(hi << 4 | lo)
                    i += 3
                } else {
                    out.append(b)
                    i += 1
                }
            }
            if hasLF && !soft {
                if hadCR { out.append(ASCII.cr) }
                out.append(ASCII.lf)
            }
            lineStart = lineEnd + 1
        }
        return out
    }
}
