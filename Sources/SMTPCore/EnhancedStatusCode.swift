/// An RFC 3463 enhanced mail system status code, `class.subject.detail` (for example `5.1.1`).
///
/// Servers that advertise `ENHANCEDSTATUSCODES` (RFC 2034) put one at the start of each reply line; it tells
/// apart failures that share a basic reply code (a 550 for an unknown mailbox, `5.1.1`, versus a policy
/// rejection, `5.7.1`).
public struct EnhancedStatusCode: Sendable, Hashable, CustomStringConvertible {
    /// The class digit: 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    public let statusClass: Int
    /// The subject, 0...999 (RFC 3463 §4: 1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol,
    /// 6 content, 7 security).
    public let subject: Int
    /// The detail, 0...999, refining the subject.
    public let detail: Int

    /// Creates a code from its three parts; returns nil when a part is out of range.
    public init?(statusClass: Int, subject: Int, detail: Int) {
        guard statusClass == 2 || statusClass == 4 || statusClass == 5,
              (0...999).contains(subject), (0...999).contains(detail)
        else { return nil }
        self.statusClass = statusClass
        self.subject = subject
        self.detail = detail
    }

    /// Parses the text form `class.subject.detail`, following the RFC 3463 §2 grammar exactly:
    /// class is 2, 4 or 5; subject and detail are one to three digits without leading zeros.
    public init?(_ text: String) {
        guard let parsed = Self.parse(Array(text.utf8)[...]), parsed.length == text.utf8.count else { return nil }
        self = parsed.code
    }

    /// Parses a code at the start of `bytes`; returns the code and how many bytes it used.
    /// The caller checks what follows (a space or the end of the line).
    static func parse(_ bytes: ArraySlice<UInt8>) -> (code: EnhancedStatusCode, length: Int)? {
        var index = bytes.startIndex
        func number(maximumDigits: Int) -> Int? {
            let start = index
            var value = 0
            while index < bytes.endIndex, index - start < maximumDigits,
                  let digit = Self.digit(bytes[index]) {
                value = value * 10 + digit
                index += 1
            }
            let count = index - start
            guard count > 0 else { return nil }
            // RFC 3463: subject = "0" / (%x31-39 *2digit); no leading zeros.
            if count > 1, bytes[start] == UInt8(ascii: "0") { return nil }
            // A fourth digit means this is not a code at all.
            if index < bytes.endIndex, Self.digit(bytes[index]) != nil { return nil }
            return value
        }
        func dot() -> Bool {
            guard index < bytes.endIndex, bytes[index] == UInt8(ascii: ".") else { return false }
            index += 1
            return true
        }
        guard let statusClass = number(maximumDigits: 1), dot(),
              let subject = number(maximumDigits: 3), dot(),
              let detail = number(maximumDigits: 3),
              let code = EnhancedStatusCode(statusClass: statusClass, subject: subject, detail: detail)
        else { return nil }
        return (code, index - bytes.startIndex)
    }

    private static func digit(_ byte: UInt8) -> Int? {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") ? Int(byte - UInt8(ascii: "0")) : nil
    }

    /// The text form, for example `"5.1.1"`.
    public var description: String { "\(statusClass).\(subject).\(detail)" }
}
