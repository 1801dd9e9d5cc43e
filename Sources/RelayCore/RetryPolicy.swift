import Foundation

/// When to try a deferred recipient again, and when to give up.
///
/// Defaults follow Postfix's queue manager (`minimal_backoff_time` 300s, `maximal_queue_lifetime` 5d)
/// with a lower cap than RFC 5321 §4.5.4.1 suggests (an hour rather than "at least 30 minutes" growing
/// unbounded) because transactional mail is time-sensitive.
public struct RetryPolicy: Sendable, Equatable {
    /// Delay before the second attempt. Default 5 minutes (`RELAY_RETRY_INITIAL`).
    public var initialDelay: Duration
    /// Upper bound of the doubling delay. Default 1 hour (`RELAY_RETRY_MAX`).
    public var maximumDelay: Duration
    /// How long after acceptance a recipient may stay in flight before it fails as `expired`.
    /// Default 5 days (`RELAY_MAX_QUEUE_LIFETIME`).
    public var maximumLifetime: Duration
    /// Relative jitter applied to each delay, so that a burst of deferrals does not retry in lockstep.
    public var jitter: Double

    /// Creates a policy; the defaults are the documented configuration defaults.
    public init(
        initialDelay: Duration = .seconds(300),
        maximumDelay: Duration = .seconds(3600),
        maximumLifetime: Duration = .seconds(5 * 86_400),
        jitter: Double = 0.2
    ) {
        self.initialDelay = initialDelay
        self.maximumDelay = maximumDelay
        self.maximumLifetime = maximumLifetime
        self.jitter = jitter
    }

    /// The delay before the next attempt after `attempts` attempts have failed transiently
    /// (`attempts` ≥ 1): initial × 2^(attempts−1), capped at the maximum, then ±jitter.
    /// `random` is a value in [0, 1) so tests can pin the jitter.
    public func delay(afterAttempts attempts: Int, random: Double = Double.random(in: 0..<1)) -> Duration {
        let initialMs = Double(initialDelay.milliseconds)
        let maximumMs = Double(maximumDelay.milliseconds)
        let exponent = Double(max(0, min(attempts - 1, 40)))
        let base = min(initialMs * pow(2, exponent), maximumMs)
        let factor = 1 + jitter * (2 * random - 1)
        return .milliseconds(Int64((base * factor).rounded()))
    }

    /// Decides what happens to a recipient that was just deferred: the next attempt time, or nil when the
    /// lifetime has run out (the recipient then fails as `expired`). The next attempt is never scheduled
    /// after the expiry time, so that expiry is noticed on time (a lesson from KumoMTA #539).
    public func nextAttempt(afterAttempts attempts: Int, now: Date, expiresAt: Date, random: Double = Double.random(in: 0..<1)) -> Date? {
        if now >= expiresAt { return nil }
        let candidate = now.addingTimeInterval(delay(afterAttempts: attempts, random: random).seconds)
        return min(candidate, expiresAt)
    }
}
