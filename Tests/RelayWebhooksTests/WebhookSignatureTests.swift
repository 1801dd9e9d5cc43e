import Foundation
import RelayWebhooks
import Testing

@Suite struct WebhookSignatureTests {
    /// The example of the Standard Webhooks specification (also the test vector of its reference libraries).
    @Test func matchesTheSpecificationsTestVector() throws {
        let secret = try #require(WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let signature = WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330,
                                              body: Array(#"{"test": 2432232314}"#.utf8), secret: secret)
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func rotationSendsTheNewSignatureFirstThenTheOld() throws {
        let new = WebhookSecret.generate()
        let old = WebhookSecret.generate()
        let body = Array(#"{"type":"delivered"}"#.utf8)
        let header = WebhookSignature.header(id: "msg_1", timestamp: 1_700_000_000, body: body, secrets: [new, old])
        #expect(header == WebhookSignature.sign(id: "msg_1", timestamp: 1_700_000_000, body: body, secret: new) + " "
                + WebhookSignature.sign(id: "msg_1", timestamp: 1_700_000_000, body: body, secret: old))
    }

    @Test func generatedSecretsAreWhsecWith24RandomBytes() throws {
        let secret = WebhookSecret.generate()
        #expect(secret.description.hasPrefix("whsec_"))
        let key = try #require(Data(base64Encoded: String(secret.description.dropFirst(6))))
        #expect(key.count == 24)
        #expect(WebhookSecret(secret.description) == secret)
        #expect(WebhookSecret.generate() != secret)
        #expect(WebhookSecret("sk_abc") == nil)
        #expect(WebhookSecret("whsec_***") == nil)
    }
}

@Suite struct WebhookRetryScheduleTests {
    let created = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func followsTheScheduleAndRepeatsTheLastDelay() {
        let schedule = WebhookRetrySchedule()
        let delays = (1...8).map { failed in
            schedule.nextAttempt(afterFailedAttempts: failed, createdAt: created, now: created)!.timeIntervalSince(created)
        }
        #expect(delays == [5, 300, 1800, 7200, 18_000, 36_000, 36_000, 36_000])
    }

    @Test func givesUpWhenTheNextAttemptWouldBeMoreThanThreeDaysAfterTheEvent() {
        let schedule = WebhookRetrySchedule()
        let late = created.addingTimeInterval(3 * 86_400 - 36_000)
        #expect(schedule.nextAttempt(afterFailedAttempts: 9, createdAt: created, now: late) == created.addingTimeInterval(3 * 86_400))
        #expect(schedule.nextAttempt(afterFailedAttempts: 9, createdAt: created, now: late.addingTimeInterval(1)) == nil)
        // Run through: about a dozen attempts fit into three days.
        var now = created
        var attempts = 1
        while let next = schedule.nextAttempt(afterFailedAttempts: attempts, createdAt: created, now: now) {
            now = next
            attempts += 1
        }
        #expect(attempts == 12)
    }

    @Test func disablesOnGoneAtOnceAndAfterALongStreak() {
        let policy = WebhookDisablePolicy()
        let now = created
        #expect(policy.disabledReason(responseCode: 410, streak: 1, streakSince: now, now: now) == "gone_410")
        #expect(policy.disabledReason(responseCode: 500, streak: 49, streakSince: now.addingTimeInterval(-7200), now: now) == nil)
        #expect(policy.disabledReason(responseCode: 500, streak: 50, streakSince: now.addingTimeInterval(-600), now: now) == nil,
                "a burst within an hour is not enough")
        #expect(policy.disabledReason(responseCode: nil, streak: 50, streakSince: now.addingTimeInterval(-3600), now: now) == "failure_streak")
    }
}
