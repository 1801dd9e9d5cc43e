import SMTPClient
import SMTPCore
import Testing

/// The client session as protocol transcripts: each event, then the action the driver must take. No sockets.
@Suite struct SMTPClientStateMachineTests {
    typealias Machine = SMTPClientStateMachine

    static func reply(_ code: Int, _ lines: String...) -> SMTPReply { SMTPReply(code: code, wireLines: lines) }

    static let ehloPlain = reply(250, "mx.example.com", "SIZE 10000", "8BITMIME", "ENHANCEDSTATUSCODES")
    static let ehloPipelining = reply(250, "mx.example.com", "PIPELINING", "SIZE 10000", "8BITMIME")
    static let ehloTLS = reply(250, "mx.example.com", "PIPELINING", "STARTTLS")
    static let ok = reply(250, "2.0.0 OK")

    /// A machine that has done banner and EHLO with `ehlo`.
    static func ready(ehlo: SMTPReply = ehloPlain) -> Machine {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        #expect(machine.connected() == .wait)
        #expect(machine.replyReceived(reply(220, "mx.example.com ESMTP")) == .send([.ehlo("relay.test")]))
        #expect(machine.replyReceived(ehlo) == .connectSucceeded(SMTPCapabilities(ehloReply: ehlo)))
        #expect(machine.isUsable)
        return machine
    }

    static let envelope = SMTPEnvelope(mailFrom: "sender@relay.test", recipients: ["a@example.com", "b@example.com"])

    // MARK: Greeting

    @Test func greetingWithoutExtensions() {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        #expect(machine.currentPhase == nil)
        #expect(machine.connected() == .wait)
        #expect(machine.currentPhase == .banner)
        #expect(machine.replyReceived(Self.reply(220, "hi")) == .send([.ehlo("relay.test")]))
        #expect(machine.currentPhase == .ehlo)
        let ehlo = Self.reply(250, "mx")
        #expect(machine.replyReceived(ehlo) == .connectSucceeded(SMTPCapabilities(ehloReply: ehlo)))
        #expect(machine.currentPhase == nil)
        #expect(!machine.isTLSActive)
    }

    @Test func multiLineBannerIsOneReply() {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        _ = machine.connected()
        #expect(machine.replyReceived(Self.reply(220, "mx.example.com ESMTP", "no UCE")) == .send([.ehlo("relay.test")]))
    }

    @Test(arguments: [500, 502, 550, 554])
    func ehloRefusedFallsBackToHELO(code: Int) {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "old server"))
        #expect(machine.replyReceived(Self.reply(code, "command not recognized")) == .send([.helo("relay.test")]))
        #expect(machine.currentPhase == .helo)
        #expect(machine.replyReceived(Self.reply(250, "hello")) == .connectSucceeded(.none))
        #expect(machine.isUsable)
    }

    @Test func heloRefusedToo() {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        _ = machine.replyReceived(Self.reply(502, "no"))
        let refusal = Self.reply(550, "5.7.1 go away")
        #expect(machine.replyReceived(refusal) == .failAndClose(
            SMTPClientError(code: .greetingRejected, phase: .helo, reply: refusal), sendQuit: true))
        #expect(machine.isClosed)
    }

    @Test func ehloTransientFailureIsNotRetriedWithHELO() {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        let busy = Self.reply(421, "4.3.2 shutting down")
        #expect(machine.replyReceived(busy) == .failAndClose(
            SMTPClientError(code: .greetingRejected, phase: .ehlo, reply: busy), sendQuit: false))
    }

    @Test(arguments: [(554, true), (421, false), (450, true)])
    func bannerRejected(code: Int, sendQuit: Bool) {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        _ = machine.connected()
        let banner = Self.reply(code, "no service")
        let expected = SMTPClientError(code: .greetingRejected, phase: .banner, reply: banner)
        #expect(machine.replyReceived(banner) == .failAndClose(expected, sendQuit: sendQuit))
        #expect(expected.description == "server refused to talk to us while receiving the initial server greeting: \(code) no service")
    }

    // MARK: STARTTLS

    @Test func startTLSThenEHLOAgain() {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        #expect(machine.replyReceived(Self.ehloTLS) == .send([.startTLS]))
        #expect(machine.currentPhase == .startTLS)
        #expect(machine.replyReceived(Self.reply(220, "2.0.0 Ready to start TLS")) == .startTLSHandshake)
        #expect(machine.currentPhase == .startTLS)
        #expect(machine.tlsHandshakeSucceeded() == .send([.ehlo("relay.test")]))
        #expect(machine.isTLSActive)
        // Capabilities are those of the second EHLO (RFC 3207 §4.2); STARTTLS is no longer offered.
        let second = Self.reply(250, "mx", "PIPELINING", "SIZE 5000")
        #expect(machine.replyReceived(second) == .connectSucceeded(SMTPCapabilities(ehloReply: second)))
        #expect(machine.capabilities.size == 5000)
        #expect(!machine.capabilities.startTLS)
    }

    @Test func startTLSRefusedContinuesInPlaintext() {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        _ = machine.replyReceived(Self.ehloTLS)
        #expect(machine.replyReceived(Self.reply(454, "4.7.0 TLS not available")) == .connectSucceeded(SMTPCapabilities(ehloReply: Self.ehloTLS)))
        #expect(!machine.isTLSActive)
    }

    @Test func startTLSDisabled() {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: false)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        #expect(machine.replyReceived(Self.ehloTLS) == .connectSucceeded(SMTPCapabilities(ehloReply: Self.ehloTLS)))
    }

    @Test func tlsHandshakeFailure() {
        var machine = Machine(heloName: "relay.test", useSTARTTLS: true)
        _ = machine.connected()
        _ = machine.replyReceived(Self.reply(220, "x"))
        _ = machine.replyReceived(Self.ehloTLS)
        _ = machine.replyReceived(Self.reply(220, "go ahead"))
        #expect(machine.tlsHandshakeFailed("handshake failure") == .failAndClose(
            SMTPClientError(code: .tlsFailed, phase: .startTLS, detail: "handshake failure"), sendQuit: false))
        #expect(machine.isClosed)
    }

    // MARK: Transactions without PIPELINING

    @Test func transactionOneCommandAtATime() {
        var machine = Self.ready()
        #expect(machine.sendTransaction(Self.envelope, messageSize: 123, containsEightBitData: false)
            == .send([.mailFrom(reversePath: "sender@relay.test", parameters: [SMTPParameter(keyword: "SIZE", value: "123")])]))
        #expect(machine.currentPhase == .mailFrom)
        #expect(!machine.isUsable)
        #expect(machine.replyReceived(Self.reply(250, "2.1.0 Ok")) == .send([.rcptTo(forwardPath: "a@example.com", parameters: [])]))
        #expect(machine.currentPhase == .rcptTo)
        #expect(machine.replyReceived(Self.reply(550, "5.1.1 No such user")) == .send([.rcptTo(forwardPath: "b@example.com", parameters: [])]))
        #expect(machine.replyReceived(Self.reply(250, "2.1.5 Ok")) == .send([.data]))
        #expect(machine.currentPhase == .data)
        #expect(machine.replyReceived(Self.reply(354, "End data with <CR><LF>.<CR><LF>")) == .sendMessageData)
        #expect(machine.currentPhase == .message)
        #expect(machine.messageDataWritten() == .wait)
        #expect(machine.currentPhase == .endOfData)
        let queued = Self.reply(250, "2.0.0 Ok: queued as ABC")
        #expect(machine.replyReceived(queued) == .transactionSucceeded(SMTPTransactionResult(
            mailFrom: Self.reply(250, "2.1.0 Ok"),
            recipients: [Self.reply(550, "5.1.1 No such user"), Self.reply(250, "2.1.5 Ok")],
            data: queued
        ), closeConnection: false))
        #expect(machine.isUsable)
        #expect(machine.quit() == .send([.quit]))
        #expect(machine.currentPhase == .quit)
        #expect(machine.replyReceived(Self.reply(221, "Bye")) == .close)
        #expect(machine.isClosed)
    }

    @Test func mailRefusedEndsTheTransaction() {
        var machine = Self.ready()
        _ = machine.sendTransaction(Self.envelope, messageSize: 10, containsEightBitData: false)
        let tempfail = Self.reply(451, "4.3.0 Try again later")
        #expect(machine.replyReceived(tempfail) == .transactionSucceeded(
            SMTPTransactionResult(mailFrom: tempfail, recipients: [nil, nil], data: nil), closeConnection: false))
        #expect(machine.isUsable)
    }

    @Test func noRecipientAcceptedResetsWithoutDATA() {
        var machine = Self.ready()
        _ = machine.sendTransaction(Self.envelope, messageSize: 10, containsEightBitData: false)
        _ = machine.replyReceived(Self.ok)
        _ = machine.replyReceived(Self.reply(550, "5.1.1 unknown"))
        #expect(machine.replyReceived(Self.reply(450, "4.2.1 busy")) == .send([.rset]))
        #expect(machine.currentPhase == .rset)
        #expect(machine.replyReceived(Self.reply(250, "2.0.0 Ok")) == .transactionSucceeded(SMTPTransactionResult(
            mailFrom: Self.ok, recipients: [Self.reply(550, "5.1.1 unknown"), Self.reply(450, "4.2.1 busy")], data: nil
        ), closeConnection: false))
        #expect(machine.isUsable)
    }

    @Test func dataRefusedIsReportedAndReset() {
        var machine = Self.ready()
        _ = machine.sendTransaction(SMTPEnvelope(mailFrom: "", recipients: ["a@example.com"]), messageSize: 10, containsEightBitData: false)
        _ = machine.replyReceived(Self.ok)
        #expect(machine.replyReceived(Self.ok) == .send([.data]))
        let refused = Self.reply(451, "4.3.0 not now")
        #expect(machine.replyReceived(refused) == .send([.rset]))
        #expect(machine.replyReceived(Self.ok) == .transactionSucceeded(
            SMTPTransactionResult(mailFrom: Self.ok, recipients: [Self.ok], data: refused), closeConnection: false))
    }

    @Test func endOfDataRejected() {
        var machine = Self.ready()
        _ = machine.sendTransaction(SMTPEnvelope(mailFrom: "s@x", recipients: ["a@example.com"]), messageSize: 10, containsEightBitData: false)
        _ = machine.replyReceived(Self.ok)
        _ = machine.replyReceived(Self.ok)
        _ = machine.replyReceived(Self.reply(354, "go"))
        _ = machine.messageDataWritten()
        let rejected = Self.reply(554, "5.6.0 content rejected")
        // No RSET: the final reply ends the transaction either way (RFC 5321 §4.1.1.4).
        #expect(machine.replyReceived(rejected) == .transactionSucceeded(
            SMTPTransactionResult(mailFrom: Self.ok, recipients: [Self.ok], data: rejected), closeConnection: false))
        #expect(rejected.enhancedCode == EnhancedStatusCode("5.6.0"))
    }

    @Test func serverClosingMidTransaction() {
        var machine = Self.ready()
        _ = machine.sendTransaction(Self.envelope, messageSize: 10, containsEightBitData: false)
        _ = machine.replyReceived(Self.ok)
        let closing = Self.reply(421, "4.4.2 timeout")
        #expect(machine.replyReceived(closing) == .transactionSucceeded(
            SMTPTransactionResult(mailFrom: Self.ok, recipients: [closing, nil], data: nil), closeConnection: true))
        #expect(machine.isClosed)
    }

    // MARK: Transactions with PIPELINING

    @Test func pipelinedTransactionInOneWrite() {
        var machine = Self.ready(ehlo: Self.ehloPipelining)
        #expect(machine.sendTransaction(Self.envelope, messageSize: 77, containsEightBitData: true) == .send([
            .mailFrom(reversePath: "sender@relay.test", parameters: [
                SMTPParameter(keyword: "SIZE", value: "77"), SMTPParameter(keyword: "BODY", value: "8BITMIME"),
            ]),
            .rcptTo(forwardPath: "a@example.com", parameters: []),
            .rcptTo(forwardPath: "b@example.com", parameters: []),
            .data,
        ]))
        #expect(machine.replyReceived(Self.ok) == .wait)
        #expect(machine.currentPhase == .rcptTo)
        #expect(machine.replyReceived(Self.reply(550, "5.1.1 unknown")) == .wait)
        #expect(machine.replyReceived(Self.ok) == .wait)
        #expect(machine.currentPhase == .data)
        #expect(machine.replyReceived(Self.reply(354, "go")) == .sendMessageData)
        _ = machine.messageDataWritten()
        #expect(machine.replyReceived(Self.ok) == .transactionSucceeded(SMTPTransactionResult(
            mailFrom: Self.ok, recipients: [Self.reply(550, "5.1.1 unknown"), Self.ok], data: Self.ok
        ), closeConnection: false))
    }

    @Test func pipelinedWithoutAcceptedRecipientsSendsNoMessage() {
        var machine = Self.ready(ehlo: Self.ehloPipelining)
        _ = machine.sendTransaction(Self.envelope, messageSize: 10, containsEightBitData: false)
        _ = machine.replyReceived(Self.ok)
        _ = machine.replyReceived(Self.reply(550, "5.1.1 unknown"))
        _ = machine.replyReceived(Self.reply(550, "5.1.1 unknown"))
        // The expected reply to DATA: no valid recipients. The connection is then reset.
        #expect(machine.replyReceived(Self.reply(554, "5.5.1 No valid recipients")) == .send([.rset]))
        #expect(machine.replyReceived(Self.ok) == .transactionSucceeded(SMTPTransactionResult(
            mailFrom: Self.ok, recipients: [Self.reply(550, "5.1.1 unknown"), Self.reply(550, "5.1.1 unknown")], data: nil
        ), closeConnection: false))
    }

    @Test func pipelinedDataAcceptedWithoutRecipientsGetsAnEmptyMessage() {
        var machine = Self.ready(ehlo: Self.ehloPipelining)
        _ = machine.sendTransaction(SMTPEnvelope(mailFrom: "s@x", recipients: ["a@example.com"]), messageSize: 10, containsEightBitData: false)
        _ = machine.replyReceived(Self.ok)
        _ = machine.replyReceived(Self.reply(550, "5.1.1 unknown"))
        // RFC 2920 §3.1: a server that says 354 anyway gets only the terminating dot.
        #expect(machine.replyReceived(Self.reply(354, "go")) == .sendEmptyMessageData)
        #expect(machine.replyReceived(Self.reply(554, "5.5.1 no valid recipients")) == .send([.rset]))
        #expect(machine.replyReceived(Self.ok) == .transactionSucceeded(SMTPTransactionResult(
            mailFrom: Self.ok, recipients: [Self.reply(550, "5.1.1 unknown")], data: nil
        ), closeConnection: false))
    }

    @Test func pipelinedMailRefused() {
        var machine = Self.ready(ehlo: Self.ehloPipelining)
        _ = machine.sendTransaction(Self.envelope, messageSize: 10, containsEightBitData: false)
        let refused = Self.reply(451, "4.3.0 later")
        #expect(machine.replyReceived(refused) == .wait)
        #expect(machine.replyReceived(Self.reply(503, "5.5.1 need MAIL")) == .wait)
        #expect(machine.replyReceived(Self.reply(503, "5.5.1 need MAIL")) == .wait)
        // No transaction was open on the server: no RSET.
        #expect(machine.replyReceived(Self.reply(503, "5.5.1 need RCPT")) == .transactionSucceeded(
            SMTPTransactionResult(mailFrom: refused, recipients: [nil, nil], data: nil), closeConnection: false))
    }

    // MARK: Parameters and refusals before sending

    @Test func smtpUTF8() {
        var plain = Self.ready()
        let utf8Envelope = SMTPEnvelope(mailFrom: "s@x", recipients: ["j\u{F6}rg@example.de"])
        #expect(plain.sendTransaction(utf8Envelope, messageSize: 1, containsEightBitData: false)
            == .failOperation(SMTPClientError(code: .smtpUTF8NotSupported, phase: .mailFrom)))
        #expect(plain.isUsable)

        var capable = Self.ready(ehlo: Self.reply(250, "mx", "SMTPUTF8"))
        #expect(capable.sendTransaction(utf8Envelope, messageSize: 1, containsEightBitData: true)
            == .send([.mailFrom(reversePath: "s@x", parameters: [SMTPParameter(keyword: "SMTPUTF8")])]))
    }

    @Test func messageTooLarge() {
        var machine = Self.ready()
        let action = machine.sendTransaction(Self.envelope, messageSize: 10_001, containsEightBitData: false)
        guard case .failOperation(let error) = action else {
            Issue.record("expected failOperation, got \(action)")
            return
        }
        #expect(error.code == .messageTooLarge)
        #expect(machine.isUsable)
    }

    @Test(arguments: [
        SMTPEnvelope(mailFrom: "s@x", recipients: []),
        SMTPEnvelope(mailFrom: "s@x\r\nRSET", recipients: ["a@b"]),
        SMTPEnvelope(mailFrom: "s@x", recipients: ["a@b>"]),
        SMTPEnvelope(mailFrom: "s@x", recipients: [""]),
        SMTPEnvelope(mailFrom: "s@x", recipients: ["a b@c"]),
    ])
    func invalidEnvelopes(envelope: SMTPEnvelope) {
        var machine = Self.ready()
        let action = machine.sendTransaction(envelope, messageSize: 1, containsEightBitData: false)
        guard case .failOperation(let error) = action else {
            Issue.record("expected failOperation, got \(action)")
            return
        }
        #expect(error.code == .invalidEnvelope)
        #expect(machine.isUsable)
    }

    @Test func busyConnectionRefusesASecondTransaction() {
        var machine = Self.ready()
        _ = machine.sendTransaction(Self.envelope, messageSize: 1, containsEightBitData: false)
        #expect(machine.sendTransaction(Self.envelope, messageSize: 1, containsEightBitData: false)
            == .failOperation(SMTPClientError(code: .connectionNotReady, phase: .mailFrom)))
        #expect(machine.reset() == .failOperation(SMTPClientError(code: .connectionNotReady, phase: .rset)))
    }

    // MARK: RSET, timeouts, closing

    @Test func requestedReset() {
        var machine = Self.ready()
        #expect(machine.reset() == .send([.rset]))
        #expect(machine.replyReceived(Self.ok) == .resetSucceeded)
        #expect(machine.reset() == .send([.rset]))
        let refused = Self.reply(500, "no")
        #expect(machine.replyReceived(refused) == .failAndClose(
            SMTPClientError(code: .commandRejected, phase: .rset, reply: refused), sendQuit: true))
    }

    @Test func timeoutNamesThePhase() {
        var machine = Self.ready()
        _ = machine.sendTransaction(Self.envelope, messageSize: 1, containsEightBitData: false)
        _ = machine.replyReceived(Self.ok)
        let expected = SMTPClientError(code: .timeout, phase: .rcptTo)
        #expect(machine.timeout() == .failAndClose(expected, sendQuit: false))
        #expect(expected.description == "timed out waiting for the reply to RCPT TO")
        #expect(machine.timeout() == .wait)
    }

    @Test func timeoutWhileQuittingJustCloses() {
        var machine = Self.ready()
        _ = machine.quit()
        #expect(machine.timeout() == .close)
    }

    @Test func connectionLostDuringData() {
        var machine = Self.ready()
        _ = machine.sendTransaction(SMTPEnvelope(mailFrom: "s@x", recipients: ["a@b"]), messageSize: 1, containsEightBitData: false)
        _ = machine.replyReceived(Self.ok)
        _ = machine.replyReceived(Self.ok)
        _ = machine.replyReceived(Self.reply(354, "go"))
        let action = machine.connectionClosed()
        guard case .failAndClose(let error, _) = action else {
            Issue.record("expected failAndClose, got \(action)")
            return
        }
        #expect(error.code == .connectionClosed)
        #expect(error.phase == .message)
    }

    @Test func idleConnectionClosedByServer() {
        var machine = Self.ready()
        #expect(machine.connectionClosed() == .close)
        #expect(!machine.isUsable)
        #expect(machine.sendTransaction(Self.envelope, messageSize: 1, containsEightBitData: false)
            == .failOperation(SMTPClientError(code: .connectionNotReady, phase: .mailFrom)))
    }

    @Test func unsolicitedReplyWhileIdle() {
        var machine = Self.ready()
        let action = machine.replyReceived(Self.reply(421, "4.4.2 idle timeout"))
        guard case .failAndClose(let error, false) = action else {
            Issue.record("expected failAndClose, got \(action)")
            return
        }
        #expect(error.code == .connectionClosed)
        #expect(machine.isClosed)
    }

    @Test func malformedInput() {
        var machine = Self.ready()
        _ = machine.sendTransaction(Self.envelope, messageSize: 1, containsEightBitData: false)
        #expect(machine.protocolViolation("malformed reply line") == .failAndClose(
            SMTPClientError(code: .protocolViolation, phase: .mailFrom, detail: "malformed reply line"), sendQuit: false))
    }

    @Test func quitWhileBusyClosesAtOnce() {
        var machine = Self.ready()
        _ = machine.sendTransaction(Self.envelope, messageSize: 1, containsEightBitData: false)
        let action = machine.quit()
        guard case .failAndClose(let error, false) = action else {
            Issue.record("expected failAndClose, got \(action)")
            return
        }
        #expect(error.phase == .mailFrom)
    }

    // MARK: Capabilities

    @Test func capabilitiesFromEHLO() {
        let caps = SMTPCapabilities(ehloReply: Self.reply(
            250, "mx.example.com Hello", "pipelining", "SIZE 35882577", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
            "CHUNKING", "STARTTLS", "AUTH PLAIN LOGIN", ""
        ))
        #expect(caps.pipelining && caps.eightBitMIME && caps.smtpUTF8 && caps.enhancedStatusCodes && caps.chunking && caps.startTLS)
        #expect(caps.size == 35_882_577)
        #expect(caps.keywords == ["PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS", "AUTH"])
        #expect(SMTPCapabilities(ehloReply: Self.reply(250, "mx", "SIZE")).size == nil)
        #expect(SMTPCapabilities(ehloReply: Self.reply(250, "mx", "SIZE 0")).size == nil)
    }

    @Test func phasePhrases() {
        #expect(SMTPClientError(code: .timeout, phase: .banner).description == "timed out waiting for the initial server greeting")
        #expect(SMTPClientError(code: .connectionFailed, phase: .connect, detail: "connection refused", remoteAddress: "127.0.0.2:25")
            .description == "connection refused while connecting to 127.0.0.2:25")
        #expect(SMTPClientError(code: .connectionClosed, phase: .endOfData, remoteAddress: "[::1]:25")
            .description == "lost connection while sending end of data with [::1]:25")
        for phase in SMTPPhase.allCases { #expect(!phase.phrase.isEmpty) }
    }
}
