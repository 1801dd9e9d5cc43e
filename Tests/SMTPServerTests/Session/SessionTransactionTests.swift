import NIOCore
import SMTPCore
import Testing
#if canImport(SMTPServerSession)
import SMTPServerSession
#else
import SMTPServer
#endif

/// MAIL, RCPT, DATA and the end of data, as transcripts.
@Suite struct SessionTransactionTests {
    @Test func transactionBeforeAuthentication() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: true)
        _ = session.connected()
        _ = session.line("EHLO client.example")
        expectReply(session.line("MAIL FROM:<a@tenant.example>"), 530, "5.7.0", textContains: "Authentication required")
        expectReply(session.line("RCPT TO:<b@example.net>"), 530, "5.7.0")
        expectReply(session.line("DATA"), 530, "5.7.0")
    }

    @Test func fullTransaction() {
        var session = SMTPServerSession.authenticated()
        #expect(session.line("MAIL FROM:<app@tenant.example> BODY=8BITMIME SMTPUTF8 SIZE=20") ==
            .checkSender(principal: "tenant-1", address: "app@tenant.example"))
        #expect(session.isBusy)
        #expect(session.senderChecked(.accepted) ==
            .reply(SMTPReply(code: 250, enhancedCode: EnhancedStatusCode("2.1.0"), text: "Sender <app@tenant.example> OK")))
        expectReply(session.line("RCPT TO:<b@example.net>"), 250, "2.1.5")
        expectReply(session.line("RCPT TO:<Grüße@bücher.example>"), 250, "2.1.5")
        expectReply(session.line("DATA"), 354, nil)
        #expect(session.expectsRawData)
        #expect(session.data("Subject: hi\r\n\r\n..dot\r\n") == .none)
        let action = session.data(".\r\n")
        #expect(action == .commit(SubmittedMessage(
            principal: "tenant-1", mailFrom: "app@tenant.example", recipients: ["b@example.net", "Grüße@bücher.example"],
            data: Array("Subject: hi\r\n\r\n.dot\r\n".utf8), heloName: "client.example", remoteAddress: "192.0.2.7",
            tlsActive: true, requiresSMTPUTF8: true, eightBitMIME: true)))
        #expect(!session.expectsRawData)
        #expect(session.isBusy)
        #expect(session.takeRemainingAfterData() == nil)
        let queued = SMTPReply(code: 250, enhancedCode: EnhancedStatusCode("2.0.0"), text: "Queued as 01J")
        #expect(session.messageCommitted(queued) == .reply(queued))
        #expect(!session.isBusy)
        // The transaction is over.
        expectReply(session.line("RCPT TO:<b@example.net>"), 503, "5.5.1")
        #expect(session.line("MAIL FROM:<>") == .checkSender(principal: "tenant-1", address: ""))
    }

    @Test func backendFailureRepliesAreSentAsIs() {
        for reply in [SMTPReply(code: 451, enhancedCode: EnhancedStatusCode("4.3.0"), text: "Database unavailable, try again later"),
                      SMTPReply(code: 550, enhancedCode: EnhancedStatusCode("5.7.1"), text: "Header From domain not registered")] {
            var session = SMTPServerSession.inTransaction()
            _ = session.line("DATA")
            guard case .commit = session.data("x\r\n.\r\n") else {
                Issue.record("expected commit")
                return
            }
            #expect(session.messageCommitted(reply) == .reply(reply))
            expectReply(session.line("DATA"), 503, "5.5.1")
        }
    }

    @Test func senderRejectedByBackend() {
        var session = SMTPServerSession.authenticated()
        _ = session.line("MAIL FROM:<ceo@bank.example>")
        let rejection = SMTPReply(code: 550, enhancedCode: EnhancedStatusCode("5.7.1"), text: "Sender domain not registered to this account")
        #expect(session.senderChecked(.rejected(rejection)) == .reply(rejection))
        expectReply(session.line("RCPT TO:<b@example.net>"), 503, "5.5.1")
        #expect(session.line("MAIL FROM:<app@tenant.example>") == .checkSender(principal: "tenant-1", address: "app@tenant.example"))
    }

    @Test func mailParameters() {
        var session = SMTPServerSession.authenticated()
        expectReply(session.line("MAIL FROM:<a@tenant.example> SIZE=1000001"), 552, "5.3.4")
        expectReply(session.line("MAIL FROM:<a@tenant.example> SIZE=99999999999999999999"), 501, "5.5.4")
        expectReply(session.line("MAIL FROM:<a@tenant.example> SIZE=abc"), 501, "5.5.4")
        expectReply(session.line("MAIL FROM:<a@tenant.example> SIZE"), 501, "5.5.4")
        expectReply(session.line("MAIL FROM:<a@tenant.example> BODY=BINARYMIME"), 501, "5.5.4")
        expectReply(session.line("MAIL FROM:<a@tenant.example> SMTPUTF8=yes"), 501, "5.5.4")
        expectReply(session.line("MAIL FROM:<a@tenant.example> BODY=7BIT BODY=7BIT"), 501, "5.5.4")
        expectReply(session.line("MAIL FROM:<a@tenant.example> RET=HDRS"), 555, "5.5.4")
        expectReply(session.line("MAIL FROM:<a@tenant.example> X-FOO"), 555, "5.5.4")
        #expect(session.line("MAIL FROM:<a@tenant.example> SIZE=1000000 BODY=7bit AUTH=<>") ==
            .checkSender(principal: "tenant-1", address: "a@tenant.example"))
    }

    @Test func sevenBitBodyIsNotEightBit() {
        var session = SMTPServerSession.authenticated()
        _ = session.line("MAIL FROM:<a@tenant.example> BODY=7BIT")
        _ = session.senderChecked(.accepted)
        _ = session.line("RCPT TO:<b@example.net>")
        _ = session.line("DATA")
        guard case .commit(let message) = session.data(".\r\n") else {
            Issue.record("expected commit")
            return
        }
        #expect(!message.eightBitMIME)
        #expect(!message.requiresSMTPUTF8)
        #expect(message.data.isEmpty)
    }

    @Test(arguments: ["MAIL FROM:<nodomain>", "MAIL FROM:<a@>", "MAIL FROM:<@b.example>", "MAIL FROM:<a@b..example>",
                      "MAIL FROM:<a@b.example", "MAIL FROM:<a b@c.example>", "MAIL FROM:<a@b_c.example>",
                      "MAIL FROM:<@r1,@r2:@b.example:c@d.example>", "MAIL FROM:<.a@b.example>", "MAIL FROM:<a..b@c.example>",
                      "MAIL FROM:<a(comment)@b.example>"])
    func invalidSender(_ line: String) {
        var session = SMTPServerSession.authenticated()
        expectReply(session.line(line), 501, "5.1.7")
    }

    @Test func nestedMail() {
        var session = SMTPServerSession.inTransaction()
        expectReply(session.line("MAIL FROM:<a@tenant.example>"), 503, "5.5.1")
    }

    @Test func rcptWithoutMail() {
        var session = SMTPServerSession.authenticated()
        expectReply(session.line("RCPT TO:<b@example.net>"), 503, "5.5.1")
    }

    @Test(arguments: ["RCPT TO:<>", "RCPT TO:<postmaster>", "RCPT TO:<b@example.net", "RCPT TO:<b@[1.2.3.4>",
                      "RCPT TO:<b@-->x", "RCPT TO:<a@b@>", "RCPT TO:<\"unterminated@example.net>"])
    func invalidRecipient(_ line: String) {
        var session = SMTPServerSession.inTransaction(to: [])
        expectReply(session.line(line), 501, "5.1.3")
    }

    @Test func recipientParametersAreNotSupported() {
        var session = SMTPServerSession.inTransaction(to: [])
        expectReply(session.line("RCPT TO:<b@example.net> NOTIFY=NEVER"), 555, "5.5.4")
    }

    @Test(arguments: ["b@[192.0.2.1]", "\"john smith\"@example.net", "\"a@b\"@example.net", "o'brien+tag@example.net",
                      "a.b.c@sub.example.net", "x@localhost"])
    func validRecipient(_ address: String) {
        var session = SMTPServerSession.inTransaction(to: [])
        expectReply(session.line("RCPT TO:<\(address)>"), 250, "2.1.5")
    }

    @Test func sourceRouteIsDropped() {
        var session = SMTPServerSession.inTransaction(to: [])
        #expect(session.line("RCPT TO:<@relay.example:b@example.net>") ==
            .reply(SMTPReply(code: 250, enhancedCode: EnhancedStatusCode("2.1.5"), text: "Recipient <b@example.net> OK")))
    }

    @Test func nonASCIIAddressesNeedSMTPUTF8() {
        var session = SMTPServerSession.authenticated()
        expectReply(session.line("MAIL FROM:<jörg@tenant.example>"), 553, "5.6.7")
        #expect(session.line("MAIL FROM:<a@tenant.example>") == .checkSender(principal: "tenant-1", address: "a@tenant.example"))
        _ = session.senderChecked(.accepted)
        expectReply(session.line("RCPT TO:<jörg@example.net>"), 553, "5.6.7")
    }

    @Test func recipientLimit() {
        // A configured 5 is clamped to 100 (RFC 5321 §4.5.3.1.8).
        var session = SMTPServerSession.inTransaction(to: [], configuration: sessionConfiguration(maximumRecipients: 5))
        for index in 0..<100 { expectReply(session.line("RCPT TO:<r\(index)@example.net>"), 250, "2.1.5") }
        // RFC 5321 §4.5.3.1.10: 452 for each extra recipient; not counted as errors.
        for index in 100..<120 { expectReply(session.line("RCPT TO:<r\(index)@example.net>"), 452, "4.5.3") }
        expectReply(session.line("DATA"), 354, nil)
        guard case .commit(let message) = session.data(".\r\n") else {
            Issue.record("expected commit")
            return
        }
        #expect(message.recipients.count == 100)
        #expect(message.recipients.last == "r99@example.net")
    }

    @Test func dataWithoutRecipients() {
        var session = SMTPServerSession.inTransaction(to: [])
        expectReply(session.line("DATA"), 554, "5.5.1")
    }

    @Test func dataWithoutMail() {
        var session = SMTPServerSession.authenticated()
        expectReply(session.line("DATA"), 503, "5.5.1")
    }

    @Test func rsetEndsTheTransaction() {
        var session = SMTPServerSession.inTransaction()
        expectReply(session.line("RSET"), 250, "2.0.0")
        expectReply(session.line("DATA"), 503, "5.5.1")
        #expect(session.principal == "tenant-1")
    }

    // MARK: End of data

    struct DataRejection: Sendable, CustomTestStringConvertible {
        let body: String
        let code: Int
        let enhanced: String
        let text: String
        var testDescription: String { body.debugDescription }
    }

    static let rejections: [DataRejection] = [
        DataRejection(body: "a\nb\r\n", code: 550, enhanced: "5.6.0", text: "bare LF"),
        DataRejection(body: "a\rb\r\n", code: 550, enhanced: "5.6.0", text: "bare CR"),
        DataRejection(body: String(repeating: "x", count: 999) + "\r\n", code: 550, enhanced: "5.6.0", text: "line longer than 998"),
        DataRejection(body: "a\u{0}b\r\n", code: 550, enhanced: "5.6.0", text: "NUL"),
        DataRejection(body: String(repeating: String(repeating: "y", count: 98) + "\r\n", count: 10_001), code: 552, enhanced: "5.3.4",
                      text: "size"),
    ]

    @Test(arguments: rejections)
    func rejectedMessage(_ rejection: DataRejection) {
        var session = SMTPServerSession.inTransaction()
        _ = session.line("DATA")
        #expect(session.data(rejection.body) == .none)
        let action = session.data(".\r\nNOOP\r\n")
        expectReply(action, rejection.code, rejection.enhanced, textContains: rejection.text)
        #expect(!session.isBusy)
        #expect(!session.expectsRawData)
        #expect(session.takeRemainingAfterData().map { String(buffer: $0) } == "NOOP\r\n")
        #expect(session.takeRemainingAfterData() == nil)
        // The transaction is thrown away.
        expectReply(session.line("DATA"), 503, "5.5.1")
    }

    @Test func smugglingAttemptIsOneRejectedMessage() {
        // A message with "\n.\n" and a second, forged transaction behind it: the NIO layer feeds it all; the
        // session sees one message, which it refuses, and no second MAIL ever reaches the command state.
        var driver = SessionDriver(configuration: sessionConfiguration(), tlsActive: true)
        driver.receive("EHLO c.example\r\nAUTH PLAIN \(plainCredentials("u", "p"))\r\n")
        driver.receive("MAIL FROM:<app@tenant.example>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        driver.receive("From: app@tenant.example\r\n\r\nhi\n.\nMAIL FROM:<ceo@bank.example>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
            + "From: ceo@bank.example\r\n\r\npay now\r\n.\r\nQUIT\r\n")
        #expect(driver.committed.isEmpty)
        #expect(driver.codes == ["220", "250", "235 2.7.0", "250 2.1.0", "250 2.1.5", "354", "550 5.6.0", "221 2.0.0"])
        #expect(driver.backendCalls.filter { if case .checkSender = $0 { true } else { false } }.count == 1)
    }

    @Test func lineDuringDataIsTreatedAsData() {
        var session = SMTPServerSession.inTransaction()
        _ = session.line("DATA")
        #expect(session.line("hello") == .none)
        guard case .commit(let message) = session.line(".") else {
            Issue.record("expected commit")
            return
        }
        #expect(message.data == Array("hello\r\n".utf8))
    }

    @Test func dataBytesOutsideDataAreIgnored() {
        var session = SMTPServerSession.authenticated()
        #expect(session.data("MAIL FROM:<a@b.example>\r\n") == .none)
        #expect(session.takeRemainingAfterData() == nil)
    }
}
