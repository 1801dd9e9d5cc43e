import NIOCore
import SMTPCore
import Testing
#if canImport(SMTPServerSession)
import SMTPServerSession
#else
import SMTPServer
#endif

/// AUTH PLAIN and LOGIN (RFC 4954, RFC 4616) as transcripts.
@Suite struct SessionAuthTests {
    /// A session under TLS after EHLO, ready for AUTH.
    static func ready(tls: Bool = true) -> SMTPServerSession {
        var session = SMTPServerSession(configuration: sessionConfiguration(offersSTARTTLS: !tls), remoteAddress: "192.0.2.7", tlsActive: tls)
        _ = session.connected()
        _ = session.line("EHLO client.example")
        return session
    }

    @Test func plainWithInitialResponse() {
        var session = Self.ready()
        #expect(session.line("AUTH PLAIN \(plainCredentials("any", "rk_live_123"))") == .authenticate(username: "any", password: "rk_live_123"))
        #expect(session.isBusy)
        #expect(session.authenticationCompleted(.accepted(principal: "tenant-9")) ==
            .reply(SMTPReply(code: 235, enhancedCode: EnhancedStatusCode("2.7.0"), text: "Authentication successful")))
        #expect(!session.isBusy)
        #expect(session.principal == "tenant-9")
        #expect(session.line("MAIL FROM:<a@tenant.example>") == .checkSender(principal: "tenant-9", address: "a@tenant.example"))
    }

    @Test func plainWithChallenge() {
        var session = Self.ready()
        #expect(session.line("AUTH PLAIN") == .reply(SMTPReply(code: 334, text: "")))
        #expect(session.line(plainCredentials("u", "p\u{e9}")) == .authenticate(username: "u", password: "p\u{e9}"))
    }

    @Test func plainWithMatchingAuthorizationIdentity() {
        var session = Self.ready()
        #expect(session.line("AUTH PLAIN \(plainCredentials("u", "p", authzid: "u"))") == .authenticate(username: "u", password: "p"))
    }

    @Test func plainWithOtherAuthorizationIdentityIsRefused() {
        var session = Self.ready()
        expectReply(session.line("AUTH PLAIN \(plainCredentials("u", "p", authzid: "admin"))"), 535, "5.7.8")
        #expect(!session.isBusy)
    }

    @Test func login() {
        var session = Self.ready()
        #expect(session.line("AUTH LOGIN") == .reply(SMTPReply(code: 334, text: "VXNlcm5hbWU6")))
        #expect(session.line(base64("any")) == .reply(SMTPReply(code: 334, text: "UGFzc3dvcmQ6")))
        #expect(session.line(base64("rk_live_123")) == .authenticate(username: "any", password: "rk_live_123"))
        expectReply(session.authenticationCompleted(.accepted(principal: "t")), 235, "2.7.0")
    }

    @Test func loginWithInitialResponse() {
        var session = Self.ready()
        #expect(session.line("auth login \(base64("any"))") == .reply(SMTPReply(code: 334, text: "UGFzc3dvcmQ6")))
        #expect(session.line(base64("secret")) == .authenticate(username: "any", password: "secret"))
    }

    @Test(arguments: ["AUTH PLAIN !!!!", "AUTH PLAIN dXNlcg", "AUTH PLAIN ZZ==ZZ==", "AUTH PLAIN a GVsbG8="])
    func badInitialResponse(_ line: String) {
        var session = Self.ready()
        let action = session.line(line)
        #expect(action.reply?.code == 501, "\(action)")
        #expect(!session.isBusy)
    }

    @Test func badBase64InChallengeResponse() {
        var session = Self.ready()
        _ = session.line("AUTH LOGIN")
        expectReply(session.line("not base64!"), 501, "5.5.2")
        expectReply(session.line("NOOP"), 250, "2.0.0")  // back to commands
    }

    @Test func plainWithoutSeparators() {
        var session = Self.ready()
        expectReply(session.line("AUTH PLAIN \(base64("userpassword"))"), 501, "5.5.2")
        expectReply(session.line("AUTH PLAIN ="), 501, "5.5.2")  // "=" is an empty initial response
    }

    @Test(arguments: ["AUTH PLAIN", "AUTH LOGIN"])
    func starCancels(_ command: String) {
        var session = Self.ready()
        expectReply(session.line(command), 334, nil)
        expectReply(session.line("*"), 501, "5.7.0")
        expectReply(session.line("NOOP"), 250, "2.0.0")
    }

    @Test func starCancelsAtThePasswordPrompt() {
        var session = Self.ready()
        _ = session.line("AUTH LOGIN")
        _ = session.line(base64("user"))
        expectReply(session.line("*"), 501, "5.7.0")
        #expect(session.principal == nil)
    }

    @Test func authBeforeTLS() {
        var session = Self.ready(tls: false)
        expectReply(session.line("AUTH PLAIN \(plainCredentials("a", "b"))"), 538, "5.7.11")
        expectReply(session.line("AUTH LOGIN"), 538, "5.7.11")
    }

    @Test func authBeforeEHLO() {
        var session = SMTPServerSession(configuration: sessionConfiguration(), remoteAddress: "192.0.2.7", tlsActive: true)
        _ = session.connected()
        expectReply(session.line("AUTH LOGIN"), 503, "5.5.1")
    }

    @Test func authTwice() {
        var session = SMTPServerSession.authenticated()
        expectReply(session.line("AUTH PLAIN \(plainCredentials("a", "b"))"), 503, "5.5.1")
        // The capability list does not change with authentication; AUTH again stays refused.
        #expect(session.line("EHLO client.example").reply?.lines.contains("AUTH PLAIN LOGIN") == true)
        expectReply(session.line("AUTH LOGIN"), 503, "5.5.1")
        #expect(session.principal == "tenant-1")
    }

    @Test func unknownMechanism() {
        var session = Self.ready()
        expectReply(session.line("AUTH CRAM-MD5"), 504, "5.5.4")
    }

    @Test func rejectedCredentialsGetOneReplyForUnknownUserAndBadPassword() {
        var session = Self.ready()
        _ = session.line("AUTH PLAIN \(plainCredentials("nobody", "x"))")
        let unknownUser = session.authenticationCompleted(.rejected)
        _ = session.line("AUTH LOGIN")
        _ = session.line(base64("any"))
        _ = session.line(base64("wrong"))
        let badPassword = session.authenticationCompleted(.rejected)
        #expect(unknownUser == badPassword)
        expectReply(unknownUser, 535, "5.7.8")
        expectReply(session.line("MAIL FROM:<a@b.example>"), 530, "5.7.0")
    }

    @Test func lockedOut() {
        var session = Self.ready()
        _ = session.line("AUTH PLAIN \(plainCredentials("any", "x"))")
        expectReply(session.authenticationCompleted(.lockedOut), 421, "4.7.0", closes: true)
        #expect(session.isClosed)
    }

    @Test func temporaryFailureIsA454AndTheClientMayTryAgain() {
        var session = Self.ready()
        _ = session.line("AUTH PLAIN \(plainCredentials("any", "right"))")
        expectReply(session.authenticationCompleted(.temporaryFailure), 454, "4.7.0")
        #expect(!session.isClosed)
        #expect(session.principal == nil)
        _ = session.line("AUTH PLAIN \(plainCredentials("any", "right"))")
        expectReply(session.authenticationCompleted(.accepted(principal: "tenant-1")), 235, "2.7.0")
        #expect(session.principal == "tenant-1")
    }

    @Test func completionWithoutRequestIsIgnored() {
        var session = Self.ready()
        #expect(session.authenticationCompleted(.accepted(principal: "t")) == .none)
        #expect(session.principal == nil)
        #expect(session.senderChecked(.accepted) == .none)
        #expect(session.messageCommitted(SMTPReply(code: 250, text: "ok")) == .none)
    }

    @Test func lineTooLongDuringExchangeCancelsIt() {
        var session = Self.ready()
        _ = session.line("AUTH PLAIN")
        expectReply(session.commandLineTooLong(), 500, "5.5.2")
        expectReply(session.line("NOOP"), 250, "2.0.0")
    }

    @Test func authDuringTransactionIsRefused() {
        var configuration = sessionConfiguration()
        configuration.requiresTLSForAuth = false
        // (Only reachable when already authenticated, so "already authenticated" wins.)
        var session = SMTPServerSession.inTransaction(configuration: configuration)
        expectReply(session.line("AUTH LOGIN"), 503, "5.5.1")
    }
}
