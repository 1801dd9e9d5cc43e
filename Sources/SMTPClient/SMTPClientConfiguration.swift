/// How long the client waits in each phase of a session before it gives up.
///
/// The defaults are the minimums of RFC 5321 §4.5.3.2, which a client should not go below: remote servers
/// may be slow on purpose (greylisting, tarpits) or busy scanning content after the final dot.
///
/// | field       | default | RFC 5321 §4.5.3.2 |
/// |-------------|---------|-------------------|
/// | `connect`   | 30 s    | (not set by the RFC; Postfix `smtp_connect_timeout`) |
/// | `banner`    | 5 min   | §4.5.3.2.1 initial 220 message |
/// | `ehlo`      | 5 min   | (as other commands) |
/// | `startTLS`  | 2 min   | (Postfix `smtp_starttls_timeout`, 300 s; reply and handshake together; also the implicit TLS handshake) |
/// | `auth`      | 2 min   | (not set by RFC 4954; each reply of the AUTH exchange) |
/// | `mailFrom`  | 5 min   | §4.5.3.2.2 |
/// | `rcptTo`    | 5 min   | §4.5.3.2.3 |
/// | `data`      | 2 min   | §4.5.3.2.4 DATA initiation |
/// | `dataBlock` | 3 min   | §4.5.3.2.5 each block of message data written |
/// | `endOfData` | 10 min  | §4.5.3.2.6 reply to the final "." |
/// | `rset`      | 1 min   | (Postfix `smtp_rset_timeout`, 20 s) |
/// | `quit`      | 10 s    | (Postfix `smtp_quit_timeout`, 300 s; nothing depends on it) |
public struct SMTPClientTimeouts: Sendable, Hashable {
    /// TCP connection establishment.
    public var connect: Duration = .seconds(30)
    /// Waiting for the 220 greeting after the connection is up (RFC 5321 §4.5.3.2.1).
    public var banner: Duration = .seconds(300)
    /// Waiting for the reply to EHLO or HELO.
    public var ehlo: Duration = .seconds(300)
    /// Waiting for the reply to STARTTLS, and then for the TLS handshake to complete.
    public var startTLS: Duration = .seconds(120)
    /// Waiting for each reply of the AUTH exchange (RFC 4954).
    public var auth: Duration = .seconds(120)
    /// Waiting for the reply to MAIL FROM (RFC 5321 §4.5.3.2.2).
    public var mailFrom: Duration = .seconds(300)
    /// Waiting for the reply to each RCPT TO (RFC 5321 §4.5.3.2.3).
    public var rcptTo: Duration = .seconds(300)
    /// Waiting for the 354 reply to DATA (RFC 5321 §4.5.3.2.4).
    public var data: Duration = .seconds(120)
    /// Waiting for each block of message data to be accepted by the network (RFC 5321 §4.5.3.2.5).
    public var dataBlock: Duration = .seconds(180)
    /// Waiting for the reply after the final "." (RFC 5321 §4.5.3.2.6); servers scan content here.
    public var endOfData: Duration = .seconds(600)
    /// Waiting for the reply to RSET.
    public var rset: Duration = .seconds(60)
    /// Waiting for the reply to QUIT before closing anyway.
    public var quit: Duration = .seconds(10)

    /// The defaults above.
    public init() {}

    /// The timeout that applies while in `phase`.
    public func timeout(for phase: SMTPPhase) -> Duration {
        switch phase {
        case .connect: connect
        case .banner: banner
        case .ehlo, .helo: ehlo
        case .startTLS, .tlsHandshake: startTLS
        case .auth: auth
        case .mailFrom: mailFrom
        case .rcptTo: rcptTo
        case .data: data
        case .message: dataBlock
        case .endOfData: endOfData
        case .rset: rset
        case .quit: quit
        }
    }
}

/// How a session is encrypted.
public enum SMTPClientTLSMode: String, Sendable, Hashable, CaseIterable {
    /// STARTTLS when the server offers it, plaintext otherwise (RFC 3207; what MX delivery does).
    case opportunistic
    /// STARTTLS, required: a server that does not offer it, refuses it or fails the handshake fails the session
    /// (``SMTPClientError/Code/tlsUnavailable`` or ``SMTPClientError/Code/tlsFailed``); never plaintext.
    case startTLS = "starttls"
    /// TLS from the first byte, before the greeting (RFC 8314 "implicit TLS", port 465).
    case implicit
    /// Never TLS, even when offered.
    case none
}

/// A user name and password for SMTP AUTH (RFC 4954). Sent only over TLS; never printed.
public struct SMTPCredentials: Sendable, Hashable, CustomStringConvertible {
    /// The authentication identity.
    public var username: String
    /// The password.
    public var password: String

    /// Creates credentials.
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// The user name only: the password never reaches a log line.
    public var description: String { "\(username) (password redacted)" }
}

/// What a client connection does, for one destination (or all of them).
public struct SMTPClientConfiguration: Sendable {
    /// The name sent with EHLO/HELO: this host's fully qualified domain name (RFC 5321 §4.1.1.1).
    public var heloName: String
    /// The per-phase timeouts.
    public var timeouts: SMTPClientTimeouts
    /// How the session is encrypted (default opportunistic STARTTLS). A server that offers STARTTLS and then
    /// refuses it is used without TLS only in the opportunistic mode.
    public var tlsMode: SMTPClientTLSMode = .opportunistic
    /// Upgrade with STARTTLS when the server offers it: `tlsMode` is `.opportunistic` (true) or `.none` (false).
    public var useSTARTTLS: Bool {
        get { tlsMode != .none }
        set { tlsMode = newValue ? .opportunistic : .none }
    }
    /// Check the server's certificate chain and name. Off by default: opportunistic TLS to MX hosts cannot
    /// authenticate them without DANE or MTA-STS (RFC 7672 §1.3), and failing would only push mail to plaintext.
    public var verifyCertificates: Bool = false
    /// A PEM file of extra trust roots for certificate verification (added to the system's), e.g. a private CA.
    public var additionalTrustRootsFile: String?
    /// When the TLS handshake after STARTTLS fails, connect to the same address again and go on without TLS.
    /// Off by default: a failed handshake is reported as ``SMTPClientError/Code/tlsFailed``. Only in the
    /// opportunistic mode, and never when credentials are set.
    public var plaintextFallbackOnTLSFailure: Bool = false
    /// Authenticate with these after EHLO (AUTH PLAIN when offered, else AUTH LOGIN). Only over TLS: a session
    /// that is not encrypted fails with ``SMTPClientError/Code/authenticationUnavailable`` before anything is sent.
    public var credentials: SMTPCredentials?

    /// Creates a configuration with default timeouts.
    public init(heloName: String) {
        self.heloName = heloName
        self.timeouts = SMTPClientTimeouts()
    }
}
