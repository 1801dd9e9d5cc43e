import BounceParser
import RelayCore
import RelayStore

/// What a parsed report does to the recipient delivery its bounce address names. Pure: the inbound backend
/// looks the delivery up, asks this, and writes the answer in one statement.
///
/// - A failure report (RFC 3464 `Action: failed`, or a 5.x.x status): event `bounced`. A hard one (the address
///   is bad, see ``BounceClassifier``) after `delivered` turns the recipient `bounced` and suppresses the address;
///   a soft one (policy, content, mailbox full) leaves the status and counts towards the soft-bounce streak.
/// - A delay report (`Action: delayed`, 4.x.x): event `deferred`, nothing else.
/// - A complaint (ARF): event `complained`, status `complained` (from `delivered`), suppression `complaint`.
/// - Auto-replies and anything else: recorded in `inbound_reports` only.
public enum FeedbackDecision {
    public static func decide(_ report: ParsedReport, target: FeedbackTarget) -> FeedbackWrite {
        let provider = MailboxProvider.classify(mx: target.lastMX, domain: target.domain).rawValue
        var write = FeedbackWrite(provider: provider, reportKind: report.kind.rawValue, outcome: "ignored")
        switch report.kind {
        case .complaint:
            write.eventType = "complained"
            write.newStatus = RecipientStatus.complained.rawValue
            write.fromStatuses = [RecipientStatus.delivered.rawValue]
            write.suppressionReason = "complaint"
            write.statsColumn = .complained
            let type = report.feedbackType.map { " (\($0))" } ?? ""
            write.reply = DeliveryReplyFields(code: nil, enhanced: nil, text: "feedback report\(type)")
            write.outcome = "complaint recorded; address suppressed"
        case .bounce:
            guard let entry = entry(for: target, in: report.recipients) else {
                write.outcome = "bounce names no recipient"
                return write
            }
            write.reply = DeliveryReplyFields(code: entry.replyCode, enhanced: entry.status, text: entry.diagnostic)
            if let action = entry.action?.lowercased(), ["delivered", "relayed", "expanded"].contains(action) {
                write.reply = nil
                write.outcome = "success notice (\(action)), nothing to record"
                return write
            }
            if isDelay(entry) {
                write.eventType = RecipientStatus.deferred.rawValue
                write.outcome = "delay report recorded"
                return write
            }
            write.eventType = RecipientStatus.bounced.rawValue
            if entry.classification.type == .hard {
                write.newStatus = RecipientStatus.bounced.rawValue
                write.fromStatuses = [RecipientStatus.delivered.rawValue]
                write.suppressionReason = "hard_bounce"
                write.statsColumn = .bouncedHard
                write.outcome = "hard bounce (\(entry.classification.reason.rawValue)); address suppressed"
            } else {
                write.softBounce = true
                write.statsColumn = .bouncedSoft
                write.outcome = "soft bounce (\(entry.classification.reason.rawValue))"
            }
        case .autoReply:
            write.outcome = "auto-reply, not a bounce"
        case .notABounce:
            write.outcome = "not a bounce or complaint"
        }
        return write
    }

    /// The report's line about this delivery: the one naming its address, else (a report about one recipient
    /// that spells the address differently, e.g. after forwarding) the first failed one.
    static func entry(for target: FeedbackTarget, in recipients: [FailedRecipient]) -> FailedRecipient? {
        let address = target.email.lowercased()
        if let exact = recipients.first(where: { $0.address.lowercased() == address }) { return exact }
        return recipients.first { !isDelay($0) } ?? recipients.first
    }

    /// RFC 3464 §2.3.3: `delayed` is a warning; a 4.x.x status without an action says the same.
    static func isDelay(_ entry: FailedRecipient) -> Bool {
        if let action = entry.action?.lowercased(), action != "failed" { return action == "delayed" }
        return entry.status?.hasPrefix("4") == true
    }
}
