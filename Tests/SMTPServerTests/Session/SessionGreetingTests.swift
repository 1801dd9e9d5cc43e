import NIOCore
import SMTPCore
import Testing
#if canImport(SMTPServerSession)
import SMTPServerSession
#else
import SMTPServer
#endif

/// Greeting, EHLO/HELO, STARTTLS (RFC 3207) and the simple verbs, as transcripts: event → expected action.
@Suite struct SessionGreetingTests {
    @Test func greeting() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        #expect(session.connected() == .reply(SMTPReply(code: 220, text: "mx.relay.test ESMTP Relay")))
        #expect(session.connected() == .none)
    }

    @Test func ehloOnSubmissionPortBeforeTLS() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        #expect(session.line("EHLO client.example") == .reply(SMTPReply(code: 250, lines: [
            "mx.relay.test", "PIPELINING", "SIZE 1000000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "STARTTLS",
        ])))
    }

    @Test func ehloAfterSTARTTLSOffersAuthNotSTARTTLS() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        _ = session.line("EHLO client.example")
        expectReply(session.line("STARTTLS"), 220, "2.0.0")
        #expect(session.tlsEstablished() == .none)
        #expect(session.line("EHLO client.example") == .reply(SMTPReply(code: 250, lines: [
            "mx.relay.test", "PIPELINING", "SIZE 1000000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN",
        ])))
    }

    @Test func ehloOnImplicitTLSPort() {
        var session = SMTPServerSession(configuration: sessionConfiguration(offersSTARTTLS: false), remoteAddress: "192.0.2.7", tlsActive: true)
        _ = session.connected()
        let reply = session.line("EHLO client.example").reply
        #expect(reply?.lines.contains("AUTH PLAIN LOGIN") == true)
        #expect(reply?.lines.contains("STARTTLS") == false)
        #expect(session.tlsActive)
    }

    @Test func authAdvertisedInPlaintextOnlyWhenTLSNotRequired() {
        var configuration = sessionConfiguration()
        configuration.requiresTLSForAuth = false
        var session = SMTPServerSession(configuration: configuration, remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        #expect(session.line("EHLO client.example").reply?.lines.contains("AUTH PLAIN LOGIN") == true)
    }

    @Test func heloWorksWithoutExtensions() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        #expect(session.line("HELO client.example") == .reply(SMTPReply(code: 250, text: "mx.relay.test")))
    }

    @Test func ehloWithoutDomain() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        expectReply(session.line("EHLO"), 501, "5.5.4")
    }

    @Test func ehloResetsTheTransactionButKeepsAuthentication() {
        var session = SMTPServerSession.inTransaction()
        _ = session.line("EHLO again.example")
        expectReply(session.line("RCPT TO:<b@example.net>"), 503, "5.5.1")
        #expect(session.line("MAIL FROM:<a@tenant.example>") == .checkSender(principal: "tenant-1", address: "a@tenant.example"))
    }

    // MARK: STARTTLS

    @Test func startTLSForgetsEverything() {
        var configuration = sessionConfiguration()
        configuration.requiresTLSForAuth = false
        var session = SMTPServerSession(configuration: configuration, remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        _ = session.line("EHLO client.example")
        #expect(!session.tlsActive)
        #expect(session.line("STARTTLS") == .replyAndStartTLS(SMTPReply(code: 220, enhancedCode: EnhancedStatusCode("2.0.0"), text: "Ready to start TLS")))
        // Anything the NIO layer still hands over before the handshake is ignored.
        #expect(session.line("AUTH PLAIN \(plainCredentials("a", "b"))") == .none)
        #expect(session.line("MAIL FROM:<a@tenant.example>") == .none)
        #expect(session.tlsEstablished() == .none)
        #expect(session.tlsActive)
        // RFC 3207 §4.2: no HELO, no auth, no transaction.
        expectReply(session.line("AUTH PLAIN \(plainCredentials("a", "b"))"), 503, "5.5.1", textContains: "EHLO")
        expectReply(session.line("MAIL FROM:<a@tenant.example>"), 530, "5.7.0")
        _ = session.line("EHLO client.example")
        #expect(session.line("AUTH PLAIN \(plainCredentials("a", "b"))") == .authenticate(username: "a", password: "b"))
    }

    @Test func startTLSNotOfferedOnImplicitTLSPort() {
        var session = SMTPServerSession(configuration: sessionConfiguration(offersSTARTTLS: false), remoteAddress: "192.0.2.7", tlsActive: true)
        _ = session.connected()
        _ = session.line("EHLO client.example")
        expectReply(session.line("STARTTLS"), 502, "5.5.1")
    }

    @Test func startTLSTwice() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        _ = session.line("EHLO client.example")
        _ = session.line("STARTTLS")
        _ = session.tlsEstablished()
        _ = session.line("EHLO client.example")
        expectReply(session.line("STARTTLS"), 503, "5.5.1")
    }

    @Test func startTLSWithParameters() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        _ = session.line("EHLO client.example")
        expectReply(session.line("STARTTLS now"), 501, "5.5.4")
    }

    @Test func startTLSBeforeEHLO() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        expectReply(session.line("STARTTLS"), 503, "5.5.1")
    }

    @Test func startTLSAfterAuthInPlaintext() {
        var configuration = sessionConfiguration()
        configuration.requiresTLSForAuth = false
        var session = SMTPServerSession(configuration: configuration, remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        _ = session.line("EHLO client.example")
        _ = session.line("AUTH PLAIN \(plainCredentials("a", "b"))")
        _ = session.authenticationCompleted(.accepted(principal: "t"))
        expectReply(session.line("STARTTLS"), 503, "5.5.1")
    }

    @Test func startTLSInjectionIsDiscarded() {
        // CVE-2011-0411: commands pipelined in plaintext behind STARTTLS must not run inside the TLS session.
        var driver = SessionDriver()
        driver.receive("EHLO client.example\r\nSTARTTLS\r\nEHLO evil\r\nAUTH PLAIN \(plainCredentials("a", "b"))\r\nMAIL FROM:<x@y.example>\r\n")
        #expect(driver.tlsHandshakes == 1)
        #expect(driver.codes == ["220", "250", "220 2.0.0"])
        #expect(driver.backendCalls.isEmpty)
        driver.receive("MAIL FROM:<x@y.example>\r\n")
        #expect(driver.codes.last == "530 5.7.0")
    }

    // MARK: Simple verbs

    @Test func simpleVerbs() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        expectReply(session.line("NOOP"), 250, "2.0.0")
        expectReply(session.line("NOOP anything"), 250, "2.0.0")
        expectReply(session.line("RSET"), 250, "2.0.0")
        expectReply(session.line("VRFY postmaster"), 252, "2.5.0")
        expectReply(session.line("HELP"), 214, "2.0.0")
        expectReply(session.line("help me"), 214, "2.0.0")
        expectReply(session.line("EXPN staff"), 502, "5.5.1")
        expectReply(session.line("BDAT 10 LAST"), 502, "5.5.1")
        expectReply(session.line("FROB"), 500, "5.5.1")
        expectReply(session.line("GET / HTTP/1.1"), 500, "5.5.1")
        expectReply(session.line("MAIL FROM <a@b.example>"), 501, "5.5.4")
        expectReply(session.line("RSET now"), 501, "5.5.4")
        expectReply(session.line("NOOP \u{7F}"), 501, "5.5.2")
        #expect(session.line("QUIT") == .replyAndClose(SMTPReply(code: 221, enhancedCode: EnhancedStatusCode("2.0.0"), text: "mx.relay.test closing connection")))
        #expect(session.isClosed)
        #expect(session.line("NOOP") == .none)
    }

    @Test func commandLineTooLong() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        expectReply(session.commandLineTooLong(), 500, "5.5.2")
        expectReply(session.line("NOOP"), 250, "2.0.0")
    }

    @Test func tooManyErrorsCloses() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        for _ in 0..<10 { expectReply(session.line("FROB"), 500, "5.5.1") }
        expectReply(session.line("NOOP"), 250, "2.0.0")  // successes do not count
        expectReply(session.line("MAIL FROM:<a@b.example>"), 421, "4.7.0", closes: true)
        #expect(session.line("NOOP") == .none)
        #expect(session.timedOut() == .none)
    }

    @Test func errorLimitIsConfigurable() {
        var configuration = sessionConfiguration()
        configuration.maximumErrors = 2
        var session = SMTPServerSession(configuration: configuration, remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        expectReply(session.commandLineTooLong(), 500, "5.5.2")
        expectReply(session.line("DATA"), 530, "5.7.0")
        expectReply(session.line("RCPT TO:<a@b.example>"), 421, "4.7.0", closes: true)
    }

    @Test func recipientLimitIsClampedTo100() {
        #expect(sessionConfiguration(maximumRecipients: 5).maximumRecipients == 100)
        #expect(sessionConfiguration().maximumRecipients == 1000)
        var configuration = sessionConfiguration()
        configuration.maximumRecipients = 1
        #expect(configuration.maximumRecipients == 100)
    }
}
