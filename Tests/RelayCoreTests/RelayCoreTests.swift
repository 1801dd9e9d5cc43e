import Foundation
import RelayCore
import Testing

@Suite struct DurationParsingTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("5m", .seconds(300)), ("2h", .seconds(7200)),
        ("5d", .seconds(432_000)), ("1.5s", .milliseconds(1500)), ("45", .seconds(45)), (" 10s ", .seconds(10)),
    ])
    func parses(text: String, expected: Duration) {
        #expect(DurationParsing.parse(text) == expected)
    }

    @Test(arguments: ["", "ms", "5w", "-5s", "five", "5 minutes"])
    func rejects(text: String) {
        #expect(DurationParsing.parse(text) == nil)
    }

    @Test(arguments: [(Duration.seconds(300), "5m"), (.seconds(3600), "1h"), (.milliseconds(1500), "1500ms"), (.seconds(432_000), "5d")])
    func formats(duration: Duration, text: String) {
        #expect(DurationParsing.format(duration) == text)
    }
}

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(initialDelay: .seconds(300), maximumDelay: .seconds(3600), maximumLifetime: .seconds(5 * 86_400))

    @Test(arguments: [(1, 300), (2, 600), (3, 1200), (4, 2400), (5, 3600), (6, 3600), (50, 3600)])
    func delayDoublesUpToTheMaximum(attempts: Int, seconds: Int) {
        // random 0.5 means no jitter
        #expect(policy.delay(afterAttempts: attempts, random: 0.5) == .seconds(seconds))
    }

    @Test func jitterIsPlusMinusTwentyPercent() {
        #expect(policy.delay(afterAttempts: 1, random: 0) == .seconds(240))
        #expect(policy.delay(afterAttempts: 1, random: 0.999_999) <= .seconds(360))
        #expect(policy.delay(afterAttempts: 1, random: 0.999_999) > .seconds(359))
    }

    @Test func nextAttemptNeverPassesExpiryAndNilOnceExpired() {
        let now = Date(timeIntervalSince1970: 1_000_000)
        let soon = now.addingTimeInterval(100)
        #expect(policy.nextAttempt(afterAttempts: 1, now: now, expiresAt: soon, random: 0.5) == soon)
        #expect(policy.nextAttempt(afterAttempts: 1, now: now, expiresAt: now.addingTimeInterval(86_400), random: 0.5) == now.addingTimeInterval(300))
        #expect(policy.nextAttempt(afterAttempts: 3, now: soon, expiresAt: soon) == nil)
    }
}

@Suite struct OutcomeClassifierTests {
    @Test(arguments: [
        (250, nil, RecipientStatus.delivered), (251, nil, .delivered), (421, "4.7.0", .deferred), (450, "4.2.1", .deferred),
        (451, "4.3.0", .deferred), (550, "5.1.1", .bounced), (552, "5.3.4", .bounced), (554, "5.7.1", .bounced),
    ] as [(Int, String?, RecipientStatus)])
    func classifiesByReplyClass(code: Int, enhanced: String?, status: RecipientStatus) {
        #expect(OutcomeClassifier.classify(DeliveryReply(code: code, enhanced: enhanced, text: "x")).status == status)
    }

    @Test func a452ToRCPTMeansSendTheRestLaterButMailboxFullIsADeferral() {
        #expect(OutcomeClassifier.classifyRecipientRejection(DeliveryReply(code: 452, enhanced: "4.5.3", text: "too many recipients")).status == .queued)
        #expect(OutcomeClassifier.classifyRecipientRejection(DeliveryReply(code: 452, enhanced: nil, text: "too many recipients")).status == .queued)
        #expect(OutcomeClassifier.classifyRecipientRejection(DeliveryReply(code: 452, enhanced: "4.2.2", text: "mailbox full")).status == .deferred)
        #expect(OutcomeClassifier.classifyRecipientRejection(DeliveryReply(code: 550, enhanced: "5.1.1", text: "unknown")).status == .bounced)
    }
}

@Suite struct MessageStatusTests {
    @Test(arguments: [
        ([RecipientStatus.queued], "queued"), ([.delivered, .queued], "queued"), ([.queued, .deferred], "deferred"),
        ([.delivered, .delivered], "delivered"), ([.delivered, .bounced], "partially_delivered"),
        ([.bounced, .failed], "bounced"), ([.failed], "failed"), ([], "queued"),
    ])
    func aggregates(statuses: [RecipientStatus], expected: String) {
        #expect(MessageStatus.aggregate(statuses) == expected)
    }
}

@Suite struct IdentifierTests {
    @Test func timeOrderedUUIDsAreVersion7AndSortByTime() {
        let earlier = TimeOrderedUUID.make(now: Date(timeIntervalSince1970: 1_700_000_000))
        let later = TimeOrderedUUID.make(now: Date(timeIntervalSince1970: 1_700_000_001))
        #expect(earlier.uuidString.lowercased() < later.uuidString.lowercased())
        #expect(Array(earlier.uuidString)[14] == "7")
    }

    @Test func apiKeysAreLongRandomAndPrefixed() {
        let keys = (0..<100).map { _ in APIKeyFormat.generate() }
        #expect(Set(keys).count == 100)
        #expect(keys.allSatisfy { $0.hasPrefix("rly_") && $0.count == 47 && !$0.contains("=") && !$0.contains("/") })
    }
}

@Suite struct ReputationThresholdTests {
    @Test func theGuardPausesAtTheThresholdsWarnsAtHalfAndIgnoresSmallSamples() {
        let guardRule = ReputationThresholds()
        func state(_ sends: Int, _ bounces: Int, _ complaints: Int) -> ReputationAssessment.State {
            guardRule.assess(ReputationWindow(sends: sends, hardBounces: bounces, complaints: complaints)).state
        }
        #expect(state(199, 199, 199) == .ok, "fewer than 200 sends are not judged")
        #expect(state(1000, 100, 0) == .paused)
        #expect(state(1000, 99, 0) == .warning)
        #expect(state(1000, 50, 0) == .warning)
        #expect(state(1000, 49, 0) == .ok)
        #expect(state(1000, 0, 5) == .paused)
        #expect(state(1000, 0, 3) == .warning)
        #expect(state(1000, 0, 2) == .ok)
        let assessment = guardRule.assess(ReputationWindow(sends: 1000, hardBounces: 0, complaints: 6))
        #expect(assessment.reason == "complaint_rate")
        #expect(assessment.complaintRate == 0.006)
        var off = ReputationThresholds()
        off.enabled = false
        #expect(off.assess(ReputationWindow(sends: 1000, hardBounces: 1000, complaints: 0)).state == .ok)
    }

    @Test func bounceAddressesVerifyAndCannotBeForged() {
        let codec = ReturnPath(key: Array(repeating: 7, count: 32), bounceDomain: "Bounces.Relay.Test")
        let address = codec.envelopeSender(recipientID: 42, mailFrom: "alice@example.com")
        #expect(address.hasPrefix("bounce+42-"))
        #expect(address.hasSuffix("@bounces.relay.test"))
        #expect(codec.recipientID(of: address) == 42)
        #expect(codec.recipientID(of: address.uppercased()) == 42)
        #expect(codec.recipientID(of: address.replacingOccurrences(of: "+42-", with: "+43-")) == nil)
        #expect(codec.recipientID(of: address.replacingOccurrences(of: "@bounces.relay.test", with: "@elsewhere.test")) == nil)
        let otherKey = ReturnPath(key: Array(repeating: 8, count: 32), bounceDomain: "bounces.relay.test")
        #expect(otherKey.recipientID(of: address) == nil)
        #expect(codec.envelopeSender(recipientID: 42, mailFrom: "") == "", "the null reverse path stays null")
        let perSender = ReturnPath(key: Array(repeating: 7, count: 32), bounceDomain: nil)
        #expect(perSender.envelopeSender(recipientID: 1, mailFrom: "a@Example.COM").hasSuffix("@bounces.example.com"))
        #expect(perSender.recipientID(of: perSender.envelopeSender(recipientID: 1, mailFrom: "a@example.com")) == 1)
    }
}
