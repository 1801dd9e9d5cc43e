import Crypto
import Foundation

/// A signing secret in the Standard Webhooks form `whsec_<base64 key>`. The key bytes (after the prefix) are the
/// HMAC key; receivers configure the whole string in their verifier.
public struct WebhookSecret: Sendable, Hashable, CustomStringConvertible {
    public static let prefix = "whsec_"
    /// Random bytes per new secret: 24 (192 bits), in the 24–64 range the specification recommends.
    public static let keyLength = 24

    /// The secret as shown to the user and stored: `whsec_…`.
    public let description: String
    /// The HMAC key bytes.
    let key: [UInt8]

    /// A fresh random secret.
    public static func generate() -> WebhookSecret {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<keyLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return WebhookSecret(key: bytes)
    }

    private init(key bytes: [UInt8]) {
        self.key = bytes
        self.description = Self.prefix + Data(bytes).base64EncodedString()
    }

    /// Parses a stored `whsec_…` secret; nil when it is not one.
    public init?(_ text: String) {
        guard text.hasPrefix(Self.prefix), let bytes = Data(base64Encoded: String(text.dropFirst(Self.prefix.count))),
              !bytes.isEmpty else { return nil }
        self.key = Array(bytes)
        self.description = text
    }
}

/// The Standard Webhooks signature: `v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`.
/// While a rotated-out secret is still valid, both signatures are sent, space-separated, newest first, so a
/// receiver that knows either secret accepts the request.
public enum WebhookSignature {
    /// One `v1,…` signature.
    public static func sign(id: String, timestamp: Int, body: some Sequence<UInt8>, secret: WebhookSecret) -> String {
        var signed = Array("\(id).\(timestamp).".utf8)
        signed.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: secret.key))
        return "v1," + Data(mac).base64EncodedString()
    }

    /// The `webhook-signature` header value: one signature per secret, in the order given.
    public static func header(id: String, timestamp: Int, body: [UInt8], secrets: [WebhookSecret]) -> String {
        secrets.map { sign(id: id, timestamp: timestamp, body: body, secret: $0) }.joined(separator: " ")
    }
}
