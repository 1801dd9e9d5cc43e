/// An RFC 5322 message split into header fields and body, as DKIM sees it (RFC 6376 §3.4, §5.4).
///
/// Lines end in CRLF. A line that starts with SP or HTAB continues the field above it (RFC 5322 §2.2.3). The
/// header section ends at the first empty line; the body is everything after that line's CRLF. A message with no
/// empty line is all header, and its body is empty. Bare CR or LF bytes are ordinary bytes here, as RFC 6376
/// defines lines by CRLF alone.
package struct MessageParts: Sendable {
    /// One header field: the name before the colon and the raw value after it.
    package struct Field: Sendable {
        /// The field name, without the WSP that may stand before the colon (RFC 6376 §3.4.2).
        package var name: ArraySlice<UInt8>
        /// Everything after the colon up to the field's final CRLF (not included), folding CRLFs and all.
        package var value: ArraySlice<UInt8>

        /// The name in ASCII lower case, for matching (RFC 6376 §3.4: names compare case-insensitively).
        package var lowercasedName: String {
            String(decoding: name.map(asciiLowercased), as: UTF8.self)
        }
    }

    /// The header fields in message order.
    package var fields: [Field]
    /// The body: after the empty line that ends the header section.
    package var body: ArraySlice<UInt8>

    /// Splits `message`.
    package init(_ message: [UInt8]) {
        var fields: [Field] = []
        var body = message[message.endIndex...]
        var fieldStart: Int?
        var fieldEnd = message.startIndex
        var lineStart = message.startIndex

        func closeField() {
            guard let start = fieldStart else { return }
            fields.append(Self.field(message[start..<fieldEnd]))
        }

        while lineStart < message.endIndex {
            let lineEnd = message.firstCRLF(from: lineStart) ?? message.endIndex
            let nextLine = lineEnd == message.endIndex ? lineEnd : lineEnd + 2
            if lineEnd == lineStart {
                // The empty line: the header section is over.
                body = message[nextLine...]
                break
            }
            if !(isWSP(message[lineStart]) && fieldStart != nil) {
                // Not a continuation line, so a new field starts here.
                closeField()
                fieldStart = lineStart
            }
            fieldEnd = lineEnd
            lineStart = nextLine
        }
        closeField()
        self.fields = fields
        self.body = body
    }

    private static func field(_ text: ArraySlice<UInt8>) -> Field {
        guard let colon = text.firstIndex(of: UInt8(ascii: ":")) else {
            // Not a field at all; it keeps its place but no signed name can match it.
            return Field(name: text, value: text[text.endIndex...])
        }
        var nameEnd = colon
        while nameEnd > text.startIndex, isWSP(text[nameEnd - 1]) { nameEnd -= 1 }
        return Field(name: text[text.startIndex..<nameEnd], value: text[(colon + 1)...])
    }
}

/// SP or HTAB: RFC 5234's WSP, the only whitespace DKIM canonicalisation knows.
@inline(__always)
func isWSP(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09
}

@inline(__always)
func asciiLowercased(_ byte: UInt8) -> UInt8 {
    byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte
}

extension Collection where Element == UInt8, Index == Int {
    /// The index of the CR of the next CRLF at or after `start`.
    func firstCRLF(from start: Int) -> Int? {
        var index = start
        while index < endIndex {
            if self[index] == 0x0D, index + 1 < endIndex, self[index + 1] == 0x0A { return index }
            index += 1
        }
        return nil
    }
}
