// Domain names in text form and on the wire (RFC 1035 §2.3.4, §3.1, §4.1.4).
//
// Relay carries names as Swift strings: labels joined by ".", no trailing dot, the root as ".".
// A label octet that is a dot, a backslash or not printable ASCII is written in master-file
// escapes (`\.`, `\\`, `\DDD`, RFC 1035 §5.1) so that text and wire form map one to one.

enum DNSName {
    /// Longest label, in octets (RFC 1035 §2.3.4).
    static let maxLabelLength = 63
    /// Longest name on the wire, length octets and terminating zero included (RFC 1035 §2.3.4).
    static let maxWireLength = 255

    /// The labels of a name given as text; a trailing dot is optional and "" or "." is the root.
    static func labels(_ text: String) throws(DNSError) -> [[UInt8]] {
        let bytes = Array(text.utf8)
        if bytes.isEmpty || bytes == [UInt8(ascii: ".")] { return [] }
        var labels: [[UInt8]] = []
        var current: [UInt8] = []
        var index = 0
        var endedWithDot = false
        while index < bytes.count {
            let byte = bytes[index]
            endedWithDot = false
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { throw invalid(text, "dangling backslash") }
                let next = bytes[index + 1]
                if isDigit(next) {
                    guard index + 3 < bytes.count, isDigit(bytes[index + 2]), isDigit(bytes[index + 3]) else {
                        throw invalid(text, "\\DDD escape needs three digits")
                    }
                    let value = Int(next - 48) * 100 + Int(bytes[index + 2] - 48) * 10 + Int(bytes[index + 3] - 48)
                    guard value <= 255 else { throw invalid(text, "\\DDD escape over 255") }
                    current.append(UInt8(value))
                    index += 4
                } else {
                    current.append(next)
                    index += 2
                }
            } else if byte == UInt8(ascii: ".") {
                guard !current.isEmpty else { throw invalid(text, "empty label") }
                labels.append(current)
                current = []
                endedWithDot = true
                index += 1
            } else {
                current.append(byte)
                index += 1
            }
            guard current.count <= maxLabelLength else { throw invalid(text, "label longer than 63 octets") }
        }
        if !current.isEmpty {
            labels.append(current)
        } else if !endedWithDot {
            throw invalid(text, "empty label")
        }
        guard wireLength(labels) <= maxWireLength else { throw invalid(text, "name longer than 255 octets") }
        return labels
    }

    /// The text form of wire labels, escaping octets that would be ambiguous.
    static func text(_ labels: [[UInt8]]) -> String {
        if labels.isEmpty { return "." }
        var out = ""
        for (position, label) in labels.enumerated() {
            if position > 0 { out.append(".") }
            for byte in label {
                switch byte {
                case UInt8(ascii: "."), UInt8(ascii: "\\"):
                    out.append("\\")
                    out.append(Character(Unicode.Scalar(byte)))
                case 0x21...0x7E:
                    out.append(Character(Unicode.Scalar(byte)))
                default:
                    let digits = String(byte)
                    out.append("\\" + String(repeating: "0", count: 3 - digits.count) + digits)
                }
            }
        }
        return out
    }

    /// The canonical form of a name for comparisons and cache keys: validated, ASCII-lowercased, no trailing dot.
    static func canonical(_ text: String) throws(DNSError) -> String {
        self.text(try labels(text).map(lowercased))
    }

    /// Whether two names are the same name (RFC 1035 §2.3.3: ASCII case-insensitive; trailing dot irrelevant).
    static func equal(_ lhs: String, _ rhs: String) -> Bool {
        guard let left = try? labels(lhs), let right = try? labels(rhs), left.count == right.count else {
            return false
        }
        return zip(left, right).allSatisfy { lowercased($0) == lowercased($1) }
    }

    static func lowercased(_ label: [UInt8]) -> [UInt8] {
        label.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
    }

    static func wireLength(_ labels: [[UInt8]]) -> Int {
        labels.reduce(1) { $0 + 1 + $1.count }
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) }

    private static func invalid(_ text: String, _ why: String) -> DNSError {
        DNSError(code: .invalidName, name: text, detail: why)
    }
}
