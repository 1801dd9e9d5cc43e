import SMTPCore
import Testing

@Suite struct EnhancedStatusCodeTests {
    @Test(arguments: [
        ("2.0.0", 2, 0, 0),
        ("5.1.1", 5, 1, 1),
        ("4.7.1", 4, 7, 1),
        ("5.7.26", 5, 7, 26),
        ("4.999.999", 4, 999, 999),
    ])
    func parsesValidCodes(text: String, statusClass: Int, subject: Int, detail: Int) throws {
        let code = try #require(EnhancedStatusCode(text))
        #expect(code.statusClass == statusClass)
        #expect(code.subject == subject)
        #expect(code.detail == detail)
        #expect(code.description == text)
    }

    @Test(arguments: [
        "", "5", "5.1", "5.1.", "3.1.1", "1.0.0", "5.01.1", "5.1.0001", "5.1000.1", "x.1.1", "5.1.1 ", " 5.1.1", "5..1",
        "55.1.1",
    ])
    func rejectsInvalidCodes(text: String) {
        #expect(EnhancedStatusCode(text) == nil)
    }
}
