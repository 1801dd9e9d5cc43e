import NIOCore
import SMTPCore
import Testing

/// One parse fixture: wire bytes in, replies out.
struct ReplyFixture: Sendable, CustomTestStringConvertible {
    let name: String
    let wire: String
    let replies: [SMTPReply]
    var testDescription: String { name }
}

/// A fixture that must fail with the given code.
struct BadReplyFixture: Sendable, CustomTestStringConvertible {
    let name: String
    let wire: String
    let error: SMTPReplyParseError.Code
    var testDescription: String { name }
}

private func code(_ text: String) -> EnhancedStatusCode? { EnhancedStatusCode(text) }

@Suite struct SMTPReplyParserTests {
    static let fixtures: [ReplyFixture] = [
        ReplyFixture(name: "single line", wire: "250 OK\r\n",
                     replies: [SMTPReply(code: 250, lines: ["OK"])]),
        ReplyFixture(name: "banner", wire: "220 mx.example.com ESMTP Postfix\r\n",
                     replies: [SMTPReply(code: 220, lines: ["mx.example.com ESMTP Postfix"])]),
        ReplyFixture(name: "code only", wire: "250\r\n",
                     replies: [SMTPReply(code: 250, lines: [""])]),
        ReplyFixture(name: "code and space", wire: "250 \r\n",
                     replies: [SMTPReply(code: 250, lines: [""])]),
        ReplyFixture(name: "multi-line EHLO",
                     wire: "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
                     replies: [SMTPReply(code: 250, lines: ["mx.example.com", "PIPELINING", "SIZE 10240000", "8BITMIME"])]),
        ReplyFixture(name: "multi-line banner", wire: "220-first\r\n220-second\r\n220 third\r\n",
                     replies: [SMTPReply(code: 220, lines: ["first", "second", "third"])]),
        ReplyFixture(name: "enhanced code", wire: "550 5.1.1 No such user\r\n",
                     replies: [SMTPReply(code: 550, enhancedCode: code("5.1.1"), lines: ["No such user"])]),
        ReplyFixture(name: "enhanced code on every line",
                     wire: "550-5.7.1 Rejected\r\n550-5.7.1 see https://example.com\r\n550 5.7.1 bye\r\n",
                     replies: [SMTPReply(code: 550, enhancedCode: code("5.7.1"), lines: ["Rejected", "see https://example.com", "bye"])]),
        ReplyFixture(name: "enhanced code alone", wire: "250 2.0.0\r\n",
                     replies: [SMTPReply(code: 250, enhancedCode: code("2.0.0"), lines: [""])]),
        ReplyFixture(name: "enhanced class mismatch stays in text", wire: "550 4.2.2 full\r\n",
                     replies: [SMTPReply(code: 550, enhancedCode: nil, lines: ["4.2.2 full"])]),
        ReplyFixture(name: "not an enhanced code (no space after)", wire: "250 2.0.0OK\r\n",
                     replies: [SMTPReply(code: 250, lines: ["2.0.0OK"])]),
        ReplyFixture(name: "version number is not a code", wire: "220 mail 5.1.12345 ready\r\n",
                     replies: [SMTPReply(code: 220, lines: ["mail 5.1.12345 ready"])]),
        ReplyFixture(name: "bare LF line ends", wire: "250-a\n250 b\n",
                     replies: [SMTPReply(code: 250, lines: ["a", "b"])]),
        ReplyFixture(name: "several replies in one read", wire: "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n",
                     replies: [
                         SMTPReply(code: 250, enhancedCode: code("2.1.0"), lines: ["Ok"]),
                         SMTPReply(code: 250, enhancedCode: code("2.1.5"), lines: ["Ok"]),
                         SMTPReply(code: 354, lines: ["go ahead"]),
                     ]),
        ReplyFixture(name: "incomplete line is held back", wire: "250 OK\r\n451 4.3.0 tempo",
                     replies: [SMTPReply(code: 250, lines: ["OK"])]),
        ReplyFixture(name: "latin-1 text is repaired", wire: "550 caf\u{E9}\r\n",
                     replies: [SMTPReply(code: 550, lines: ["caf\u{E9}"])]),
        ReplyFixture(name: "tab in text", wire: "250 a\tb\r\n",
                     replies: [SMTPReply(code: 250, lines: ["a\tb"])]),
    ]

    @Test(arguments: fixtures)
    func parses(fixture: ReplyFixture) throws {
        var parser = SMTPReplyParser()
        parser.append(ByteBuffer(string: fixture.wire))
        var replies: [SMTPReply] = []
        while let reply = try parser.nextReply() { replies.append(reply) }
        #expect(replies == fixture.replies)
    }

    @Test(arguments: fixtures)
    func parsesByteByByte(fixture: ReplyFixture) throws {
        var parser = SMTPReplyParser()
        var replies: [SMTPReply] = []
        for byte in fixture.wire.utf8 {
            parser.append(ByteBuffer(bytes: [byte]))
            while let reply = try parser.nextReply() { replies.append(reply) }
        }
        #expect(replies == fixture.replies)
    }

    static let badFixtures: [BadReplyFixture] = [
        BadReplyFixture(name: "no code", wire: "hello\r\n", error: .malformedLine),
        BadReplyFixture(name: "two digits", wire: "25 OK\r\n", error: .malformedLine),
        BadReplyFixture(name: "first digit 1", wire: "150 OK\r\n", error: .malformedLine),
        BadReplyFixture(name: "first digit 6", wire: "650 OK\r\n", error: .malformedLine),
        BadReplyFixture(name: "bad separator", wire: "250xOK\r\n", error: .malformedLine),
        BadReplyFixture(name: "empty line", wire: "\r\n", error: .malformedLine),
        BadReplyFixture(name: "control character", wire: "250 a\u{1}b\r\n", error: .malformedLine),
        BadReplyFixture(name: "code changes mid-reply", wire: "250-a\r\n251 b\r\n", error: .inconsistentCode),
        BadReplyFixture(name: "line too long", wire: "250 " + String(repeating: "x", count: 3000) + "\r\n", error: .lineTooLong),
        BadReplyFixture(name: "unterminated line too long", wire: "250 " + String(repeating: "x", count: 3000), error: .lineTooLong),
        BadReplyFixture(name: "too many lines", wire: String(repeating: "250-x\r\n", count: 300) + "250 x\r\n", error: .tooManyLines),
    ]

    @Test(arguments: badFixtures)
    func rejects(fixture: BadReplyFixture) {
        var parser = SMTPReplyParser()
        parser.append(ByteBuffer(string: fixture.wire))
        #expect(throws: SMTPReplyParseError.self) {
            while try parser.nextReply() != nil {}
        }
        var again = SMTPReplyParser()
        again.append(ByteBuffer(string: fixture.wire))
        do {
            while try again.nextReply() != nil {}
            Issue.record("expected an error")
        } catch {
            #expect(error.code == fixture.error)
        }
    }

    @Test func bufferedBytesAreReported() throws {
        var parser = SMTPReplyParser()
        parser.append(ByteBuffer(string: "220 go ahead\r\n250 injected\r\n"))
        #expect(try parser.nextReply() == SMTPReply(code: 220, lines: ["go ahead"]))
        #expect(parser.hasBufferedBytes)
        var clean = SMTPReplyParser()
        clean.append(ByteBuffer(string: "220 go ahead\r\n"))
        _ = try clean.nextReply()
        #expect(!clean.hasBufferedBytes)
    }
}

@Suite struct SMTPReplyTests {
    @Test(arguments: [
        (SMTPReply(code: 250, lines: ["OK"]), "250 OK\r\n"),
        (SMTPReply(code: 250, lines: [""]), "250 \r\n"),  // the space is always written (RFC 4954 "334 ")
        (SMTPReply(code: 250, lines: ["mx", "PIPELINING", "8BITMIME"]), "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
        (SMTPReply(code: 550, enhancedCode: EnhancedStatusCode("5.1.1"), lines: ["No such user"]), "550 5.1.1 No such user\r\n"),
        (SMTPReply(code: 451, enhancedCode: EnhancedStatusCode("4.3.0"), lines: ["a", "b"]), "451-4.3.0 a\r\n451 4.3.0 b\r\n"),
        (SMTPReply(code: 250, enhancedCode: EnhancedStatusCode("2.0.0"), lines: [""]), "250 2.0.0\r\n"),
    ])
    func encodesAndParsesBack(reply: SMTPReply, wire: String) throws {
        #expect(reply.encode() == wire)
        var parser = SMTPReplyParser()
        parser.append(ByteBuffer(string: wire))
        #expect(try parser.nextReply() == reply)
    }

    @Test(arguments: [
        (220, true, false, false, false),
        (250, true, false, false, false),
        (354, false, true, false, false),
        (421, false, false, true, false),
        (451, false, false, true, false),
        (550, false, false, false, true),
        (554, false, false, false, true),
    ])
    func classifies(code: Int, positive: Bool, intermediate: Bool, transient: Bool, permanent: Bool) {
        let reply = SMTPReply(code: code, text: "x")
        #expect(reply.isPositiveCompletion == positive)
        #expect(reply.isPositiveIntermediate == intermediate)
        #expect(reply.isTransient == transient)
        #expect(reply.isPermanent == permanent)
    }

    @Test func textJoinsLinesWithSpaces() {
        let reply = SMTPReply(code: 550, enhancedCode: EnhancedStatusCode("5.7.1"), lines: ["Message rejected.", "See policy."])
        #expect(reply.text == "Message rejected. See policy.")
        #expect(reply.description == "550 5.7.1 Message rejected. See policy.")
    }
}
