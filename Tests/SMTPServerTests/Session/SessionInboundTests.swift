import NIOCore
import SMTPCore
import Testing
#if canImport(SMTPServerSession)
import SMTPServerSession
#else
import SMTPServer
#endif

/// The inbound (MX) mode, for bounce reports: no AUTH, any sender (the null one above all), and only the
/// recipients the policy accepts, so the listener can never relay.
@Suite struct SessionInboundTests {
    static func inbound() -> SMTPServerSession {
        var configuration = sessionConfiguration()
        configuration.mode = .inbound(acceptsRecipient: { $0.hasPrefix("bounce+good") })
        var session = SMTPServerSession(configuration: configuration, remoteAddress: "192.0.2.9", tlsActive: false)
        _ = session.connected()
        return session
    }

    @Test func ehloOffersSTARTTLSButNoAUTHAndAUTHIsNotImplemented() {
        var session = Self.inbound()
        guard case .reply(let reply) = session.line("EHLO mx.sender.example") else {
            Issue.record("EHLO was not answered")
            return
        }
        #expect(reply.lines.contains("STARTTLS"))
        #expect(!reply.lines.contains { $0.hasPrefix("AUTH") })
        expectReply(session.line("AUTH PLAIN \(plainCredentials("u", "p"))"), 502, "5.5.1")
    }

    @Test func aReportFromTheNullSenderToABounceAddressIsCommitted() {
        var session = Self.inbound()
        _ = session.line("EHLO mx.sender.example")
        expectReply(session.line("MAIL FROM:<>"), 250, "2.1.0")
        expectReply(session.line("RCPT TO:<postmaster@relay.test>"), 550, "5.7.1")
        expectReply(session.line("RCPT TO:<someone@elsewhere.example>"), 550, "5.7.1")
        expectReply(session.line("RCPT TO:<bounce+good-1@bounces.relay.test>"), 250, "2.1.5")
        expectReply(session.line("DATA"), 354, nil)
        guard case .commit(let message) = session.data("Subject: report\r\n\r\nbody\r\n.\r\n") else {
            Issue.record("the report was not committed")
            return
        }
        #expect(message.mailFrom == "")
        #expect(message.recipients == ["bounce+good-1@bounces.relay.test"])
        #expect(message.principal == SMTPServerSession.anonymousPrincipal)
    }

    @Test func dataWithoutAnAcceptedRecipientIsRefusedAndSmugglingIsClosed() {
        var session = Self.inbound()
        _ = session.line("EHLO mx.sender.example")
        _ = session.line("MAIL FROM:<x@sender.example>")
        expectReply(session.line("RCPT TO:<victim@elsewhere.example>"), 550, "5.7.1")
        expectReply(session.line("DATA"), 554, "5.5.1")
        _ = session.line("RSET")
        _ = session.line("MAIL FROM:<x@sender.example>")
        _ = session.line("RCPT TO:<bounce+good-2@bounces.relay.test>")
        _ = session.line("DATA")
        // A bare LF before the dot (the SMTP smuggling pattern) refuses the whole message.
        expectReply(session.data("a\r\n\n.\r\nMAIL FROM:<y@z>\r\n.\r\n"), 550, "5.6.0")
    }
}
