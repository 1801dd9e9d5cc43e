import NIOCore
import SMTPCore

/// The server side of one SMTP submission session (RFC 5321, RFC 6409) as a pure state machine: events in,
/// actions out, no I/O.
///
/// The NIO layer reports what happened (a command line arrived, DATA bytes arrived, TLS is up, the backend
/// answered, the timer fired) through one `mutating func` per event and carries out the ``Action`` each returns.
/// While ``isBusy`` (the backend is deciding about credentials, a sender or a message) it must hold further
/// input; while ``expectsRawData`` it feeds bytes to ``dataReceived(_:)`` instead of framing lines.
///
/// Each verb is first checked (is it allowed now?) and then carried out, as in OpenSMTPD's `smtp_session.c`.
/// Session facts (HELO name, TLS, the authenticated principal, the error count) are kept apart from the mail
/// transaction (sender, recipients), which RSET, EHLO, a rejected message or a committed one throw away.
public struct SMTPServerSession: Sendable {
    /// What the NIO layer must do next.
    public enum Action: Sendable, Equatable {
        /// Nothing; wait for more input.
        case none
        /// Write the reply.
        case reply(SMTPReply)
        /// Write the reply, then close the connection.
        case replyAndClose(SMTPReply)
        /// Write the 220, DISCARD any bytes already received after the STARTTLS line (CVE-2011-0411 class),
        /// then start the TLS handshake and call ``tlsEstablished()`` when it completes.
        case replyAndStartTLS(SMTPReply)
        /// Check the credentials with the backend, then call ``authenticationCompleted(_:)``.
        case authenticate(username: String, password: String)
        /// Ask the backend whether `principal` may send as `address`, then call ``senderChecked(_:)``.
        case checkSender(principal: String, address: String)
        /// Commit the message with the backend, then call ``messageCommitted(_:)`` with its reply.
        case commit(SubmittedMessage)
        /// Close the connection without writing anything.
        case close
    }

    /// Session facts: what survives from one mail transaction to the next.
    struct Facts: Sendable {
        /// The EHLO/HELO argument; nil until the client greeted (and again after STARTTLS).
        var heloName: String?
        /// Whether the greeting was EHLO (extensions may be used).
        var extended = false
        /// Whether the connection is encrypted.
        var tlsActive: Bool
        /// Who authenticated, once AUTH succeeded, or the trusted network's principal.
        var principal: String?
        /// Whether `principal` came from ``SMTPServerConfiguration/trustedNetworks``, not AUTH (AUTH and STARTTLS
        /// stay allowed).
        var trustedByAddress = false
        /// Refused commands so far; past ``SMTPServerConfiguration/maximumErrors`` the session closes.
        var errorCount = 0
    }

    /// The mail transaction (OpenSMTPD's `struct smtp_tx`): begun by MAIL, thrown away by RSET, EHLO/HELO,
    /// a rejected message or a committed one.
    struct Transaction: Sendable {
        var mailFrom: String
        var recipients: [String] = []
        var eightBitMIME = false
        var smtpUTF8 = false
    }

    /// Where an AUTH exchange stands after a 334 challenge.
    enum AuthExchange: Sendable, Equatable {
        /// `AUTH PLAIN` without an initial response: the next line is the PLAIN message.
        case plain
        /// `AUTH LOGIN`: the next line is the user name.
        case loginUsername
        /// `AUTH LOGIN`: the next line is the password.
        case loginPassword(username: String)
    }

    enum State: Sendable {
        /// Before ``connected()``.
        case initial
        /// Reading command lines.
        case command
        /// A 334 challenge was sent; the next line answers it.
        case authExchange(AuthExchange)
        /// Waiting for ``authenticationCompleted(_:)``.
        case authenticating
        /// Waiting for ``senderChecked(_:)``; the transaction begins when the sender is accepted.
        case checkingSender(Transaction)
        /// Between the 354 and the end of data.
        case receivingData(SMTPDataDecoder)
        /// Waiting for ``messageCommitted(_:)``.
        case committing
        /// The 220 to STARTTLS was sent; waiting for ``tlsEstablished()``.
        case startingTLS
        /// The connection is (being) closed; every event is ignored.
        case closed
        /// Placeholder while a payload is mutated in place (avoids copying the DATA buffer).
        case modifying
    }

    let configuration: SMTPServerConfiguration
    let remoteAddress: String
    var state: State = .initial
    var facts: Facts
    var transaction: Transaction?
    /// Set by ``shutdownRequested()`` while a message or backend call is in progress.
    var shutdownPending = false
    var remainingAfterData: ByteBuffer?

    /// Creates the session for a new connection; `tlsActive` is true for implicit TLS (port 465).
    public init(configuration: SMTPServerConfiguration, remoteAddress: String, tlsActive: Bool) {
        self.configuration = configuration
        self.remoteAddress = remoteAddress
        self.facts = Self.initialFacts(configuration: configuration, remoteAddress: remoteAddress, tlsActive: tlsActive)
    }

    /// The facts a session starts with (again after STARTTLS).
    static func initialFacts(configuration: SMTPServerConfiguration, remoteAddress: String, tlsActive: Bool) -> Facts {
        var facts = Facts(tlsActive: tlsActive)
        switch configuration.mode {
        case .inbound:
            // Inbound sessions never authenticate: every client is the same anonymous principal.
            facts.principal = anonymousPrincipal
        case .submission:
            if let principal = configuration.trustedNetworks.principal(for: remoteAddress) {
                facts.principal = principal
                facts.trustedByAddress = true
            }
        }
        return facts
    }

    /// The principal of inbound sessions.
    public static let anonymousPrincipal = ""

    /// Whether this is an inbound (MX) session.
    var isInbound: Bool {
        if case .inbound = configuration.mode { return true }
        return false
    }

    // MARK: - Observers

    /// True between the 354 reply and the end of data: feed bytes to ``dataReceived(_:)``, not lines.
    public var expectsRawData: Bool {
        if case .receivingData = state { return true }
        return false
    }

    /// True while waiting for a backend result: the NIO layer must hold further input until it has called the
    /// matching completion event.
    public var isBusy: Bool {
        switch state {
        case .authenticating, .checkingSender, .committing: return true
        default: return false
        }
    }

    /// True once the session has asked to close (or was closed by timeout, QUIT, shutdown or errors).
    public var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// True after ``shutdownRequested()`` arrived while a message or backend call was in progress: the session
    /// finishes it, and the next command (or another ``shutdownRequested()``) gets 421 4.3.2 and close.
    public var isDraining: Bool { shutdownPending && !isClosed }

    /// Whether the connection is encrypted (implicit TLS or after STARTTLS).
    public var tlsActive: Bool { facts.tlsActive }

    /// The principal of a successful AUTH, if any.
    public var principal: String? { facts.principal }

    /// Bytes that followed the end of data (pipelined commands), to be framed into lines and fed to
    /// ``commandLineReceived(_:)``; nil when there were none. Clears them.
    public mutating func takeRemainingAfterData() -> ByteBuffer? {
        defer { remainingAfterData = nil }
        guard let remaining = remainingAfterData, remaining.readableBytes > 0 else { return nil }
        return remaining
    }

    // MARK: - Connection events

    /// The connection is open (for implicit TLS: the handshake is done): 220 greeting.
    public mutating func connected() -> Action {
        guard case .initial = state else { return .none }
        state = .command
        return .reply(Replies.greeting(configuration.hostname))
    }

    /// One command line arrived, CRLF removed. While an AUTH challenge is open, it is the client's answer.
    public mutating func commandLineReceived(_ line: [UInt8]) -> Action {
        switch state {
        case .initial, .command:
            state = .command
            return command(line)
        case .authExchange(let exchange):
            state = .command
            return authResponse(line, exchange: exchange)
        case .receivingData:
            // The NIO layer should have sent raw bytes; treat the line as data so nothing is lost.
            var bytes = ByteBuffer(bytes: line)
            bytes.writeBytes([0x0D, 0x0A])
            return dataReceived(bytes)
        case .authenticating, .checkingSender, .committing:
            // Contract: input is held while busy. A line that still arrives is dropped rather than reordered.
            return .none
        case .startingTLS, .closed, .modifying:
            // After STARTTLS, plaintext that was pipelined behind it is discarded (CVE-2011-0411 class).
            return .none
        }
    }

    /// The NIO layer saw a command line longer than 512 octets including CRLF (RFC 5321 §4.5.3.1.4) and
    /// dropped it.
    public mutating func commandLineTooLong() -> Action {
        switch state {
        case .initial, .command, .authExchange:
            state = .command
            return refuse(Replies.lineTooLong)
        default:
            return .none
        }
    }

    /// TLS is established after STARTTLS (RFC 3207 §4.2): the session forgets everything the client said
    /// before, and the client must send EHLO again.
    public mutating func tlsEstablished() -> Action {
        switch state {
        case .closed: return .none
        default:
            // The error count is also reset: a new, encrypted session.
            facts = Self.initialFacts(configuration: configuration, remoteAddress: remoteAddress, tlsActive: true)
            transaction = nil
            remainingAfterData = nil
            state = .command
            return .none
        }
    }

    /// The command timer fired: 421 4.4.2 and close.
    public mutating func timedOut() -> Action {
        switch state {
        case .closed: return .none
        case .startingTLS:
            state = .closed
            return .close
        default:
            state = .closed
            return .replyAndClose(Replies.timeout(configuration.hostname))
        }
    }

    /// The server is shutting down gracefully. Idle (or in the middle of commands): 421 4.3.2 and close.
    /// During DATA or a backend call: `.none`; the session finishes that message (the client gets its final
    /// reply), then answers the next command with 421 4.3.2 and close — or call this again once the reply is
    /// written to close at once.
    public mutating func shutdownRequested() -> Action {
        switch state {
        case .initial, .command, .authExchange:
            state = .closed
            return .replyAndClose(Replies.shutdown(configuration.hostname))
        case .authenticating, .checkingSender, .receivingData, .committing:
            shutdownPending = true
            return .none
        case .startingTLS:
            state = .closed
            return .close
        case .closed, .modifying:
            return .none
        }
    }

    // MARK: - DATA

    /// Bytes received while ``expectsRawData``. Returns `.none` until the end of data, then `.commit` or the
    /// rejection (550 5.6.0, 552 5.3.4). Bytes after the end of data are kept for ``takeRemainingAfterData()``.
    public mutating func dataReceived(_ bytes: ByteBuffer) -> Action {
        guard case .receivingData(var decoder) = state else { return .none }
        state = .modifying
        let result = decoder.append(bytes)
        switch result {
        case .needMoreData:
            state = .receivingData(decoder)
            return .none
        case .complete(let message, let rejection, let remaining):
            remainingAfterData = remaining.readableBytes > 0 ? remaining : nil
            guard let transaction, let principal = facts.principal else {
                // Unreachable: DATA is only accepted inside an authenticated transaction.
                state = .command
                self.transaction = nil
                return .reply(Replies.badSequence)
            }
            if let rejection {
                self.transaction = nil
                state = .command
                return .reply(reply(for: rejection))
            }
            state = .committing
            return .commit(SubmittedMessage(
                principal: principal,
                mailFrom: transaction.mailFrom,
                recipients: transaction.recipients,
                data: message,
                heloName: facts.heloName ?? "",
                remoteAddress: remoteAddress,
                tlsActive: facts.tlsActive,
                requiresSMTPUTF8: transaction.smtpUTF8,
                eightBitMIME: transaction.eightBitMIME
            ))
        }
    }

    private func reply(for rejection: SMTPDataDecoder.Rejection) -> SMTPReply {
        switch rejection {
        case .bareCarriageReturn: Replies.bareCarriageReturn
        case .bareLineFeed: Replies.bareLineFeed
        case .lineTooLong: Replies.lineTooLongInData(configuration.maximumLineLength)
        case .nulCharacter: Replies.nulInData
        case .tooLarge: Replies.sizeExceeded(configuration.maximumMessageSize)
        }
    }

    // MARK: - Backend results

    /// The backend checked the credentials of the `.authenticate` action: 235 2.7.0, 535 5.7.8 (the same for an
    /// unknown user and a wrong password) or, when locked out, 421 4.7.0 and close.
    public mutating func authenticationCompleted(_ result: AuthenticationResult) -> Action {
        guard case .authenticating = state else { return .none }
        state = .command
        switch result {
        case .accepted(let principal):
            facts.principal = principal
            facts.trustedByAddress = false
            return .reply(Replies.authSucceeded)
        case .rejected:
            return refuse(Replies.authFailed)
        case .lockedOut:
            state = .closed
            return .replyAndClose(Replies.authLockedOut)
        case .temporaryFailure:
            // Not the client's error: it does not count towards `maximumErrors`.
            return .reply(Replies.authTemporaryFailure)
        }
    }

    /// The backend checked the sender of the `.checkSender` action: 250 2.1.0 and the transaction begins, or the
    /// backend's rejection.
    public mutating func senderChecked(_ verdict: SenderVerdict) -> Action {
        guard case .checkingSender(let pending) = state else { return .none }
        state = .command
        switch verdict {
        case .accepted:
            transaction = pending
            return .reply(Replies.senderOK(pending.mailFrom))
        case .rejected(let reply):
            return .reply(reply)
        }
    }

    /// The backend's final reply to a committed message (250, 451 4.3.0, 550 5.7.1, 552 …), sent as is; the
    /// transaction ends either way.
    public mutating func messageCommitted(_ reply: SMTPReply) -> Action {
        guard case .committing = state else { return .none }
        state = .command
        transaction = nil
        if reply.isPositiveCompletion { facts.errorCount = 0 }
        return .reply(reply)
    }

    // MARK: - Helpers shared by the verbs

    /// Answers a refused command and counts it; past the error limit the session closes with 421 4.7.0
    /// instead (like Postfix's `smtpd_hard_error_limit`).
    mutating func refuse(_ reply: SMTPReply) -> Action {
        facts.errorCount += 1
        if facts.errorCount > configuration.maximumErrors {
            state = .closed
            return .replyAndClose(Replies.tooManyErrors)
        }
        return .reply(reply)
    }
}
