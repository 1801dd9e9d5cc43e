import Foundation
import RelayCore

/// When a failed webhook is tried again, and when an endpoint is given up on.
///
/// Defaults (the schedule of Standard Webhooks senders such as Svix): after the 1st failed attempt wait 5 s, then
/// 5 min, 30 min, 2 h, 5 h, 10 h, and 10 h after every further failure, as long as the next attempt falls within
/// 3 days of the event; after that the delivery is final `failed` (about 12 attempts in all).
public struct WebhookRetrySchedule: Sendable, Equatable {
    /// Delay after the n-th failed attempt (n = 1, 2, …); the last one repeats.
    public var delays: [Duration] = [.seconds(5), .seconds(300), .seconds(1800), .seconds(7200), .seconds(18_000), .seconds(36_000)]
    /// No attempt starts later than this after the event.
    public var lifetime: Duration = .seconds(3 * 86_400)

    public init() {}

    /// When to try again after `failedAttempts` failed attempts of an event created at `createdAt`, or nil when
    /// that would be past the lifetime (the delivery has failed for good).
    public func nextAttempt(afterFailedAttempts failedAttempts: Int, createdAt: Date, now: Date) -> Date? {
        guard failedAttempts >= 1, let last = delays.last else { return nil }
        let delay = failedAttempts <= delays.count ? delays[failedAttempts - 1] : last
        let next = now.addingTimeInterval(delay.seconds)
        return next <= createdAt.addingTimeInterval(lifetime.seconds) ? next : nil
    }
}

/// When an endpoint is disabled, so that Relay stops sending into a void: at once on `410 Gone` (the receiver
/// says the endpoint is gone for good), or after `streakAttempts` failed attempts in a row without a success
/// that have gone on for at least `streakDuration` (so that a burst of failures during a short outage of a busy
/// endpoint does not disable it). Queued deliveries of a disabled endpoint wait; re-enabling resumes them.
public struct WebhookDisablePolicy: Sendable, Equatable {
    public var streakAttempts = 50
    public var streakDuration: Duration = .seconds(3600)

    public init() {}

    /// Why the endpoint is to be disabled after this failure, or nil to keep it enabled. `streak` counts the
    /// failure just made; `streakSince` is when the streak began.
    public func disabledReason(responseCode: Int?, streak: Int, streakSince: Date, now: Date) -> String? {
        if responseCode == 410 { return "gone_410" }
        if streak >= streakAttempts && now.timeIntervalSince(streakSince) >= streakDuration.seconds { return "failure_streak" }
        return nil
    }
}
