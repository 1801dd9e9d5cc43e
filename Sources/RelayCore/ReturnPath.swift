import Crypto
import Foundation

/// VERP return paths (variable envelope return path): every delivery's envelope sender names the recipient
/// delivery it belongs to, so an asynchronous bounce or complaint sent back to it is matched to that delivery
/// even when the report itself is vague or malformed.
///
/// Address: `bounce+<recipient id>-<mac>@<domain>`, where `mac` is the first 80 bits of
/// HMAC-SHA256(key, "relay-verp:<recipient id>") in lower-case base32 (local parts survive case folding). The
/// key lives in PostgreSQL (`relay_secrets`), shared by every node; without it a token cannot be forged, and
/// guessing another recipient's id is useless without its mac.
///
/// Domain: `RELAY_BOUNCE_DOMAIN` when set; otherwise the `bounces.` subdomain of the sender's domain (point its
/// MX at Relay's inbound listener).
public struct ReturnPath: Sendable {
    /// The local-part prefix of every bounce address.
    public static let prefix = "bounce+"
    /// The subdomain of the sender's domain used when no bounce domain is configured.
    public static let defaultSubdomain = "bounces"
    static let macBytes = 10

    private let key: [UInt8]
    /// `RELAY_BOUNCE_DOMAIN`, lower case; nil → `bounces.<sender domain>`.
    public let bounceDomain: String?

    /// Creates the codec from the cluster's secret.
    public init(key: [UInt8], bounceDomain: String?) {
        self.key = key
        self.bounceDomain = bounceDomain.map { $0.lowercased() }
    }

    /// The envelope sender for one recipient delivery of a message whose own sender is `mailFrom`. The null
    /// reverse path stays null (RFC 5321 §4.5.5: such a message must not cause a bounce).
    public func envelopeSender(recipientID: Int64, mailFrom: String) -> String {
        guard !mailFrom.isEmpty else { return "" }
        let domain: String
        if let bounceDomain {
            domain = bounceDomain
        } else if let at = mailFrom.lastIndex(of: "@") {
            domain = "\(Self.defaultSubdomain).\(mailFrom[mailFrom.index(after: at)...].lowercased())"
        } else {
            return mailFrom
        }
        return "\(Self.prefix)\(token(recipientID: recipientID))@\(domain)"
    }

    /// `<id>-<mac>`.
    public func token(recipientID: Int64) -> String {
        "\(recipientID)-\(mac(recipientID))"
    }

    /// The recipient delivery a bounce address names, or nil when the address is not one of ours: wrong
    /// prefix, a domain other than the configured bounce domain, or a mac that does not verify.
    public func recipientID(of address: String) -> Int64? {
        guard let at = address.lastIndex(of: "@") else { return nil }
        let local = address[..<at].lowercased()
        let domain = address[address.index(after: at)...].lowercased()
        if let bounceDomain, domain != bounceDomain { return nil }
        guard local.hasPrefix(Self.prefix) else { return nil }
        let token = local.dropFirst(Self.prefix.count)
        guard let dash = token.firstIndex(of: "-"), let id = Int64(token[..<dash]), id > 0 else { return nil }
        return ConstantTime.equal(Array(token[token.index(after: dash)...].utf8), Array(mac(id).utf8)) ? id : nil
    }

    private func mac(_ recipientID: Int64) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array("relay-verp:\(recipientID)".utf8), using: SymmetricKey(data: key))
        return Base32.lowercase(Array(code.prefix(Self.macBytes)))
    }
}

/// Comparison of secrets that takes the same time wherever the first difference is.
enum ConstantTime {
    static func equal(_ given: [UInt8], _ expected: [UInt8]) -> Bool {
        guard given.count == expected.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(given, expected) { difference |= a ^ b }
        return difference == 0
    }
}

/// RFC 4648 base32 without padding, lower case.
enum Base32 {
    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    static func lowercase(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return String(decoding: output, as: UTF8.self)
    }
}
