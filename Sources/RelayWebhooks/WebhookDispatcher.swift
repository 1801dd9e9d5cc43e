// The webhook dispatcher: sends the PostgreSQL outbox (webhook_outbox, fed by a trigger on `events` and by
// relay_enqueue_webhook_event) to the tenants' endpoints.
//
// Outbox row states: pending (due_at = next attempt, or the lease expiry while claimed) → succeeded (any 2xx)
// or failed (the retry schedule ran past 3 days after the event). One row per event × endpoint; the
// `webhook-id` header is msg_<row id>, the same on every retry, and the body is stored at the first attempt.
//
// Claim strategy: like the delivery worker, one statement claims due rows of enabled endpoints with
// FOR UPDATE SKIP LOCKED and stamps a lease, so several nodes never send the same row at once and a killed
// node's rows are retaken after the lease. At most `concurrency` requests run at once, and about
// `concurrencyPerEndpoint` to one endpoint (its rows are skipped while it is that busy); a 250 ms poll finds new rows.
//
// Each attempt: the URL's host is checked by the private-address guard (every resolved address) and the
// connection is pinned to the checked address; POST with a 15 s deadline, redirects not followed (3xx is a
// failure). 410 Gone disables the endpoint at once; a long failure streak disables it too (WebhookDisablePolicy).

import AsyncHTTPClient
import Foundation
import Logging
import RelayCore
import RelayMetrics
import RelayStore
import ServiceLifecycle
import Synchronization

/// The dispatcher's settings, with their defaults.
public struct WebhookDispatcherConfiguration: Sendable {
    /// Identifies this node's leases.
    public var nodeID = UUID()
    /// Requests in flight at once on this node.
    public var concurrency = 32
    /// Requests to one endpoint in flight at once on this node (at most twice this, as a claim may add this many
    /// to an endpoint just below it), so that one slow endpoint (up to `requestTimeout` per request) cannot take
    /// every slot while other tenants' webhooks wait. Also the largest claim.
    public var concurrencyPerEndpoint = 8
    /// How often an idle dispatcher looks for due rows: the median delay from event to request is about half of
    /// it. An idle poll is one short statement (about 1 ms of database time, planning included).
    public var pollInterval: Duration = .milliseconds(250)
    /// How long a claim is held before another node may take the row over (longer than one attempt can last).
    public var leaseTime: Duration = .seconds(60)
    /// Deadline of one attempt: connect, send, and the response head and body.
    public var requestTimeout: Duration = .seconds(15)
    /// `RELAY_WEBHOOK_ALLOW_PRIVATE`: turns the private-address guard off (tests, private deployments).
    public var allowPrivateAddresses = false
    public var retrySchedule = WebhookRetrySchedule()
    public var disablePolicy = WebhookDisablePolicy()
    /// How long the delivery log and finished outbox rows are kept (Relay uses RELAY_LOG_RETENTION).
    public var historyRetention: Duration = .seconds(30 * 86_400)

    public init() {}
}

/// Sends due webhooks, run as a `Service` on nodes with the `worker` role. Graceful shutdown stops claiming and
/// lets the requests in flight finish (each within `requestTimeout`).
public final class WebhookDispatcher: Service, Sendable {
    private let database: RelayDatabase
    private let configuration: WebhookDispatcherConfiguration
    private let logger: Logger
    private let metrics: RelayMetrics?
    private let sender: WebhookSender
    private let inFlight = Atomic<Int>(0)
    /// Requests in flight per endpoint on this node.
    private let inFlightByEndpoint = Mutex<[UUID: Int]>([:])
    /// Signalled when a request finishes, so a loop waiting for a free slot (or for a busy endpoint) claims at once.
    private let slotFreed = WakeupSignal()
    private let stopping = Atomic<Bool>(false)

    public init(database: RelayDatabase, configuration: WebhookDispatcherConfiguration, logger: Logger,
                metrics: RelayMetrics? = nil) {
        self.database = database
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
        self.sender = WebhookSender(targetCheck: WebhookTargetCheck(allowPrivate: configuration.allowPrivateAddresses),
                                    requestTimeout: configuration.requestTimeout)
    }

    public func run() async throws {
        let clients = PinnedHTTPClients(timeout: configuration.requestTimeout)
        logger.info("webhook dispatcher started", metadata: ["node": "\(configuration.nodeID)"])
        await withDiscardingTaskGroup { group in
            await withGracefulShutdownHandler {
                await self.claimLoop(group: &group, clients: clients)
            } onGracefulShutdown: {
                self.stopping.store(true, ordering: .relaxed)
            }
        }
        await clients.shutdownAll()
        logger.info("webhook dispatcher stopped")
    }

    private func claimLoop(group: inout DiscardingTaskGroup, clients: PinnedHTTPClients) async {
        var lastMaintenance = ContinuousClock.now - .seconds(3600)
        var errorDelay: Duration = .milliseconds(200)
        while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
            if ContinuousClock.now - lastMaintenance >= .seconds(3600) {
                lastMaintenance = .now
                await maintain(clients: clients)
            }
            let free = configuration.concurrency - inFlight.load(ordering: .relaxed)
            guard free > 0 else {
                await slotFreed.wait(timeout: configuration.pollInterval)
                continue
            }
            var claimed: [ClaimedWebhook]
            do {
                let busy = inFlightByEndpoint.withLock { counts in
                    counts.filter { $0.value >= configuration.concurrencyPerEndpoint }.map(\.key)
                }
                claimed = try await database.claimWebhooks(owner: configuration.nodeID,
                                                           limit: min(free, configuration.concurrencyPerEndpoint),
                                                           lease: configuration.leaseTime, skipping: busy)
                // First attempts: render and store the body before sending, so every retry sends these bytes.
                var firstBodies: [(outboxID: Int64, body: String)] = []
                for index in claimed.indices where claimed[index].payload == nil {
                    let body = WebhookPayload.body(of: claimed[index])
                    claimed[index].payload = body
                    firstBodies.append((claimed[index].outboxID, body))
                }
                try await database.storeWebhookPayloads(firstBodies)
                errorDelay = .milliseconds(200)
            } catch {
                logger.warning("claiming webhooks failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
                try? await Task.sleep(for: errorDelay)
                errorDelay = min(errorDelay * 2, .seconds(5))
                continue
            }
            if claimed.isEmpty {
                await slotFreed.wait(timeout: configuration.pollInterval)
                continue
            }
            inFlight.add(claimed.count, ordering: .relaxed)
            inFlightByEndpoint.withLock { counts in
                for webhook in claimed { counts[webhook.endpointID, default: 0] += 1 }
            }
            for webhook in claimed {
                // Sent to completion even during shutdown: the request is short and its outcome must be written.
                group.addTask {
                    await self.deliver(webhook, clients: clients)
                    self.inFlightByEndpoint.withLock { counts in
                        counts[webhook.endpointID] = counts[webhook.endpointID].flatMap { $0 > 1 ? $0 - 1 : nil }
                    }
                    self.inFlight.subtract(1, ordering: .relaxed)
                    self.slotFreed.signal()
                }
            }
        }
    }

    private func maintain(clients: PinnedHTTPClients) async {
        await clients.closeIdle()
        do {
            let pruned = try await database.pruneWebhookHistory(retention: configuration.historyRetention)
            if pruned > 0 { logger.info("pruned webhook history", metadata: ["rows": "\(pruned)"]) }
        } catch {
            logger.warning("pruning webhook history failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// One attempt of one row, and its outcome written.
    func deliver(_ webhook: ClaimedWebhook, clients: PinnedHTTPClients) async {
        let attempt = webhook.attempts + 1
        let started = ContinuousClock.now
        let result = await sender.send(webhook, clients: clients)
        let latency = ContinuousClock.now - started
        let latencyMs = Int(latency.components.seconds * 1000 + latency.components.attoseconds / 1_000_000_000_000_000)
        let next = result.succeeded ? nil
            : configuration.retrySchedule.nextAttempt(afterFailedAttempts: attempt, createdAt: webhook.createdAt, now: Date())
        let outcome = RelayDatabase.WebhookAttemptOutcome(
            outboxID: webhook.outboxID, endpointID: webhook.endpointID, eventType: webhook.eventType, attempt: attempt,
            succeeded: result.succeeded, responseCode: result.responseCode, error: result.error, latencyMs: latencyMs,
            nextAttemptAt: next)
        var metadata: Logger.Metadata = ["webhook_id": "msg_\(webhook.outboxID)", "endpoint": "\(webhook.endpointID)",
                                         "attempt": "\(attempt)", "event_type": "\(webhook.eventType)"]
        if let code = result.responseCode { metadata["response_code"] = "\(code)" }
        if let error = result.error { metadata["error"] = "\(error)" }
        metrics?.webhookAttempt(succeeded: result.succeeded, responseCode: result.responseCode)
        logger.log(level: result.succeeded ? .debug : .info, result.succeeded ? "webhook delivered" : "webhook attempt failed",
                   metadata: metadata)
        do {
            let (streak, since) = try await database.recordWebhookAttempt(outcome, owner: configuration.nodeID)
            if !result.succeeded, let reason = configuration.disablePolicy.disabledReason(
                responseCode: result.responseCode, streak: streak, streakSince: since ?? Date(), now: Date()) {
                try await database.disableWebhookEndpoint(id: webhook.endpointID, reason: reason)
                logger.notice("webhook endpoint disabled", metadata: ["endpoint": "\(webhook.endpointID)", "reason": "\(reason)"])
            }
        } catch {
            // The lease runs out and the row is attempted again: at least once, never lost.
            logger.warning("recording a webhook attempt failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }
}
