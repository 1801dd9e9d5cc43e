import SMTPCore
import Testing

/// A command line and the command it means; `canonical` is what encode() writes back (nil: the line itself).
struct CommandFixture: Sendable, CustomTestStringConvertible {
    let line: String
    let command: SMTPCommand
    let canonical: String?
    init(_ line: String, _ command: SMTPCommand, canonical: String? = nil) {
        self.line = line
        self.command = command
        self.canonical = canonical
    }
    var testDescription: String { line }
}

/// A line that must not parse, and the error code.
struct BadCommandFixture: Sendable, CustomTestStringConvertible {
    let line: String
    let code: SMTPCommandParseError.Code
    init(_ line: String, _ code: SMTPCommandParseError.Code) {
        self.line = line
        self.code = code
    }
    var testDescription: String { line.debugDescription }
}

private func p(_ keyword: String, _ value: String? = nil) -> SMTPParameter { SMTPParameter(keyword: keyword, value: value) }

@Suite struct SMTPCommandTests {
    static let fixtures: [CommandFixture] = [
        CommandFixture("EHLO relay.example.com", .ehlo("relay.example.com")),
        CommandFixture("ehlo relay.example.com", .ehlo("relay.example.com"), canonical: "EHLO relay.example.com"),
        CommandFixture("EHLO [127.0.0.1]", .ehlo("[127.0.0.1]")),
        CommandFixture("HELO relay.example.com", .helo("relay.example.com")),
        CommandFixture("MAIL FROM:<a@b>", .mailFrom(reversePath: "a@b", parameters: [])),
        CommandFixture("MAIL FROM:<>", .mailFrom(reversePath: "", parameters: [])),
        CommandFixture("mail from:<a@b>", .mailFrom(reversePath: "a@b", parameters: []), canonical: "MAIL FROM:<a@b>"),
        CommandFixture("MAIL FROM: <a@b>", .mailFrom(reversePath: "a@b", parameters: []), canonical: "MAIL FROM:<a@b>"),
        CommandFixture("MAIL FROM:a@b", .mailFrom(reversePath: "a@b", parameters: []), canonical: "MAIL FROM:<a@b>"),
        CommandFixture("MAIL FROM:<a@b> SIZE=123 BODY=8BITMIME SMTPUTF8",
                       .mailFrom(reversePath: "a@b", parameters: [p("SIZE", "123"), p("BODY", "8BITMIME"), p("SMTPUTF8")])),
        CommandFixture("MAIL FROM:<a@b> size=123", .mailFrom(reversePath: "a@b", parameters: [p("SIZE", "123")]),
                       canonical: "MAIL FROM:<a@b> SIZE=123"),
        CommandFixture("MAIL FROM:<a@b>  SIZE=1  ", .mailFrom(reversePath: "a@b", parameters: [p("SIZE", "1")]),
                       canonical: "MAIL FROM:<a@b> SIZE=1"),
        CommandFixture("MAIL FROM:<\"john smith\"@example.com>", .mailFrom(reversePath: "\"john smith\"@example.com", parameters: [])),
        CommandFixture("MAIL FROM:<\"a>b\"@example.com>", .mailFrom(reversePath: "\"a>b\"@example.com", parameters: [])),
        CommandFixture("MAIL FROM:<@relay1,@relay2:user@example.com>", .mailFrom(reversePath: "user@example.com", parameters: []),
                       canonical: "MAIL FROM:<user@example.com>"),
        CommandFixture("MAIL FROM:<j\u{F6}rg@b\u{FC}cher.de> SMTPUTF8", .mailFrom(reversePath: "j\u{F6}rg@b\u{FC}cher.de", parameters: [p("SMTPUTF8")])),
        CommandFixture("MAIL FROM:<a@b> ENVID=QQ314159", .mailFrom(reversePath: "a@b", parameters: [p("ENVID", "QQ314159")])),
        CommandFixture("RCPT TO:<c@d>", .rcptTo(forwardPath: "c@d", parameters: [])),
        CommandFixture("RCPT TO:<Postmaster>", .rcptTo(forwardPath: "Postmaster", parameters: [])),
        CommandFixture("rcpt to:<c@d> NOTIFY=SUCCESS,FAILURE", .rcptTo(forwardPath: "c@d", parameters: [p("NOTIFY", "SUCCESS,FAILURE")]),
                       canonical: "RCPT TO:<c@d> NOTIFY=SUCCESS,FAILURE"),
        CommandFixture("DATA", .data),
        CommandFixture("data", .data, canonical: "DATA"),
        CommandFixture("RSET", .rset),
        CommandFixture("NOOP", .noop),
        CommandFixture("NOOP anything", .noop, canonical: "NOOP"),
        CommandFixture("QUIT", .quit),
        CommandFixture("STARTTLS", .startTLS),
        CommandFixture("StartTLS", .startTLS, canonical: "STARTTLS"),
        CommandFixture("VRFY postmaster", .vrfy("postmaster")),
        CommandFixture("AUTH PLAIN", .auth(mechanism: "PLAIN", initialResponse: nil)),
        CommandFixture("AUTH PLAIN AGFsaWNlAHNlY3JldA==", .auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA==")),
        CommandFixture("AUTH PLAIN =", .auth(mechanism: "PLAIN", initialResponse: "")),
        CommandFixture("auth login", .auth(mechanism: "LOGIN", initialResponse: nil), canonical: "AUTH LOGIN"),
        CommandFixture("BDAT 1000", .bdat(size: 1000, last: false)),
        CommandFixture("BDAT 0 LAST", .bdat(size: 0, last: true)),
        CommandFixture("bdat 12 last", .bdat(size: 12, last: true), canonical: "BDAT 12 LAST"),
    ]

    @Test(arguments: fixtures)
    func parses(fixture: CommandFixture) throws {
        #expect(try SMTPCommand.parse(Array(fixture.line.utf8)) == fixture.command)
        #expect(try SMTPCommand.parse(Array((fixture.line + "\r\n").utf8)) == fixture.command)
        #expect(try SMTPCommand.parse(Array((fixture.line + "\n").utf8)) == fixture.command)
    }

    @Test(arguments: fixtures)
    func encodes(fixture: CommandFixture) throws {
        let wire = fixture.command.encode()
        #expect(wire == (fixture.canonical ?? fixture.line) + "\r\n")
        // Round trip: what we write parses back to the same command.
        #expect(try SMTPCommand.parse(Array(wire.utf8)) == fixture.command)
    }

    static let badFixtures: [BadCommandFixture] = [
        BadCommandFixture("", .unrecognizedCommand),
        BadCommandFixture("HELLO there", .unrecognizedCommand),
        BadCommandFixture("MAILFROM:<a@b>", .unrecognizedCommand),
        BadCommandFixture("EHLO", .syntaxError),
        BadCommandFixture("EHLO a b", .syntaxError),
        BadCommandFixture("MAIL TO:<a@b>", .syntaxError),
        BadCommandFixture("MAIL FROM:", .syntaxError),
        BadCommandFixture("MAIL FROM:<a@b", .syntaxError),
        BadCommandFixture("MAIL FROM:<a b@c>", .syntaxError),
        BadCommandFixture("MAIL FROM:<a@b>SIZE=1", .syntaxError),
        BadCommandFixture("MAIL FROM:<a@b> =1", .syntaxError),
        BadCommandFixture("MAIL FROM:<a@b> SIZE=", .syntaxError),
        BadCommandFixture("MAIL FROM:<a@b> -X=1", .syntaxError),
        BadCommandFixture("MAIL FROM:<<a@b>>", .syntaxError),
        BadCommandFixture("MAIL FROM:<@relay:>", .syntaxError),
        BadCommandFixture("RCPT TO:<>", .syntaxError),
        BadCommandFixture("RCPT FROM:<a@b>", .syntaxError),
        BadCommandFixture("DATA now", .syntaxError),
        BadCommandFixture("STARTTLS please", .syntaxError),
        BadCommandFixture("VRFY", .syntaxError),
        BadCommandFixture("AUTH", .syntaxError),
        BadCommandFixture("AUTH PLAIN a b", .syntaxError),
        BadCommandFixture("BDAT", .syntaxError),
        BadCommandFixture("BDAT -1", .syntaxError),
        BadCommandFixture("BDAT 10 FIRST", .syntaxError),
        BadCommandFixture("BDAT 99999999999999999999", .syntaxError),
        BadCommandFixture("MAIL FROM:<a@b>\rRCPT TO:<c@d>", .invalidCharacters),
        BadCommandFixture("EHLO a\u{0}b", .invalidCharacters),
    ]

    @Test(arguments: badFixtures)
    func rejects(fixture: BadCommandFixture) {
        do {
            let command = try SMTPCommand.parse(Array(fixture.line.utf8))
            Issue.record("parsed as \(command)")
        } catch {
            #expect(error.code == fixture.code)
        }
    }

    @Test func rejectsInvalidUTF8() {
        let bytes: [UInt8] = Array("MAIL FROM:<a".utf8) + [0xFF, 0xFE] + Array("@b>".utf8)
        #expect(throws: SMTPCommandParseError.self) { try SMTPCommand.parse(bytes) }
    }

    @Test func redactsAuthInTranscripts() {
        #expect(SMTPCommand.auth(mechanism: "PLAIN", initialResponse: "secret").redactedDescription == "AUTH PLAIN ***")
        #expect(SMTPCommand.mailFrom(reversePath: "a@b", parameters: [p("SIZE", "1")]).redactedDescription == "MAIL FROM:<a@b> SIZE=1")
    }

    @Test(arguments: [
        ("", true), ("a@b", true), ("\"john smith\"@example.com", true), ("j\u{F6}rg@example.de", true),
        ("a b@c", false), ("a@b\r\nRCPT TO:<x@y>", false), ("<a@b>", false), ("a@b>", false), ("\"unterminated@b", false),
        (String(repeating: "a", count: 250) + "@b.cd", false),
    ])
    func validatesPaths(address: String, valid: Bool) {
        #expect(SMTPCommand.isValidPath(address) == valid)
    }
}
