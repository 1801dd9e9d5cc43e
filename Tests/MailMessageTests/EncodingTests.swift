import Foundation
@testable import MailMessage
import Testing

struct EncodedWordFixture: Sendable, CustomTestStringConvertible {
    var raw: String
    var decoded: String
    var testDescription: String { raw }
}

struct QPFixture: Sendable, CustomTestStringConvertible {
    var name: String
    var input: [UInt8]
    var encoded: String
    var testDescription: String { name }
}

struct ParameterFixture: Sendable, CustomTestStringConvertible {
    var header: String
    var value: String
    var parameters: [String: String]
    var testDescription: String { header }
}

@Suite("Encodings")
struct EncodingTests {
    // MARK: RFC 2047

    static let encodedWords: [EncodedWordFixture] = [
        .init(raw: "plain text", decoded: "plain text"),
        .init(raw: "=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=", decoded: "Keld Jørn Simonsen"),
        .init(raw: "=?ISO-8859-1?Q?Andr=E9?= Pirard", decoded: "André Pirard"),
        .init(raw: "(=?ISO-8859-1?Q?a?= b)", decoded: "(a b)"),
        .init(raw: "(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", decoded: "(ab)"),
        .init(raw: "=?UTF-8?B?w6k=?= =?UTF-8?B?w6k=?=", decoded: "éé"),
        .init(raw: "=?UTF-8?B?4oI=?= =?UTF-8?B?rA==?=", decoded: "€"),
        .init(raw: "=?utf-8?q?a_b=3Dc?=", decoded: "a b=c"),
        .init(raw: "=?UTF-8*en?Q?hello?=", decoded: "hello"),
        .init(raw: "=?windows-1252?Q?=80uro?=", decoded: "€uro"),
        .init(raw: "=?utf-8?x?abc?=", decoded: "=?utf-8?x?abc?="),
        .init(raw: "=?utf-8?q?no end", decoded: "=?utf-8?q?no end"),
        .init(raw: "price =?UTF-8?Q?=E2=82=AC5?= today", decoded: "price €5 today"),
    ]

    @Test(arguments: encodedWords)
    func decodesEncodedWords(_ fixture: EncodedWordFixture) {
        #expect(MIMEHeader(name: "Subject", value: fixture.raw).decodedValue == fixture.decoded)
    }

    // MARK: Quoted-printable (RFC 2045 §6.7)

    static let quotedPrintable: [QPFixture] = [
        .init(name: "ascii", input: Array("hello".utf8), encoded: "hello"),
        .init(name: "equals", input: Array("a=b".utf8), encoded: "a=3Db"),
        .init(name: "utf-8", input: Array("Grüße".utf8), encoded: "Gr=C3=BC=C3=9Fe"),
        .init(name: "trailing space", input: Array("end \nnext\t\r\nlast ".utf8), encoded: "end=20\r\nnext=09\r\nlast=20"),
        .init(name: "inner space kept", input: Array("a b".utf8), encoded: "a b"),
        .init(name: "bare CR", input: Array("a\rb".utf8), encoded: "a\r\nb"),
        .init(name: "exactly 76", input: Array(String(repeating: "x", count: 76).utf8), encoded: String(repeating: "x", count: 76)),
        .init(name: "77 soft-breaks", input: Array(String(repeating: "x", count: 77).utf8), encoded: String(repeating: "x", count: 75) + "=\r\nxx"),
        .init(name: "no split inside =XX", input: Array((String(repeating: "x", count: 74) + "é").utf8), encoded: String(repeating: "x", count: 74) + "=\r\n=C3=A9"),
        .init(name: "nul", input: [0x61, 0x00], encoded: "a=00"),
    ]

    @Test(arguments: quotedPrintable)
    func encodesQuotedPrintable(_ fixture: QPFixture) {
        var out: [UInt8] = []
        QuotedPrintable.append(fixture.input, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == fixture.encoded)
        let expectedDecoded = Array(String(decoding: fixture.input, as: UTF8.self)
            .replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .replacingOccurrences(of: "\n", with: "\r\n").utf8)
        #expect(QuotedPrintable.decode(out) == expectedDecoded)
    }

    @Test func decodesSloppyQuotedPrintable() {
        let input = Array("soft =\nbreak=3d lower, bad =ZZ, trailing   \nline=\r\nend".utf8)
        #expect(String(decoding: QuotedPrintable.decode(input), as: UTF8.self) == "soft break= lower, bad =ZZ, trailing\nlineend")
    }

    @Test(arguments: [0, 1, 2, 3, 56, 57, 58, 100, 1000])
    func base64RoundTripsAndWraps(_ count: Int) {
        let data = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        var out: [UInt8] = []
        Base64.append(data, to: &out)
        let text = String(decoding: out, as: UTF8.self)
        #expect(text.replacingOccurrences(of: "\r\n", with: "") == Data(data).base64EncodedString())
        for line in text.components(separatedBy: "\r\n") { #expect(line.count <= 76) }
        #expect(!text.hasSuffix("\r\n"))
        #expect(Base64.decode(out) == data)
    }

    @Test func decodesSloppyBase64() {
        #expect(Base64.decode(Array("SGVs\nbG8g\r\n V29y bGQ".utf8)) == Array("Hello World".utf8))
    }

    // MARK: RFC 5322 date

    @Test(arguments: [
        (1_795_917_097.0, "Sun, 29 Nov 2026 01:51:37 +0000"),
        (951_868_799.0, "Tue, 29 Feb 2000 23:59:59 +0000"),
        (0.0, "Thu, 1 Jan 1970 00:00:00 +0000"),
        (-1.0, "Wed, 31 Dec 1969 23:59:59 +0000"),
        (4_107_542_400.5, "Mon, 1 Mar 2100 00:00:00 +0000"),
    ])
    func formatsDates(_ seconds: Double, _ expected: String) {
        #expect(RFC5322Date.format(Date(timeIntervalSince1970: seconds)) == expected)
    }

    // MARK: Parameters (RFC 2045 §5.1, RFC 2231)

    static let parameterFixtures: [ParameterFixture] = [
        .init(header: "text/plain", value: "text/plain", parameters: [:]),
        .init(header: "Text/HTML; Charset=\"UTF-8\" (a comment)", value: "text/html", parameters: ["charset": "UTF-8"]),
        .init(header: "multipart/mixed;\r\n boundary=\"=_a b\"", value: "multipart/mixed", parameters: ["boundary": "=_a b"]),
        .init(header: "application/x-stuff; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A", value: "application/x-stuff", parameters: ["title": "This is ***fun***"]),
        .init(header: "attachment; filename*0*=utf-8''%E2%82%AC%20rates; filename*1=\".txt\"", value: "attachment", parameters: ["filename": "€ rates.txt"]),
        .init(header: "attachment; filename*1*=%A4; filename*0*=iso-8859-1''price%20", value: "attachment", parameters: ["filename": "price ¤"]),
        .init(header: "attachment; filename=\"fallback.pdf\"; filename*=utf-8''r%C3%A9sum%C3%A9.pdf", value: "attachment", parameters: ["filename": "résumé.pdf"]),
        .init(header: "image/png; name=\"=?UTF-8?B?w6k=?=.png\"", value: "image/png", parameters: ["name": "é.png"]),
        .init(header: "text/plain; charset=us-ascii; format=flowed; ; junk", value: "text/plain", parameters: ["charset": "us-ascii", "format": "flowed"]),
        .init(header: "text/plain; name=\"a \\\"quoted\\\" name\"", value: "text/plain", parameters: ["name": "a \"quoted\" name"]),
    ]

    @Test(arguments: parameterFixtures)
    func parsesParameters(_ fixture: ParameterFixture) {
        let parsed = HeaderParameters.parse(fixture.header)
        #expect(parsed.value == fixture.value)
        #expect(parsed.parameters == fixture.parameters)
    }
}
