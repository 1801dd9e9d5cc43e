import MailMessage
import Testing

struct ValidAddressFixture: Sendable, CustomTestStringConvertible {
    var input: String
    var localPart: String
    var domain: String
    var description: String
    var normalizedDomain: String
    var smtpUTF8 = false
    var testDescription: String { input }
}

struct InvalidAddressFixture: Sendable, CustomTestStringConvertible {
    var input: String
    var message: String
    var testDescription: String { input.count > 40 ? String(input.prefix(40)) + "…" : input }
}

private let long64 = String(repeating: "a", count: 64)
private let label63 = String(repeating: "d", count: 63)

@Suite("EmailAddress")
struct EmailAddressTests {
    static let valid: [ValidAddressFixture] = [
        .init(input: "alice@example.com", localPart: "alice", domain: "example.com", description: "alice@example.com", normalizedDomain: "example.com"),
        .init(input: "alice+newsletter@example.com", localPart: "alice+newsletter", domain: "example.com", description: "alice+newsletter@example.com", normalizedDomain: "example.com"),
        .init(input: "first.last@sub-domain.example.co.uk", localPart: "first.last", domain: "sub-domain.example.co.uk", description: "first.last@sub-domain.example.co.uk", normalizedDomain: "sub-domain.example.co.uk"),
        .init(input: "o'brien@example.ie", localPart: "o'brien", domain: "example.ie", description: "o'brien@example.ie", normalizedDomain: "example.ie"),
        .init(input: "\"john doe\"@example.com", localPart: "john doe", domain: "example.com", description: "\"john doe\"@example.com", normalizedDomain: "example.com"),
        .init(input: "\"john\"@example.com", localPart: "john", domain: "example.com", description: "john@example.com", normalizedDomain: "example.com"),
        .init(input: #""a\"b\\c"@example.com"#, localPart: #"a"b\c"#, domain: "example.com", description: #""a\"b\\c"@example.com"#, normalizedDomain: "example.com"),
        .init(input: "\"@\"@example.com", localPart: "@", domain: "example.com", description: "\"@\"@example.com", normalizedDomain: "example.com"),
        .init(input: "\"a..b\"@example.com", localPart: "a..b", domain: "example.com", description: "\"a..b\"@example.com", normalizedDomain: "example.com"),
        .init(input: "user@[192.0.2.1]", localPart: "user", domain: "[192.0.2.1]", description: "user@[192.0.2.1]", normalizedDomain: "[192.0.2.1]"),
        .init(input: "user@[IPv6:2001:db8::1]", localPart: "user", domain: "[IPv6:2001:db8::1]", description: "user@[IPv6:2001:db8::1]", normalizedDomain: "[ipv6:2001:db8::1]"),
        .init(input: "user@[IPv6:::ffff:192.0.2.1]", localPart: "user", domain: "[IPv6:::ffff:192.0.2.1]", description: "user@[IPv6:::ffff:192.0.2.1]", normalizedDomain: "[ipv6:::ffff:192.0.2.1]"),
        .init(input: "Alice@Example.COM.", localPart: "Alice", domain: "Example.COM", description: "Alice@Example.COM", normalizedDomain: "example.com"),
        .init(input: "  bob@example.org\t", localPart: "bob", domain: "example.org", description: "bob@example.org", normalizedDomain: "example.org"),
        .init(input: "postmaster@localhost", localPart: "postmaster", domain: "localhost", description: "postmaster@localhost", normalizedDomain: "localhost"),
        .init(input: "jürgen@example.de", localPart: "jürgen", domain: "example.de", description: "jürgen@example.de", normalizedDomain: "example.de", smtpUTF8: true),
        .init(input: "用户@例子.广告", localPart: "用户", domain: "例子.广告", description: "用户@例子.广告", normalizedDomain: "例子.广告", smtpUTF8: true),
        .init(input: "info@MÜNCHEN.de", localPart: "info", domain: "MÜNCHEN.de", description: "info@MÜNCHEN.de", normalizedDomain: "münchen.de", smtpUTF8: true),
        .init(input: "\(long64)@example.com", localPart: long64, domain: "example.com", description: "\(long64)@example.com", normalizedDomain: "example.com"),
        .init(input: "x@\(label63).com", localPart: "x", domain: "\(label63).com", description: "x@\(label63).com", normalizedDomain: "\(label63).com"),
        .init(input: "x@123.example", localPart: "x", domain: "123.example", description: "x@123.example", normalizedDomain: "123.example"),
    ]

    @Test(arguments: valid)
    func parsesValidAddress(_ fixture: ValidAddressFixture) throws {
        let address = try EmailAddress(parsing: fixture.input)
        #expect(address.localPart == fixture.localPart)
        #expect(address.domain == fixture.domain)
        #expect(address.description == fixture.description)
        #expect(address.normalizedDomain == fixture.normalizedDomain)
        #expect(address.requiresSMTPUTF8 == fixture.smtpUTF8)
        // The canonical form parses back to the same address.
        #expect(try EmailAddress(parsing: address.description) == address)
    }

    static let invalid: [InvalidAddressFixture] = [
        .init(input: "", message: "address is empty"),
        .init(input: "   ", message: "address is empty"),
        .init(input: "alice.example.com", message: "missing @"),
        .init(input: "@example.com", message: "missing local part"),
        .init(input: "alice@", message: "missing domain"),
        .init(input: "a@b@example.com", message: "more than one @"),
        .init(input: ".alice@example.com", message: "local part starts with a dot"),
        .init(input: "alice.@example.com", message: "local part ends with a dot"),
        .init(input: "al..ice@example.com", message: "local part contains consecutive dots"),
        .init(input: "al ice@example.com", message: "invalid character space in local part"),
        .init(input: "a(b)@example.com", message: "invalid character \"(\" in local part"),
        .init(input: "a,b@example.com", message: "invalid character \",\" in local part"),
        .init(input: "Alice <alice@example.com>", message: "unexpected angle bracket: a display name and <…> belong in a mailbox, not an address"),
        .init(input: "\"unterminated@example.com", message: "unterminated quoted local part"),
        .init(input: "\"a\"b@example.com", message: "unexpected \"b\" after quoted local part"),
        .init(input: "\"a\tb\"@example.com", message: "invalid character U+0009 in quoted local part"),
        .init(input: "\"\"@example.com", message: "missing local part"),
        .init(input: "\(long64)a@example.com", message: "local part longer than 64 octets"),
        .init(input: "\"\(String(repeating: "b", count: 62)) \"@example.com", message: "local part longer than 64 octets"),
        .init(input: "a@-x.com", message: "invalid domain label \"-x\""),
        .init(input: "a@x-.com", message: "invalid domain label \"x-\""),
        .init(input: "a@exa_mple.com", message: "invalid character \"_\" in domain"),
        .init(input: "a@exa mple.com", message: "invalid character space in domain"),
        .init(input: "a@example..com", message: "empty domain label"),
        .init(input: "a@.example.com", message: "empty domain label"),
        .init(input: "a@\(label63)d.com", message: "domain label longer than 63 octets"),
        .init(input: "a@" + Array(repeating: label63, count: 4).joined(separator: ".") + ".com", message: "domain longer than 255 octets"),
        .init(input: "\(long64)@" + [label63, label63, label63, String(repeating: "e", count: 58)].joined(separator: "."), message: "address longer than 254 octets"),
        .init(input: "a@192.0.2.1", message: "an IP address must be written as an address literal, e.g. [192.0.2.1]"),
        .init(input: "a@example.123", message: "top-level domain cannot be all-numeric"),
        .init(input: "a@[192.0.2.256]", message: "invalid IPv4 address literal \"[192.0.2.256]\""),
        .init(input: "a@[192.0.2]", message: "invalid IPv4 address literal \"[192.0.2]\""),
        .init(input: "a@[IPv6:2001:db8:::1]", message: "invalid IPv6 address literal \"[IPv6:2001:db8:::1]\""),
        .init(input: "a@[IPv6:1:2:3:4:5:6:7]", message: "invalid IPv6 address literal \"[IPv6:1:2:3:4:5:6:7]\""),
        .init(input: "a@[192.0.2.1", message: "unterminated address literal"),
        .init(input: "a@[x-tag:stuff]", message: "unsupported address literal \"[x-tag:stuff]\""),
    ]

    @Test(arguments: invalid)
    func rejectsInvalidAddress(_ fixture: InvalidAddressFixture) {
        #expect(throws: AddressError(fixture.message)) {
            try EmailAddress(parsing: fixture.input)
        }
    }

    @Test func equalityIgnoresDomainCaseButNotLocalPartCase() throws {
        #expect(try EmailAddress(parsing: "a@EXAMPLE.com") == EmailAddress(parsing: "a@example.com"))
        #expect(try EmailAddress(parsing: "A@example.com") != EmailAddress(parsing: "a@example.com"))
        let set: Set<EmailAddress> = [try EmailAddress(parsing: "a@x.org"), try EmailAddress(parsing: "a@X.ORG")]
        #expect(set.count == 1)
    }

    @Test func errorDescriptionIsTheMessage() {
        #expect(AddressError("missing @").description == "missing @")
    }
}
