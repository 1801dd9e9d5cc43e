import Foundation
import RelayCore
import RelayStore
import SMTPClient

/// Tunables of the delivery worker, each with its default (the configuration table in README.md names the
/// environment variables that set them).
public struct WorkerConfiguration: Sendable {
    /// This node's id; stamped on the queue rows it leases.
    public var nodeID: UUID
    /// Simultaneous SMTP transactions on this node (`RELAY_WORKER_CONCURRENCY`, default 64).
    public var concurrency: Int = 64
    /// Most recipients claimed by one claim statement (default 256).
    public var claimBatchSize: Int = 256
    /// How long a claim is held before another node may take the work over (`RELAY_LEASE_TIME`, default 60s).
    /// Renewed every third of it while the delivery runs.
    public var leaseTime: Duration = .seconds(60)
    /// Fallback poll interval when no NOTIFY arrives (default 1s).
    public var pollInterval: Duration = .seconds(1)
    /// Most outcomes written by one statement (default 500).
    public var completionBatchSize: Int = 500
    /// How long outcomes may wait to be batched with others (default 10ms).
    public var completionFlushInterval: Duration = .milliseconds(10)
    /// TCP port of MX hosts (`RELAY_MX_PORT`, default 25).
    public var mxPort: Int = 25
    /// `RELAY_BOUNCE_DOMAIN`: the domain of VERP envelope senders; nil → `bounces.<sender domain>`.
    public var bounceDomain: String?
    /// `RELAY_PUBLIC_URL`: the base of Relay-hosted unsubscribe links.
    public var publicURL: String = "https://localhost"
    /// `RELAY_SOFT_BOUNCE_LIMIT` / `RELAY_SOFT_BOUNCE_SUPPRESSION`: when soft bounces suppress an address.
    public var softBounces = SoftBouncePolicy()
    /// Retry schedule and lifetime.
    public var retryPolicy: RetryPolicy = RetryPolicy()
    /// SMTP client settings (EHLO name from `RELAY_HOSTNAME`, timeouts, TLS policy).
    public var smtp: SMTPClientConfiguration
    /// Most simultaneous connections to one MX host across the whole cluster (`RELAY_MX_MAX_CONNECTIONS`,
    /// default 10); also this node's bound on simultaneous deliveries to one host.
    public var maxConnectionsPerMX: Int = 10
    /// How long an MX host that answered 421 or a 4.7.x rate/connection complaint keeps its lowered limit
    /// (`RELAY_MX_THROTTLE_TIME`, default 5m).
    public var mxThrottleTime: Duration = .seconds(300)
    /// How long a delivery waits for one of its host's cluster-wide connection slots before it is deferred
    /// (default 60s).
    public var mxSlotWait: Duration = .seconds(60)
    /// How long an idle connection is kept for reuse (default 5s).
    public var connectionIdleTimeout: Duration = .seconds(5)
    /// Most messages sent over one connection before it is closed (default 100).
    public var maxMessagesPerConnection: Int = 100
    /// `RELAY_SMARTHOST` and its `RELAY_SMARTHOST_*` settings: the route for domains no database route matches
    /// (nil: those go to their MX hosts).
    public var smarthost: SMTPRoute?
    /// `RELAY_SMARTHOST_CA_FILE`: extra PEM trust roots for verifying smarthost certificates (every route's).
    public var smarthostCAFile: String?
    /// How long a node uses its copy of the database routes before reading them again (default 5s).
    public var routeCacheTime: Duration = .seconds(5)

    /// Creates a configuration with the defaults.
    public init(nodeID: UUID, smtp: SMTPClientConfiguration) {
        self.nodeID = nodeID
        self.smtp = smtp
    }
}
