import MailMessage
import RelayCore

/// What an inbound message to Relay's bounce address turned out to be.
public struct ParsedReport: Sendable, Equatable {
    /// The kind of report.
    public enum Kind: String, Sendable {
        /// A delivery failure or delay report (RFC 3464 DSN or an MTA's own format).
        case bounce
        /// A feedback report (RFC 5965 ARF and provider equivalents): a recipient complained.
        case complaint
        /// An automatic reply (RFC 3834): vacation notices and the like. Not a failure.
        case autoReply = "auto_reply"
        /// Anything else, including reports that only announce successful delivery.
        case notABounce = "not_a_bounce"
    }

    /// The kind of report.
    public var kind: Kind
    /// Bounce: the failed (or delayed) recipients. Complaint: the addresses complained about.
    public var recipients: [FailedRecipient]
    /// The Message-ID of the original message, when the report returns its headers or names it.
    public var originalMessageID: String?
    /// The envelope sender of the original message (Return-Path, Original-Mail-From, X-Postfix-Sender, …).
    public var originalEnvelopeSender: String?
    /// The ARF Feedback-Type (`abuse`, `fraud`, `auth-failure`, …) of a complaint.
    public var feedbackType: String?

    /// Creates a report value.
    public init(kind: Kind, recipients: [FailedRecipient] = [], originalMessageID: String? = nil,
                originalEnvelopeSender: String? = nil, feedbackType: String? = nil) {
        self.kind = kind
        self.recipients = recipients
        self.originalMessageID = originalMessageID
        self.originalEnvelopeSender = originalEnvelopeSender
        self.feedbackType = feedbackType
    }
}

/// One recipient named by a report.
public struct FailedRecipient: Sendable, Equatable {
    /// The recipient's address (Final-Recipient, else Original-Recipient, else what the MTA's text names).
    public var address: String
    /// The RFC 3464 action (`failed`, `delayed`, …) as found, or `delayed`/`failed` as the MTA's text says.
    public var action: String?
    /// The RFC 3463 status code found in the message (never made up).
    public var status: String?
    /// The SMTP reply code from the Diagnostic-Code or the MTA's text.
    public var replyCode: Int?
    /// The remote server's text (or the reporting MTA's own explanation when there was no reply).
    public var diagnostic: String?
    /// The verdict. For complaints it is not meaningful (soft, `other`).
    public var classification: BounceClassification

    /// Creates a recipient value.
    public init(address: String, action: String?, status: String?, replyCode: Int?, diagnostic: String?,
                classification: BounceClassification) {
        self.address = address
        self.action = action
        self.status = status
        self.replyCode = replyCode
        self.diagnostic = diagnostic
        self.classification = classification
    }
}

/// Reads bounces (RFC 3464 delivery status notifications and the non-standard reports of Postfix, Exim,
/// Sendmail, qmail, OpenSMTPD, Exchange/Office 365, Gmail and Amazon SES), automatic replies (RFC 3834) and
/// complaint reports (RFC 5965 ARF and provider formats).
///
/// The order of the checks: complaint reports; Amazon SES notifications; a `message/delivery-status` part, else
/// DSN fields written into the text (a report whose MIME structure was lost, or a forwarded one); each MTA's own
/// format; a delivery-status report that names nobody (the returned message's recipient); automatic replies;
/// a cautious catch-all for MAILER-DAEMON messages. Bounces come before automatic replies because Exim and
/// Office 365 mark their bounces `Auto-Submitted: auto-replied`. A DSN is read first when there is one, and the
/// MTA's text then only fills what the DSN left out (reply code, diagnostic, a precise status where the DSN says
/// X.0.0).
///
/// Pure and total: any input gives a report, never a crash; the work is bounded by ``maxInputBytes``.
public enum BounceParser {
    /// Input beyond this many bytes is ignored (the report and the headers of the returned message come first).
    public static let maxInputBytes = 2 * 1024 * 1024
    /// At most this many recipients are reported per message.
    public static let maxRecipients = 1_000
    /// The human-readable text considered for heuristics is cut at this many characters.
    static let maxTextCharacters = 256 * 1024

    /// Parses one message.
    public static func parse(_ raw: [UInt8]) -> ParsedReport {
        let bytes = raw.count > maxInputBytes ? Array(raw.prefix(maxInputBytes)) : raw
        guard let entity = try? MIMEEntity(parsing: bytes) else { return ParsedReport(kind: .notABounce) }
        let message = BounceMessage(entity)

        if let complaint = FeedbackReport.parse(message) { return complaint }
        if let notification = AmazonSESNotification.parse(message) { return notification }
        if let report = DeliveryStatusReport.parse(message) { return report }
        if let report = MTAHeuristics.parse(message) { return report }
        if let report = DeliveryStatusReport.parseWithoutRecipients(message) { return report }
        if AutoReply.isAutoReply(message) { return ParsedReport(kind: .autoReply) }
        if let report = GenericBounce.parse(message) { return report }
        return ParsedReport(kind: .notABounce)
    }
}
