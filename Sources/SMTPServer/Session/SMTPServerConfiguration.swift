import SMTPCore

/// The tunables of one SMTP submission listener (RFC 6409), each with its default.
///
/// | setting | default | effect |
/// | --- | --- | --- |
/// | `hostname` | — | named in the 220 greeting, the EHLO reply and the 221/421 replies |
/// | `maximumMessageSize` | — | advertised as `SIZE` (RFC 1870); more gets 552 5.3.4 |
/// | `maximumRecipients` | 1000, never below 100 | each RCPT past it gets 452 4.5.3 (RFC 5321 §4.5.3.1.10) |
/// | `offersSTARTTLS` | — | true on port 587, false on 465 (TLS from the first byte, RFC 8314) |
/// | `requiresTLSForAuth` | true | AUTH is advertised and accepted only under TLS (RFC 4954 §4, 538 5.7.11) |
/// | `maximumErrors` | 10 | after this many refused commands: 421 4.7.0 and close |
/// | `maximumLineLength` | 998 | octets per DATA line, CRLF excluded (RFC 5322 §2.1.1); more gets 550 5.6.0 |
/// | `trustedNetworks` | none | submission clients in these networks act as the block's principal without AUTH |
public struct SMTPServerConfiguration: Sendable {
    /// The server's name in the greeting and the EHLO reply.
    public var hostname: String
    /// The largest message accepted, in octets; advertised as `SIZE`.
    public var maximumMessageSize: Int
    /// How many recipients one transaction may have; clamped to at least 100 (RFC 5321 §4.5.3.1.8).
    public var maximumRecipients: Int {
        didSet { maximumRecipients = max(Self.minimumRecipientLimit, maximumRecipients) }
    }
    /// Whether STARTTLS is offered (port 587) or not (port 465, where TLS starts with the connection).
    public var offersSTARTTLS: Bool
    /// Whether AUTH needs an encrypted connection.
    public var requiresTLSForAuth: Bool = true
    /// How many refused commands a session may send before it is closed with 421 4.7.0.
    public var maximumErrors: Int = 10
    /// The longest DATA line accepted, in octets, CRLF excluded.
    public var maximumLineLength: Int = 998

    /// Submission clients whose address alone authenticates them (no AUTH, no TLS needed); AUTH may still
    /// replace the principal. Ignored in inbound mode.
    public var trustedNetworks = TrustedNetworks()

    /// Submission (clients authenticate, then send anywhere) or inbound (anyone may send, but only to the
    /// addresses the policy accepts; no AUTH).
    public var mode: Mode = .submission

    /// What a listener is for.
    public enum Mode: Sendable {
        /// RFC 6409 submission: AUTH required before MAIL; the backend checks each sender.
        case submission
        /// An MX for Relay's own addresses (bounces, complaints): AUTH is not offered, any sender is taken, and a
        /// recipient that `acceptsRecipient` refuses gets 550 5.7.1, so the listener can never relay.
        case inbound(acceptsRecipient: @Sendable (String) -> Bool)
    }

    /// RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients.
    static let minimumRecipientLimit = 100

    /// Creates a configuration; `maximumRecipients` below 100 is raised to 100.
    public init(hostname: String, maximumMessageSize: Int, maximumRecipients: Int = 1000, offersSTARTTLS: Bool) {
        self.hostname = hostname
        self.maximumMessageSize = maximumMessageSize
        self.maximumRecipients = max(Self.minimumRecipientLimit, maximumRecipients)
        self.offersSTARTTLS = offersSTARTTLS
    }
}

/// What the backend decided about the credentials of an AUTH exchange.
public enum AuthenticationResult: Sendable, Equatable {
    /// The credentials are valid; `principal` identifies the account (for Relay: the API key's tenant).
    case accepted(principal: String)
    /// Unknown user or wrong password; both get the same 535 5.7.8.
    case rejected
    /// Too many failures from this client: 421 4.7.0 and close.
    case lockedOut
    /// The credentials could not be checked now (the account store is unreachable): 454 4.7.0, so the client
    /// retries later instead of taking its password for wrong (RFC 4954 §6).
    case temporaryFailure
}

/// What the backend decided about a MAIL FROM address.
public enum SenderVerdict: Sendable, Equatable {
    /// The principal may send as this address: 250 2.1.0.
    case accepted
    /// The principal may not (for example 550 5.7.1 for a domain not registered to the tenant); sent as is.
    case rejected(SMTPReply)
}

/// A message received completely and accepted by the protocol checks, for the backend to commit.
public struct SubmittedMessage: Sendable, Equatable {
    /// Who authenticated (``AuthenticationResult/accepted(principal:)``).
    public var principal: String
    /// The envelope sender, without angle brackets; empty for the null reverse path.
    public var mailFrom: String
    /// The envelope recipients, in the order given.
    public var recipients: [String]
    /// The message, dot-unstuffed, with CRLF line ends, without the terminating ".\r\n".
    public var data: [UInt8]
    /// The name the client gave in EHLO or HELO.
    public var heloName: String
    /// The client's address, as the NIO layer gave it.
    public var remoteAddress: String
    /// Whether the message came over TLS (STARTTLS or implicit TLS).
    public var tlsActive: Bool
    /// Whether MAIL FROM carried `SMTPUTF8` (RFC 6531).
    public var requiresSMTPUTF8: Bool
    /// Whether MAIL FROM carried `BODY=8BITMIME` (RFC 6152).
    public var eightBitMIME: Bool

    /// Creates a message.
    public init(principal: String, mailFrom: String, recipients: [String], data: [UInt8], heloName: String,
                remoteAddress: String, tlsActive: Bool, requiresSMTPUTF8: Bool, eightBitMIME: Bool) {
        self.principal = principal
        self.mailFrom = mailFrom
        self.recipients = recipients
        self.data = data
        self.heloName = heloName
        self.remoteAddress = remoteAddress
        self.tlsActive = tlsActive
        self.requiresSMTPUTF8 = requiresSMTPUTF8
        self.eightBitMIME = eightBitMIME
    }
}
