import DKIM
import Foundation
import RelayTestSupport
import Testing

/// Signatures checked by dkimpy (Tests/Peers/dkim_verify.py), an implementation that shares no code with ours.
/// Each message carries two signatures, RSA-2048 and Ed25519, and both must verify.
@Suite struct DKIMPyVerificationTests {
    struct Fixture: Sendable, CustomTestStringConvertible {
        var label: String
        var message: [UInt8]
        var testDescription: String { label }
    }

    static let fixtures: [Fixture] = [
        Fixture(label: "folded headers", message: crlf("""
            From: "Relay Newsletter" <news@example.com>
            To: "A Person" <a@example.net>,
            \t"Another Person" <b@example.net>,
               "Third" <c@example.net>
            Subject: A subject long enough that it was folded
             onto a second line\tand a third
            \t  with odd whitespace
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            Message-ID: <folded@example.com>
            MIME-Version: 1.0
            Content-Type: text/plain;
             charset=us-ascii

            Hello.

            """)),
        Fixture(label: "UTF-8 subject and 8bit body", message: crlf("""
            From: =?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <j@example.com>
            To: b@example.net
            Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4g4pyT?=
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            Message-ID: <utf8@example.com>
            MIME-Version: 1.0
            Content-Type: text/plain; charset=utf-8
            Content-Transfer-Encoding: 8bit

            Grüße aus Köln — ✓ 日本語のテキスト
            Zweite Zeile mit  doppelten   Leerzeichen\t

            """)),
        Fixture(label: "multipart with a base64 attachment", message: crlf("""
            From: reports@example.com
            To: b@example.net
            Subject: Your report
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            Message-ID: <multipart@example.com>
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="=_relay_b0undary"

            This is a multi-part message in MIME format.

            --=_relay_b0undary
            Content-Type: text/plain; charset=us-ascii

            See the attachment.

            --=_relay_b0undary
            Content-Type: application/octet-stream; name="report.bin"
            Content-Disposition: attachment; filename="report.bin"
            Content-Transfer-Encoding: base64

            \(Data((0..<300).map { UInt8($0 % 256) }).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed]))
            --=_relay_b0undary--

            """)),
        Fixture(label: "List-Unsubscribe and List-Unsubscribe-Post", message: crlf("""
            From: news@example.com
            To: b@example.net
            Subject: Weekly news
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            Message-ID: <list@example.com>
            List-Unsubscribe: <https://example.com/unsubscribe/opaque-token-1234567890abcdef>,
             <mailto:unsubscribe@example.com?subject=unsubscribe>
            List-Unsubscribe-Post: List-Unsubscribe=One-Click
            Reply-To: support@example.com
            Cc: cc@example.net

            News.

            """)),
        Fixture(label: "repeated To", message: crlf("""
            From: a@example.com
            To: first@example.net
            Subject: Two To fields
            To: second@example.net
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            Message-ID: <twoto@example.com>

            Hi both.

            """)),
        Fixture(label: "trailing blank lines in the body", message: crlf("""
            From: a@example.com
            To: b@example.net
            Subject: Trailing lines
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            Message-ID: <trailing@example.com>

            Text.\u{20}\u{20}



            \u{20}\t

            """)),
        Fixture(label: "no body", message: crlf("""
            From: a@example.com
            To: b@example.net
            Subject: Headers only
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            Message-ID: <nobody@example.com>

            """)),
        Fixture(label: "empty body", message: crlf("""
            From: a@example.com
            To: b@example.net
            Subject: Empty body
            Message-ID: <empty@example.com>


            """)),
        Fixture(label: "long lines", message: crlf("""
            From: a@example.com
            To: b@example.net
            Subject: \(String(repeating: "long subject words ", count: 40))
            Date: Sun, 29 Nov 2026 10:00:00 +0000
            Message-ID: <long-\(String(repeating: "x", count: 200))@example.com>

            \(String(repeating: "0123456789", count: 99))
            \(String(repeating: "a b\t", count: 200))

            """)),
    ]

    static let signingTime = Date(timeIntervalSince1970: 1_795_000_000)

    /// The TXT records of the test keys, keyed by the name dkimpy looks up.
    static var records: [String: String] {
        Dictionary(uniqueKeysWithValues: TestKeys.both.map { ("\($0.selector)._domainkey.\($0.domain)", $0.privateKey.dnsRecord) })
    }

    struct Verdict {
        var status: Int32
        var signatures: [[String: Any]]
        var output: String

        var verified: [Bool] { signatures.map { $0["verified"] as? Bool ?? false } }
    }

    /// Writes `message` and the records to a temporary directory and runs dkim_verify.py on them.
    static func verify(_ message: [UInt8], records: [String: String] = records) async throws -> Verdict {
        let directory = NSTemporaryDirectory() + "relay-dkim-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data(message).write(to: URL(fileURLWithPath: directory + "/message.eml"))
        try JSONSerialization.data(withJSONObject: records).write(to: URL(fileURLWithPath: directory + "/records.json"))
        let (status, output) = try await runToCompletion(try findExecutable("python3"), [
            try peerScript("dkim_verify.py"), directory + "/message.eml", directory + "/records.json",
        ])
        // The report is the last line that is a JSON object; anything before it is Python's noise.
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let signatures = object["signatures"] as? [[String: Any]] else {
            throw TestSupportError("dkim_verify.py gave no report (is dkimpy installed? scripts/install-test-peers installs it): \(output)")
        }
        return Verdict(status: status, signatures: signatures, output: output)
    }

    @Test(arguments: fixtures)
    func bothSignaturesVerify(_ fixture: Fixture) async throws {
        let signed = try DKIMSigner.sign(fixture.message, keys: TestKeys.both, time: Self.signingTime)
        let verdict = try await Self.verify(signed)
        #expect(verdict.signatures.map { $0["algorithm"] as? String } == ["rsa-sha256", "ed25519-sha256"])
        #expect(verdict.verified == [true, true], "\(verdict.output)")
        #expect(verdict.status == 0)
    }

    /// The checker is not vacuous: one body byte changed after signing and both signatures fail.
    @Test func changedBodyFails() async throws {
        var signed = try DKIMSigner.sign(Self.fixtures[0].message, keys: TestKeys.both, time: Self.signingTime)
        let index = try #require(signed.lastIndex(of: UInt8(ascii: "H")))
        signed[index] = UInt8(ascii: "J")
        let verdict = try await Self.verify(signed)
        #expect(verdict.signatures.count == 2)
        #expect(verdict.verified == [false, false], "\(verdict.output)")
        #expect(verdict.status != 0)
    }

    /// Oversigning: a second From added after signing (at the top, where it would be displayed) breaks both.
    @Test func addedFromFails() async throws {
        let signed = try DKIMSigner.sign(Self.fixtures[4].message, keys: TestKeys.both, time: Self.signingTime)
        let verdict = try await Self.verify(crlf("From: attacker@example.org\n") + signed)
        #expect(verdict.verified == [false, false], "\(verdict.output)")
    }

    /// A signed field changed after signing breaks both; an unsigned one added does not.
    @Test func signedHeadersAreCoveredAndOthersAreNot() async throws {
        let signed = try DKIMSigner.sign(Self.fixtures[4].message, keys: TestKeys.both, time: Self.signingTime)
        let changed = Array(text(signed).replacingOccurrences(of: "Subject: Two To fields", with: "Subject: Two To Fields").utf8)
        #expect(try await Self.verify(changed).verified == [false, false])
        let added = Array(text(signed).replacingOccurrences(of: "Message-ID:", with: "X-Added: yes\r\nMessage-ID:").utf8)
        #expect(try await Self.verify(added).verified == [true, true])
    }

    /// The RFC 8463 example verifies with the script too, so a pass from it means what it says.
    @Test func rfc8463ExampleVerifies() async throws {
        let message = RFC8463KnownAnswerTests.ed25519Field + [0x0D, 0x0A] + RFC8463KnownAnswerTests.rsaField + [0x0D, 0x0A]
            + RFC8463KnownAnswerTests.message
        let verdict = try await Self.verify(message, records: [
            "brisbane._domainkey.football.example.com": "v=DKIM1; k=ed25519; p=\(RFC8463KnownAnswerTests.ed25519Public)",
            "test._domainkey.football.example.com": "v=DKIM1; k=rsa; p=\(RFC8463KnownAnswerTests.rsaPublic)",
        ])
        #expect(verdict.verified == [true, true], "\(verdict.output)")
    }
}
