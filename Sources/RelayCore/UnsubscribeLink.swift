import Crypto
import Foundation

/// Relay-hosted one-click unsubscribe links (RFC 8058): `<base URL>/unsubscribe/<recipient id>-<mac>`, where `mac`
/// is the first 128 bits of HMAC-SHA256(key, "relay-unsubscribe:<recipient id>") in lower-case base32. The key is
/// the cluster's `unsubscribe` secret (`relay_secrets`), so any node can check a link and nobody can make one for
/// another recipient.
public struct UnsubscribeLink: Sendable {
    static let macBytes = 16

    private let key: [UInt8]
    /// `RELAY_PUBLIC_URL` without a trailing slash, e.g. `https://relay.example.com`.
    public let baseURL: String

    /// Creates the codec from the cluster's secret and the public base URL.
    public init(key: [UInt8], baseURL: String) {
        self.key = key
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
    }

    /// `<id>-<mac>`.
    public func token(recipientID: Int64) -> String {
        "\(recipientID)-\(mac(recipientID))"
    }

    /// The link a message to this recipient carries in List-Unsubscribe.
    public func url(recipientID: Int64) -> String {
        "\(baseURL)/unsubscribe/\(token(recipientID: recipientID))"
    }

    /// The List-Unsubscribe and List-Unsubscribe-Post header fields (CRLF-terminated) for one recipient.
    public func headerFields(recipientID: Int64) -> String {
        "List-Unsubscribe: <\(url(recipientID: recipientID))>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    }

    /// The recipient a token names, or nil when its mac does not verify (compared in constant time).
    public func recipientID(of token: String) -> Int64? {
        let lowered = token.lowercased()
        guard let dash = lowered.firstIndex(of: "-"), let id = Int64(lowered[..<dash]), id > 0 else { return nil }
        return ConstantTime.equal(Array(lowered[lowered.index(after: dash)...].utf8), Array(mac(id).utf8)) ? id : nil
    }

    private func mac(_ recipientID: Int64) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Array("relay-unsubscribe:\(recipientID)".utf8),
                                                   using: SymmetricKey(data: key))
        return Base32.lowercase(Array(code.prefix(Self.macBytes)))
    }
}
