/// An SMTP reply as Relay stores and shows it (`last_reply`, event `reply`).
public struct DeliveryReply: Sendable, Hashable, Codable {
    /// The three-digit reply code, e.g. 550.
    public var code: Int
    /// The RFC 3463 enhanced status code when the server sent one, e.g. "5.1.1".
    public var enhanced: String?
    /// The reply text (all lines joined), without code and enhanced code.
    public var text: String

    /// Creates a reply value.
    public init(code: Int, enhanced: String?, text: String) {
        self.code = code
        self.enhanced = enhanced
        self.text = text
    }

    /// 2yz: positive completion (RFC 5321 §4.2.1).
    public var isSuccess: Bool { (200..<300).contains(code) }
    /// 4yz: transient negative completion; the same request may succeed later.
    public var isTransient: Bool { (400..<500).contains(code) }
    /// 5yz: permanent negative completion.
    public var isPermanent: Bool { (500..<600).contains(code) }
}

/// What one delivery attempt did to one recipient. Computed once, in one place (`OutcomeClassifier`),
/// then written in batches by the queue.
public enum DeliveryOutcome: Sendable, Hashable {
    /// 2xx after end of data.
    case delivered(DeliveryReply)
    /// 4xx reply, or a network/DNS failure described in `detail` (then `reply` is nil). `reason` is
    /// `outcome_unknown` when the connection was lost after the end of the data, before the reply: the message
    /// may have been accepted, and the retry may deliver it twice.
    case deferred(reply: DeliveryReply?, detail: String, reason: String? = nil)
    /// 5xx reply: the recipient or the message was rejected permanently.
    case bounced(DeliveryReply)
    /// Given up without a permanent SMTP rejection; `reason` is a short label (`expired`,
    /// `domain_not_found`, `null_mx`) and `detail` a sentence for humans.
    case failed(reason: String, detail: String, reply: DeliveryReply?)
    /// Put back in the queue for an immediate new transaction, not counted as an attempt
    /// (RFC 5321 §4.5.3.1.10: a 452 to RCPT means "too many recipients, send the rest later").
    case requeue(DeliveryReply)

    /// The recipient status this outcome leads to (before lifetime expiry is applied).
    public var status: RecipientStatus {
        switch self {
        case .delivered: .delivered
        case .deferred: .deferred
        case .bounced: .bounced
        case .failed: .failed
        case .requeue: .queued
        }
    }

    /// The reply that caused this outcome, if an SMTP server gave one.
    public var reply: DeliveryReply? {
        switch self {
        case .delivered(let reply), .bounced(let reply), .requeue(let reply): reply
        case .deferred(let reply, _, _), .failed(_, _, let reply): reply
        }
    }

    /// Human-readable text for logs and the API when there is no SMTP reply.
    public var detail: String? {
        switch self {
        case .deferred(_, let detail, _), .failed(_, let detail, _): detail
        default: nil
        }
    }

    /// The failure reason label, if any.
    public var reason: String? {
        switch self {
        case .failed(let reason, _, _): reason
        case .deferred(_, _, let reason): reason
        default: nil
        }
    }

    /// The reason of a deferral whose outcome is unknown (connection lost after the end of the data).
    public static let outcomeUnknown = "outcome_unknown"
}

/// Classifies SMTP replies into outcomes. Every place that turns a reply into a recipient state calls this.
public enum OutcomeClassifier {
    /// The outcome of a reply to RCPT TO that was not accepted, or of the final reply after end of data.
    public static func classify(_ reply: DeliveryReply) -> DeliveryOutcome {
        if reply.isSuccess { return .delivered(reply) }
        if reply.isPermanent { return .bounced(reply) }
        return .deferred(reply: reply, detail: reply.text)
    }

    /// The outcome of a rejected RCPT TO: like `classify`, except that 452 (RFC 5321 §4.5.3.1.10,
    /// too many recipients in this transaction) puts the recipient back for another transaction at once.
    /// 452 with enhanced code 4.2.2 means "mailbox full" and is an ordinary deferral.
    public static func classifyRecipientRejection(_ reply: DeliveryReply) -> DeliveryOutcome {
        if reply.code == 452, reply.enhanced == nil || reply.enhanced == "4.5.3" {
            return .requeue(reply)
        }
        return classify(reply)
    }
}
