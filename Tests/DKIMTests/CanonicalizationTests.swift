@testable import DKIM
import Testing

/// Relaxed canonicalisation (RFC 6376 §3.4.2, §3.4.4) and the header/body split it works on.
@Suite struct CanonicalizationTests {
    /// RFC 6376 §3.4.5: "A: X", "B : Y<HTAB><CRLF><HTAB>Z<SP><SP>", then a body with WSP runs and empty lines.
    static let rfcExample = crlf("A: X\nB : Y\t\n\tZ  \n\n C \nD \t E\n\n\n")

    @Test func rfc6376ExampleHeaders() {
        let parts = MessageParts(Self.rfcExample)
        #expect(parts.fields.count == 2)
        let canonical = parts.fields.map { field in
            DKIMCanonicalization.relaxedHeader(name: text(Array(field.name)), value: Array(field.value))
        }
        #expect(canonical.map(text) == ["a:X\r\n", "b:Y Z\r\n"])
    }

    @Test func rfc6376ExampleBody() {
        let parts = MessageParts(Self.rfcExample)
        #expect(text(DKIMCanonicalization.relaxedBody(Array(parts.body))) == " C\r\nD E\r\n")
    }

    struct HeaderFixture: Sendable, CustomTestStringConvertible {
        var name: String
        var value: String
        var expected: String
        var testDescription: String { "\(name):\(value.debugDescription)" }
    }

    @Test(arguments: [
        HeaderFixture(name: "Subject", value: " Hello", expected: "subject:Hello\r\n"),
        // Folding is undone and the WSP around the fold collapses to one SP.
        HeaderFixture(name: "Subject", value: " a long\r\n\t subject\r\n line", expected: "subject:a long subject line\r\n"),
        // Leading and trailing WSP of the value go, inner runs of SP and HTAB become one SP.
        HeaderFixture(name: "To", value: " \t a@example.com ,\t\t b@example.com \t ", expected: "to:a@example.com , b@example.com\r\n"),
        // The name is lower-cased and WSP before the colon (obsolete syntax) is dropped.
        HeaderFixture(name: "MIME-Version ", value: "1.0", expected: "mime-version:1.0\r\n"),
        HeaderFixture(name: "X-Empty", value: "", expected: "x-empty:\r\n"),
        HeaderFixture(name: "X-Blank", value: "  \r\n  ", expected: "x-blank:\r\n"),
        // 8-bit bytes are left alone; only the name's ASCII letters change case.
        HeaderFixture(name: "Subject", value: " Grüße  aus Köln", expected: "subject:Grüße aus Köln\r\n"),
        // Case inside the value is kept.
        HeaderFixture(name: "Message-ID", value: " <ABC@Example.COM>", expected: "message-id:<ABC@Example.COM>\r\n"),
    ])
    func relaxedHeader(_ fixture: HeaderFixture) {
        #expect(text(DKIMCanonicalization.relaxedHeader(name: fixture.name, value: Array(fixture.value.utf8))) == fixture.expected)
    }

    struct BodyFixture: Sendable, CustomTestStringConvertible {
        var label: String
        var body: String
        var expected: String
        var testDescription: String { label }
    }

    @Test(arguments: [
        // §3.4.4: the empty body canonicalises to nothing (it hashes as the empty string).
        BodyFixture(label: "empty body", body: "", expected: ""),
        BodyFixture(label: "only CRLFs", body: "\r\n\r\n\r\n", expected: ""),
        BodyFixture(label: "only whitespace lines", body: " \r\n\t\r\n  \t \r\n", expected: ""),
        BodyFixture(label: "trailing WSP", body: "line one  \r\nline two\t\r\n", expected: "line one\r\nline two\r\n"),
        BodyFixture(label: "WSP runs", body: "a  \t b\t\tc\r\n", expected: "a b c\r\n"),
        BodyFixture(label: "leading WSP becomes one SP", body: "\t\t indented\r\n", expected: " indented\r\n"),
        BodyFixture(label: "trailing empty lines", body: "text\r\n\r\n\r\n \r\n", expected: "text\r\n"),
        BodyFixture(label: "inner empty lines kept", body: "a\r\n\r\n\r\nb\r\n", expected: "a\r\n\r\n\r\nb\r\n"),
        BodyFixture(label: "missing final CRLF", body: "no newline", expected: "no newline\r\n"),
        BodyFixture(label: "missing final CRLF after WSP", body: "text\r\n  ", expected: "text\r\n"),
        // A bare LF is not a line end in DKIM: it stays an ordinary byte.
        BodyFixture(label: "bare LF", body: "a\nb\r\n", expected: "a\nb\r\n"),
    ])
    func relaxedBody(_ fixture: BodyFixture) {
        #expect(text(DKIMCanonicalization.relaxedBody(Array(fixture.body.utf8))) == fixture.expected)
    }

    @Test func foldedFieldsBelongToTheirField() {
        let parts = MessageParts(crlf("Subject: one\n two\n\tthree\nTo: x@example.com\n\nbody\n"))
        #expect(parts.fields.map(\.lowercasedName) == ["subject", "to"])
        #expect(text(Array(parts.fields[0].value)) == " one\r\n two\r\n\tthree")
        #expect(text(Array(parts.body)) == "body\r\n")
    }

    @Test func messageWithoutEmptyLineHasEmptyBody() {
        let parts = MessageParts(crlf("From: a@example.com\nSubject: no body\n"))
        #expect(parts.fields.count == 2)
        #expect(parts.body.isEmpty)
        // Nor does the last field need its CRLF.
        let unterminated = MessageParts(Array("From: a@example.com\r\nSubject: x".utf8))
        #expect(unterminated.fields.map { text(Array($0.value)) } == [" a@example.com", " x"])
        #expect(unterminated.body.isEmpty)
    }

    @Test func bodyStartsAfterTheFirstEmptyLineOnly() {
        let parts = MessageParts(crlf("From: a@example.com\n\nNot-A-Header: x\n\nmore\n"))
        #expect(parts.fields.count == 1)
        #expect(text(Array(parts.body)) == "Not-A-Header: x\r\n\r\nmore\r\n")
    }

    @Test func namesMatchCaseInsensitively() {
        let parts = MessageParts(crlf("FROM : a@example.com\nmessage-id: <x@y>\n\n"))
        #expect(parts.fields.map(\.lowercasedName) == ["from", "message-id"])
    }
}
