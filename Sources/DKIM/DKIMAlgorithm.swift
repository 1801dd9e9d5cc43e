/// The signing algorithms Relay produces, named as they appear in the a= tag.
public enum DKIMAlgorithm: String, Sendable, Codable, CaseIterable {
    /// RSASSA-PKCS1-v1_5 over SHA-256 (RFC 6376 §3.3.1), with 2048-bit keys (RFC 8301 §3.2).
    case rsaSHA256 = "rsa-sha256"
    /// PureEdDSA Ed25519 over the SHA-256 header hash (RFC 8463 §3).
    case ed25519SHA256 = "ed25519-sha256"

    /// The k= value of the key record (RFC 6376 §3.6.1, RFC 8463 §4.1).
    public var keyType: String {
        switch self {
        case .rsaSHA256: "rsa"
        case .ed25519SHA256: "ed25519"
        }
    }
}
