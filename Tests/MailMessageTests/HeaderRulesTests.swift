import MailMessage
import Testing

struct HeaderRuleFixture: Sendable, CustomTestStringConvertible {
    var text: String
    var expected: Bool
    var testDescription: String { (text.count > 30 ? String(text.prefix(30)) + "…" : text).debugDescription + " → \(expected)" }
}

@Suite("HeaderRules")
struct HeaderRulesTests {
    static let names: [HeaderRuleFixture] = [
        .init(text: "X-Campaign", expected: true),
        .init(text: "List-Unsubscribe", expected: true),
        .init(text: "X-!#$%&'*+-.^_`|~", expected: true),
        .init(text: String(repeating: "X", count: 76), expected: true),
        .init(text: String(repeating: "X", count: 77), expected: false),
        .init(text: "", expected: false),
        .init(text: "X Campaign", expected: false),
        .init(text: "X-Campaign:", expected: false),
        .init(text: "X-Cämpaign", expected: false),
        .init(text: "X-Evil\r\nBcc", expected: false),
        .init(text: "X-Tab\t", expected: false),
    ]

    @Test(arguments: names)
    func validatesNames(_ fixture: HeaderRuleFixture) {
        #expect(HeaderRules.isValidName(fixture.text) == fixture.expected)
    }

    static let values: [HeaderRuleFixture] = [
        .init(text: "", expected: true),
        .init(text: "plain value", expected: true),
        .init(text: "tab\tseparated", expected: true),
        .init(text: "Grüße, 日本語 ✓", expected: true),
        .init(text: "<https://example.com/unsubscribe?id=1>, <mailto:u@example.com>", expected: true),
        .init(text: String(repeating: "v", count: 2000), expected: true),
        .init(text: String(repeating: "v", count: 2001), expected: false),
        .init(text: String(repeating: "é", count: 1001), expected: false),
        .init(text: "injected\r\nBcc: victim@example.com", expected: false),
        .init(text: "bare\nLF", expected: false),
        .init(text: "bare\rCR", expected: false),
        .init(text: "nul\u{0}byte", expected: false),
        .init(text: "bell\u{7}", expected: false),
        .init(text: "del\u{7F}", expected: false),
    ]

    @Test(arguments: values)
    func validatesValues(_ fixture: HeaderRuleFixture) {
        #expect(HeaderRules.isValidValue(fixture.text) == fixture.expected)
    }

    static let structural: [HeaderRuleFixture] = [
        .init(text: "From", expected: true),
        .init(text: "to", expected: true),
        .init(text: "CC", expected: true),
        .init(text: "Bcc", expected: true),
        .init(text: "Subject", expected: true),
        .init(text: "Date", expected: true),
        .init(text: "Message-ID", expected: true),
        .init(text: "message-id", expected: true),
        .init(text: "MIME-Version", expected: true),
        .init(text: "Content-Type", expected: true),
        .init(text: "content-transfer-encoding", expected: true),
        .init(text: "Content-Anything", expected: true),
        .init(text: "Return-Path", expected: true),
        .init(text: "Received", expected: true),
        .init(text: "DKIM-Signature", expected: true),
        .init(text: "Sender", expected: true),
        .init(text: "Reply-To", expected: true),
        .init(text: "X-Mailer", expected: false),
        .init(text: "List-Unsubscribe", expected: false),
        .init(text: "In-Reply-To", expected: false),
        .init(text: "References", expected: false),
        .init(text: "X-Content-Type", expected: false),
        .init(text: "Contents", expected: false),
    ]

    @Test(arguments: structural)
    func knowsStructuralHeaders(_ fixture: HeaderRuleFixture) {
        #expect(HeaderRules.isStructural(fixture.text) == fixture.expected)
    }
}
