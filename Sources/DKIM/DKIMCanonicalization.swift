/// DKIM's "relaxed" canonicalisation of header fields and body (RFC 6376 §3.4.2, §3.4.4), the only one Relay
/// signs with: it survives the whitespace and folding changes that relays commonly make.
public enum DKIMCanonicalization {
    /// relaxed header canonicalisation (RFC 6376 §3.4.2) of one field: "name:value" lower-cased name, unfolded, WSP runs → one SP, trimmed, plus CRLF.
    ///
    /// `value` is the raw text after the colon, folding CRLFs included.
    public static func relaxedHeader(name: String, value: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        appendRelaxedHeader(name: Array(name.utf8)[...], value: value[...], to: &out)
        out += [0x0D, 0x0A]
        return out
    }

    /// relaxed body canonicalisation (RFC 6376 §3.4.4), including the empty-body rule (§3.4.4: empty body canonicalises to empty, i.e. hashes as "").
    ///
    /// A final line without CRLF is treated as if it had one, which is also what SMTP transport makes of it (§3.4.4:
    /// "If the body is non-empty but does not end with a CRLF, a CRLF is added").
    public static func relaxedBody(_ body: [UInt8]) -> [UInt8] {
        relaxedBody(body[...])
    }

    static func relaxedBody(_ body: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count)
        // Empty lines are held back until a non-empty line follows: empty lines at the end are dropped (§3.4.4 b).
        var heldEmptyLines = 0
        var lineStart = body.startIndex
        while lineStart < body.endIndex {
            let lineEnd = body.firstCRLF(from: lineStart) ?? body.endIndex
            let line = body[lineStart..<lineEnd]
            if line.allSatisfy(isWSP) {
                // Empty once trailing WSP is gone (§3.4.4 a).
                heldEmptyLines += 1
            } else {
                for _ in 0..<heldEmptyLines { out += [0x0D, 0x0A] }
                heldEmptyLines = 0
                // §3.4.4 a: WSP runs become one SP, and WSP at the end of the line goes.
                var pendingSpace = false
                for byte in line {
                    if isWSP(byte) {
                        pendingSpace = true
                    } else {
                        if pendingSpace { out.append(0x20) }
                        pendingSpace = false
                        out.append(byte)
                    }
                }
                out += [0x0D, 0x0A]
            }
            lineStart = lineEnd == body.endIndex ? lineEnd : lineEnd + 2
        }
        return out
    }

    /// Appends "name:value" in relaxed form, without the CRLF (the DKIM-Signature field is hashed without it, §3.7).
    static func appendRelaxedHeader(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>, to out: inout [UInt8]) {
        // Names are lower-cased; WSP around the colon is deleted (§3.4.2).
        for byte in name where !isWSP(byte) { out.append(asciiLowercased(byte)) }
        out.append(UInt8(ascii: ":"))
        // Unfold (drop each CRLF), turn WSP runs into one SP, and drop WSP at both ends of the value.
        var wroteValue = false
        var pendingSpace = false
        var index = value.startIndex
        while index < value.endIndex {
            let byte = value[index]
            if byte == 0x0D, index + 1 < value.endIndex, value[index + 1] == 0x0A {
                index += 2
                continue
            }
            if isWSP(byte) {
                pendingSpace = wroteValue
            } else {
                if pendingSpace { out.append(0x20) }
                pendingSpace = false
                wroteValue = true
                out.append(byte)
            }
            index += 1
        }
    }
}
