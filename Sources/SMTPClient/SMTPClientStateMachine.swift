#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SMTPCore

/// The outbound SMTP session as a pure state machine: no sockets, no clocks.
///
/// Each event (a reply arrived, the TLS handshake finished, the caller wants to send a transaction, a timer
/// fired, the connection closed) is one `mutating func` that returns the ``Action`` the driver must carry out.
/// ``SMTPConnection`` is the driver; the tests drive the machine directly, reading like a protocol transcript.
///
/// Phases: (implicit TLS handshake →) banner → EHLO (HELO when EHLO gets a 5xx) → STARTTLS → EHLO again →
/// AUTH when credentials are set (only over TLS) → ready; then per transaction
/// MAIL → RCPT… → DATA → message → end of data, with RSET after a transaction that was left open, and QUIT.
/// With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one write and the replies are matched in
/// order; without it, one command at a time.
///
/// Session facts (capabilities, TLS) are kept apart from the mail transaction, which ends with every
/// transaction.
public struct SMTPClientStateMachine: Sendable {
    /// What the driver must do after an event.
    public enum Action: Sendable, Hashable {
        /// Nothing; wait for the next event.
        case wait
        /// Write these commands, in one write.
        case send([SMTPCommand])
        /// Write this line of the AUTH exchange (a base64 SASL response, RFC 4954 §4) followed by CRLF. It holds a
        /// credential: the transcript must show it redacted.
        case sendAuthenticationResponse(String)
        /// Add TLS to the connection and start the handshake; report the outcome with
        /// ``tlsHandshakeSucceeded()`` or ``tlsHandshakeFailed(_:)``.
        case startTLSHandshake
        /// Write the encoded message content; report with ``messageDataWritten()``.
        case sendMessageData
        /// Write only the terminating ".\r\n": the server said 354 to a pipelined DATA although no recipient was
        /// accepted (RFC 2920 §3.1); the content must not be sent.
        case sendEmptyMessageData
        /// The session is ready for transactions; complete the connect with these capabilities.
        case connectSucceeded(SMTPCapabilities)
        /// Complete the transaction with this result; close the connection afterwards when `closeConnection`.
        case transactionSucceeded(SMTPTransactionResult, closeConnection: Bool)
        /// Complete the RSET requested with ``reset()``.
        case resetSucceeded
        /// Fail only the operation just requested; the session carries on unchanged.
        case failOperation(SMTPClientError)
        /// Fail the pending operation and close the connection, writing QUIT first when `sendQuit`.
        case failAndClose(SMTPClientError, sendQuit: Bool)
        /// Close the connection (QUIT answered, or closing was requested).
        case close
    }

    enum State: Sendable {
        case initialized
        case awaitingBanner
        case awaitingEHLOReply(afterTLS: Bool)
        case awaitingHELOReply
        case awaitingSTARTTLSReply
        /// `implicit`: TLS from connect (RFC 8314), before the banner; otherwise after STARTTLS.
        case tlsHandshaking(implicit: Bool)
        case authenticating(AuthStep)
        case ready
        case transaction(Transaction)
        case resetting(ResetPurpose)
        case quitting
        case closed
    }

    /// Where an AUTH exchange stands: which reply is awaited.
    enum AuthStep: Sendable {
        /// The reply to `AUTH PLAIN <initial response>` (RFC 4616).
        case plain
        /// The username challenge after `AUTH LOGIN`.
        case loginUsername
        /// The password challenge after the username.
        case loginPassword
        /// The final reply after the password.
        case loginFinal
    }

    enum ResetPurpose: Sendable {
        /// The caller asked for RSET.
        case requested
        /// The transaction left the server in the middle of a transaction; hand back `result` after RSET.
        case afterTransaction(SMTPTransactionResult)
    }

    /// One mail transaction in flight.
    struct Transaction: Sendable {
        enum Step: Sendable, Hashable {
            case mailFrom
            case rcptTo(Int)
            case data
            case message
            case endOfData
            /// Waiting for the reply to the lone "." sent after an unwanted 354.
            case emptyData
        }

        let envelope: SMTPEnvelope
        let pipelined: Bool
        var step: Step = .mailFrom
        var mailReply: SMTPReply?
        var recipientReplies: [SMTPReply?]

        init(envelope: SMTPEnvelope, pipelined: Bool) {
            self.envelope = envelope
            self.pipelined = pipelined
            self.recipientReplies = Array(repeating: nil, count: envelope.recipients.count)
        }

        var mailAccepted: Bool { mailReply?.isPositiveCompletion == true }
        var anyRecipientAccepted: Bool { recipientReplies.contains { $0?.isPositiveCompletion == true } }

        func result(data: SMTPReply?) -> SMTPTransactionResult {
            // A transaction always has a MAIL reply before it produces a result.
            let mail = mailReply ?? SMTPReply(code: 554, text: "no reply to MAIL FROM")
            return SMTPTransactionResult(
                mailFrom: mail,
                recipients: mailAccepted ? recipientReplies : Array(repeating: nil, count: recipientReplies.count),
                data: mailAccepted && anyRecipientAccepted ? data : nil
            )
        }
    }

    private var state: State = .initialized
    private let heloName: String
    private let tlsMode: SMTPClientTLSMode
    private let credentials: SMTPCredentials?
    /// The extensions from the latest EHLO reply.
    public private(set) var capabilities: SMTPCapabilities = .none
    /// True once the TLS handshake (after STARTTLS, or of implicit TLS) has succeeded.
    public private(set) var isTLSActive = false

    /// Creates a machine for a session that greets with `heloName` and upgrades with STARTTLS when offered and
    /// `useSTARTTLS` is true (opportunistic TLS, no AUTH).
    public init(heloName: String, useSTARTTLS: Bool) {
        self.init(heloName: heloName, tlsMode: useSTARTTLS ? .opportunistic : .none)
    }

    /// Creates a machine for a session that greets with `heloName`, encrypts as `tlsMode` says and, when
    /// `credentials` are given, authenticates after the (last) EHLO, only over TLS.
    ///
    /// With ``SMTPClientTLSMode/implicit`` the driver puts TLS on the connection before it connects and reports
    /// the handshake with ``tlsHandshakeSucceeded()`` or ``tlsHandshakeFailed(_:)`` before any reply.
    public init(heloName: String, tlsMode: SMTPClientTLSMode, credentials: SMTPCredentials? = nil) {
        self.heloName = heloName
        self.tlsMode = tlsMode
        self.credentials = credentials
    }

    /// True between transactions: a new transaction, RSET or QUIT may start.
    public var isUsable: Bool {
        if case .ready = state { return true }
        return false
    }

    /// True once the session has ended (closed, failed or quit).
    public var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// The phase whose timeout applies now, or nil when nothing is awaited (idle or closed).
    public var currentPhase: SMTPPhase? {
        switch state {
        case .initialized, .ready, .closed: nil
        case .awaitingBanner: .banner
        case .awaitingEHLOReply: .ehlo
        case .awaitingHELOReply: .helo
        case .awaitingSTARTTLSReply: .startTLS
        case .tlsHandshaking(let implicit): implicit ? .tlsHandshake : .startTLS
        case .authenticating: .auth
        case .transaction(let transaction):
            switch transaction.step {
            case .mailFrom: .mailFrom
            case .rcptTo: .rcptTo
            case .data: .data
            case .message: .message
            case .endOfData, .emptyData: .endOfData
            }
        case .resetting: .rset
        case .quitting: .quit
        }
    }

    /// The phase to name in an error: the current one, or the last meaningful one when idle.
    private var errorPhase: SMTPPhase { currentPhase ?? .quit }

    // MARK: - Events

    /// The TCP connection is up; the banner is awaited next.
    public mutating func connected() -> Action {
        guard case .initialized = state else { return .wait }
        state = tlsMode == .implicit ? .tlsHandshaking(implicit: true) : .awaitingBanner
        return .wait
    }

    /// A complete reply arrived.
    public mutating func replyReceived(_ reply: SMTPReply) -> Action {
        switch state {
        case .initialized, .tlsHandshaking:
            return protocolViolation("reply received before it could be expected: \(reply)")
        case .closed:
            return .wait
        case .awaitingBanner:
            guard reply.isPositiveCompletion else {
                state = .closed
                // RFC 5321 §3.1: after a 554 greeting the client should send QUIT; after 421 the server is gone.
                return .failAndClose(
                    SMTPClientError(code: .greetingRejected, phase: .banner, reply: reply),
                    sendQuit: reply.code != 421
                )
            }
            state = .awaitingEHLOReply(afterTLS: false)
            return .send([.ehlo(heloName)])
        case .awaitingEHLOReply(let afterTLS):
            return ehloReplyReceived(reply, afterTLS: afterTLS)
        case .awaitingHELOReply:
            guard reply.isPositiveCompletion else {
                state = .closed
                return .failAndClose(
                    SMTPClientError(code: .greetingRejected, phase: .helo, reply: reply),
                    sendQuit: reply.code != 421
                )
            }
            capabilities = .none
            return greetingCompleted()
        case .awaitingSTARTTLSReply:
            if reply.isPositiveCompletion {
                state = .tlsHandshaking(implicit: false)
                return .startTLSHandshake
            }
            if reply.code == 421 {
                state = .closed
                return .failAndClose(SMTPClientError(code: .greetingRejected, phase: .startTLS, reply: reply), sendQuit: false)
            }
            // RFC 3207 §4: after a refusal (454) the client decides; opportunistic TLS carries on in plaintext
            // with the capabilities of the first EHLO, required TLS gives up (greetingCompleted).
            return greetingCompleted(startTLSRefusal: reply)
        case .authenticating(let step):
            return authenticationReplyReceived(reply, step: step)
        case .ready:
            // An unsolicited reply: a 421 before the server closes an idle connection, or garbage.
            state = .closed
            if reply.code == 421 {
                return .failAndClose(SMTPClientError(code: .connectionClosed, phase: .quit, reply: reply), sendQuit: false)
            }
            return .failAndClose(
                SMTPClientError(code: .protocolViolation, phase: .quit, reply: reply, detail: "unexpected reply while idle"),
                sendQuit: false
            )
        case .transaction(var transaction):
            return transactionReplyReceived(reply, transaction: &transaction)
        case .resetting(let purpose):
            switch purpose {
            case .requested:
                if reply.isPositiveCompletion {
                    state = .ready
                    return .resetSucceeded
                }
                state = .closed
                return .failAndClose(
                    SMTPClientError(code: .commandRejected, phase: .rset, reply: reply),
                    sendQuit: reply.code != 421
                )
            case .afterTransaction(let result):
                if reply.isPositiveCompletion {
                    state = .ready
                    return .transactionSucceeded(result, closeConnection: false)
                }
                // The outcome of the transaction stands; only the connection is spent.
                state = .closed
                return .transactionSucceeded(result, closeConnection: true)
            }
        case .quitting:
            state = .closed
            return .close
        }
    }

    private mutating func ehloReplyReceived(_ reply: SMTPReply, afterTLS: Bool) -> Action {
        if reply.isPositiveCompletion {
            capabilities = SMTPCapabilities(ehloReply: reply)
            if !afterTLS, !isTLSActive, tlsMode == .opportunistic || tlsMode == .startTLS, capabilities.startTLS {
                state = .awaitingSTARTTLSReply
                return .send([.startTLS])
            }
            return greetingCompleted()
        }
        if reply.isPermanent {
            // A server that does not know EHLO answers 500 or 502 (RFC 5321 §4.1.4: fall back to HELO); Postfix
            // falls back on any 5xx.
            state = .awaitingHELOReply
            return .send([.helo(heloName)])
        }
        state = .closed
        return .failAndClose(
            SMTPClientError(code: .greetingRejected, phase: .ehlo, reply: reply),
            sendQuit: reply.code != 421
        )
    }

    /// EHLO (or HELO) is done and no STARTTLS is coming: check the TLS policy, then AUTH when credentials are
    /// set, else the session is ready.
    private mutating func greetingCompleted(startTLSRefusal: SMTPReply? = nil) -> Action {
        if tlsMode == .startTLS || tlsMode == .implicit, !isTLSActive {
            state = .closed
            return .failAndClose(
                SMTPClientError(code: .tlsUnavailable, phase: .startTLS, reply: startTLSRefusal,
                                detail: startTLSRefusal == nil ? "the server does not offer STARTTLS" : "the server refused STARTTLS"),
                sendQuit: true
            )
        }
        guard let credentials else {
            state = .ready
            return .connectSucceeded(capabilities)
        }
        // RFC 4954 §4 leaves it to the client; Relay sends credentials only over TLS, never in plaintext.
        guard isTLSActive else {
            state = .closed
            return .failAndClose(
                SMTPClientError(code: .authenticationUnavailable, phase: .auth,
                                detail: "credentials are sent only over TLS and this session is not encrypted; nothing was sent"),
                sendQuit: true
            )
        }
        if capabilities.authMechanisms.contains("PLAIN") {
            // RFC 4616 §2: message = [authzid] NUL authcid NUL passwd; sent as the initial response (RFC 4954 §4).
            state = .authenticating(.plain)
            let message = "\u{0}\(credentials.username)\u{0}\(credentials.password)"
            return .send([.auth(mechanism: "PLAIN", initialResponse: Self.base64(message))])
        }
        if capabilities.authMechanisms.contains("LOGIN") {
            state = .authenticating(.loginUsername)
            return .send([.auth(mechanism: "LOGIN", initialResponse: nil)])
        }
        state = .closed
        let offered = capabilities.authMechanisms.isEmpty
            ? "it offers no AUTH" : "it offers AUTH \(capabilities.authMechanisms.joined(separator: " "))"
        return .failAndClose(
            SMTPClientError(code: .authenticationUnavailable, phase: .auth,
                            detail: "the server offers neither AUTH PLAIN nor AUTH LOGIN (\(offered))"),
            sendQuit: true
        )
    }

    /// A reply in the AUTH exchange: 334 asks for the next LOGIN step, 2xx (235) completes it, 4xx/5xx fail it.
    private mutating func authenticationReplyReceived(_ reply: SMTPReply, step: AuthStep) -> Action {
        guard let credentials else { return protocolViolation("AUTH reply without credentials") }
        if reply.isPositiveCompletion {
            state = .ready
            return .connectSucceeded(capabilities)
        }
        if reply.isPositiveIntermediate {
            // AUTH LOGIN (draft-murchison-sasl-login): the server asks for the user name, then the password. The
            // prompt text is not checked: servers word it differently.
            switch step {
            case .loginUsername:
                state = .authenticating(.loginPassword)
                return .sendAuthenticationResponse(Self.base64(credentials.username))
            case .loginPassword:
                state = .authenticating(.loginFinal)
                return .sendAuthenticationResponse(Self.base64(credentials.password))
            case .plain, .loginFinal:
                state = .closed
                return .failAndClose(
                    SMTPClientError(code: .protocolViolation, phase: .auth, reply: reply, detail: "a challenge where none was expected"),
                    sendQuit: false
                )
            }
        }
        // RFC 4954 §6: 535 5.7.8 credentials invalid (permanent), 454 4.7.0 temporary failure, 534, 538, ….
        state = .closed
        return .failAndClose(SMTPClientError(code: .authenticationFailed, phase: .auth, reply: reply), sendQuit: reply.code != 421)
    }

    private static func base64(_ text: String) -> String {
        Data(text.utf8).base64EncodedString()
    }

    private mutating func transactionReplyReceived(_ reply: SMTPReply, transaction: inout Transaction) -> Action {
        let serverClosing = reply.code == 421  // RFC 5321 §3.8: the server is closing the channel.
        switch transaction.step {
        case .mailFrom:
            transaction.mailReply = reply
            if serverClosing || (!transaction.pipelined && !reply.isPositiveCompletion) {
                return finish(transaction.result(data: nil), close: serverClosing)
            }
            transaction.step = .rcptTo(0)
            state = .transaction(transaction)
            return transaction.pipelined ? .wait : .send([rcptCommand(transaction, 0)])

        case .rcptTo(let index):
            if transaction.mailAccepted { transaction.recipientReplies[index] = reply }
            if serverClosing {
                return finish(transaction.result(data: nil), close: true)
            }
            let next = index + 1
            if next < transaction.envelope.recipients.count {
                transaction.step = .rcptTo(next)
                state = .transaction(transaction)
                return transaction.pipelined ? .wait : .send([rcptCommand(transaction, next)])
            }
            if transaction.pipelined {
                transaction.step = .data
                state = .transaction(transaction)
                return .wait
            }
            guard transaction.anyRecipientAccepted else {
                // Nobody to deliver to: the server is inside a transaction (MAIL accepted), so reset it.
                return resetAfter(transaction.result(data: nil))
            }
            transaction.step = .data
            state = .transaction(transaction)
            return .send([.data])

        case .data:
            if reply.isPositiveIntermediate {
                if transaction.mailAccepted, transaction.anyRecipientAccepted {
                    transaction.step = .message
                    state = .transaction(transaction)
                    return .sendMessageData
                }
                // RFC 2920 §3.1: DATA accepted with no valid recipient; end it with an empty message.
                transaction.step = .emptyData
                state = .transaction(transaction)
                return .sendEmptyMessageData
            }
            if reply.isPositiveCompletion {
                state = .closed
                return .failAndClose(
                    SMTPClientError(code: .protocolViolation, phase: .data, reply: reply, detail: "2xx reply to DATA"),
                    sendQuit: true
                )
            }
            if serverClosing {
                return finish(transaction.result(data: reply), close: true)
            }
            if !transaction.mailAccepted {
                // Pipelined MAIL was refused: there is no transaction on the server to reset.
                return finish(transaction.result(data: nil), close: false)
            }
            return resetAfter(transaction.result(data: reply))

        case .message, .endOfData:
            if reply.isPositiveIntermediate {
                state = .closed
                return .failAndClose(
                    SMTPClientError(code: .protocolViolation, phase: .endOfData, reply: reply, detail: "3xx reply to end of data"),
                    sendQuit: true
                )
            }
            // Any 2xx/4xx/5xx here ends the transaction (RFC 5321 §4.1.1.4); nothing needs resetting.
            return finish(transaction.result(data: reply), close: serverClosing)

        case .emptyData:
            if serverClosing {
                return finish(transaction.result(data: nil), close: true)
            }
            return resetAfter(transaction.result(data: nil))
        }
    }

    private mutating func finish(_ result: SMTPTransactionResult, close: Bool) -> Action {
        state = close ? .closed : .ready
        return .transactionSucceeded(result, closeConnection: close)
    }

    private mutating func resetAfter(_ result: SMTPTransactionResult) -> Action {
        state = .resetting(.afterTransaction(result))
        return .send([.rset])
    }

    private func rcptCommand(_ transaction: Transaction, _ index: Int) -> SMTPCommand {
        .rcptTo(forwardPath: transaction.envelope.recipients[index], parameters: [])
    }

    /// The TLS handshake completed. After STARTTLS, EHLO is sent again (RFC 3207 §4.2: the client must discard
    /// what it learned before TLS); with implicit TLS the banner is awaited next.
    public mutating func tlsHandshakeSucceeded() -> Action {
        guard case .tlsHandshaking(let implicit) = state else { return .wait }
        isTLSActive = true
        if implicit {
            state = .awaitingBanner
            return .wait
        }
        capabilities = .none
        state = .awaitingEHLOReply(afterTLS: true)
        return .send([.ehlo(heloName)])
    }

    /// The TLS handshake failed; the connection cannot be used (the server is mid-handshake).
    public mutating func tlsHandshakeFailed(_ detail: String) -> Action {
        guard case .tlsHandshaking(let implicit) = state else { return errorCaught(detail) }
        state = .closed
        return .failAndClose(SMTPClientError(code: .tlsFailed, phase: implicit ? .tlsHandshake : .startTLS, detail: detail),
                             sendQuit: false)
    }

    /// The caller wants to send a transaction. `messageSize` is the encoded size (for SIZE=, RFC 1870) and
    /// `containsEightBitData` decides BODY=8BITMIME (RFC 6152).
    public mutating func sendTransaction(_ envelope: SMTPEnvelope, messageSize: Int, containsEightBitData: Bool) -> Action {
        guard case .ready = state else {
            return .failOperation(SMTPClientError(code: .connectionNotReady, phase: .mailFrom))
        }
        guard !envelope.recipients.isEmpty else {
            return .failOperation(SMTPClientError(code: .invalidEnvelope, phase: .mailFrom, detail: "no recipients"))
        }
        guard SMTPCommand.isValidPath(envelope.mailFrom) else {
            return .failOperation(SMTPClientError(code: .invalidEnvelope, phase: .mailFrom, detail: "invalid sender address"))
        }
        for recipient in envelope.recipients where recipient.isEmpty || !SMTPCommand.isValidPath(recipient) {
            return .failOperation(SMTPClientError(code: .invalidEnvelope, phase: .rcptTo, detail: "invalid recipient address"))
        }
        let nonASCIIAddress = ([envelope.mailFrom] + envelope.recipients).contains { $0.utf8.contains { $0 >= 0x80 } }
        let needsSMTPUTF8 = envelope.requiresSMTPUTF8 || nonASCIIAddress
        if needsSMTPUTF8, !capabilities.smtpUTF8 {
            return .failOperation(SMTPClientError(code: .smtpUTF8NotSupported, phase: .mailFrom))
        }
        if let limit = capabilities.size, messageSize > limit {
            return .failOperation(SMTPClientError(
                code: .messageTooLarge, phase: .mailFrom,
                detail: "message size \(messageSize) exceeds the limit of \(limit)"
            ))
        }

        var parameters: [SMTPParameter] = []
        if capabilities.keywords.contains("SIZE") {
            parameters.append(SMTPParameter(keyword: "SIZE", value: String(messageSize)))
        }
        // Without 8BITMIME the content is sent as is (as Postfix does with MIME conversion off): most servers
        // accept it, and rewriting MIME parts would break DKIM signatures.
        if containsEightBitData, capabilities.eightBitMIME {
            parameters.append(SMTPParameter(keyword: "BODY", value: "8BITMIME"))
        }
        if needsSMTPUTF8 {
            parameters.append(SMTPParameter(keyword: "SMTPUTF8"))
        }

        let transaction = Transaction(envelope: envelope, pipelined: capabilities.pipelining)
        state = .transaction(transaction)
        let mail = SMTPCommand.mailFrom(reversePath: envelope.mailFrom, parameters: parameters)
        guard transaction.pipelined else { return .send([mail]) }
        // RFC 2920 §3.1: MAIL, RCPTs and DATA may form one group; DATA is the last command of the group.
        var commands = [mail]
        for index in envelope.recipients.indices { commands.append(rcptCommand(transaction, index)) }
        commands.append(.data)
        return .send(commands)
    }

    /// The message content (or the lone "." of ``Action/sendEmptyMessageData``) has been written in full;
    /// the reply to end of data is awaited next.
    public mutating func messageDataWritten() -> Action {
        guard case .transaction(var transaction) = state, transaction.step == .message else { return .wait }
        transaction.step = .endOfData
        state = .transaction(transaction)
        return .wait
    }

    /// The caller wants RSET.
    public mutating func reset() -> Action {
        guard case .ready = state else {
            return .failOperation(SMTPClientError(code: .connectionNotReady, phase: .rset))
        }
        state = .resetting(.requested)
        return .send([.rset])
    }

    /// The caller wants to end the session: QUIT when idle, otherwise close at once.
    public mutating func quit() -> Action {
        switch state {
        case .ready:
            state = .quitting
            return .send([.quit])
        case .closed, .quitting:
            return .wait
        default:
            let phase = errorPhase
            state = .closed
            return .failAndClose(
                SMTPClientError(code: .connectionClosed, phase: phase, detail: "closed by the client"),
                sendQuit: false
            )
        }
    }

    /// The phase's timeout expired.
    public mutating func timeout() -> Action {
        switch state {
        case .initialized, .ready, .closed:
            return .wait
        case .quitting:
            state = .closed
            return .close
        default:
            let phase = errorPhase
            state = .closed
            return .failAndClose(SMTPClientError(code: .timeout, phase: phase), sendQuit: false)
        }
    }

    /// The server sent bytes that are not a valid reply, or sent them when it must not (before TLS).
    public mutating func protocolViolation(_ detail: String) -> Action {
        switch state {
        case .closed:
            return .wait
        case .quitting:
            state = .closed
            return .close
        default:
            let phase = errorPhase
            state = .closed
            return .failAndClose(SMTPClientError(code: .protocolViolation, phase: phase, detail: detail), sendQuit: false)
        }
    }

    /// The network reported an error (reset, TLS alert after the handshake).
    public mutating func errorCaught(_ detail: String) -> Action {
        switch state {
        case .closed:
            return .wait
        case .quitting:
            state = .closed
            return .close
        case .tlsHandshaking:
            return tlsHandshakeFailed(detail)
        default:
            let phase = errorPhase
            state = .closed
            return .failAndClose(SMTPClientError(code: .connectionClosed, phase: phase, detail: detail), sendQuit: false)
        }
    }

    /// The connection closed.
    public mutating func connectionClosed() -> Action {
        switch state {
        case .closed:
            return .wait
        case .ready, .quitting:
            state = .closed
            return .close
        default:
            let phase = errorPhase
            state = .closed
            return .failAndClose(
                SMTPClientError(code: .connectionClosed, phase: phase, detail: "connection closed by the server"),
                sendQuit: false
            )
        }
    }
}
