import Foundation
import RelayCore
import RelayStore
import SMTPClient
import SMTPCore
import Testing

@testable import RelayQueue

/// How one SMTP transaction's replies become per-recipient outcomes, and how the retry policy is applied.
@Suite struct OutcomeMappingTests {
    func recipient(_ email: String, attempts: Int = 0, expiresIn: TimeInterval = 3600) -> ClaimedRecipient {
        ClaimedRecipient(recipientID: Int64(abs(email.hashValue % 100_000)), messageID: UUID(), tenantID: UUID(), email: email,
                         domain: "d.test", attempts: attempts, mailFrom: "a@example.com", requiresSMTPUTF8: false,
                         expiresAt: Date().addingTimeInterval(expiresIn))
    }

    func reply(_ code: Int, _ enhanced: String? = nil, _ text: String = "text") -> SMTPReply {
        SMTPReply(code: code, enhancedCode: enhanced.flatMap(EnhancedStatusCode.init), text: text)
    }

    @Test func mailFromRejectionAppliesToEveryRecipient() {
        let recipients = [recipient("a@d.test"), recipient("b@d.test")]
        let result = SMTPTransactionResult(mailFrom: reply(550, "5.7.1", "sender rejected"), recipients: [nil, nil], data: nil)
        let outcomes = Deliverer.outcomes(for: recipients, result: result)
        #expect(outcomes.map(\.outcome.status) == [.bounced, .bounced])
        #expect(outcomes[0].outcome.reply == DeliveryReply(code: 550, enhanced: "5.7.1", text: "sender rejected"))
    }

    @Test func eachRecipientGetsItsOwnRCPTVerdictAndAcceptedOnesTheDataVerdict() {
        let recipients = [recipient("ok@d.test"), recipient("unknown@d.test"), recipient("later@d.test"), recipient("many@d.test")]
        let result = SMTPTransactionResult(
            mailFrom: reply(250), recipients: [reply(250), reply(550, "5.1.1"), reply(451, "4.3.0"), reply(452, "4.5.3")],
            data: reply(250, "2.0.0", "queued as X"))
        let outcomes = Deliverer.outcomes(for: recipients, result: result)
        #expect(outcomes.map(\.outcome.status) == [.delivered, .bounced, .deferred, .queued])
        #expect(outcomes[0].outcome.reply?.text == "queued as X")
        #expect(outcomes[1].outcome.reply?.enhanced == "5.1.1")
    }

    @Test func aRejectedMessageBouncesOnlyTheAcceptedRecipients() {
        let recipients = [recipient("ok@d.test"), recipient("unknown@d.test")]
        let result = SMTPTransactionResult(mailFrom: reply(250), recipients: [reply(250), reply(550, "5.1.1")],
                                           data: reply(554, "5.6.0", "content rejected"))
        let outcomes = Deliverer.outcomes(for: recipients, result: result)
        #expect(outcomes[0].outcome.reply?.code == 554)
        #expect(outcomes[1].outcome.reply?.code == 550)
    }

    @Test func deferralsGetTheirNextAttemptOrExpire() {
        let policy = RetryPolicy(initialDelay: .seconds(60), maximumDelay: .seconds(600), maximumLifetime: .seconds(3600))
        let now = Date()
        let deferred = DeliveryOutcome.deferred(reply: DeliveryReply(code: 451, enhanced: nil, text: "later"), detail: "later")
        let fresh = DeliveryWorker.completion(for: recipient("a@d.test", attempts: 0), outcome: deferred, mx: "mx",
                                              durationMs: 3, now: now, policy: policy)
        #expect(fresh.status == .deferred)
        #expect(fresh.countsAsAttempt)
        let delay = fresh.nextAttemptAt!.timeIntervalSince(now)
        #expect(delay >= 48 && delay <= 72, "first retry after the initial delay ±20%")
        let expired = DeliveryWorker.completion(for: recipient("a@d.test", attempts: 9, expiresIn: -1), outcome: deferred, mx: "mx",
                                                durationMs: 3, now: now, policy: policy)
        #expect(expired.status == .failed)
        #expect(expired.reason == "expired")
        #expect(expired.reply?.code == 451, "the last reply is kept with the expiry")
        let requeued = DeliveryWorker.completion(for: recipient("a@d.test"), outcome: .requeue(DeliveryReply(code: 452, enhanced: nil, text: "")),
                                                 mx: "mx", durationMs: 1, now: now, policy: policy)
        #expect(requeued.status == .queued && !requeued.countsAsAttempt && requeued.nextAttemptAt == now)
    }

    @Test func groupsAreOnePerMessageAndDomain() {
        let message = UUID()
        func claimed(_ id: Int64, _ domain: String, _ messageID: UUID) -> ClaimedRecipient {
            ClaimedRecipient(recipientID: id, messageID: messageID, tenantID: UUID(), email: "u\(id)@\(domain)", domain: domain,
                             attempts: 0, mailFrom: "a@example.com", requiresSMTPUTF8: false, expiresAt: Date())
        }
        let other = UUID()
        let groups = DeliveryGroup.make(from: [claimed(1, "a.test", message), claimed(2, "b.test", message),
                                               claimed(3, "a.test", message), claimed(4, "a.test", other)])
        #expect(groups.map { $0.recipients.map(\.recipientID) } == [[1, 3], [2], [4]])
    }
}
