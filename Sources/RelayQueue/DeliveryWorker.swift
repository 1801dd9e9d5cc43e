// The delivery worker: claims due recipients from the PostgreSQL queue and delivers them over SMTP.
//
// Recipient states (RelayCore.RecipientStatus):
//   queued    accepted, not attempted yet (or put back after a 452 "too many recipients")
//   deferred  an attempt failed transiently (4xx, network, DNS); next attempt at `next_attempt_at`
//   delivered 2xx after end of data                           (final)
//   bounced   5xx from the receiving server                   (final)
//   failed    expired after RELAY_MAX_QUEUE_LIFETIME, NXDOMAIN, or null MX (final)
//
// Claim strategy: one statement claims up to `claimBatchSize` due rows with FOR UPDATE SKIP LOCKED and
// stamps a lease (owner = this node, due_at = now + RELAY_LEASE_TIME); leases are renewed while deliveries
// run, so a crashed node's rows become due again after one lease time without any sweeper. Claimed rows are
// grouped by (message, recipient domain) into one SMTP transaction; at most RELAY_WORKER_CONCURRENCY groups
// are delivered at once. Outcomes are written in batches by CompletionWriter. Idle workers wake on
// LISTEN/NOTIFY within milliseconds of an accept; a 1s poll is the fallback.
//
// Backoff rule: after the n-th transient failure the next attempt is RELAY_RETRY_INITIAL × 2^(n−1), capped
// at RELAY_RETRY_MAX, ±20% jitter, never later than the expiry time; a recipient still deferred at expiry
// fails with reason `expired`.

import DKIM
import DNSClient
import Foundation
import Logging
import NIOCore
import RelayCore
import RelayDomains
import RelayMetrics
import RelayStore
import ServiceLifecycle
import Synchronization

/// The delivery worker of one node, run as a `Service`. Graceful shutdown stops claiming, lets in-flight
/// deliveries finish (up to the grace period), writes their outcomes, and gives unstarted claims back.
public final class DeliveryWorker: Service, Sendable {
    private let database: RelayDatabase
    private let configuration: WorkerConfiguration
    private let deliverer: Deliverer
    private let pool: MXConnectionPool
    private let logger: Logger
    private let metrics: RelayMetrics?
    private let wakeup = WakeupSignal()
    private let slots: AsyncSemaphore
    /// Recipient ids this node holds a lease on and has not yet written an outcome for.
    private let inFlight = Mutex(Set<Int64>())
    /// Claimed recipients per domain whose attempt has not finished. A domain at `perDomainLimit` is left out of
    /// the claims, so that one whose MX hosts hang (a tarpit) holds at most about twice that many of the
    /// worker's delivery slots (4 × RELAY_MX_MAX_CONNECTIONS) and the other domains keep flowing.
    private let domainLoad = Mutex([String: Int]())
    private let stopping = Atomic<Bool>(false)
    /// Counts NOTIFYs of new mail, so the claim loop can tell whether anything may have become due since a claim.
    private let notifications = Atomic<Int>(0)
    /// The VERP codec, loaded from the database when the worker starts (the key is cluster-wide).
    private let returnPath = Mutex<ReturnPath?>(nil)
    /// Relay-hosted unsubscribe links, loaded with the return path.
    private let unsubscribeLink = Mutex<UnsubscribeLink?>(nil)
    /// Signs each message with its sender domain's DKIM keys (nil: unsigned, unit tests).
    private let signer: MessageSigner?

    /// Creates a worker; nothing runs until `run()`. With `secrets` (which open smarthost passwords) the worker
    /// follows the database's smarthost routes; without, only `configuration.smarthost`.
    public init(database: RelayDatabase, resolver: DNSResolver, configuration: WorkerConfiguration,
                eventLoopGroup: any EventLoopGroup, logger: Logger, metrics: RelayMetrics? = nil, signer: MessageSigner? = nil,
                secrets: (@Sendable () async throws -> SecretKeyring)? = nil) {
        self.database = database
        self.signer = signer
        self.metrics = metrics
        self.configuration = configuration
        self.logger = logger
        self.slots = AsyncSemaphore(permits: configuration.concurrency)
        let clusterLimiter = ClusterConnectionLimiter(
            database: database, nodeID: configuration.nodeID, limit: configuration.maxConnectionsPerMX,
            lease: Self.slotLease(configuration), throttleTime: configuration.mxThrottleTime,
            maximumWait: configuration.mxSlotWait, logger: logger)
        self.pool = MXConnectionPool(maxPerHost: configuration.maxConnectionsPerMX,
                                     idleTimeout: configuration.connectionIdleTimeout,
                                     maxUses: configuration.maxMessagesPerConnection, clusterLimiter: clusterLimiter)
        let routes = secrets.map {
            RouteTable.database(database, secrets: $0, fallback: configuration.smarthost,
                                cacheTime: configuration.routeCacheTime, logger: logger)
        } ?? RouteTable(fallback: configuration.smarthost, logger: logger)
        self.deliverer = Deliverer(resolver: resolver, pool: pool, configuration: configuration,
                                   eventLoopGroup: eventLoopGroup, logger: logger, routes: routes)
    }

    /// Wakes the claim loop now (e.g. after an accept in this process).
    public func wake() {
        wakeup.signal()
    }

    /// Outbound SMTP connections open now (in use or idle in the pool).
    public var openConnections: Int { pool.openCount }

    /// Runs until graceful shutdown or cancellation.
    public func run() async throws {
        let writer = CompletionWriter(
            database: database, owner: configuration.nodeID, batchSize: configuration.completionBatchSize,
            flushInterval: configuration.completionFlushInterval, logger: logger, softBounces: configuration.softBounces
        ) { [self] ids in
            self.inFlight.withLock { $0.subtract(ids) }
        }
        // A shutdown while the database is still unreachable must not wait for it.
        guard let key = try? await cancelWhenGracefulShutdown({ try await self.database.secretRetrying(named: "verp") }),
              let unsubscribeKey = try? await cancelWhenGracefulShutdown({ try await self.database.secretRetrying(named: "unsubscribe") })
        else { return }
        returnPath.withLock { $0 = ReturnPath(key: key, bounceDomain: configuration.bounceDomain) }
        unsubscribeLink.withLock { $0 = UnsubscribeLink(key: unsubscribeKey, baseURL: configuration.publicURL) }
        logger.info("delivery worker started", metadata: [
            "node": "\(configuration.nodeID)", "concurrency": "\(configuration.concurrency)"])
        await withTaskGroup(of: Bool.self) { background in
            background.addTask { await self.listenForNotifications(); return false }
            background.addTask { await self.renewLeasesPeriodically(); return false }
            background.addTask { await self.renewConnectionSlotsPeriodically(); return false }
            background.addTask { await writer.run(); return true }
            await withDiscardingTaskGroup { deliveries in
                await withGracefulShutdownHandler {
                    await self.claimLoop(deliveries: &deliveries, writer: writer)
                } onGracefulShutdown: {
                    self.stopping.store(true, ordering: .relaxed)
                    self.wakeup.signal()
                }
            }
            // Every delivery has finished: write what is pending, then stop the helpers.
            writer.finish()
            while let writerDone = await background.next(), !writerDone {}
            background.cancelAll()
        }
        await pool.closeAll()
        let leftover = inFlight.withLock { Array($0) }
        if !leftover.isEmpty {
            try? await database.releaseLeases(owner: configuration.nodeID, recipientIDs: leftover)
        }
        logger.info("delivery worker stopped")
    }

    private func claimLoop(deliveries: inout DiscardingTaskGroup, writer: CompletionWriter) async {
        var errorDelay: Duration = .milliseconds(100)
        var lastIdleSweep = ContinuousClock.now
        // A claim that left out busy domains and found nothing: nothing else was due then. Repeating it is
        // pointless until new mail is announced or the poll interval passes; on a deep queue of one busy domain
        // each one still reads the claim window (RelayDatabase.claimWindow rows) to find nothing.
        var emptyClaim: (excluding: Set<String>, notifications: Int, at: ContinuousClock.Instant)?
        while !stopping.load(ordering: .relaxed) && !Task.isCancelled {
            if ContinuousClock.now - lastIdleSweep > .seconds(1) {
                lastIdleSweep = .now
                await pool.closeExpired()
            }
            let free = slots.available
            if free == 0 {
                // Wait for a slot to free up, then give it straight back to the group that takes it.
                await slots.acquire()
                slots.release()
                continue
            }
            let limit = min(configuration.claimBatchSize, max(free * 4, 16))
            let claimed: [ClaimedRecipient]
            do {
                let perDomain = Self.perDomainLimit(configuration)
                let busy = domainLoad.withLock { load in load.filter { $0.value >= perDomain }.map(\.key) }
                let announced = notifications.load(ordering: .relaxed)
                if let empty = emptyClaim, !busy.isEmpty, empty.excluding.isSubset(of: busy), empty.notifications == announced,
                   ContinuousClock.now - empty.at < configuration.pollInterval {
                    await wakeup.wait(timeout: configuration.pollInterval - (ContinuousClock.now - empty.at))
                    continue
                }
                claimed = try await database.claim(owner: configuration.nodeID, limit: limit, lease: configuration.leaseTime,
                                                   perDomain: perDomain, excluding: busy)
                emptyClaim = claimed.isEmpty && !busy.isEmpty ? (Set(busy), announced, .now) : nil
                errorDelay = .milliseconds(100)
            } catch {
                logger.warning("claiming work failed; retrying", metadata: ["error": "\(String(reflecting: error))"])
                await wakeup.wait(timeout: errorDelay)
                errorDelay = min(errorDelay * 2, .seconds(5))
                continue
            }
            if claimed.isEmpty {
                await wakeup.wait(timeout: configuration.pollInterval)
                continue
            }
            inFlight.withLock { $0.formUnion(claimed.map(\.recipientID)) }
            // Addresses listed since their message was accepted are not attempted.
            let listed = claimed.filter { $0.suppressedReason != nil }
            if !listed.isEmpty {
                writer.submit(listed.map {
                    CompletedDelivery(recipientID: $0.recipientID, status: .suppressed, countsAsAttempt: false, nextAttemptAt: nil,
                                      reply: nil, detail: "the address is on the suppression list", mx: nil,
                                      reason: $0.suppressedReason, durationMs: 0,
                                      provider: MailboxProvider.classify(mx: nil, domain: $0.domain))
                })
            }
            let codec = returnPath.withLock { $0 }
            var groups = DeliveryGroup.make(from: claimed.filter { $0.suppressedReason == nil }, returnPath: codec)[...]
            domainLoad.withLock { load in
                for group in groups { load[group.domain, default: 0] += group.recipients.count }
            }
            while let group = groups.popFirst() {
                await slots.acquire()
                if stopping.load(ordering: .relaxed) {
                    slots.release()
                    let unstarted = [group] + groups
                    let ids = unstarted.flatMap { $0.recipients.map(\.recipientID) }
                    try? await database.releaseLeases(owner: configuration.nodeID, recipientIDs: ids)
                    inFlight.withLock { $0.subtract(ids) }
                    for group in unstarted { finished(group) }
                    break
                }
                deliveries.addTask {
                    defer {
                        self.slots.release()
                        self.finished(group)
                    }
                    let (outcomes, log) = await self.attempt(group)
                    writer.submit(outcomes, attempt: log)
                }
            }
        }
    }

    /// The most recipients of one domain a claim takes, and the load at which the domain is left out of claims:
    /// twice the per-host connection limit. The second half waits for a connection with its body already read
    /// and signed, so a connection never waits for the database: with exactly the limit, 10 connections to one
    /// host carried 597 msg/s, with twice it 906 msg/s (docs/benchmarks.md, B2). A host that hangs holds at most
    /// about twice this many of the worker's delivery slots.
    static func perDomainLimit(_ configuration: WorkerConfiguration) -> Int {
        max(configuration.maxConnectionsPerMX, 1) * 2
    }

    /// Counts a group's attempt as finished; wakes the claim loop when its domain is no longer left out.
    private func finished(_ group: DeliveryGroup) {
        let limit = Self.perDomainLimit(configuration)
        let reopened = domainLoad.withLock { load -> Bool in
            let before = load[group.domain] ?? 0
            let after = max(0, before - group.recipients.count)
            load[group.domain] = after == 0 ? nil : after
            return before >= limit && after < limit
        }
        if reopened { wakeup.signal() }
    }

    /// One attempt for one group, turned into rows to write.
    private func attempt(_ group: DeliveryGroup) async -> ([CompletedDelivery], AttemptLog?) {
        let started = ContinuousClock.now
        let now = Date()
        if now >= group.expiresAt {
            return (group.recipients.map {
                CompletedDelivery(recipientID: $0.recipientID, status: .failed, countsAsAttempt: false, nextAttemptAt: nil,
                                  reply: nil, detail: "the message expired before it could be delivered", mx: nil,
                                  reason: "expired", durationMs: 0, provider: MailboxProvider.classify(mx: nil, domain: $0.domain))
            }, nil)
        }
        let result: GroupAttemptResult
        do {
            guard let body = try await database.messageBody(messageID: group.messageID) else {
                return (group.recipients.map {
                    CompletedDelivery(recipientID: $0.recipientID, status: .failed, countsAsAttempt: true, nextAttemptAt: nil,
                                      reply: nil, detail: "the stored message is missing", mx: nil, reason: "other", durationMs: 0,
                                      provider: MailboxProvider.classify(mx: nil, domain: $0.domain))
                }, nil)
            }
            let outgoing: OutgoingBody
            do {
                outgoing = try await outgoingBody(body, group: group)
            } catch {
                // Without its keys a message would go out unsigned (and likely to spam): wait for the operator.
                logger.error("the DKIM keys of a sender domain cannot be used", metadata: [
                    "message_id": "\(group.messageID)", "error": "\(String(reflecting: error))"])
                return (group.recipients.map {
                    CompletedDelivery(recipientID: $0.recipientID, status: $0.attempts == 0 ? .queued : .deferred,
                                      countsAsAttempt: false, nextAttemptAt: Date().addingTimeInterval(60), reply: nil,
                                      detail: "DKIM signing is not possible: \(error)", mx: nil, reason: nil, durationMs: 0)
                }, nil)
            }
            result = await deliverer.deliver(group, body: outgoing)
        } catch {
            // Database trouble reading the body: not an attempt; try again soon.
            logger.warning("reading a message body failed", metadata: ["error": "\(String(reflecting: error))"])
            return (group.recipients.map {
                CompletedDelivery(recipientID: $0.recipientID, status: $0.attempts == 0 ? .queued : .deferred,
                                  countsAsAttempt: false, nextAttemptAt: Date().addingTimeInterval(5), reply: nil,
                                  detail: "could not read the message from the database", mx: nil, reason: nil, durationMs: 0)
            }, nil)
        }
        let durationMs = Int((ContinuousClock.now - started).milliseconds)
        let finishedAt = Date()
        let attemptID = TimeOrderedUUID.make(now: now)
        let provider = MailboxProvider.classify(mx: result.mx, domain: group.domain)
        let completions = result.outcomes.map { recipient, outcome in
            var completion = Self.completion(for: recipient, outcome: outcome, mx: result.mx, durationMs: durationMs,
                                             now: finishedAt, policy: configuration.retryPolicy)
            completion.attemptID = attemptID
            completion.remoteIP = result.remoteIP
            completion.tlsVersion = result.tlsVersion
            completion.provider = provider
            // A hard bounce (the address or its domain is bad for good, see BounceClassifier) is never mailed again.
            if completion.status == .bounced, let reply = completion.reply {
                completion.suppress = BounceClassifier.classify(reply).type == .hard
            }
            logOutcome(completion, recipient: recipient)
            if completion.status != .queued {
                metrics?.deliveryFinished(result: completion.status.rawValue, replyCode: completion.reply?.code,
                                          duration: .milliseconds(durationMs))
            }
            return completion
        }
        let log = AttemptLog(id: attemptID, tenantID: group.recipients[0].tenantID, messageID: group.messageID,
                             startedAt: now, domain: group.domain, mx: result.mx, remoteIP: result.remoteIP,
                             tlsVersion: result.tlsVersion, durationMs: durationMs, transcript: result.transcript)
        return (completions, log)
    }

    /// What goes on the wire: the stored message signed with the sender domain's DKIM keys, signed once for
    /// the group, or per recipient when Relay hosts the unsubscribe link (each recipient's List-Unsubscribe
    /// carries its own token, and the signature covers it).
    private func outgoingBody(_ body: ByteBuffer, group: DeliveryGroup) async throws -> OutgoingBody {
        let senderDomain = group.mailFrom.lastIndex(of: "@").map { group.mailFrom[group.mailFrom.index(after: $0)...].lowercased() }
        let keys = if let signer, let senderDomain {
            try await signer.keys(tenantID: group.recipients[0].tenantID, senderDomain: senderDomain)
        } else {
            [DKIMSigningKey]()
        }
        let link = group.recipients.contains(where: \.hostedUnsubscribe) ? unsubscribeLink.withLock({ $0 }) : nil
        if keys.isEmpty && link == nil { return OutgoingBody(body) }
        let message = Array(buffer: body)
        guard let link else {
            let signed = ByteBuffer(bytes: try MessageSigner.sign(message, keys: keys))
            return OutgoingBody(signed)
        }
        let logger = self.logger
        return OutgoingBody { recipients in
            // With VERP each transaction has one recipient; a null-sender message shares one and gets no link.
            let personal = recipients.count == 1 ? Array(link.headerFields(recipientID: recipients[0].recipientID).utf8) + message : message
            do {
                return ByteBuffer(bytes: try MessageSigner.sign(personal, keys: keys))
            } catch {
                logger.error("DKIM signing failed; sending unsigned", metadata: ["error": "\(String(reflecting: error))"])
                return ByteBuffer(bytes: personal)
            }
        }
    }

    /// One structured log line per recipient outcome (JSON with RELAY_LOG_FORMAT=json), so that logs alone can
    /// answer "what happened to this message?".
    private func logOutcome(_ completion: CompletedDelivery, recipient: ClaimedRecipient) {
        var metadata: Logger.Metadata = [
            "message_id": "\(recipient.messageID.uuidString.lowercased())",
            "recipient": "\(recipient.email)",
            "status": "\(completion.status.rawValue)",
            "attempt": "\(recipient.attempts + (completion.countsAsAttempt ? 1 : 0))",
            "duration_ms": "\(completion.durationMs)",
        ]
        if let mx = completion.mx { metadata["mx"] = "\(mx)" }
        if let bounce = BounceClassifier.classify(outcome: completion.status.rawValue, reply: completion.reply,
                                                  failureReason: completion.reason) {
            metadata["bounce_type"] = "\(bounce.type.rawValue)"
            metadata["bounce_reason"] = "\(bounce.reason.rawValue)"
        }
        if let ip = completion.remoteIP { metadata["remote_ip"] = "\(ip)" }
        if let tls = completion.tlsVersion { metadata["tls"] = "\(tls)" }
        if let reply = completion.reply {
            metadata["reply_code"] = "\(reply.code)"
            if let enhanced = reply.enhanced { metadata["enhanced_code"] = "\(enhanced)" }
            metadata["reply"] = "\(reply.text)"
        } else if let detail = completion.detail {
            metadata["detail"] = "\(detail)"
        }
        logger.info("delivery outcome", metadata: metadata)
    }

    /// Applies the retry policy to an outcome: a deferral gets its next attempt time, or fails as `expired`
    /// when the lifetime has run out.
    static func completion(for recipient: ClaimedRecipient, outcome: DeliveryOutcome, mx: String?, durationMs: Int,
                           now: Date, policy: RetryPolicy) -> CompletedDelivery {
        switch outcome {
        case .deferred(let reply, let detail, let reason):
            let attempts = recipient.attempts + 1
            if let next = policy.nextAttempt(afterAttempts: attempts, now: now, expiresAt: recipient.expiresAt) {
                return CompletedDelivery(recipientID: recipient.recipientID, status: .deferred, countsAsAttempt: true,
                                         nextAttemptAt: next, reply: reply, detail: detail, mx: mx, reason: reason,
                                         durationMs: durationMs)
            }
            return CompletedDelivery(recipientID: recipient.recipientID, status: .failed, countsAsAttempt: true,
                                     nextAttemptAt: nil, reply: reply, detail: detail, mx: mx, reason: "expired",
                                     durationMs: durationMs)
        case .requeue(let reply):
            return CompletedDelivery(recipientID: recipient.recipientID, status: recipient.attempts == 0 ? .queued : .deferred,
                                     countsAsAttempt: false, nextAttemptAt: now, reply: reply, detail: nil, mx: mx,
                                     reason: nil, durationMs: durationMs)
        default:
            return CompletedDelivery(recipientID: recipient.recipientID, status: outcome.status, countsAsAttempt: true,
                                     nextAttemptAt: nil, reply: outcome.reply, detail: outcome.detail, mx: mx,
                                     reason: outcome.reason, durationMs: durationMs)
        }
    }

    private func listenForNotifications() async {
        while !Task.isCancelled {
            do {
                try await database.client.withConnection { connection in
                    try await connection.listen(on: RelayDatabase.queueChannel) { notifications in
                        for try await _ in notifications {
                            self.notifications.add(1, ordering: .relaxed)
                            self.wakeup.signal()
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("LISTEN connection lost; polling until it is back", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// The lease of a cluster-wide MX connection slot: at most 15 s (and at most `RELAY_LEASE_TIME`), so that the
    /// connections of a node that was killed stop counting against their hosts' limits soon.
    static func slotLease(_ configuration: WorkerConfiguration) -> Duration {
        min(configuration.leaseTime, .seconds(15))
    }

    private func renewConnectionSlotsPeriodically() async {
        guard let clusterLimiter = pool.clusterLimiter else { return }
        await every(Self.slotLease(configuration) / 3, failure: "renewing MX connection slots failed") {
            try await clusterLimiter.renew()
        }
    }

    private func renewLeasesPeriodically() async {
        await every(configuration.leaseTime / 3, failure: "renewing leases failed") { [self] in
            let ids = inFlight.withLock { Array($0) }
            try await database.renewLeases(owner: configuration.nodeID, recipientIDs: ids, lease: configuration.leaseTime)
        }
    }

    /// Runs `body` every `interval` until cancelled; a failure is logged and the next round tries again.
    private func every(_ interval: Duration, failure: Logger.Message, _ body: () async throws -> Void) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            do {
                try await body()
            } catch {
                logger.warning(failure, metadata: ["error": "\(String(reflecting: error))"])
            }
        }
    }
}
