/// The reputation guard's rule: a tenant whose bounce rate or complaint rate over the window passes its threshold
/// is paused (as Amazon SES enforces: bounces 10%, complaints 0.5%); at half of either it is in warning.
/// Rates are not judged below `minimumSends`, so a handful of sends cannot pause anyone.
public struct ReputationThresholds: Sendable, Equatable {
    /// `RELAY_REPUTATION_GUARD` (default true).
    public var enabled = true
    /// `RELAY_REPUTATION_WINDOW` (default 24h): the sliding window the rates are measured over.
    public var window: Duration = .seconds(86_400)
    /// `RELAY_REPUTATION_MIN_SENDS` (default 200).
    public var minimumSends = 200
    /// `RELAY_REPUTATION_BOUNCE_RATE` (default 0.10): hard bounces / sends.
    public var bounceRate = 0.10
    /// `RELAY_REPUTATION_COMPLAINT_RATE` (default 0.005): complaints / sends.
    public var complaintRate = 0.005

    /// The defaults.
    public init() {}

    /// Judges one tenant's window.
    public func assess(_ window: ReputationWindow) -> ReputationAssessment {
        let bounce = window.sends > 0 ? Double(window.hardBounces) / Double(window.sends) : 0
        let complaint = window.sends > 0 ? Double(window.complaints) / Double(window.sends) : 0
        var state = ReputationAssessment.State.ok
        var reason: String?
        if enabled, window.sends >= minimumSends {
            if bounce >= bounceRate {
                state = .paused
                reason = "bounce_rate"
            } else if complaint >= complaintRate {
                state = .paused
                reason = "complaint_rate"
            } else if bounce >= bounceRate / 2 {
                state = .warning
                reason = "bounce_rate"
            } else if complaint >= complaintRate / 2 {
                state = .warning
                reason = "complaint_rate"
            }
        }
        return ReputationAssessment(state: state, reason: reason, bounceRate: bounce, complaintRate: complaint,
                                    sends: window.sends)
    }
}

/// What a tenant did within the window.
public struct ReputationWindow: Sendable, Equatable {
    /// Recipients that reached a final delivery outcome (delivered, bounced or failed).
    public var sends: Int
    /// Hard bounces, synchronous and asynchronous.
    public var hardBounces: Int
    /// Complaints (feedback reports).
    public var complaints: Int

    public init(sends: Int, hardBounces: Int, complaints: Int) {
        self.sends = sends
        self.hardBounces = hardBounces
        self.complaints = complaints
    }
}

/// The guard's verdict on one tenant.
public struct ReputationAssessment: Sendable, Equatable {
    /// `ok`, `warning` (half a threshold) or `paused`.
    public enum State: String, Sendable {
        case ok, warning, paused
    }
    public var state: State
    /// `bounce_rate` or `complaint_rate` when not ok.
    public var reason: String?
    public var bounceRate: Double
    public var complaintRate: Double
    public var sends: Int

    public init(state: State, reason: String?, bounceRate: Double, complaintRate: Double, sends: Int) {
        self.state = state
        self.reason = reason
        self.bounceRate = bounceRate
        self.complaintRate = complaintRate
        self.sends = sends
    }
}
