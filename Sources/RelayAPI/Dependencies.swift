import Foundation
import RelayCore
import RelayDomains
import RelayMetrics
import RelayStore
import RelayWebhooks

/// What the HTTP API needs from the rest of the application.
public struct APIDependencies: Sendable {
    /// The store.
    public var database: RelayDatabase
    /// `RELAY_HOSTNAME`: the Message-ID domain.
    public var hostname: String
    /// `RELAY_MAX_MESSAGE_BYTES`: largest composed message accepted.
    public var maxMessageBytes: Int
    /// `RELAY_MAX_QUEUE_LIFETIME`: stored with each message as its expiry.
    public var messageLifetime: Duration
    /// `RELAY_ADMIN_TOKEN`; nil disables `/admin` (404).
    public var adminToken: String?
    /// Whether the schema is migrated; until then `/v1` and `/admin` answer 503 `not_ready`.
    public var isReady: @Sendable () -> Bool
    /// True while the node drains (graceful shutdown started): `/readyz` answers 503 `draining`.
    public var isDraining: @Sendable () -> Bool = { false }
    /// Called after a message is committed (wakes this node's worker without waiting for NOTIFY).
    public var onEnqueued: @Sendable () -> Void
    /// The application's metrics, served at `GET /metrics`.
    public var metrics: RelayMetrics
    /// Brings scrape-time gauges up to date before `/metrics` renders.
    public var refreshMetrics: @Sendable () async -> Void
    /// The reputation guard's thresholds, for the `reputation` section of `/v1/stats`.
    public var reputation = ReputationThresholds()
    /// Refuses webhook URLs on private addresses (off with `RELAY_WEBHOOK_ALLOW_PRIVATE`).
    public var webhookTargetCheck = WebhookTargetCheck(allowPrivate: false)
    /// Sender domains: keys, DNS records, verification, rotation.
    public var domains: DomainManager
    /// `RELAY_REQUIRE_VERIFIED_DOMAINS`: refuse mail from domains whose DKIM record has not verified.
    public var requireVerifiedDomains = true
    /// `RELAY_TENANT_RATE_LIMIT`: messages each tenant may send per minute, cluster-wide (nil: no limit).
    public var tenantRateLimit: Int?
    /// `RELAY_MX_MAX_CONNECTIONS`: the connection limit of an MX host that is not throttled (for `/admin/mx-hosts`).
    public var mxMaxConnections: Int = 10
    /// `RELAY_PUBLIC_URL`: the base of Relay-hosted unsubscribe links.
    public var publicURL: String

    /// Creates the dependencies.
    public init(database: RelayDatabase, hostname: String, maxMessageBytes: Int, messageLifetime: Duration,
                adminToken: String?, domains: DomainManager, publicURL: String? = nil, isReady: @escaping @Sendable () -> Bool = { true },
                onEnqueued: @escaping @Sendable () -> Void = {}, metrics: RelayMetrics = RelayMetrics(),
                refreshMetrics: @escaping @Sendable () async -> Void = {}, reputation: ReputationThresholds = ReputationThresholds()) {
        self.reputation = reputation
        self.domains = domains
        self.publicURL = publicURL ?? "https://\(hostname)"
        self.metrics = metrics
        self.refreshMetrics = refreshMetrics
        self.isReady = isReady
        self.database = database
        self.hostname = hostname
        self.maxMessageBytes = maxMessageBytes
        self.messageLifetime = messageLifetime
        self.adminToken = adminToken
        self.onEnqueued = onEnqueued
    }
}
