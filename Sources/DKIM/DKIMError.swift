/// Why a DKIM operation failed: a bad key, a bad RELAY_SECRET_KEY, a sealed key that will not open, or a
/// signing identity that cannot go into a header. The description is written for an operator's log.
public struct DKIMError: Error, Sendable, CustomStringConvertible {
    /// A stable category, so callers can branch without matching text. New codes may be added.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// A private key that cannot be read or generated.
        public static let invalidPrivateKey = Code("invalidPrivateKey")
        /// RELAY_SECRET_KEY is not 32 bytes of base64.
        public static let invalidSecretKey = Code("invalidSecretKey")
        /// Sealing failed, or a sealed value did not open (wrong key, wrong context, or damaged data).
        public static let sealedData = Code("sealedData")
        /// A d= domain or s= selector that is not a plain DNS name.
        public static let invalidSigningIdentity = Code("invalidSigningIdentity")
        /// The signature primitive itself failed.
        public static let signingFailed = Code("signingFailed")

        /// The code's name.
        public var description: String { name }
    }

    /// The category.
    public var code: Code
    /// What went wrong, for people.
    public var description: String

    /// An error of `code` explained by `description`.
    public init(_ code: Code, _ description: String) {
        self.code = code
        self.description = description
    }
}
