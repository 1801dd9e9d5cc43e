import SMTPCore

/// A phase of an outbound SMTP session. Every error names the phase it happened in (as Postfix's
/// `smtp_proto.c` does), and each phase has its own timeout (``SMTPClientTimeouts``).
public enum SMTPPhase: String, Sendable, Hashable, CaseIterable {
    /// Opening the TCP connection.
    case connect
    /// Waiting for the 220 greeting.
    case banner
    /// EHLO and its reply.
    case ehlo
    /// HELO (the fallback when EHLO is refused) and its reply.
    case helo
    /// STARTTLS, its reply and the TLS handshake.
    case startTLS
    /// The TLS handshake of implicit TLS, before the greeting (RFC 8314).
    case tlsHandshake
    /// AUTH and its replies (RFC 4954).
    case auth
    /// MAIL FROM and its reply.
    case mailFrom
    /// RCPT TO and its replies.
    case rcptTo
    /// DATA and its 354 reply.
    case data
    /// Writing the message content.
    case message
    /// Waiting for the reply after the final ".".
    case endOfData
    /// RSET and its reply.
    case rset
    /// QUIT and its reply.
    case quit

    /// What the client was doing in this phase, as a phrase that completes "… while …", for example
    /// "sending RCPT TO" or "receiving the initial server greeting".
    public var phrase: String {
        switch self {
        case .connect: "connecting"
        case .banner: "receiving the initial server greeting"
        case .ehlo: "sending EHLO"
        case .helo: "sending HELO"
        case .startTLS: "sending STARTTLS"
        case .tlsHandshake: "negotiating TLS"
        case .auth: "authenticating"
        case .mailFrom: "sending MAIL FROM"
        case .rcptTo: "sending RCPT TO"
        case .data: "sending DATA"
        case .message: "sending the message content"
        case .endOfData: "sending end of data"
        case .rset: "sending RSET"
        case .quit: "sending QUIT"
        }
    }

    /// What the client waits for in this phase, for timeout messages: "the reply to RCPT TO".
    var awaited: String {
        switch self {
        case .connect: "the connection to be established"
        case .banner: "the initial server greeting"
        case .ehlo: "the reply to EHLO"
        case .helo: "the reply to HELO"
        case .startTLS: "the reply to STARTTLS or the TLS handshake"
        case .tlsHandshake: "the TLS handshake"
        case .auth: "the reply to AUTH"
        case .mailFrom: "the reply to MAIL FROM"
        case .rcptTo: "the reply to RCPT TO"
        case .data: "the reply to DATA"
        case .message: "the message content to be sent"
        case .endOfData: "the reply to end of data"
        case .rset: "the reply to RSET"
        case .quit: "the reply to QUIT"
        }
    }
}

/// A failure of an SMTP session: the network, a timeout, TLS, or a server that broke the protocol.
///
/// Replies that reject one command of a transaction (a 550 to RCPT TO) are not errors: they come back in
/// ``SMTPTransactionResult``. After an error with a code other than ``Code/messageTooLarge``,
/// ``Code/invalidEnvelope``, ``Code/smtpUTF8NotSupported`` or ``Code/connectionNotReady`` the connection is
/// closed.
public struct SMTPClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure; an extensible set of values (new ones break no `switch`).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The TCP connection could not be opened (refused, unreachable).
        public static let connectionFailed = Code("connectionFailed")
        /// No reply (or no progress writing data) within the phase's timeout.
        public static let timeout = Code("timeout")
        /// The server closed the connection, or the network failed, in the middle of the session.
        public static let connectionClosed = Code("connectionClosed")
        /// The TLS handshake (after STARTTLS, or of implicit TLS) failed, certificate verification included.
        public static let tlsFailed = Code("tlsFailed")
        /// TLS is required (``SMTPClientTLSMode/startTLS``) and the server does not offer STARTTLS or refused it.
        public static let tlsUnavailable = Code("tlsUnavailable")
        /// The server rejected the credentials (535) or could not check them now (4xx); ``reply`` says which.
        public static let authenticationFailed = Code("authenticationFailed")
        /// Credentials are configured but cannot be sent: the session is not encrypted, or the server offers
        /// neither AUTH PLAIN nor AUTH LOGIN. Nothing was sent.
        public static let authenticationUnavailable = Code("authenticationUnavailable")
        /// The server sent something that is not a valid reply, or a reply where none was expected.
        public static let protocolViolation = Code("protocolViolation")
        /// The server refused the session: a non-2xx greeting, or both EHLO and HELO refused. ``reply`` says why.
        public static let greetingRejected = Code("greetingRejected")
        /// The message is larger than the server's advertised SIZE limit (RFC 1870); nothing was sent.
        public static let messageTooLarge = Code("messageTooLarge")
        /// The server refused a command outside a mail transaction (RSET); ``reply`` says how.
        public static let commandRejected = Code("commandRejected")
        /// The envelope cannot be sent: no recipients, or an address with spaces, brackets or line breaks.
        public static let invalidEnvelope = Code("invalidEnvelope")
        /// The envelope needs SMTPUTF8 (RFC 6531) and the server does not offer it; nothing was sent.
        public static let smtpUTF8NotSupported = Code("smtpUTF8NotSupported")
        /// The connection is closed, or busy with another command.
        public static let connectionNotReady = Code("connectionNotReady")
        /// The configuration cannot work: a HELO name that is empty or holds spaces or control characters.
        public static let invalidConfiguration = Code("invalidConfiguration")

        /// The code's name.
        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// The phase the session was in.
    public var phase: SMTPPhase
    /// The server's reply, when a reply caused the failure.
    public var reply: SMTPReply?
    /// More detail: the reason a connect failed ("connection refused"), the underlying error, the malformed line.
    public var detail: String?
    /// The server's address as "127.0.0.1:25" or "[::1]:25", when known.
    public var remoteAddress: String?
    /// What was said before a failed ``SMTPConnection/connect(to:serverName:configuration:eventLoopGroup:logger:)``
    /// (the greeting, EHLO, STARTTLS), so that a refused session can still be shown. Empty for other calls:
    /// then ``SMTPConnection/takeTranscript()`` has it.
    public var transcript: [SMTPTranscriptEntry] = []

    /// Creates an error.
    public init(code: Code, phase: SMTPPhase, reply: SMTPReply? = nil, detail: String? = nil, remoteAddress: String? = nil) {
        self.code = code
        self.phase = phase
        self.reply = reply
        self.detail = detail
        self.remoteAddress = remoteAddress
    }

    /// A sentence naming the phase, for example "timed out waiting for the reply to RCPT TO" or
    /// "connection refused while connecting to 127.0.0.2:25".
    public var description: String {
        var text: String
        var detailUsed = false
        switch code {
        case .connectionFailed:
            text = "\(detail ?? "connection failed") while connecting"
            detailUsed = true
        case .timeout:
            text = phase == .connect ? "timed out while connecting" : "timed out waiting for \(phase.awaited)"
        case .connectionClosed:
            text = "lost connection while \(phase.phrase)"
        case .tlsFailed:
            text = phase == .tlsHandshake ? "TLS handshake failed" : "TLS handshake failed after STARTTLS"
        case .tlsUnavailable:
            text = "TLS is required but the server did not provide it"
        case .authenticationFailed:
            // RFC 4954 §6: 535 (and any 5xx) refuses the credentials; a 4xx is a temporary failure.
            text = reply?.isTransient == true ? "authentication failed temporarily" : "authentication failed (credentials rejected)"
        case .authenticationUnavailable:
            text = "cannot authenticate"
        case .protocolViolation:
            text = "protocol violation while \(phase.phrase)"
        case .greetingRejected:
            text = "server refused to talk to us while \(phase.phrase)"
        case .messageTooLarge:
            text = "message is larger than the server's SIZE limit"
        case .commandRejected:
            text = "server rejected the command while \(phase.phrase)"
        case .invalidEnvelope:
            text = "invalid envelope"
        case .smtpUTF8NotSupported:
            text = "the message needs SMTPUTF8, which the server does not offer"
        case .connectionNotReady:
            text = "the connection is not ready for a new command"
        case .invalidConfiguration:
            text = "invalid client configuration"
        default:
            text = "\(code) while \(phase.phrase)"
        }
        if let remoteAddress {
            text += phase == .connect ? " to \(remoteAddress)" : " with \(remoteAddress)"
        }
        if !detailUsed, let detail { text += " (\(detail))" }
        if let reply { text += ": \(reply)" }
        return text
    }
}
