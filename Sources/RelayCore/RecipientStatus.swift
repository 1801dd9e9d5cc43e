/// Where one recipient of a message stands. The values are part of the public API contract.
///
/// `queued` and `deferred` are the two in-flight states (the recipient has a row in the hot queue
/// table); every other state is final.
public enum RecipientStatus: String, Sendable, Codable, CaseIterable {
    /// Accepted and waiting for its first attempt (or re-queued after a 452 "too many recipients").
    case queued
    /// At least one attempt failed transiently; another attempt is scheduled.
    case deferred
    /// The receiving MX answered 2xx at end of data.
    case delivered
    /// The receiving MX rejected the recipient or message permanently (5xx).
    case bounced
    /// Relay gave up without a permanent rejection: lifetime expired, no such domain, null MX.
    case failed
    /// Not attempted because the address is on the tenant's suppression list.
    case suppressed
    /// Canceled before delivery (`POST /v1/messages/{id}/cancel`, `POST /v1/queue/cancel`, `relay queue cancel`).
    case canceled
    /// Delivered, and then the recipient reported it as spam (a feedback report reached the inbound listener).
    case complained

    /// Whether no further delivery attempt will be made.
    public var isFinal: Bool {
        switch self {
        case .queued, .deferred: false
        default: true
        }
    }
}

/// The status of a message as a whole, derived from its recipients.
public enum MessageStatus {
    /// Aggregates recipient statuses: any in-flight recipient makes the message in flight
    /// (`deferred` wins over `queued` because it tells the user something went wrong);
    /// when all are final, a single shared status is the message's status, a mix that includes deliveries
    /// is `partially_delivered`, and any other mix takes the first present of bounced, failed, suppressed,
    /// canceled (the most informative failure).
    public static func aggregate(_ statuses: [RecipientStatus]) -> String {
        if statuses.isEmpty { return RecipientStatus.queued.rawValue }
        if statuses.contains(.deferred) { return RecipientStatus.deferred.rawValue }
        if statuses.contains(.queued) { return RecipientStatus.queued.rawValue }
        let first = statuses[0]
        if statuses.allSatisfy({ $0 == first }) { return first.rawValue }
        if statuses.contains(.delivered) { return "partially_delivered" }
        for status in [RecipientStatus.bounced, .failed, .complained, .suppressed, .canceled] where statuses.contains(status) {
            return status.rawValue
        }
        return first.rawValue
    }
}
