import Foundation
import Logging
import RelayCore
import RelayDomains
import RelayStore
import SMTPClient
import Synchronization

/// Which recipient domains go to a smarthost, as this node knows it: the database routes (`POST /admin/routes`),
/// cached for `cacheTime` (default 5 s) so that an admin change reaches every node without a restart, and the
/// `RELAY_SMARTHOST` route for domains no database route matches.
///
/// Precedence for a domain (``SMTPRoute/select(for:among:fallback:)``): an exact database route, then the longest
/// matching `*.suffix`, then `*`, then `RELAY_SMARTHOST`, else MX delivery. When the routes cannot be read, the last
/// good copy is used; with none, delivery waits (a route may exist, and the MX hosts may be unreachable on
/// purpose), so the group is deferred rather than sent to an MX.
final class RouteTable: Sendable {
    /// A database route, opened; or why it cannot be used (its password does not open).
    struct Entry: Sendable {
        var route: SMTPRoute
        var problem: String?
    }

    /// What to do with a domain.
    enum Lookup: Sendable, Equatable {
        /// Deliver to the domain's MX hosts.
        case mx
        /// Deliver to this smarthost.
        case route(SMTPRoute)
        /// A route applies (or may) but cannot be used now; defer with this detail.
        case unavailable(String)
    }

    private struct Snapshot {
        var entries: [Entry]
        var loadedAt: ContinuousClock.Instant
    }

    private struct State {
        var snapshot: Snapshot?
        /// The load in progress, shared by every lookup that finds the copy stale.
        var loading: Task<[Entry], any Error>?
    }

    private let load: (@Sendable () async throws -> [Entry])?
    private let fallback: SMTPRoute?
    private let cacheTime: Duration
    private let logger: Logger
    private let state = Mutex(State())

    /// A table of `load`'s routes (nil: no database routes) over `fallback` (`RELAY_SMARTHOST`).
    init(fallback: SMTPRoute?, cacheTime: Duration = .seconds(5), logger: Logger,
         load: (@Sendable () async throws -> [Entry])? = nil) {
        self.fallback = fallback
        self.cacheTime = cacheTime
        self.logger = logger
        self.load = load
    }

    /// A table reading `smtp_routes`, opening passwords with `secrets`.
    static func database(_ database: RelayDatabase, secrets: @escaping @Sendable () async throws -> SecretKeyring,
                         fallback: SMTPRoute?, cacheTime: Duration, logger: Logger) -> RouteTable {
        RouteTable(fallback: fallback, cacheTime: cacheTime, logger: logger) {
            let stored = try await database.routes()
            if stored.isEmpty { return [] }
            let keyring = try await secrets()
            return stored.compactMap { Self.entry(stored: $0, keyring: keyring) }
        }
    }

    /// A stored route as the worker uses it, or with the reason it cannot be used; nil for a row whose pattern
    /// this version cannot read (the API never stores one).
    static func entry(stored: StoredSMTPRoute, keyring: SecretKeyring) -> Entry? {
        guard let pattern = RouteDomainPattern(stored.domainPattern) else { return nil }
        var route = SMTPRoute(id: stored.id.uuidString.lowercased(), pattern: pattern, host: stored.host, port: stored.port,
                              username: stored.username, tls: RouteTLS(rawValue: stored.tls) ?? .startTLS,
                              verifyCertificate: stored.verifyCertificate)
        do {
            route.password = try keyring.routePassword(of: stored)
            return Entry(route: route, problem: nil)
        } catch {
            return Entry(route: route, problem: "the route for \(stored.domainPattern) cannot be used: \(error)")
        }
    }

    /// The route for `domain` (refreshing the database copy when it is older than the cache time).
    func lookup(_ domain: String) async -> Lookup {
        let entries: [Entry]
        do {
            entries = try await current()
        } catch {
            return .unavailable("the smarthost routes could not be read: \(error)")
        }
        let opened = entries.map(\.route)
        guard let route = SMTPRoute.select(for: domain, among: opened, fallback: fallback) else { return .mx }
        if let problem = entries.first(where: { $0.route == route })?.problem { return .unavailable(problem) }
        return .route(route)
    }

    private func current() async throws -> [Entry] {
        guard let load else { return [] }
        enum Step {
            case fresh([Entry])
            case wait(Task<[Entry], any Error>)
        }
        let now = ContinuousClock.now
        let step = state.withLock { state -> Step in
            if let snapshot = state.snapshot, now - snapshot.loadedAt < cacheTime { return .fresh(snapshot.entries) }
            if let loading = state.loading { return .wait(loading) }
            let task = Task { try await load() }
            state.loading = task
            return .wait(task)
        }
        let task: Task<[Entry], any Error>
        switch step {
        case .fresh(let entries): return entries
        case .wait(let loading): task = loading
        }
        do {
            let entries = try await task.value
            state.withLock { state in
                state.snapshot = Snapshot(entries: entries, loadedAt: .now)
                state.loading = nil
            }
            return entries
        } catch {
            let stale = state.withLock { state -> [Entry]? in
                state.loading = nil
                return state.snapshot?.entries
            }
            guard let stale else { throw error }
            logger.warning("reading the smarthost routes failed; using the last copy", metadata: ["error": "\(error)"])
            return stale
        }
    }
}

extension SMTPRoute {
    /// The client settings for this smarthost: `base` (EHLO name, timeouts) with the route's TLS, certificate check
    /// (trusting `trustRootsFile` too, `RELAY_SMARTHOST_CA_FILE`) and credentials; never a plaintext fallback.
    func clientConfiguration(base: SMTPClientConfiguration, trustRootsFile: String?) -> SMTPClientConfiguration {
        var configuration = base
        switch tls {
        case .startTLS: configuration.tlsMode = .startTLS
        case .implicit: configuration.tlsMode = .implicit
        case .none: configuration.tlsMode = .none
        }
        configuration.verifyCertificates = verifyCertificate
        configuration.additionalTrustRootsFile = trustRootsFile
        configuration.plaintextFallbackOnTLSFailure = false
        if let username, let password {
            configuration.credentials = SMTPCredentials(username: username, password: password)
        } else {
            configuration.credentials = nil
        }
        return configuration
    }
}

/// Where a delivery connects: MX hosts on `RELAY_MX_PORT` with the MX client settings, or a smarthost on its
/// port with its own (TLS mode, certificate check, credentials).
struct DeliveryDestination: Sendable {
    var port: Int
    var smtp: SMTPClientConfiguration
    /// Part of the connection pool's key: "" for MX hosts, the route's id for a smarthost.
    var route: String

    static func mx(_ configuration: WorkerConfiguration) -> DeliveryDestination {
        DeliveryDestination(port: configuration.mxPort, smtp: configuration.smtp, route: "")
    }

    static func smarthost(_ route: SMTPRoute, configuration: WorkerConfiguration) -> DeliveryDestination {
        DeliveryDestination(port: route.port,
                            smtp: route.clientConfiguration(base: configuration.smtp, trustRootsFile: configuration.smarthostCAFile),
                            route: route.id)
    }
}

extension SMTPClientError {
    /// The reply to record against the recipients of a session that could not start. A refused login or missing
    /// TLS is about Relay's own smarthost settings, not the recipients: then none, so that the error (which
    /// quotes the reply) is what `last_error` shows.
    var recipientReply: DeliveryReply? {
        switch code {
        case .authenticationFailed, .authenticationUnavailable, .tlsUnavailable: nil
        default: reply.map(DeliveryReply.init)
        }
    }
}
