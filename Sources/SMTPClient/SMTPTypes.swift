#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SMTPCore

/// The ESMTP extensions a server announced in its EHLO reply (RFC 5321 §4.1.1.1); all false after HELO.
public struct SMTPCapabilities: Sendable, Hashable {
    /// PIPELINING (RFC 2920): MAIL, the RCPTs and DATA may be sent in one write.
    public var pipelining: Bool
    /// STARTTLS (RFC 3207).
    public var startTLS: Bool
    /// 8BITMIME (RFC 6152): `BODY=8BITMIME` may be sent for content with 8-bit bytes.
    public var eightBitMIME: Bool
    /// SMTPUTF8 (RFC 6531): UTF-8 addresses and headers.
    public var smtpUTF8: Bool
    /// ENHANCEDSTATUSCODES (RFC 2034).
    public var enhancedStatusCodes: Bool
    /// CHUNKING (RFC 3030): BDAT.
    public var chunking: Bool
    /// The SIZE limit in octets (RFC 1870), or nil when not announced or announced without a limit (`SIZE 0`).
    public var size: Int?
    /// Every announced keyword, upper case, in the server's order (for example "PIPELINING", "SIZE", "AUTH").
    public var keywords: [String]
    /// The SASL mechanisms of the AUTH keyword (RFC 4954 §3), upper case, for example ["PLAIN", "LOGIN"]; the
    /// old `AUTH=LOGIN` form some servers still send counts too.
    public var authMechanisms: [String] = []

    /// No extensions: what a HELO session has.
    public static let none = SMTPCapabilities(
        pipelining: false, startTLS: false, eightBitMIME: false, smtpUTF8: false,
        enhancedStatusCodes: false, chunking: false, size: nil, keywords: []
    )

    /// Creates capabilities from their parts.
    public init(
        pipelining: Bool, startTLS: Bool, eightBitMIME: Bool, smtpUTF8: Bool,
        enhancedStatusCodes: Bool, chunking: Bool, size: Int?, keywords: [String]
    ) {
        self.pipelining = pipelining
        self.startTLS = startTLS
        self.eightBitMIME = eightBitMIME
        self.smtpUTF8 = smtpUTF8
        self.enhancedStatusCodes = enhancedStatusCodes
        self.chunking = chunking
        self.size = size
        self.keywords = keywords
    }

    /// Reads the extensions from a 250 reply to EHLO: the first line is the server's greeting, each later line
    /// an `ehlo-keyword *(SP ehlo-param)` (RFC 5321 §4.1.1.1). Keywords are matched case-insensitively.
    public init(ehloReply: SMTPReply) {
        self = .none
        // With ENHANCEDSTATUSCODES some servers prefix every line ("250-2.0.0 PIPELINING"); SMTPReply
        // has already removed that prefix.
        for line in ehloReply.lines.dropFirst() {
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = words.first else { continue }
            let keyword = first.uppercased()
            if keyword.hasPrefix("AUTH=") {
                // The pre-standard form: "AUTH=LOGIN PLAIN" (mechanisms after "=" and as parameters).
                let mechanisms = [String(keyword.dropFirst(5))] + words.dropFirst().map { $0.uppercased() }
                for mechanism in mechanisms where !mechanism.isEmpty && !authMechanisms.contains(mechanism) {
                    authMechanisms.append(mechanism)
                }
                continue
            }
            keywords.append(keyword)
            switch keyword {
            case "AUTH":
                for mechanism in words.dropFirst().map({ $0.uppercased() }) where !authMechanisms.contains(mechanism) {
                    authMechanisms.append(mechanism)
                }
            case "PIPELINING": pipelining = true
            case "STARTTLS": startTLS = true
            case "8BITMIME": eightBitMIME = true
            case "SMTPUTF8": smtpUTF8 = true
            case "ENHANCEDSTATUSCODES": enhancedStatusCodes = true
            case "CHUNKING": chunking = true
            case "SIZE":
                if words.count > 1, let limit = Int(words[1]), limit > 0 { size = limit }
            default: break
            }
        }
    }
}

/// The envelope of one mail transaction: who it is from and to whom it goes (RFC 5321 §2.3.1).
public struct SMTPEnvelope: Sendable, Hashable {
    /// The reverse path as a bare address (no angle brackets); "" is the null path `<>` used for bounces.
    public var mailFrom: String
    /// The forward paths, bare addresses, at least one.
    public var recipients: [String]
    /// The message or an address needs SMTPUTF8 (RFC 6531); sent as a MAIL parameter, and the transaction
    /// fails with ``SMTPClientError/Code/smtpUTF8NotSupported`` when the server does not offer it.
    public var requiresSMTPUTF8: Bool

    /// Creates an envelope.
    public init(mailFrom: String, recipients: [String], requiresSMTPUTF8: Bool = false) {
        self.mailFrom = mailFrom
        self.recipients = recipients
        self.requiresSMTPUTF8 = requiresSMTPUTF8
    }
}

/// The server's replies in one mail transaction: enough to decide, per recipient, delivered / retry / bounce.
///
/// A recipient was delivered when its reply is 2xx and ``data`` is 2xx. When MAIL FROM was refused,
/// ``recipients`` are all nil (not attempted). When no recipient was accepted the message was not sent and
/// ``data`` is nil: the recipients' own replies say why (a "554 no valid recipients" to a pipelined DATA
/// adds nothing and is left out, so that it cannot be mistaken for a verdict on the message).
public struct SMTPTransactionResult: Sendable, Hashable {
    /// The reply to MAIL FROM.
    public var mailFrom: SMTPReply
    /// The reply to each RCPT TO, in the order of ``SMTPEnvelope/recipients``; nil when not attempted
    /// (MAIL FROM failed, or the server ended the session with 421 before that recipient).
    public var recipients: [SMTPReply?]
    /// The reply after the final "." or, when DATA itself was refused, the reply to DATA; nil when DATA was not
    /// reached or no recipient was accepted.
    public var data: SMTPReply?

    /// Creates a result.
    public init(mailFrom: SMTPReply, recipients: [SMTPReply?], data: SMTPReply?) {
        self.mailFrom = mailFrom
        self.recipients = recipients
        self.data = data
    }
}

/// One line of a session transcript, kept with a delivery attempt so that an operator can see what the remote
/// server said. Never holds message content; AUTH data is redacted.
public struct SMTPTranscriptEntry: Sendable, Hashable {
    /// Who said it.
    public enum Direction: String, Sendable, Hashable {
        /// A command Relay sent.
        case client
        /// A reply from the server.
        case server
        /// A note from Relay: connected, TLS established, message sent, error.
        case info
    }

    /// Who said it.
    public var direction: Direction
    /// The command or reply (one entry per reply, lines joined with "\n", as on the wire without CRLF),
    /// or the note.
    public var text: String
    /// When, in wall-clock time, so that it can be stored and shown.
    public var at: Date

    /// Creates an entry.
    public init(direction: Direction, text: String, at: Date = Date()) {
        self.direction = direction
        self.text = text
        self.at = at
    }
}
