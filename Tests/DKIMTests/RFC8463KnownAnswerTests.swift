@testable import DKIM
import Foundation
import Testing

/// RFC 8463 Appendix A: its keys sign the message of RFC 6376 Appendix A with both algorithms. Both are
/// deterministic (PKCS#1 v1.5 and PureEdDSA), so with the same tags our bh= and b= must be the RFC's to the byte.
@Suite struct RFC8463KnownAnswerTests {
    /// Appendix A.1: the Ed25519 secret key (the seed), base64.
    static let ed25519Seed = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="

    /// Appendix A.1: the RSA secret key (1024 bits, PKCS#1).
    static let rsaPEM = """
        -----BEGIN RSA PRIVATE KEY-----
        MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi
        Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM
        KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB
        AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm
        6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe
        zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy
        6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc
        uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy
        WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd
        WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a
        licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst
        o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe
        uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL
        -----END RSA PRIVATE KEY-----
        """

    /// Appendix A.2: the public keys, as p= values.
    static let ed25519Public = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    static let rsaPublic = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx"
        + "/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"

    /// Appendix A.3: the message before signing.
    static let message = crlf("""
        From: Joe SixPack <joe@football.example.com>
        To: Suzie Q <suzie@shopping.example.net>
        Subject: Is dinner ready?
        Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
        Message-ID: <20030712040037.46341.5F8J@football.example.com>

        Hi.

        We lost the game.  Are you hungry yet?

        Joe.

        """)

    /// Appendix A.3: the two DKIM-Signature fields as printed.
    static let ed25519Field = crlf("""
        DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;
         d=football.example.com; i=@football.example.com;
         q=dns/txt; s=brisbane; t=1528637909; h=from : to :
         subject : date : message-id : from : subject : date;
         bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
         b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus
         Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==
        """)
    static let rsaField = crlf("""
        DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
         d=football.example.com; i=@football.example.com;
         q=dns/txt; s=test; t=1528637909; h=from : to : subject :
         date : message-id : from : subject : date;
         bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
         b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3
         DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz
         dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=
        """)

    static let headerNames = ["from", "to", "subject", "date", "message-id", "from", "subject", "date"]

    static func ed25519Key() throws -> DKIMPrivateKey {
        try DKIMPrivateKey(algorithm: .ed25519SHA256, serialized: Array(Data(base64Encoded: ed25519Seed)!))
    }

    /// The RFC's tags in the RFC's order, including i= and q=, which Relay itself does not write.
    static func rfcTags(algorithm: DKIMAlgorithm, selector: String) -> [DKIMSigner.Tag] {
        [
            .init("v", "1"),
            .init("a", algorithm.rawValue),
            .init("c", "relaxed/relaxed"),
            .init("d", "football.example.com"),
            .init("i", "@football.example.com"),
            .init("q", "dns/txt"),
            .init("s", selector),
            .init("t", "1528637909"),
            .init("h", headerNames.joined(separator: " : "), breaks: .atColons),
        ]
    }

    @Test func publicKeysMatchTheRecords() throws {
        #expect(try Self.ed25519Key().publicKeyBase64 == Self.ed25519Public)
        #expect(try DKIMPrivateKey(unsafeRSAPEM: Self.rsaPEM).publicKeyBase64 == Self.rsaPublic)
    }

    @Test func bodyHashMatches() {
        #expect(DKIMSigner.bodyHash(MessageParts(Self.message)) == "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=")
    }

    /// The example message signed again with the RFC's key, selector and tags for `algorithm`.
    static func resign(_ algorithm: DKIMAlgorithm) throws -> [UInt8] {
        let (selector, privateKey) = algorithm == .ed25519SHA256
            ? ("brisbane", try ed25519Key())
            : ("test", try DKIMPrivateKey(unsafeRSAPEM: rsaPEM))
        let key = DKIMSigningKey(domain: "football.example.com", selector: selector, privateKey: privateKey)
        return try DKIMSigner.signatureField(for: message, key: key, tags: rfcTags(algorithm: algorithm, selector: selector),
                                             headerNames: headerNames)
    }

    @Test(arguments: DKIMAlgorithm.allCases)
    func signatureMatches(_ algorithm: DKIMAlgorithm) throws {
        let field = try Self.resign(algorithm)
        let expected = algorithm == .ed25519SHA256 ? Self.ed25519Field : Self.rsaField
        #expect(tags(of: field)["b"] == tags(of: expected)["b"])
        // Every other tag too (whitespace aside): v, a, c, d, i, q, s, t, h, bh.
        #expect(tags(of: field) == tags(of: expected))
    }

    /// The relaxed form of our field is the RFC's, apart from where FWS falls inside b=: proof that the text we
    /// hash is the text we send.
    @Test func canonicalFieldMatchesTheRFCsUpToB() throws {
        let field = try Self.resign(.ed25519SHA256)
        func canonicalWithoutB(_ field: [UInt8]) -> String {
            let parts = MessageParts(field + [0x0D, 0x0A])
            let relaxed = text(DKIMCanonicalization.relaxedHeader(name: text(Array(parts.fields[0].name)), value: Array(parts.fields[0].value)))
            return String(relaxed[..<relaxed.range(of: " b=")!.upperBound])
        }
        #expect(canonicalWithoutB(field) == canonicalWithoutB(Self.ed25519Field))
    }
}
