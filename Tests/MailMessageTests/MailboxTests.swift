import MailMessage
import Testing

struct MailboxParseFixture: Sendable, CustomTestStringConvertible {
    var input: String
    var displayName: String?
    var address: String
    var testDescription: String { input }
}

struct MailboxEncodeFixture: Sendable, CustomTestStringConvertible {
    var displayName: String?
    var address: String
    var headerValue: String
    var testDescription: String { headerValue }
}

@Suite("Mailbox")
struct MailboxTests {
    static let parses: [MailboxParseFixture] = [
        .init(input: "Alice <alice@example.com>", displayName: "Alice", address: "alice@example.com"),
        .init(input: "\"Smith, A.\" <a@b.example>", displayName: "Smith, A.", address: "a@b.example"),
        .init(input: "alice@example.com", displayName: nil, address: "alice@example.com"),
        .init(input: "<alice@example.com>", displayName: nil, address: "alice@example.com"),
        .init(input: "  Bob   Smith  <bob@example.org> ", displayName: "Bob Smith", address: "bob@example.org"),
        .init(input: "John Q. Public <jqp@example.com>", displayName: "John Q. Public", address: "jqp@example.com"),
        .init(input: #""Joe \"the Plumber\"" <joe@example.com>"#, displayName: #"Joe "the Plumber""#, address: "joe@example.com"),
        .init(input: "Jürgen Müller <j@example.de>", displayName: "Jürgen Müller", address: "j@example.de"),
        .init(input: "山田太郎 <taro@例子.广告>", displayName: "山田太郎", address: "taro@例子.广告"),
        .init(input: "=?UTF-8?Q?J=C3=BCrgen?= <j@example.de>", displayName: "Jürgen", address: "j@example.de"),
        .init(input: "=?UTF-8?B?SsO8cmdlbg==?= =?UTF-8?Q?_M=C3=BCller?= <j@example.de>", displayName: "Jürgen Müller", address: "j@example.de"),
        .init(input: "=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>", displayName: "André Pirard", address: "PIRARD@vm1.ulg.ac.be"),
        .init(input: "alice@example.com (Alice Liddell)", displayName: nil, address: "alice@example.com"),
        .init(input: "Alice (the first) <alice@example.com> (work)", displayName: "Alice", address: "alice@example.com"),
        .init(input: "\"john doe\"@example.com", displayName: nil, address: "\"john doe\"@example.com"),
        .init(input: "\"Folded\r\n Name\" <f@example.com>", displayName: "Folded Name", address: "f@example.com"),
        .init(input: "<@relay.example:route@example.com>", displayName: nil, address: "route@example.com"),
    ]

    @Test(arguments: parses)
    func parsesMailbox(_ fixture: MailboxParseFixture) throws {
        let mailbox = try Mailbox(parsing: fixture.input)
        #expect(mailbox.displayName == fixture.displayName)
        #expect(mailbox.address == (try EmailAddress(parsing: fixture.address)))
    }

    static let invalid: [InvalidAddressFixture] = [
        .init(input: "", message: "address is empty"),
        .init(input: "Smith, A. <a@b.example>", message: "display name contains unquoted \",\"; put the name in double quotes"),
        .init(input: "Alice@Home <alice@example.com>", message: "display name contains unquoted \"@\"; put the name in double quotes"),
        .init(input: "Alice <alice@example.com", message: "missing closing \">\""),
        .init(input: "Alice <>", message: "empty address \"<>\""),
        .init(input: "Alice <alice@example.com> extra", message: "unexpected text after \">\""),
        .init(input: "Alice <alice@-x.com>", message: "invalid domain label \"-x\""),
        .init(input: "\"Alice <a@b.example>", message: "unterminated quoted string"),
        .init(input: "Alice (unclosed <a@b.example>", message: "unterminated comment"),
        .init(input: "Alice alice@example.com", message: "invalid character space in local part"),
    ]

    @Test(arguments: invalid)
    func rejectsInvalidMailbox(_ fixture: InvalidAddressFixture) {
        #expect(throws: AddressError(fixture.message)) {
            try Mailbox(parsing: fixture.input)
        }
    }

    static let encodes: [MailboxEncodeFixture] = [
        .init(displayName: nil, address: "a@b.example", headerValue: "a@b.example"),
        .init(displayName: "Alice", address: "alice@example.com", headerValue: "Alice <alice@example.com>"),
        .init(displayName: "Alice Liddell", address: "alice@example.com", headerValue: "Alice Liddell <alice@example.com>"),
        .init(displayName: "Smith, A.", address: "a@b.example", headerValue: "\"Smith, A.\" <a@b.example>"),
        .init(displayName: "John Q. Public", address: "jqp@example.com", headerValue: "\"John Q. Public\" <jqp@example.com>"),
        .init(displayName: #"Joe "the Plumber" \o/"#, address: "joe@example.com", headerValue: #""Joe \"the Plumber\" \\o/" <joe@example.com>"#),
        .init(displayName: "Support: Team", address: "s@example.com", headerValue: "\"Support: Team\" <s@example.com>"),
        .init(displayName: "Jürgen", address: "j@example.de", headerValue: "=?UTF-8?Q?J=C3=BCrgen?= <j@example.de>"),
        .init(displayName: "Café Olé", address: "c@example.fr", headerValue: "=?UTF-8?B?Q2Fmw6kgT2zDqQ==?= <c@example.fr>"),
        .init(displayName: "Jürgen Müller", address: "j@example.de", headerValue: "=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <j@example.de>"),
        .init(displayName: "山田太郎", address: "taro@example.jp", headerValue: "=?UTF-8?B?5bGx55Sw5aSq6YOO?= <taro@example.jp>"),
        .init(displayName: "=?x?=", address: "x@example.com", headerValue: "=?UTF-8?B?PT94Pz0=?= <x@example.com>"),
        .init(displayName: "Line\r\nBreak", address: "x@example.com", headerValue: "\"Line  Break\" <x@example.com>"),
        .init(displayName: "", address: "x@example.com", headerValue: "x@example.com"),
        .init(displayName: "Name", address: "\"john doe\"@example.com", headerValue: "Name <\"john doe\"@example.com>"),
    ]

    @Test(arguments: encodes)
    func headerValueQuotesAndEncodes(_ fixture: MailboxEncodeFixture) throws {
        let mailbox = Mailbox(displayName: fixture.displayName, address: try EmailAddress(parsing: fixture.address))
        #expect(mailbox.headerValue() == fixture.headerValue)
    }

    static let roundTripNames: [String] = [
        "Alice", "Smith, A.", "John Q. Public", #"Joe "the Plumber""#, "Jürgen Müller", "山田太郎",
        "Ünïcödé, with \"quotes\" and (parens)", String(repeating: "Très long nom ", count: 12) + "fin",
        "emoji 👩‍👩‍👧‍👦 family", "a_b=c?d",
    ]

    @Test(arguments: roundTripNames)
    func headerValueParsesBack(_ name: String) throws {
        let mailbox = Mailbox(displayName: name, address: try EmailAddress(parsing: "someone@example.com"))
        let value = mailbox.headerValue()
        #expect(try Mailbox(parsing: value) == mailbox)
        // RFC 2047 §2: every encoded word is at most 75 characters.
        for word in value.split(separator: " ") where word.hasPrefix("=?") {
            #expect(word.count <= 75)
        }
    }

    @Test func parsesAddressLists() throws {
        let list = try Mailbox.parseList(#"Alice <a@example.com>, "Smith, B." <b@example.com>,c@example.com, Team: d@example.com, E <e@[IPv6:2001:db8::1]>;, undisclosed-recipients:;"#)
        #expect(list.map(\.address.description) == ["a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@[IPv6:2001:db8::1]"])
        #expect(list.map(\.displayName) == ["Alice", "Smith, B.", nil, nil, "E"])
    }

    @Test func descriptionIsReadable() throws {
        let mailbox = Mailbox(displayName: "Jürgen, J.", address: try EmailAddress(parsing: "j@example.de"))
        #expect(mailbox.description == "\"Jürgen, J.\" <j@example.de>")
    }
}
