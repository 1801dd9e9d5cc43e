import DNSClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import RelayAPI
import RelayCore
import RelayDomains
import RelayMetrics
import RelayQueue
import RelayStore
import SMTPClient
import SMTPServer
import RelayInbound
import RelaySubmission
import RelayWebhooks
import ServiceLifecycle
import Synchronization

/// The composition root, shared by `relay serve` and the tests: builds the PostgreSQL client, the HTTP API,
/// and the delivery worker into one Hummingbird application whose service group runs them in dependency
/// order (database first; graceful shutdown stops the HTTP server, then the worker, then the database).
/// Migrations run before the server accepts requests, and the worker starts claiming only after them.
public func buildApplication(
    configuration: RelayConfiguration,
    database location: DatabaseLocation,
    logger: Logger,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in },
    onSubmissionBound: @escaping @Sendable (SMTPSubmissionServer.Security, Int) -> Void = { _, _ in },
    onInboundBound: @escaping @Sendable (Int) -> Void = { _ in },
    drain: DrainSignal = DrainSignal()
) throws -> some ApplicationProtocol {
    let eventLoopGroup = MultiThreadedEventLoopGroup.singleton
    let metrics = RelayMetrics()
    let maximumConnections = max(20, configuration.workerConcurrency / 2)
    let client = PostgresClient(
        configuration: location.clientConfiguration(maximumConnections: maximumConnections),
        eventLoopGroup: eventLoopGroup, backgroundLogger: logger)
    let database = RelayDatabase(client: client, logger: logger)
    let schemaReady = ReadinessGate()

    var smtp = SMTPClientConfiguration(heloName: configuration.hostname)
    smtp.verifyCertificates = configuration.verifyCertificates
    smtp.plaintextFallbackOnTLSFailure = configuration.plaintextFallback
    var workerConfiguration = WorkerConfiguration(nodeID: UUID(), smtp: smtp)
    workerConfiguration.concurrency = configuration.workerConcurrency
    workerConfiguration.mxPort = configuration.mxPort
    workerConfiguration.retryPolicy = configuration.retryPolicy
    workerConfiguration.leaseTime = configuration.leaseTime
    workerConfiguration.maxConnectionsPerMX = configuration.mxMaxConnections
    workerConfiguration.mxThrottleTime = configuration.mxThrottleTime
    workerConfiguration.connectionIdleTimeout = configuration.mxIdleTimeout
    workerConfiguration.bounceDomain = configuration.bounceDomain
    workerConfiguration.softBounces = configuration.softBouncePolicy
    workerConfiguration.publicURL = configuration.publicURL ?? "https://\(configuration.hostname)"
    workerConfiguration.smarthost = configuration.smarthost
    workerConfiguration.smarthostCAFile = configuration.smarthostCAFile
    workerConfiguration.routeCacheTime = configuration.routeCacheTime
    let resolver = DNSResolver(servers: configuration.dnsServers, eventLoopGroup: eventLoopGroup, logger: logger)
    if configuration.secretKey == nil {
        logger.warning("RELAY_SECRET_KEY is not set: DKIM private keys are sealed with a key kept in the database, which does not protect them if the database leaks; set RELAY_SECRET_KEY (32 bytes, base64) in production")
    }
    let domains = DomainManager(database: database, settings: configuration.domainSettings, secretKey: configuration.secretKey,
                                lookup: ResolverLookup(servers: configuration.dnsServers), logger: logger)
    let signer = domains.signer
    let worker = DeliveryWorker(database: database, resolver: resolver, configuration: workerConfiguration,
                                eventLoopGroup: eventLoopGroup, logger: logger, metrics: metrics, signer: signer,
                                secrets: { try await domains.secretKeyring() })
    let inboundSessions = SessionCounter()

    var apiDependencies = APIDependencies(
        database: database, hostname: configuration.hostname, maxMessageBytes: configuration.maxMessageBytes,
        messageLifetime: configuration.retryPolicy.maximumLifetime, adminToken: configuration.adminToken,
        domains: domains, publicURL: configuration.publicURL,
        isReady: { schemaReady.isOpen },
        onEnqueued: {
            metrics.messageAccepted(source: "api")
            worker.wake()
        },
        metrics: metrics,
        refreshMetrics: {
            await refreshGauges(metrics: metrics, database: database, isReady: schemaReady.isOpen,
                                maximumConnections: maximumConnections,
                                outboundSessions: configuration.roles.contains(.worker) ? worker.openConnections : 0,
                                inboundSessions: inboundSessions.count)
        }, reputation: configuration.reputation)
    apiDependencies.webhookTargetCheck = WebhookTargetCheck(allowPrivate: configuration.webhookAllowPrivate)
    apiDependencies.requireVerifiedDomains = configuration.requiresVerifiedDomains
    apiDependencies.tenantRateLimit = configuration.tenantRateLimit
    apiDependencies.mxMaxConnections = configuration.mxMaxConnections
    apiDependencies.isDraining = { drain.isDraining }
    let router = buildRouter(apiDependencies, serveAPI: configuration.roles.contains(.api))

    // The HTTP server starts at once (so /healthz answers and /readyz says why it is not ready); the schema
    // service applies migrations, retrying until the database is reachable, then opens the gate for the API,
    // the SMTP listeners and the worker.
    let schema = SchemaService(database: database, gate: schemaReady, logger: logger)
    var services: [any Service] = [client, schema]
    services.append(GatedService(gate: schemaReady, service: LogMaintenanceService(
        database: database, retention: configuration.logRetention, logger: logger)))
    services.append(GatedService(gate: schemaReady, service: ReputationGuardService(
        database: database, thresholds: configuration.reputation, logger: logger)))
    let needsTLS = (configuration.roles.contains(.smtp)
                    && (configuration.submissionAddress != nil || configuration.submissionsAddress != nil))
        || (configuration.roles.contains(.inbound) && configuration.inboundAddress != nil)
    let tls = needsTLS ? try smtpTLSMaterial(configuration: configuration, logger: logger) : nil
    if let tls { services.append(TLSReloadService(materials: [tls], logger: logger)) }
    if configuration.roles.contains(.inbound), let address = configuration.inboundAddress, let tls {
        let listener = InboundListenerService(
            configuration: configuration, address: address, database: database, tls: tls, eventLoopGroup: eventLoopGroup,
            logger: logger, sessions: inboundSessions, onBound: onInboundBound)
        services.append(GatedService(gate: schemaReady, service: listener))
    }
    if configuration.roles.contains(.smtp), let tls {
        services += try submissionServices(configuration: configuration, database: database, gate: schemaReady, tls: tls,
                                           eventLoopGroup: eventLoopGroup, logger: logger,
                                           onEnqueued: {
                                               metrics.messageAccepted(source: "smtp")
                                               worker.wake()
                                           },
                                           sessions: inboundSessions, onBound: onSubmissionBound)
    }
    if configuration.roles.contains(.worker) {
        services.append(GatedService(gate: schemaReady, service: worker))
        services.append(GatedService(gate: schemaReady, service: DomainRecheckService(manager: domains, logger: logger)))
        var webhooks = WebhookDispatcherConfiguration()
        webhooks.allowPrivateAddresses = configuration.webhookAllowPrivate
        webhooks.leaseTime = max(configuration.leaseTime, .seconds(30))
        webhooks.historyRetention = configuration.logRetention
        services.append(GatedService(gate: schemaReady, service: WebhookDispatcher(
            database: database, configuration: webhooks, logger: logger, metrics: metrics)))
    }
    // Last, so that a shutdown marks the node draining first (services are told in reverse order).
    services.append(GatedService(gate: schemaReady, service: NodeRegistryService(
        database: database, nodeID: workerConfiguration.nodeID, hostname: configuration.hostname,
        roles: configuration.roles.map(\.rawValue).sorted(), version: RelayVersion.current, logger: logger)))
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: "relay"),
        services: services,
        onServerRunning: onServerRunning,
        eventLoopGroupProvider: .shared(eventLoopGroup),
        logger: logger)
}

/// The SMTP submission listeners (587 STARTTLS, 465 implicit TLS) sharing one certificate, and the SIGHUP
/// reload of that certificate.
func submissionServices(configuration: RelayConfiguration, database: RelayDatabase, gate: ReadinessGate, tls: TLSMaterial,
                        eventLoopGroup: any EventLoopGroup, logger: Logger, onEnqueued: @escaping @Sendable () -> Void,
                        sessions: SessionCounter,
                        onBound: @escaping @Sendable (SMTPSubmissionServer.Security, Int) -> Void) throws -> [any Service] {
    let listeners = [(configuration.submissionAddress, SMTPSubmissionServer.Security.startTLS),
                     (configuration.submissionsAddress, .implicitTLS)]
        .compactMap { address, security in address.map { ($0, security) } }
    if listeners.isEmpty { return [] }
    var settings = RelaySubmissionBackend.Settings(hostname: configuration.hostname,
                                                   messageLifetime: configuration.retryPolicy.maximumLifetime)
    settings.authFailureLimit = configuration.smtpAuthFailures
    settings.requireVerifiedDomains = configuration.requiresVerifiedDomains
    settings.tenantRateLimit = configuration.tenantRateLimit
    let backend = RelaySubmissionBackend(database: database, settings: settings, logger: logger, onEnqueued: onEnqueued)
    var services: [any Service] = []
    for (address, security) in listeners {
        var sessionConfiguration = SMTPServerConfiguration(
            hostname: configuration.hostname, maximumMessageSize: configuration.maxMessageBytes,
            maximumRecipients: configuration.smtpMaxRecipients, offersSTARTTLS: security == .startTLS)
        sessionConfiguration.trustedNetworks = configuration.submissionTrustedNetworks
        let server = SMTPSubmissionServer(
            host: address.host, port: address.port, security: security, configuration: sessionConfiguration, tls: tls,
            backend: backend, maximumSessions: configuration.smtpMaxSessions, commandTimeout: configuration.smtpCommandTimeout,
            proxyProtocol: configuration.proxyProtocol, eventLoopGroup: eventLoopGroup, logger: logger, onBound: { port in onBound(security, port) })
        sessions.add(server)
        let listener: any Service = configuration.submissionAddressesExplicit
            ? server
            : OptionalListener(listener: server, name: "\(address.host):\(address.port)",
                               variable: "RELAY_SUBMISSION_ADDR / RELAY_SUBMISSIONS_ADDR", logger: logger)
        services.append(GatedService(gate: gate, service: listener))
    }
    return services
}

/// The certificate of the SMTP listeners (submission and inbound), reloaded on SIGHUP.
func smtpTLSMaterial(configuration: RelayConfiguration, logger: Logger) throws -> TLSMaterial {
    let dataDirectory = URL(fileURLWithPath: configuration.dataDirectory).standardizedFileURL.path
    return try TLSMaterial(certificatePath: configuration.tlsCertificatePath, keyPath: configuration.tlsKeyPath,
                           hostname: configuration.hostname, generatedDirectory: dataDirectory + "/tls", logger: logger)
}

/// The inbound listener (`RELAY_INBOUND_ADDR`): an MX for bounce addresses only. It needs the VERP key, so it is
/// built when it starts (after the migrations), not with the application.
struct InboundListenerService: Service {
    let configuration: RelayConfiguration
    let address: RelayConfiguration.HostPort
    let database: RelayDatabase
    let tls: TLSMaterial
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    let sessions: SessionCounter
    let onBound: @Sendable (Int) -> Void

    func run() async throws {
        let key = try await cancelWhenGracefulShutdown { try await database.secretRetrying(named: "verp") }
        let returnPath = ReturnPath(key: key, bounceDomain: configuration.bounceDomain)
        let backend = InboundBackend(database: database, returnPath: returnPath, softBounces: configuration.softBouncePolicy,
                                     logger: logger)
        var sessionConfiguration = SMTPServerConfiguration(
            hostname: configuration.hostname, maximumMessageSize: configuration.maxMessageBytes,
            maximumRecipients: 100, offersSTARTTLS: true)
        sessionConfiguration.mode = .inbound(acceptsRecipient: backend.acceptsRecipient)
        let server = SMTPSubmissionServer(
            host: address.host, port: address.port, security: .startTLS, configuration: sessionConfiguration, tls: tls,
            backend: backend, maximumSessions: configuration.smtpMaxSessions, commandTimeout: configuration.smtpCommandTimeout,
            proxyProtocol: configuration.proxyProtocol, eventLoopGroup: eventLoopGroup, logger: logger, onBound: onBound)
        sessions.add(server)
        if configuration.inboundAddressExplicit {
            try await server.run()
        } else {
            try await OptionalListener(listener: server, name: "\(address.host):\(address.port)", variable: "RELAY_INBOUND_ADDR",
                                       logger: logger).run()
        }
    }
}

/// A listener on a default address: if it cannot bind (port taken, or no privilege for a port below 1024), Relay
/// logs why and keeps running without it instead of exiting; an explicitly configured address is not wrapped.
struct OptionalListener: Service {
    let listener: SMTPSubmissionServer
    let name: String
    let variable: String
    let logger: Logger

    func run() async throws {
        do {
            try await listener.run()
        } catch let error as SMTPSubmissionServerError {
            logger.error("SMTP listener on \(name) is not running; set \(variable) (or off)",
                         metadata: ["error": "\(error)"])
            try? await gracefulShutdown()
        }
    }
}

/// Applies migrations once the database is reachable, opens the readiness gate, and then idles until shutdown.
struct SchemaService: Service {
    let database: RelayDatabase
    let gate: ReadinessGate
    let logger: Logger

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            try await migrateWhenReachable(database: database, logger: logger)
            gate.open()
            if try await database.tenantCount() == 0 {
                logger.notice("""
                    No tenants yet. Create one with `relay tenant create NAME` \
                    or POST /admin/tenants with Authorization: Bearer $RELAY_ADMIN_TOKEN.
                    """)
            }
        }
        try? await gracefulShutdown()
    }
}

/// Applies migrations, retrying while the database is not reachable yet (a node may start before its database).
func migrateWhenReachable(database: RelayDatabase, logger: Logger) async throws {
    var delay: Duration = .milliseconds(200)
    while true {
        do {
            let applied = try await Migrator(client: database.client, logger: logger).migrate()
            if !applied.isEmpty { logger.info("migrations applied", metadata: ["versions": "\(applied)"]) }
            return
        } catch where error.isDatabaseUnavailable {
            logger.warning("database not reachable yet; retrying", metadata: ["error": "\(String(reflecting: error))"])
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }
}

/// A one-shot gate: `wait()` returns once `open()` has been called.
final class ReadinessGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    var isOpen: Bool { state.withLock { $0.open } }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let isOpen = state.withLock { state -> Bool in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if isOpen { continuation.resume() }
        }
    }
}

/// Starts a service only after a gate opens (the worker waits for migrations); a graceful shutdown before
/// then simply returns.
struct GatedService: Service {
    let gate: ReadinessGate
    let service: any Service

    func run() async throws {
        let opened = await withGracefulShutdownHandler {
            await gate.wait()
            return true
        } onGracefulShutdown: {
            gate.open()
        }
        if opened, !(Task.isCancelled) {
            try await service.run()
        }
    }
}

/// The submission listeners of this node, to count their open sessions for `/metrics`.
final class SessionCounter: Sendable {
    private let servers = Mutex<[SMTPSubmissionServer]>([])

    func add(_ server: SMTPSubmissionServer) {
        servers.withLock { $0.append(server) }
    }

    var count: Int { servers.withLock { $0.reduce(0) { $0 + $1.sessionCount } } }
}

/// Sets the gauges that describe shared or live state, just before `/metrics` renders: the queue by state (one
/// query, bounded by the request deadline; left as it was when the database does not answer), open SMTP
/// sessions, and store operations in flight against the pool size.
func refreshGauges(metrics: RelayMetrics, database: RelayDatabase, isReady: Bool, maximumConnections: Int,
                   outboundSessions: Int, inboundSessions: Int) async {
    metrics.set("relay_smtp_sessions_active", [("direction", "outbound")], to: Double(outboundSessions))
    metrics.set("relay_smtp_sessions_active", [("direction", "inbound")], to: Double(inboundSessions))
    metrics.set("relay_db_connections", [("state", "in_use")], to: Double(min(database.operationsInFlight, maximumConnections)))
    metrics.set("relay_db_connections", [("state", "max")], to: Double(maximumConnections))
    guard isReady, let depth = try? await database.queueDepthByState() else { return }
    metrics.set("relay_queue_depth", [("state", "due")], to: Double(depth.due))
    metrics.set("relay_queue_depth", [("state", "scheduled")], to: Double(depth.scheduled))
    metrics.set("relay_queue_depth", [("state", "in_flight")], to: Double(depth.inFlight))
    metrics.set("relay_queue_oldest_due_age_seconds", to: depth.oldestDueAge ?? 0)
}
