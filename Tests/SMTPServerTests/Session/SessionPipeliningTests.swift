import NIOCore
import SMTPCore
import Testing
#if canImport(SMTPServerSession)
import SMTPServerSession
#else
import SMTPServer
#endif

/// PIPELINING (RFC 2920), timeouts and graceful shutdown, driven the way the NIO layer drives the session.
@Suite struct SessionPipeliningTests {
    /// An authenticated driver under implicit TLS.
    static func authenticatedDriver(autoBackend: Bool = true) -> SessionDriver {
        var driver = SessionDriver(configuration: sessionConfiguration(offersSTARTTLS: false), tlsActive: true)
        driver.receive("EHLO client.example\r\nAUTH PLAIN \(plainCredentials("any", "rk_1"))\r\n")
        driver.autoBackend = autoBackend
        return driver
    }

    @Test func pipelinedTransactionWithSlowBackend() {
        var driver = Self.authenticatedDriver(autoBackend: false)
        // One TCP segment with the whole envelope and the start of the data.
        driver.receive("MAIL FROM:<app@tenant.example>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: x\r\n")
        // The sender check is pending: everything after MAIL is held.
        #expect(driver.codes == ["220", "250", "235 2.7.0"])
        #expect(driver.session.isBusy)
        driver.completeBackend()
        #expect(driver.codes.suffix(4) == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354"])
        #expect(driver.session.expectsRawData)
        driver.receive("\r\nbody\r\n.\r\nRSET\r\nQUIT\r\n")
        #expect(driver.committed.count == 1)
        #expect(driver.committed.first?.recipients == ["a@example.net", "b@example.net"])
        #expect(driver.committed.first?.data == Array("Subject: x\r\n\r\nbody\r\n".utf8))
        // Commit pending: RSET and QUIT wait.
        #expect(driver.codes.last == "354")
        driver.completeBackend()
        #expect(driver.codes.suffix(3) == ["250 2.0.0", "250 2.0.0", "221 2.0.0"])
        #expect(driver.closed)
    }

    @Test func twoPipelinedMessagesInOneSegment() {
        var driver = Self.authenticatedDriver()
        driver.receive("MAIL FROM:<app@tenant.example>\r\nRCPT TO:<a@example.net>\r\nDATA\r\nfirst\r\n.\r\n"
            + "MAIL FROM:<app@tenant.example>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n..second\r\n.\r\nQUIT\r\n")
        #expect(driver.committed.map(\.data) == [Array("first\r\n".utf8), Array(".second\r\n".utf8)])
        #expect(driver.committed.map(\.recipients) == [["a@example.net"], ["b@example.net"]])
        #expect(driver.codes.suffix(9) == ["250 2.1.0", "250 2.1.5", "354", "250 2.0.0",
                                           "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"])
    }

    @Test func pipelinedRecipientsAfterRejectedSender() {
        // RFC 2920 §3.1: each command gets its own reply; RCPT and DATA after a refused MAIL fail in sequence.
        var driver = Self.authenticatedDriver()
        driver.senderVerdict = .rejected(SMTPReply(code: 550, enhancedCode: EnhancedStatusCode("5.7.1"), text: "Not your domain"))
        driver.receive("MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<a@example.net>\r\nDATA\r\nbody\r\n.\r\n")
        #expect(driver.codes.suffix(5) == ["550 5.7.1", "503 5.5.1", "503 5.5.1", "500 5.5.1", "500 5.5.1"])
        #expect(driver.committed.isEmpty)
    }

    @Test func dataSplitAcrossManySegments() {
        var driver = Self.authenticatedDriver()
        driver.receive("MAIL FROM:<app@tenant.example>\r\nRCPT TO:<a@example.net>\r\nDATA\r\n")
        let body = "Subject: split\r\n\r\nline one\r\n.. stuffed\r\n.\r\nNOOP\r\n"
        for byte in body.utf8 { driver.receive([byte]) }
        #expect(driver.committed.first?.data == Array("Subject: split\r\n\r\nline one\r\n. stuffed\r\n".utf8))
        #expect(driver.codes.suffix(2) == ["250 2.0.0", "250 2.0.0"])
    }

    // MARK: Timeouts and shutdown

    @Test func timeout() {
        var session = SMTPServerSession.authenticated()
        expectReply(session.timedOut(), 421, "4.4.2", closes: true)
        #expect(session.isClosed)
        #expect(session.timedOut() == .none)
    }

    @Test func timeoutWhileBackendIsBusyIgnoresTheLateResult() {
        var session = SMTPServerSession.inTransaction()
        _ = session.line("DATA")
        _ = session.data("x\r\n.\r\n")
        #expect(session.isBusy)
        expectReply(session.timedOut(), 421, "4.4.2", closes: true)
        #expect(session.messageCommitted(SMTPReply(code: 250, text: "ok")) == .none)
        #expect(session.shutdownRequested() == .none)
        #expect(session.tlsEstablished() == .none)
    }

    @Test func timeoutWhileTLSHandshakeClosesSilently() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        _ = session.line("EHLO c.example")
        _ = session.line("STARTTLS")
        #expect(session.timedOut() == .close)
    }

    @Test func shutdownWhenIdle() {
        var session = SMTPServerSession.inTransaction()
        expectReply(session.shutdownRequested(), 421, "4.3.2", closes: true)
        #expect(session.line("DATA") == .none)
    }

    @Test func shutdownDuringDataFinishesTheMessage() {
        var session = SMTPServerSession.inTransaction()
        _ = session.line("DATA")
        _ = session.data("Subject: x\r\n")
        #expect(session.shutdownRequested() == .none)
        #expect(session.isDraining)
        guard case .commit = session.data("\r\nbody\r\n.\r\n") else {
            Issue.record("the message in progress must be finished")
            return
        }
        expectReply(session.messageCommitted(SMTPReply(code: 250, enhancedCode: EnhancedStatusCode("2.0.0"), text: "Queued")), 250, "2.0.0")
        // New commands get 421.
        expectReply(session.line("MAIL FROM:<a@tenant.example>"), 421, "4.3.2", closes: true)
    }

    @Test func shutdownDuringDataThenQuit() {
        var session = SMTPServerSession.inTransaction()
        _ = session.line("DATA")
        _ = session.shutdownRequested()
        _ = session.data(".\r\n")
        _ = session.messageCommitted(SMTPReply(code: 250, text: "ok"))
        expectReply(session.line("QUIT"), 221, "2.0.0", closes: true)
    }

    @Test func shutdownAgainAfterTheMessageCloses() {
        var session = SMTPServerSession.inTransaction()
        _ = session.line("DATA")
        _ = session.shutdownRequested()
        _ = session.data("x\r\n.\r\n")
        #expect(session.shutdownRequested() == .none)  // still committing
        _ = session.messageCommitted(SMTPReply(code: 250, text: "ok"))
        expectReply(session.shutdownRequested(), 421, "4.3.2", closes: true)
    }

    @Test func shutdownWhileAuthenticating() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: true)
        _ = session.connected()
        _ = session.line("EHLO c.example")
        _ = session.line("AUTH PLAIN \(plainCredentials("u", "p"))")
        #expect(session.shutdownRequested() == .none)
        expectReply(session.authenticationCompleted(.accepted(principal: "t")), 235, "2.7.0")
        expectReply(session.line("NOOP"), 421, "4.3.2", closes: true)
    }

    @Test func shutdownDuringRejectedDataThenNextCommand() {
        var session = SMTPServerSession.inTransaction()
        _ = session.line("DATA")
        _ = session.shutdownRequested()
        expectReply(session.data("bad\nline\r\n.\r\n"), 550, "5.6.0")
        expectReply(session.line("FROB"), 421, "4.3.2", closes: true)
    }

    @Test func inputWhileBusyIsNotProcessed() {
        var session = SMTPServerSession.authenticated()
        _ = session.line("MAIL FROM:<a@tenant.example>")
        #expect(session.isBusy)
        #expect(session.line("RCPT TO:<b@example.net>") == .none)
        #expect(session.commandLineTooLong() == .none)
        expectReply(session.senderChecked(.accepted), 250, "2.1.0")
    }
}
