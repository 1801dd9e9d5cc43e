import DKIM
import Foundation
import Testing

/// Keys generated once for the whole target: RSA generation is the slow part of these tests.
enum TestKeys {
    static let rsa = try! DKIMPrivateKey.generate(.rsaSHA256)
    static let ed25519 = try! DKIMPrivateKey.generate(.ed25519SHA256)

    /// An RSA and an Ed25519 key for example.com, in that order.
    static var both: [DKIMSigningKey] {
        [DKIMSigningKey(domain: "example.com", selector: "relay-rsa", privateKey: rsa),
         DKIMSigningKey(domain: "example.com", selector: "relay-ed", privateKey: ed25519)]
    }
}

/// The shape of the fields DKIMSigner writes; dkimpy checks that they verify (DKIMPyVerificationTests).
@Suite struct SignerTests {
    static let time = Date(timeIntervalSince1970: 1_795_000_000.75)
    static let message = crlf("""
        From: Relay <news@example.com>
        To: a@example.net
        Subject: Hello
        To: b@example.net
        Date: Sun, 29 Nov 2026 10:00:00 +0000
        Message-ID: <1@example.com>
        X-Not-Signed: yes

        Body.

        """)

    /// The fields one by one: each starts at "DKIM-Signature:" on a line of its own.
    func split(_ fields: [UInt8]) -> [[UInt8]] {
        text(fields).components(separatedBy: "\r\nDKIM-Signature:").enumerated().map { index, part in
            crlf((index == 0 ? "" : "DKIM-Signature:") + part.replacingOccurrences(of: "\r\n", with: "\n"))
        }
    }

    @Test func oneFieldPerKeyInKeyOrder() throws {
        let fields = try DKIMSigner.signatureFields(for: Self.message, keys: TestKeys.both, time: Self.time)
        #expect(text(fields).hasSuffix("\r\n"))
        let each = split(fields)
        #expect(each.count == 2)
        #expect(tags(of: each[0])["a"] == "rsa-sha256")
        #expect(tags(of: each[0])["s"] == "relay-rsa")
        #expect(tags(of: each[1])["a"] == "ed25519-sha256")
        #expect(tags(of: each[1])["s"] == "relay-ed")
    }

    @Test func tagsAreTheDocumentedOnes() throws {
        let fields = try DKIMSigner.signatureFields(for: Self.message, keys: [TestKeys.both[1]], time: Self.time)
        let tagList = tags(of: fields)
        #expect(Set(tagList.keys) == ["v", "a", "c", "d", "s", "t", "h", "bh", "b"])
        #expect(tagList["v"] == "1")
        #expect(tagList["c"] == "relaxed/relaxed")
        #expect(tagList["d"] == "example.com")
        #expect(tagList["t"] == "1795000000")
        #expect(tagList["l"] == nil)
        #expect(Data(base64Encoded: tagList["b"] ?? "")?.count == 64)
        #expect(Data(base64Encoded: tagList["bh"] ?? "")?.count == 32)
        // v= first and b= last: the order RFC 6376 §3.5 recommends, and b= last lets it be filled in after hashing.
        #expect(text(fields).hasPrefix("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;"))
    }

    @Test func headerListRepeatsEachInstanceAndOversignsFrom() throws {
        let fields = try DKIMSigner.signatureFields(for: Self.message, keys: [TestKeys.both[1]], time: Self.time)
        #expect(tags(of: fields)["h"] == "from:to:to:subject:date:message-id:from")
    }

    @Test func everySignedNameIsListedWhenPresent() throws {
        let message = crlf("""
            Reply-To: r@example.com
            List-Unsubscribe-Post: List-Unsubscribe=One-Click
            list-unsubscribe: <https://example.com/u>
            content-type: text/plain; charset=utf-8
            MIME-Version: 1.0
            Message-ID: <2@example.com>
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            SUBJECT: s
            Cc: c@example.net
            To: t@example.net
            From: f@example.com

            x

            """)
        let fields = try DKIMSigner.signatureFields(for: message, keys: [TestKeys.both[1]], time: Self.time)
        #expect(tags(of: fields)["h"]
            == "from:to:cc:subject:date:message-id:mime-version:content-type:reply-to:list-unsubscribe:list-unsubscribe-post:from")
    }

    @Test func linesFitIn78Columns() throws {
        let fields = try DKIMSigner.signatureFields(for: crlf("""
            From: f@example.com
            To: a@example.net
            Cc: c@example.net
            Subject: s
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            Message-ID: <2@example.com>
            MIME-Version: 1.0
            Content-Type: text/plain
            Reply-To: r@example.com
            List-Unsubscribe: <mailto:u@example.com>
            List-Unsubscribe-Post: List-Unsubscribe=One-Click

            x

            """), keys: TestKeys.both, time: Self.time)
        let all = lines(of: fields)
        #expect(all.count > 6)
        for line in all { #expect(line.utf8.count <= 78, "\(line)") }
        for line in all where !line.hasPrefix("DKIM-Signature:") { #expect(line.hasPrefix(" ")) }
    }

    @Test func signPrependsTheFields() throws {
        let fields = try DKIMSigner.signatureFields(for: Self.message, keys: TestKeys.both, time: Self.time)
        #expect(try DKIMSigner.sign(Self.message, keys: TestKeys.both, time: Self.time) == fields + Self.message)
    }

    @Test func ed25519SignaturesAreDeterministic() throws {
        let key = [TestKeys.both[1]]
        #expect(try DKIMSigner.signatureFields(for: Self.message, keys: key, time: Self.time)
            == DKIMSigner.signatureFields(for: Self.message, keys: key, time: Self.time))
    }

    /// One parsed key serves many concurrent signers (the delivery workers share it), with identical results.
    @Test func keysAreSharedAcrossTasks() async throws {
        let keys = TestKeys.both
        let expected = try DKIMSigner.signatureFields(for: Self.message, keys: keys, time: Self.time)
        let results = try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<64 {
                group.addTask { try DKIMSigner.signatureFields(for: Self.message, keys: keys, time: Self.time) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 64)
        // PKCS#1 v1.5 and PureEdDSA are both deterministic, so every run writes the same bytes.
        #expect(results.allSatisfy { $0 == expected })
    }

    @Test func noKeysNoFields() throws {
        #expect(try DKIMSigner.signatureFields(for: Self.message, keys: [], time: Self.time).isEmpty)
    }

    @Test(arguments: [("exa mple.com", "s"), ("example.com; x=y", "s"), ("", "s"), ("example.com", "a\r\nb"), ("example.com", "")])
    func identitiesThatWouldInjectTextAreRefused(_ domain: String, _ selector: String) {
        let key = DKIMSigningKey(domain: domain, selector: selector, privateKey: TestKeys.ed25519)
        let error = #expect(throws: DKIMError.self) { try DKIMSigner.signatureFields(for: Self.message, keys: [key], time: Self.time) }
        #expect(error?.code == .invalidSigningIdentity)
    }
}
