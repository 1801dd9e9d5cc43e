import Foundation
import Logging
import RelayCore
import RelayStore

/// The cluster-wide bound on connections to one MX host (`RELAY_MX_MAX_CONNECTIONS`), held in PostgreSQL.
///
/// Every outbound connection holds a slot row from before it connects until it closes (idle connections in the
/// pool count: the MX host sees them). Slots carry a lease the worker renews, so a node killed with open
/// connections frees its slots after `RELAY_LEASE_TIME`. A host that answers with a throttling reply (see
/// `isThrottle`) gets a lower limit for `RELAY_MX_THROTTLE_TIME`, shared by every node.
final class ClusterConnectionLimiter: Sendable {
    /// A slot held for one connection.
    struct Slot: Sendable, Hashable {
        var host: String
        var number: Int
    }

    /// Why no slot was taken.
    enum Refusal: Error {
        /// Every slot stayed taken for the whole wait.
        case busy(limit: Int, waited: Duration)
        /// The database could not be asked.
        case unavailable(any Error)
    }

    private let database: RelayDatabase
    private let nodeID: UUID
    private let limit: Int
    private let lease: Duration
    let throttleTime: Duration
    private let maximumWait: Duration
    private let logger: Logger

    init(database: RelayDatabase, nodeID: UUID, limit: Int, lease: Duration, throttleTime: Duration,
         maximumWait: Duration, logger: Logger) {
        self.database = database
        self.nodeID = nodeID
        self.limit = limit
        self.lease = lease
        self.throttleTime = throttleTime
        self.maximumWait = maximumWait
        self.logger = logger
    }

    /// Takes a slot of `host`, waiting (polling with backoff up to 500 ms) while all are held elsewhere.
    func acquire(host: String) async -> Result<Slot, Refusal> {
        let host = host.lowercased()
        let started = ContinuousClock.now
        var delay: Duration = .milliseconds(20)
        while true {
            let grant: MXSlotGrant
            do {
                grant = try await database.takeMXSlot(host: host, nodeID: nodeID, limit: limit, lease: lease)
            } catch {
                return .failure(.unavailable(error))
            }
            if let number = grant.slot { return .success(Slot(host: host, number: number)) }
            let waited = ContinuousClock.now - started
            if waited >= maximumWait || Task.isCancelled { return .failure(.busy(limit: grant.limit, waited: waited)) }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(500))
        }
    }

    /// Gives a slot back (its connection closed). A failure leaves the row to expire with its lease.
    func release(_ slot: Slot) async {
        do {
            try await database.releaseMXSlot(host: slot.host, slot: slot.number, nodeID: nodeID)
        } catch {
            logger.debug("releasing an MX connection slot failed; it expires with its lease",
                         metadata: ["mx": "\(slot.host)", "error": "\(error)"])
        }
    }

    /// Extends the leases of this node's slots; called periodically while the worker runs.
    func renew() async throws {
        try await database.renewMXSlots(nodeID: nodeID, lease: lease)
    }

    /// Lowers the host's limit after a throttling reply; returns the new limit (nil if it could not be stored).
    func throttle(host: String, reply: DeliveryReply) async -> Int? {
        let text = [String(reply.code), reply.enhanced, reply.text].compactMap { $0 }.joined(separator: " ")
        do {
            let lowered = try await database.throttleMX(host: host.lowercased(), configuredLimit: limit,
                                                        duration: throttleTime, reply: text)
            logger.notice("MX host asked to slow down; connection limit lowered", metadata: [
                "mx": "\(host)", "limit": "\(lowered)", "reply": "\(text)", "for": "\(throttleTime)"])
            return lowered
        } catch {
            logger.warning("recording an MX throttle failed", metadata: ["mx": "\(host)", "error": "\(error)"])
            return nil
        }
    }

    /// Whether a reply asks the client to slow down: a transient reply that is 421 ("service not available,
    /// closing transmission channel", in practice "too many connections") or whose status or text says rate
    /// or connection limits (the `rate_limited` classification, RFC 3463 4.7.x and the big providers' texts).
    /// Greylisting is not a throttle either. "Too many recipients" (X.5.3, RFC 5321 §4.5.3.1.10) limits one transaction, not the connections, so it
    /// does not count.
    static func isThrottle(_ reply: DeliveryReply) -> Bool {
        let code = reply.code
        guard (400..<500).contains(code) else { return false }
        if code == 421 { return true }
        let text = reply.text.lowercased()
        if reply.enhanced?.hasSuffix(".5.3") == true || text.contains("too many recipients") { return false }
        // Greylisting (often 451 4.7.1) asks for a later retry of this message, not for fewer connections.
        if text.contains("greylist") || text.contains("graylist") { return false }
        // The reply code alone does not decide here (452 without a status is "too many recipients"); the text
        // alone may ("451 4.7.1 Rate limit exceeded": 4.7.1 alone reads as a policy block).
        return BounceClassifier.reason(code: nil, enhanced: reply.enhanced, text: reply.text) == .rateLimited
            || BounceClassifier.reason(code: nil, enhanced: nil, text: reply.text) == .rateLimited
    }
}
