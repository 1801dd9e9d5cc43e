/// The rules the API uses to refuse bad custom headers before a message is accepted.
public enum HeaderRules {
    /// The longest header field name accepted (a name plus ": " should leave room on a 78-character line).
    public static let maxNameLength = 76
    /// The longest header value accepted, in UTF-8 octets.
    public static let maxValueLength = 2000

    /// Whether `name` is a valid field name: 1…76 characters of RFC 5322 §3.6.8 `ftext`
    /// (printable ASCII except `:`).
    public static func isValidName(_ name: String) -> Bool {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= maxNameLength else { return false }
        return bytes.allSatisfy { $0 >= 33 && $0 <= 126 && $0 != ASCII.colon }
    }

    /// Whether `value` may be used as a header value: at most 2000 UTF-8 octets, no CR, LF, NUL or
    /// other control character except horizontal tab. Non-ASCII is allowed; composition encodes it
    /// (RFC 2047).
    public static func isValidValue(_ value: String) -> Bool {
        let bytes = value.utf8
        guard bytes.count <= maxValueLength else { return false }
        return !bytes.contains { ($0 < 0x20 && $0 != ASCII.tab) || $0 == 0x7F }
    }

    /// Field names the composer writes itself (compared case-insensitively).
    public static let structuralNames: Set<String> = [
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
        "return-path", "received", "dkim-signature", "sender", "reply-to",
    ]

    /// Whether the API must refuse `name` in custom headers because the relay sets it itself, or
    /// because it describes the MIME structure: From, To, Cc, Bcc, Subject, Date, Message-ID,
    /// MIME-Version, any Content-*, Return-Path, Received, DKIM-Signature, Sender and Reply-To
    /// (Reply-To has its own API field).
    public static func isStructural(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return structuralNames.contains(lowered) || lowered.hasPrefix("content-")
    }
}
