import Foundation
import SMTPClient
import SMTPCore
import Testing

/// AUTH (RFC 4954) and the TLS modes of the client session as protocol transcripts: each event, then the action.
/// Credentials go out only over TLS; a session that is not encrypted fails before anything is sent.
@Suite struct SMTPClientAuthTests {
    typealias Machine = SMTPClientStateMachine

    static func reply(_ code: Int, _ lines: String...) -> SMTPReply { SMTPReply(code: code, wireLines: lines) }

    static let credentials = SMTPCredentials(username: "relay-user", password: "s3cret pass")
    static let ehloTLS = reply(250, "smarthost.example", "PIPELINING", "STARTTLS")
    static let ehloAuth = reply(250, "smarthost.example", "PIPELINING", "AUTH LOGIN PLAIN")
    static let ehloLoginOnly = reply(250, "smarthost.example", "AUTH LOGIN")
    static let ehloAuthPlaintext = reply(250, "smarthost.example", "AUTH PLAIN LOGIN")
    /// base64("\0relay-user\0s3cret pass"), RFC 4616 §2 with an empty authorisation identity.
    static let plainResponse = "AHJlbGF5LXVzZXIAczNjcmV0IHBhc3M="

    /// A machine that has done banner, EHLO, STARTTLS and the TLS handshake; the second EHLO is awaited.
    static func afterSTARTTLS(tlsMode: SMTPClientTLSMode = .startTLS, credentials: SMTPCredentials? = credentials) -> Machine {
        var machine = Machine(heloName: "relay.test", tlsMode: tlsMode, credentials: credentials)
        #expect(machine.connected() == .wait)
        #expect(machine.replyReceived(reply(220, "smarthost.example ESMTP")) == .send([.ehlo("relay.test")]))
        #expect(machine.replyReceived(ehloTLS) == .send([.startTLS]))
        #expect(machine.replyReceived(reply(220, "2.0.0 Ready to start TLS")) == .startTLSHandshake)
        #expect(machine.tlsHandshakeSucceeded() == .send([.ehlo("relay.test")]))
        return machine
    }

    // MARK: AUTH PLAIN and LOGIN

    @Test func plainAfterSTARTTLS() {
        var machine = Self.afterSTARTTLS()
        #expect(machine.replyReceived(Self.ehloAuth) == .send([.auth(mechanism: "PLAIN", initialResponse: Self.plainResponse)]))
        #expect(machine.currentPhase == .auth)
        #expect(!machine.isUsable)
        #expect(machine.replyReceived(Self.reply(235, "2.7.0 Authentication successful"))
            == .connectSucceeded(SMTPCapabilities(ehloReply: Self.ehloAuth)))
        #expect(machine.isUsable)
        #expect(machine.isTLSActive)
        // What a transcript shows of the command.
        #expect(SMTPCommand.auth(mechanism: "PLAIN", initialResponse: Self.plainResponse).redactedDescription == "AUTH PLAIN ***")
        #expect(Data(base64Encoded: Self.plainResponse) == Data("\u{0}relay-user\u{0}s3cret pass".utf8))
    }

    @Test func loginWhenPlainIsNotOffered() {
        var machine = Self.afterSTARTTLS()
        #expect(machine.replyReceived(Self.ehloLoginOnly) == .send([.auth(mechanism: "LOGIN", initialResponse: nil)]))
        #expect(machine.replyReceived(Self.reply(334, "VXNlcm5hbWU6")) == .sendAuthenticationResponse("cmVsYXktdXNlcg=="))
        #expect(machine.currentPhase == .auth)
        #expect(machine.replyReceived(Self.reply(334, "UGFzc3dvcmQ6")) == .sendAuthenticationResponse("czNjcmV0IHBhc3M="))
        #expect(machine.replyReceived(Self.reply(235, "2.7.0 OK")) == .connectSucceeded(SMTPCapabilities(ehloReply: Self.ehloLoginOnly)))
        #expect(machine.isUsable)
    }

    @Test func oldAuthEqualsFormIsUnderstood() {
        let ehlo = Self.reply(250, "smarthost.example", "AUTH=LOGIN")
        #expect(SMTPCapabilities(ehloReply: ehlo).authMechanisms == ["LOGIN"])
        #expect(SMTPCapabilities(ehloReply: Self.reply(250, "x", "AUTH PLAIN LOGIN", "AUTH=LOGIN")).authMechanisms == ["PLAIN", "LOGIN"])
        var machine = Self.afterSTARTTLS()
        #expect(machine.replyReceived(ehlo) == .send([.auth(mechanism: "LOGIN", initialResponse: nil)]))
    }

    @Test func rejectedCredentialsArePermanent() {
        var machine = Self.afterSTARTTLS()
        _ = machine.replyReceived(Self.ehloAuth)
        let refusal = Self.reply(535, "5.7.8 Authentication credentials invalid")
        let expected = SMTPClientError(code: .authenticationFailed, phase: .auth, reply: refusal)
        #expect(machine.replyReceived(refusal) == .failAndClose(expected, sendQuit: true))
        #expect(machine.isClosed)
        #expect(expected.reply?.isPermanent == true)
        #expect(expected.description == "authentication failed (credentials rejected): 535 5.7.8 Authentication credentials invalid")
    }

    @Test func temporaryAuthFailureSaysSo() {
        var machine = Self.afterSTARTTLS()
        _ = machine.replyReceived(Self.ehloLoginOnly)
        _ = machine.replyReceived(Self.reply(334, "VXNlcm5hbWU6"))
        _ = machine.replyReceived(Self.reply(334, "UGFzc3dvcmQ6"))
        let busy = Self.reply(454, "4.7.0 Temporary authentication failure")
        let expected = SMTPClientError(code: .authenticationFailed, phase: .auth, reply: busy)
        #expect(machine.replyReceived(busy) == .failAndClose(expected, sendQuit: true))
        #expect(expected.reply?.isTransient == true)
        #expect(expected.description == "authentication failed temporarily: 454 4.7.0 Temporary authentication failure")
    }

    @Test func unexpectedChallengeToPlainIsAProtocolViolation() {
        var machine = Self.afterSTARTTLS()
        _ = machine.replyReceived(Self.ehloAuth)
        guard case .failAndClose(let error, _) = machine.replyReceived(Self.reply(334, "")) else {
            Issue.record("expected failAndClose")
            return
        }
        #expect(error.code == .protocolViolation)
        #expect(error.phase == .auth)
    }

    @Test func noSupportedMechanism() {
        var machine = Self.afterSTARTTLS()
        let ehlo = Self.reply(250, "smarthost.example", "AUTH CRAM-MD5 XOAUTH2")
        let expected = SMTPClientError(code: .authenticationUnavailable, phase: .auth,
                                       detail: "the server offers neither AUTH PLAIN nor AUTH LOGIN (it offers AUTH CRAM-MD5 XOAUTH2)")
        #expect(machine.replyReceived(ehlo) == .failAndClose(expected, sendQuit: true))
    }

    @Test func withoutCredentialsNoAUTHIsSent() {
        var machine = Self.afterSTARTTLS(credentials: nil)
        #expect(machine.replyReceived(Self.ehloAuth) == .connectSucceeded(SMTPCapabilities(ehloReply: Self.ehloAuth)))
    }

    // MARK: Credentials never in plaintext

    static let notEncrypted = SMTPClientError(
        code: .authenticationUnavailable, phase: .auth,
        detail: "credentials are sent only over TLS and this session is not encrypted; nothing was sent")

    @Test func noTLSModeNeverSendsCredentials() {
        var machine = Machine(heloName: "relay.test", tlsMode: .none, credentials: Self.credentials)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        #expect(machine.replyReceived(Self.ehloAuthPlaintext) == .failAndClose(Self.notEncrypted, sendQuit: true))
        #expect(Self.notEncrypted.description
            == "cannot authenticate (credentials are sent only over TLS and this session is not encrypted; nothing was sent)")
    }

    @Test func opportunisticWithoutSTARTTLSNeverSendsCredentials() {
        var machine = Machine(heloName: "relay.test", tlsMode: .opportunistic, credentials: Self.credentials)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        #expect(machine.replyReceived(Self.ehloAuthPlaintext) == .failAndClose(Self.notEncrypted, sendQuit: true))
    }

    @Test func refusedSTARTTLSNeverLeadsToCredentialsInPlaintext() {
        var machine = Machine(heloName: "relay.test", tlsMode: .opportunistic, credentials: Self.credentials)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        _ = machine.replyReceived(Self.reply(250, "x", "STARTTLS", "AUTH PLAIN"))
        #expect(machine.replyReceived(Self.reply(454, "4.7.0 TLS not available")) == .failAndClose(Self.notEncrypted, sendQuit: true))
    }

    @Test func heloSessionCannotAuthenticate() {
        var machine = Machine(heloName: "relay.test", tlsMode: .implicit, credentials: Self.credentials)
        _ = machine.connected()
        _ = machine.tlsHandshakeSucceeded()
        _ = machine.replyReceived(Self.reply(220, "x"))
        #expect(machine.replyReceived(Self.reply(502, "no EHLO")) == .send([.helo("relay.test")]))
        let expected = SMTPClientError(code: .authenticationUnavailable, phase: .auth,
                                       detail: "the server offers neither AUTH PLAIN nor AUTH LOGIN (it offers no AUTH)")
        #expect(machine.replyReceived(Self.reply(250, "hello")) == .failAndClose(expected, sendQuit: true))
    }

    // MARK: Required STARTTLS

    @Test func requiredSTARTTLSNotOffered() {
        var machine = Machine(heloName: "relay.test", tlsMode: .startTLS)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        let expected = SMTPClientError(code: .tlsUnavailable, phase: .startTLS, detail: "the server does not offer STARTTLS")
        #expect(machine.replyReceived(Self.ehloAuthPlaintext) == .failAndClose(expected, sendQuit: true))
        #expect(expected.description == "TLS is required but the server did not provide it (the server does not offer STARTTLS)")
    }

    @Test func requiredSTARTTLSRefused() {
        var machine = Machine(heloName: "relay.test", tlsMode: .startTLS)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        _ = machine.replyReceived(Self.ehloTLS)
        let refusal = Self.reply(454, "4.7.0 TLS not available")
        #expect(machine.replyReceived(refusal) == .failAndClose(
            SMTPClientError(code: .tlsUnavailable, phase: .startTLS, reply: refusal, detail: "the server refused STARTTLS"),
            sendQuit: true))
    }

    @Test func requiredSTARTTLSWithHELOOnly() {
        var machine = Machine(heloName: "relay.test", tlsMode: .startTLS)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        _ = machine.replyReceived(Self.reply(500, "what"))
        guard case .failAndClose(let error, true) = machine.replyReceived(Self.reply(250, "hello")) else {
            Issue.record("expected failAndClose with QUIT")
            return
        }
        #expect(error.code == .tlsUnavailable)
    }

    @Test func requiredSTARTTLSHandshakeFailureFails() {
        var machine = Machine(heloName: "relay.test", tlsMode: .startTLS)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        _ = machine.replyReceived(Self.ehloTLS)
        _ = machine.replyReceived(Self.reply(220, "go ahead"))
        #expect(machine.tlsHandshakeFailed("certificate verify failed") == .failAndClose(
            SMTPClientError(code: .tlsFailed, phase: .startTLS, detail: "certificate verify failed"), sendQuit: false))
    }

    // MARK: Implicit TLS

    @Test func implicitTLSHandshakesBeforeTheBanner() {
        var machine = Machine(heloName: "relay.test", tlsMode: .implicit, credentials: Self.credentials)
        #expect(machine.connected() == .wait)
        #expect(machine.currentPhase == .tlsHandshake)
        #expect(machine.replyReceived(Self.reply(220, "too early")) == .failAndClose(
            SMTPClientError(code: .protocolViolation, phase: .tlsHandshake,
                            detail: "reply received before it could be expected: 220 too early"), sendQuit: false))

        var fresh = Machine(heloName: "relay.test", tlsMode: .implicit, credentials: Self.credentials)
        _ = fresh.connected()
        #expect(fresh.tlsHandshakeSucceeded() == .wait)
        #expect(fresh.isTLSActive)
        #expect(fresh.currentPhase == .banner)
        #expect(fresh.replyReceived(Self.reply(220, "smarthost.example ESMTP")) == .send([.ehlo("relay.test")]))
        // A STARTTLS offered over implicit TLS is not taken up; AUTH follows at once.
        let ehlo = Self.reply(250, "smarthost.example", "STARTTLS", "AUTH PLAIN")
        #expect(fresh.replyReceived(ehlo) == .send([.auth(mechanism: "PLAIN", initialResponse: Self.plainResponse)]))
        #expect(fresh.replyReceived(Self.reply(235, "ok")) == .connectSucceeded(SMTPCapabilities(ehloReply: ehlo)))
    }

    @Test func implicitTLSHandshakeFailure() {
        var machine = Machine(heloName: "relay.test", tlsMode: .implicit)
        _ = machine.connected()
        let expected = SMTPClientError(code: .tlsFailed, phase: .tlsHandshake, detail: "handshake failed")
        #expect(machine.errorCaught("handshake failed") == .failAndClose(expected, sendQuit: false))
        #expect(expected.description == "TLS handshake failed (handshake failed)")
    }

    @Test func timeoutsCoverTheNewPhases() {
        var timeouts = SMTPClientTimeouts()
        timeouts.auth = .seconds(7)
        timeouts.startTLS = .seconds(9)
        #expect(timeouts.timeout(for: .auth) == .seconds(7))
        #expect(timeouts.timeout(for: .tlsHandshake) == .seconds(9))
        #expect(SMTPPhase.auth.phrase == "authenticating")
        #expect(SMTPPhase.tlsHandshake.phrase == "negotiating TLS")
    }

    @Test func credentialsNeverPrintTheirPassword() {
        #expect("\(Self.credentials)" == "relay-user (password redacted)")
        var configuration = SMTPClientConfiguration(heloName: "relay.test")
        #expect(configuration.tlsMode == .opportunistic && configuration.useSTARTTLS)
        configuration.useSTARTTLS = false
        #expect(configuration.tlsMode == SMTPClientTLSMode.none)
    }
}
