import BounceParser
import Foundation
import RelayCore
import RelayInbound
import RelayStore
import Testing

/// What each kind of report does to the delivery its bounce address names (pure; the end-to-end side is in
/// EndToEndTests/InboundTests).
@Suite struct FeedbackDecisionTests {
    static let target = FeedbackTarget(recipientID: 7, tenantID: UUID(), messageID: UUID(), email: "Bob@Dest.test",
                                       domain: "dest.test", status: "delivered", lastMX: "alt1.gmail-smtp-in.l.google.com",
                                       attempts: 1)

    static func recipient(_ address: String, action: String?, status: String?, code: Int? = nil, text: String? = nil) -> FailedRecipient {
        FailedRecipient(address: address, action: action, status: status, replyCode: code, diagnostic: text,
                        classification: BounceClassifier.classify(code: code, enhanced: status, text: text ?? ""))
    }

    @Test func aHardFailureBouncesSuppressesAndCountsHard() {
        let report = ParsedReport(kind: .bounce, recipients: [
            Self.recipient("other@dest.test", action: "failed", status: "5.7.1", code: 550, text: "blocked"),
            Self.recipient("bob@dest.test", action: "failed", status: "5.1.1", code: 550, text: "User unknown"),
        ])
        let write = FeedbackDecision.decide(report, target: Self.target)
        #expect(write.eventType == "bounced")
        #expect(write.newStatus == "bounced")
        #expect(write.fromStatuses == ["delivered"])
        #expect(write.suppressionReason == "hard_bounce")
        #expect(write.statsColumn == FeedbackWrite.StatsColumn.bouncedHard)
        #expect(write.reply?.enhanced == "5.1.1", "the line naming the delivery's own address is used")
        #expect(write.provider == "google")
        #expect(!write.softBounce)
    }

    @Test func aSoftFailureRecordsAnEventAndCountsTowardsTheStreak() {
        let report = ParsedReport(kind: .bounce, recipients: [
            Self.recipient("forwarded@elsewhere.test", action: "failed", status: "5.2.2", code: 552, text: "Mailbox full"),
        ])
        let write = FeedbackDecision.decide(report, target: Self.target)
        #expect(write.eventType == "bounced")
        #expect(write.newStatus == nil, "the status stays delivered")
        #expect(write.suppressionReason == nil)
        #expect(write.softBounce)
        #expect(write.statsColumn == FeedbackWrite.StatsColumn.bouncedSoft)
    }

    @Test func aDelayIsOnlyAnEventAndASuccessNoticeNothing() {
        let delayed = FeedbackDecision.decide(ParsedReport(kind: .bounce, recipients: [
            Self.recipient("bob@dest.test", action: "delayed", status: "4.4.7")]), target: Self.target)
        #expect(delayed.eventType == "deferred")
        #expect(delayed.newStatus == nil && delayed.statsColumn == nil && !delayed.softBounce)
        let delivered = FeedbackDecision.decide(ParsedReport(kind: .bounce, recipients: [
            Self.recipient("bob@dest.test", action: "delivered", status: "2.0.0")]), target: Self.target)
        #expect(delivered.eventType == nil)
    }

    @Test func aComplaintMarksComplainedAndSuppresses() {
        let write = FeedbackDecision.decide(ParsedReport(kind: .complaint, feedbackType: "abuse"), target: Self.target)
        #expect(write.eventType == "complained")
        #expect(write.newStatus == "complained")
        #expect(write.suppressionReason == "complaint")
        #expect(write.statsColumn == FeedbackWrite.StatsColumn.complained)
        #expect(write.reply?.text == "feedback report (abuse)")
    }

    @Test func autoRepliesAndOtherMailChangeNothing() {
        for kind in [ParsedReport.Kind.autoReply, .notABounce] {
            let write = FeedbackDecision.decide(ParsedReport(kind: kind), target: Self.target)
            #expect(write.eventType == nil && write.newStatus == nil && write.suppressionReason == nil && write.statsColumn == nil)
            #expect(write.reportKind == kind.rawValue)
        }
    }
}
