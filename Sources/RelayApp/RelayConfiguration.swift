import DNSClient
import Foundation
import Logging
import RelayCore
import RelayDomains
import RelayStore
import SMTPServer

/// Every setting of `relay serve`, each from an environment variable (or the matching flag), with its default.
/// README.md's configuration table lists the same names; keep both in step.
public struct RelayConfiguration: Sendable {
    /// `DATABASE_URL`: postgres://user:pass@host:port/db. Unset → Relay manages a local PostgreSQL in the data directory.
    public var databaseURL: String?
    /// `RELAY_DATA_DIR` (default `./.relay`): the managed PostgreSQL and other local state.
    public var dataDirectory: String = "./.relay"
    /// `RELAY_HTTP_ADDR` (default `0.0.0.0:8080`).
    public var httpHost: String = "0.0.0.0"
    /// Port part of `RELAY_HTTP_ADDR`.
    public var httpPort: Int = 8080
    /// `RELAY_HOSTNAME`: EHLO name and Message-ID domain (default: the machine's host name).
    public var hostname: String = ProcessInfo.processInfo.hostName
    /// `RELAY_ADMIN_TOKEN`: enables `/admin` (unset → /admin answers 404).
    public var adminToken: String?
    /// `RELAY_DNS_SERVERS`: comma-separated `ip` or `ip:port` (default: the nameservers of /etc/resolv.conf).
    public var dnsServers: [DNSServerAddress] = DNSServerAddress.systemDefault()
    /// `RELAY_MX_PORT` (default 25): TCP port used to reach MX hosts.
    public var mxPort: Int = 25
    /// `RELAY_RETRY_INITIAL` (5m), `RELAY_RETRY_MAX` (1h), `RELAY_MAX_QUEUE_LIFETIME` (5d).
    public var retryPolicy = RetryPolicy()
    /// `RELAY_WORKER_CONCURRENCY` (default 64): simultaneous deliveries on this node.
    public var workerConcurrency: Int = 64
    /// `RELAY_MAX_MESSAGE_BYTES` (default 26214400): largest accepted message.
    public var maxMessageBytes: Int = 26_214_400
    /// `RELAY_LEASE_TIME` (default 60s): how long a claim is held before another node may take the work over.
    public var leaseTime: Duration = .seconds(60)
    /// `RELAY_DRAIN_DELAY` (default 5s; 0 in the managed local mode): after SIGTERM, how long `/readyz` answers
    /// 503 `draining` before the listeners close, so load balancers take the node out first. nil: the default.
    public var drainDelay: Duration?
    /// `RELAY_MX_MAX_CONNECTIONS` (default 10): concurrent connections to one MX host across the whole cluster.
    public var mxMaxConnections: Int = 10
    /// How long an idle outbound connection is kept for reuse (default 5s; no environment variable: tests set it).
    public var mxIdleTimeout: Duration = .seconds(5)
    /// `RELAY_MX_THROTTLE_TIME` (default 5m): how long a host that asked Relay to slow down keeps a lower limit.
    public var mxThrottleTime: Duration = .seconds(300)
    /// `RELAY_SMTP_VERIFY_CERTIFICATES` (default false): verify MX certificates when using STARTTLS.
    public var verifyCertificates = false
    /// `RELAY_SMTP_PLAINTEXT_FALLBACK` (default false): after a failed STARTTLS handshake, retry that MX without TLS.
    public var plaintextFallback = false
    /// `RELAY_LOG_LEVEL` (default `info`): trace, debug, info, notice, warning, error, critical.
    public var logLevel: Logger.Level = .info
    /// `RELAY_ROLES` / `--roles` (default all): which parts this node runs.
    public var roles: Set<Role> = Set(Role.allCases)
    /// `RELAY_SUBMISSION_ADDR` (default `0.0.0.0:587`, `off` disables): SMTP submission with STARTTLS.
    public var submissionAddress: HostPort? = HostPort(host: "0.0.0.0", port: 587)
    /// `RELAY_SUBMISSIONS_ADDR` (default `0.0.0.0:465`, `off` disables): SMTP submission over implicit TLS (RFC 8314).
    public var submissionsAddress: HostPort? = HostPort(host: "0.0.0.0", port: 465)
    /// Whether the submission addresses were set explicitly (then a listener that cannot bind stops Relay;
    /// the defaults 587/465 only log, so that an unprivileged `relay serve` or a second node on one machine
    /// still comes up).
    public var submissionAddressesExplicit = false
    /// `RELAY_TLS_CERT` / `RELAY_TLS_KEY`: PEM certificate chain and key; unset → a self-signed certificate for
    /// `RELAY_HOSTNAME` generated into `<RELAY_DATA_DIR>/tls`. Reloaded on SIGHUP.
    public var tlsCertificatePath: String?
    /// See `tlsCertificatePath`.
    public var tlsKeyPath: String?
    /// `RELAY_SMTP_AUTH_FAILURES` (default 5): failed AUTH attempts per IP within 10 minutes before 421 4.7.0.
    public var smtpAuthFailures: Int = 5
    /// `RELAY_SMTP_MAX_RECIPIENTS` (default 1000, never below 100): RCPTs per message; extra ones get 452 4.5.3.
    public var smtpMaxRecipients: Int = 1000
    /// `RELAY_SMTP_MAX_SESSIONS` (default 1000): concurrent SMTP sessions per listener; more get 421.
    public var smtpMaxSessions: Int = 1000
    /// `RELAY_SMTP_COMMAND_TIMEOUT` (default 5m): idle time allowed between SMTP commands.
    public var smtpCommandTimeout: Duration = .seconds(300)
    /// `RELAY_LOG_RETENTION` (default 30d, at least 1d): events and attempt transcripts older than this are
    /// dropped, a day partition at a time.
    public var logRetention: Duration = .seconds(30 * 86_400)
    /// `RELAY_LOG_FORMAT` (default `text`): `text` lines or `json` (one JSON object per line).
    public var logFormat: LogFormat = .text
    /// `RELAY_WEBHOOK_ALLOW_PRIVATE` (default false): let webhook URLs point at private, loopback, link-local and
    /// other non-public addresses (the SSRF guard off), for tests and deployments whose receivers are internal.
    public var webhookAllowPrivate = false

    /// `RELAY_BOUNCE_DOMAIN`: the domain of VERP envelope senders (`bounce+<token>@<domain>`); unset → the
    /// `bounces.` subdomain of each message's sender domain. Its MX must point at the inbound listener.
    public var bounceDomain: String?
    /// `RELAY_INBOUND_ADDR` (default `0.0.0.0:25`, `off` disables): the listener for bounces and complaints.
    public var inboundAddress: HostPort? = HostPort(host: "0.0.0.0", port: 25)
    /// Whether `RELAY_INBOUND_ADDR` was set (then failing to bind stops Relay; the default only logs).
    public var inboundAddressExplicit = false
    /// `RELAY_SOFT_BOUNCE_LIMIT` (default 3): soft bounces of one address within a day that suppress it for
    /// `RELAY_SOFT_BOUNCE_SUPPRESSION` (default 24h).
    public var softBounceLimit: Int = 3
    /// See `softBounceLimit`.
    public var softBounceSuppression: Duration = .seconds(86_400)
    /// The sender-domain settings.
    public var domainSettings: DomainSettings {
        var settings = DomainSettings(hostname: hostname, bounceDomain: bounceDomain, spfInclude: spfInclude)
        settings.rotationGrace = dkimRotationGrace
        settings.recheckInterval = domainRecheckInterval
        return settings
    }
    /// Both, as the store applies them.
    public var softBouncePolicy: SoftBouncePolicy {
        var policy = SoftBouncePolicy()
        policy.limit = softBounceLimit
        policy.suppression = softBounceSuppression
        return policy
    }
    /// The reputation guard: `RELAY_REPUTATION_WINDOW` (24h), `RELAY_REPUTATION_MIN_SENDS` (200),
    /// `RELAY_REPUTATION_BOUNCE_RATE` (0.10), `RELAY_REPUTATION_COMPLAINT_RATE` (0.005); `RELAY_REPUTATION_GUARD=false`
    /// turns it off.
    public var reputation = ReputationThresholds()

    /// `RELAY_SECRET_KEY`: 32 bytes in base64 that seal DKIM private keys (AES-GCM). Unset with the managed
    /// PostgreSQL → generated into `<RELAY_DATA_DIR>/secret.key`; unset with DATABASE_URL → a key kept in the
    /// database (a warning is logged: it does not protect the keys against a database leak).
    public var secretKey: String?
    /// `RELAY_REQUIRE_VERIFIED_DOMAINS` (default true; false in the managed local mode unless set): refuse mail
    /// from a domain whose DKIM record has not verified (403 `domain_not_verified`, SMTP 550 5.7.1).
    public var requireVerifiedDomains: Bool?
    /// The effective `requireVerifiedDomains`: on unless set off, or unset in the managed local mode.
    public var requiresVerifiedDomains: Bool { requireVerifiedDomains ?? (databaseURL != nil) }
    /// `RELAY_SPF_INCLUDE`: the SPF include users are told to publish; unset → `a:<RELAY_HOSTNAME>`.
    public var spfInclude: String?
    /// `RELAY_DKIM_ROTATION_GRACE` (default 7d): how long a replaced DKIM key stays published.
    public var dkimRotationGrace: Duration = .seconds(7 * 86_400)
    /// `RELAY_DOMAIN_RECHECK_INTERVAL` (default 1h): how often every domain's DNS records are checked again.
    public var domainRecheckInterval: Duration = .seconds(3600)
    /// `RELAY_PUBLIC_URL`: the https base URL under which this Relay's HTTP API is reachable from the internet,
    /// for hosted unsubscribe links; unset → `https://<RELAY_HOSTNAME>`.
    public var publicURL: String?

    /// `RELAY_PROXY_PROTOCOL` (default false): every connection to the SMTP listeners (587, 465, 25) starts with a
    /// PROXY v1/v2 header from the load balancer (HAProxy `send-proxy-v2`); its client address is the session's.
    public var proxyProtocol = false

    /// `RELAY_SUBMISSION_TRUSTED_NETWORKS` (default none): `CIDR=tenant-id` entries, comma-separated; submission
    /// clients in such a block send as that tenant without AUTH or TLS (Postfix's `mynetworks`, per tenant), for
    /// applications on a private network that cannot authenticate. The sender-domain policy still applies.
    public var submissionTrustedNetworks = TrustedNetworks()

    /// `RELAY_TENANT_RATE_LIMIT` (default unset: no limit): messages each tenant may send per minute across the
    /// whole cluster (counted in PostgreSQL); over it the API answers 429 `rate_limited` and submission
    /// 451 4.7.1, both saying when to retry.
    public var tenantRateLimit: Int?

    /// `RELAY_SMARTHOST` (`host:port` or `[ipv6]:port`; default unset: MX delivery): hand the mail of every domain
    /// that no database route (`/admin/routes`) covers to this server, with `RELAY_SMARTHOST_USERNAME` /
    /// `RELAY_SMARTHOST_PASSWORD` (AUTH, both or neither), `RELAY_SMARTHOST_TLS` (`starttls` (default), `implicit`
    /// or `none`; credentials need TLS) and `RELAY_SMARTHOST_VERIFY_CERTIFICATE` (default true).
    public var smarthost: SMTPRoute?
    /// `RELAY_SMARTHOST_CA_FILE`: a PEM file of extra trust roots for verifying smarthost certificates (those of
    /// `RELAY_SMARTHOST` and of the database routes), e.g. a private CA's.
    public var smarthostCAFile: String?
    /// How long a node uses its copy of the `/admin/routes` routes before reading them again (5s). Not an
    /// environment variable: the tests shorten it.
    public var routeCacheTime: Duration = .seconds(5)

    /// How log lines are written.
    public enum LogFormat: String, Sendable, CaseIterable {
        case text, json
    }

    /// The parts a node can run.
    public enum Role: String, Sendable, CaseIterable {
        /// The HTTP API (`/v1`, `/admin`); health endpoints are always served.
        case api
        /// The SMTP submission listeners.
        case smtp
        /// The delivery workers.
        case worker
        /// The inbound SMTP listener for bounces and complaints (`RELAY_INBOUND_ADDR`).
        case inbound
    }

    /// A listen address.
    public struct HostPort: Sendable, Equatable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// The defaults.
    public init() {}

    /// Every environment variable this type reads, for the CLI's flag mapping and docs.
    public static let variables: [String] = [
        "DATABASE_URL", "RELAY_DATA_DIR", "RELAY_HTTP_ADDR", "RELAY_HOSTNAME", "RELAY_ADMIN_TOKEN", "RELAY_DNS_SERVERS",
        "RELAY_MX_PORT", "RELAY_RETRY_INITIAL", "RELAY_RETRY_MAX", "RELAY_MAX_QUEUE_LIFETIME", "RELAY_WORKER_CONCURRENCY",
        "RELAY_MAX_MESSAGE_BYTES", "RELAY_LEASE_TIME", "RELAY_SMTP_VERIFY_CERTIFICATES", "RELAY_SMTP_PLAINTEXT_FALLBACK",
        "RELAY_LOG_LEVEL", "RELAY_ROLES", "RELAY_SUBMISSION_ADDR", "RELAY_SUBMISSIONS_ADDR", "RELAY_TLS_CERT", "RELAY_TLS_KEY",
        "RELAY_SMTP_AUTH_FAILURES", "RELAY_SMTP_MAX_RECIPIENTS", "RELAY_SMTP_MAX_SESSIONS", "RELAY_SMTP_COMMAND_TIMEOUT",
        "RELAY_LOG_RETENTION", "RELAY_LOG_FORMAT", "RELAY_BOUNCE_DOMAIN", "RELAY_INBOUND_ADDR", "RELAY_SOFT_BOUNCE_LIMIT",
        "RELAY_SOFT_BOUNCE_SUPPRESSION", "RELAY_REPUTATION_GUARD", "RELAY_REPUTATION_WINDOW", "RELAY_REPUTATION_MIN_SENDS",
        "RELAY_REPUTATION_BOUNCE_RATE", "RELAY_REPUTATION_COMPLAINT_RATE", "RELAY_WEBHOOK_ALLOW_PRIVATE",
        "RELAY_SECRET_KEY", "RELAY_REQUIRE_VERIFIED_DOMAINS", "RELAY_SPF_INCLUDE", "RELAY_DKIM_ROTATION_GRACE",
        "RELAY_DOMAIN_RECHECK_INTERVAL", "RELAY_PUBLIC_URL", "RELAY_PROXY_PROTOCOL", "RELAY_TENANT_RATE_LIMIT",
        "RELAY_SUBMISSION_TRUSTED_NETWORKS",
        "RELAY_MX_MAX_CONNECTIONS", "RELAY_MX_THROTTLE_TIME", "RELAY_DRAIN_DELAY",
        "RELAY_SMARTHOST", "RELAY_SMARTHOST_USERNAME", "RELAY_SMARTHOST_PASSWORD", "RELAY_SMARTHOST_TLS",
        "RELAY_SMARTHOST_VERIFY_CERTIFICATE", "RELAY_SMARTHOST_CA_FILE",
    ]

    /// Reads settings from `values` (the environment merged with flags); a malformed value throws a
    /// `ConfigurationError` naming the variable. Empty values count as unset.
    public init(values: [String: String]) throws {
        self.init()
        func value(_ name: String) -> String? {
            guard let raw = values[name]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty else { return nil }
            return raw
        }
        func duration(_ name: String) throws -> Duration? {
            guard let text = value(name) else { return nil }
            guard let parsed = DurationParsing.parse(text) else {
                throw ConfigurationError("\(name)=\(text) is not a duration (write e.g. 500ms, 30s, 5m, 2h, 5d)")
            }
            return parsed
        }
        func integer(_ name: String, minimum: Int) throws -> Int? {
            guard let text = value(name) else { return nil }
            guard let parsed = Int(text), parsed >= minimum else {
                throw ConfigurationError("\(name)=\(text) must be a whole number ≥ \(minimum)")
            }
            return parsed
        }
        func boolean(_ name: String) throws -> Bool? {
            guard let text = value(name)?.lowercased() else { return nil }
            switch text {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw ConfigurationError("\(name)=\(text) must be true or false")
            }
        }

        databaseURL = value("DATABASE_URL")
        if let databaseURL { _ = try DatabaseLocation(url: databaseURL) }
        if let dir = value("RELAY_DATA_DIR") { dataDirectory = dir }
        if let address = value("RELAY_HTTP_ADDR") {
            (httpHost, httpPort) = try Self.hostPort(address, variable: "RELAY_HTTP_ADDR")
        }
        if let name = value("RELAY_HOSTNAME") { hostname = name }
        adminToken = value("RELAY_ADMIN_TOKEN")
        if let servers = value("RELAY_DNS_SERVERS") {
            dnsServers = try servers.split(separator: ",").map { item in
                do { return try DNSServerAddress(parsing: item.trimmingCharacters(in: .whitespaces)) }
                catch { throw ConfigurationError("RELAY_DNS_SERVERS: \"\(item)\" is not an ip or ip:port") }
            }
            if dnsServers.isEmpty { throw ConfigurationError("RELAY_DNS_SERVERS lists no server") }
        }
        if let port = try integer("RELAY_MX_PORT", minimum: 1) {
            guard port <= 65535 else { throw ConfigurationError("RELAY_MX_PORT=\(port) is not a TCP port") }
            mxPort = port
        }
        if let initial = try duration("RELAY_RETRY_INITIAL") { retryPolicy.initialDelay = initial }
        if let maximum = try duration("RELAY_RETRY_MAX") { retryPolicy.maximumDelay = maximum }
        if let lifetime = try duration("RELAY_MAX_QUEUE_LIFETIME") { retryPolicy.maximumLifetime = lifetime }
        if retryPolicy.maximumDelay < retryPolicy.initialDelay {
            throw ConfigurationError("RELAY_RETRY_MAX must not be below RELAY_RETRY_INITIAL")
        }
        if let concurrency = try integer("RELAY_WORKER_CONCURRENCY", minimum: 1) { workerConcurrency = concurrency }
        if let bytes = try integer("RELAY_MAX_MESSAGE_BYTES", minimum: 1024) { maxMessageBytes = bytes }
        if let lease = try duration("RELAY_LEASE_TIME") {
            guard lease >= .seconds(1) else { throw ConfigurationError("RELAY_LEASE_TIME must be at least 1s") }
            leaseTime = lease
        }
        if let connections = try integer("RELAY_MX_MAX_CONNECTIONS", minimum: 1) { mxMaxConnections = connections }
        drainDelay = try duration("RELAY_DRAIN_DELAY")
        if let throttle = try duration("RELAY_MX_THROTTLE_TIME") {
            guard throttle >= .seconds(1) else { throw ConfigurationError("RELAY_MX_THROTTLE_TIME must be at least 1s") }
            mxThrottleTime = throttle
        }
        if let verify = try boolean("RELAY_SMTP_VERIFY_CERTIFICATES") { verifyCertificates = verify }
        if let fallback = try boolean("RELAY_SMTP_PLAINTEXT_FALLBACK") { plaintextFallback = fallback }
        if let level = value("RELAY_LOG_LEVEL") {
            guard let parsed = Logger.Level(rawValue: level.lowercased()) else {
                throw ConfigurationError("RELAY_LOG_LEVEL=\(level) is not one of trace, debug, info, notice, warning, error, critical")
            }
            logLevel = parsed
        }
        if let text = value("RELAY_ROLES") {
            var parsed = Set<Role>()
            for item in text.split(separator: ",") {
                let name = item.trimmingCharacters(in: .whitespaces).lowercased()
                guard let role = Role(rawValue: name) else {
                    throw ConfigurationError("RELAY_ROLES: \"\(name)\" is not one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                parsed.insert(role)
            }
            guard !parsed.isEmpty else { throw ConfigurationError("RELAY_ROLES names no role") }
            roles = parsed
        }
        for (name, keyPath) in [("RELAY_SUBMISSION_ADDR", \RelayConfiguration.submissionAddress),
                                ("RELAY_SUBMISSIONS_ADDR", \RelayConfiguration.submissionsAddress)] {
            guard let text = value(name) else { continue }
            submissionAddressesExplicit = true
            if text.lowercased() == "off" {
                self[keyPath: keyPath] = nil
            } else {
                let (host, port) = try Self.hostPort(text, variable: name)
                self[keyPath: keyPath] = HostPort(host: host, port: port)
            }
        }
        tlsCertificatePath = value("RELAY_TLS_CERT")
        tlsKeyPath = value("RELAY_TLS_KEY")
        if (tlsCertificatePath == nil) != (tlsKeyPath == nil) {
            throw ConfigurationError("RELAY_TLS_CERT and RELAY_TLS_KEY must be set together")
        }
        if let failures = try integer("RELAY_SMTP_AUTH_FAILURES", minimum: 1) { smtpAuthFailures = failures }
        if let recipients = try integer("RELAY_SMTP_MAX_RECIPIENTS", minimum: 1) { smtpMaxRecipients = max(100, recipients) }
        if let sessions = try integer("RELAY_SMTP_MAX_SESSIONS", minimum: 1) { smtpMaxSessions = sessions }
        if let timeout = try duration("RELAY_SMTP_COMMAND_TIMEOUT") { smtpCommandTimeout = timeout }
        if let retention = try duration("RELAY_LOG_RETENTION") {
            guard retention >= .seconds(86_400) else {
                throw ConfigurationError("RELAY_LOG_RETENTION must be at least 1d (logs are kept in day partitions)")
            }
            logRetention = retention
        }
        if let domain = value("RELAY_BOUNCE_DOMAIN") {
            let lowered = domain.lowercased()
            guard !lowered.contains("@"), !lowered.hasPrefix("."), !lowered.hasSuffix("."), lowered.contains("."),
                  lowered.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." })
            else { throw ConfigurationError("RELAY_BOUNCE_DOMAIN=\(domain) is not a domain name") }
            bounceDomain = lowered
        }
        if let text = value("RELAY_INBOUND_ADDR") {
            inboundAddressExplicit = true
            if text.lowercased() == "off" {
                inboundAddress = nil
            } else {
                let (host, port) = try Self.hostPort(text, variable: "RELAY_INBOUND_ADDR")
                inboundAddress = HostPort(host: host, port: port)
            }
        }
        if let limit = try integer("RELAY_SOFT_BOUNCE_LIMIT", minimum: 1) { softBounceLimit = limit }
        if let duration = try duration("RELAY_SOFT_BOUNCE_SUPPRESSION") { softBounceSuppression = duration }
        if let enabled = try boolean("RELAY_REPUTATION_GUARD") { reputation.enabled = enabled }
        if let window = try duration("RELAY_REPUTATION_WINDOW") {
            guard window >= .seconds(3600) else { throw ConfigurationError("RELAY_REPUTATION_WINDOW must be at least 1h") }
            reputation.window = window
        }
        if let sends = try integer("RELAY_REPUTATION_MIN_SENDS", minimum: 1) { reputation.minimumSends = sends }
        for (name, keyPath) in [("RELAY_REPUTATION_BOUNCE_RATE", \ReputationThresholds.bounceRate),
                                ("RELAY_REPUTATION_COMPLAINT_RATE", \ReputationThresholds.complaintRate)] {
            guard let text = value(name) else { continue }
            guard let rate = Double(text), rate > 0, rate <= 1 else {
                throw ConfigurationError("\(name)=\(text) must be a fraction between 0 and 1 (e.g. 0.1 for 10%)")
            }
            reputation[keyPath: keyPath] = rate
        }
        if let allow = try boolean("RELAY_WEBHOOK_ALLOW_PRIVATE") { webhookAllowPrivate = allow }
        if let key = value("RELAY_SECRET_KEY") {
            guard let raw = Data(base64Encoded: key), raw.count == 32 else {
                throw ConfigurationError("RELAY_SECRET_KEY must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)")
            }
            secretKey = key
        }
        requireVerifiedDomains = try boolean("RELAY_REQUIRE_VERIFIED_DOMAINS")
        if let proxy = try boolean("RELAY_PROXY_PROTOCOL") { proxyProtocol = proxy }
        tenantRateLimit = try integer("RELAY_TENANT_RATE_LIMIT", minimum: 1)
        if let networks = value("RELAY_SUBMISSION_TRUSTED_NETWORKS") {
            do {
                submissionTrustedNetworks = try TrustedNetworks(parsing: networks) { UUID(uuidString: $0) != nil }
            } catch {
                throw ConfigurationError("RELAY_SUBMISSION_TRUSTED_NETWORKS: \(error)")
            }
        }
        if let include = value("RELAY_SPF_INCLUDE") {
            guard include.contains("."), include.allSatisfy({ $0.isLetter || $0.isNumber || "-._".contains($0) }) else {
                throw ConfigurationError("RELAY_SPF_INCLUDE=\(include) is not a domain name")
            }
            spfInclude = include.lowercased()
        }
        if let grace = try duration("RELAY_DKIM_ROTATION_GRACE") { dkimRotationGrace = grace }
        if let interval = try duration("RELAY_DOMAIN_RECHECK_INTERVAL") {
            guard interval >= .seconds(60) else { throw ConfigurationError("RELAY_DOMAIN_RECHECK_INTERVAL must be at least 1m") }
            domainRecheckInterval = interval
        }
        if let url = value("RELAY_PUBLIC_URL") {
            guard let parsed = URL(string: url), ["https", "http"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil,
                  !url.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" || $0 == "," })
            else { throw ConfigurationError("RELAY_PUBLIC_URL=\(url) must be an http(s) URL such as https://relay.example.com") }
            publicURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        if let format = value("RELAY_LOG_FORMAT") {
            guard let parsed = LogFormat(rawValue: format.lowercased()) else {
                throw ConfigurationError("RELAY_LOG_FORMAT=\(format) is not one of text, json")
            }
            logFormat = parsed
        }
        // A password is taken as given (spaces are characters of it), only an empty one counts as unset.
        let password = values["RELAY_SMARTHOST_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
        smarthost = try Self.smarthost(address: value("RELAY_SMARTHOST"), username: value("RELAY_SMARTHOST_USERNAME"),
                                       password: password, tls: value("RELAY_SMARTHOST_TLS"),
                                       verifyCertificate: try boolean("RELAY_SMARTHOST_VERIFY_CERTIFICATE"))
        if let file = value("RELAY_SMARTHOST_CA_FILE") {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8), text.contains("-----BEGIN CERTIFICATE-----") else {
                throw ConfigurationError("RELAY_SMARTHOST_CA_FILE=\(file) is not a readable PEM file of certificates")
            }
            smarthostCAFile = file
        }
    }

    /// The `RELAY_SMARTHOST` route from its variables; nil when `address` is unset (then the others must be too).
    static func smarthost(address: String?, username: String?, password: String?, tls: String?,
                          verifyCertificate: Bool?) throws -> SMTPRoute? {
        guard let address else {
            if username != nil || password != nil || tls != nil || verifyCertificate != nil {
                throw ConfigurationError("RELAY_SMARTHOST_USERNAME, _PASSWORD, _TLS and _VERIFY_CERTIFICATE need RELAY_SMARTHOST=host:port")
            }
            return nil
        }
        let (hostText, port) = try hostPort(address, variable: "RELAY_SMARTHOST")
        guard port >= 1, let host = SMTPRoute.normalizedHost(hostText) else {
            throw ConfigurationError("RELAY_SMARTHOST=\(address) must be host:port with a host name or IP address (IPv6 as [::1]:587)")
        }
        var mode = RouteTLS.startTLS
        if let tls {
            guard let parsed = RouteTLS(rawValue: tls.lowercased()) else {
                throw ConfigurationError("RELAY_SMARTHOST_TLS=\(tls) is not one of starttls, implicit, none")
            }
            mode = parsed
        }
        if let problem = SMTPRoute.credentialProblem(username: username, password: password, tls: mode) {
            throw ConfigurationError(problem.field == "tls"
                ? "RELAY_SMARTHOST_TLS=none cannot be used with RELAY_SMARTHOST_USERNAME/RELAY_SMARTHOST_PASSWORD: credentials are sent only over TLS"
                : "RELAY_SMARTHOST_USERNAME and RELAY_SMARTHOST_PASSWORD must be set together")
        }
        return SMTPRoute(id: "env", pattern: .any, host: host, port: port, username: username, password: password,
                         tls: mode, verifyCertificate: verifyCertificate ?? true)
    }

    /// Splits `host:port` (IPv6 as `[::1]:8080`).
    static func hostPort(_ text: String, variable: String) throws -> (String, Int) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(after: close)...].dropFirst()
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            throw ConfigurationError("\(variable)=\(text) must be host:port")
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw ConfigurationError("\(variable)=\(text) must be host:port")
        }
        return (String(host), port)
    }
}
