import ArgumentParser
import Foundation
import Logging
import RelayApp

/// The `relay` command line: a thin layer over RelayApp.
@main
struct Relay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "A self-hosted transactional email relay: HTTP API → PostgreSQL queue → SMTP delivery.",
        subcommands: [Serve.self, Migrate.self, Tenant.self, Dev.self, Bounces.self, Queue.self],
        defaultSubcommand: Serve.self)
}

/// Every configuration variable as a flag; a flag overrides the environment variable of the same name.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "DATABASE_URL: postgres://user:pass@host:port/db (unset: managed local PostgreSQL)")
    var databaseURL: String?
    @Option(name: .customLong("data-dir"), help: "RELAY_DATA_DIR (default ./.relay)")
    var dataDir: String?
    @Option(name: .customLong("http-addr"), help: "RELAY_HTTP_ADDR (default 0.0.0.0:8080)")
    var httpAddr: String?
    @Option(name: .customLong("hostname"), help: "RELAY_HOSTNAME: EHLO name and Message-ID domain")
    var hostname: String?
    @Option(name: .customLong("admin-token"), help: "RELAY_ADMIN_TOKEN: enables /admin")
    var adminToken: String?
    @Option(name: .customLong("dns-servers"), help: "RELAY_DNS_SERVERS: comma-separated ip or ip:port")
    var dnsServers: String?
    @Option(name: .customLong("mx-port"), help: "RELAY_MX_PORT (default 25)")
    var mxPort: String?
    @Option(name: .customLong("retry-initial"), help: "RELAY_RETRY_INITIAL (default 5m)")
    var retryInitial: String?
    @Option(name: .customLong("retry-max"), help: "RELAY_RETRY_MAX (default 1h)")
    var retryMax: String?
    @Option(name: .customLong("max-queue-lifetime"), help: "RELAY_MAX_QUEUE_LIFETIME (default 5d)")
    var maxQueueLifetime: String?
    @Option(name: .customLong("worker-concurrency"), help: "RELAY_WORKER_CONCURRENCY (default 64)")
    var workerConcurrency: String?
    @Option(name: .customLong("max-message-bytes"), help: "RELAY_MAX_MESSAGE_BYTES (default 26214400)")
    var maxMessageBytes: String?
    @Option(name: .customLong("lease-time"), help: "RELAY_LEASE_TIME (default 60s)")
    var leaseTime: String?
    @Option(name: .customLong("smtp-verify-certificates"), help: "RELAY_SMTP_VERIFY_CERTIFICATES (default false)")
    var verifyCertificates: String?
    @Option(name: .customLong("smtp-plaintext-fallback"), help: "RELAY_SMTP_PLAINTEXT_FALLBACK (default false)")
    var plaintextFallback: String?
    @Option(name: .customLong("log-level"), help: "RELAY_LOG_LEVEL (default info)")
    var logLevel: String?
    @Option(name: .customLong("roles"), help: "RELAY_ROLES: comma-separated api, smtp, worker, inbound (default all)")
    var roles: String?
    @Option(name: .customLong("submission-addr"), help: "RELAY_SUBMISSION_ADDR (default 0.0.0.0:587, off disables)")
    var submissionAddr: String?
    @Option(name: .customLong("submissions-addr"), help: "RELAY_SUBMISSIONS_ADDR (default 0.0.0.0:465, off disables)")
    var submissionsAddr: String?
    @Option(name: .customLong("tls-cert"), help: "RELAY_TLS_CERT: PEM certificate chain (unset: self-signed)")
    var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "RELAY_TLS_KEY: PEM private key")
    var tlsKey: String?
    @Option(name: .customLong("smtp-auth-failures"), help: "RELAY_SMTP_AUTH_FAILURES (default 5)")
    var smtpAuthFailures: String?
    @Option(name: .customLong("smtp-max-recipients"), help: "RELAY_SMTP_MAX_RECIPIENTS (default 1000, at least 100)")
    var smtpMaxRecipients: String?
    @Option(name: .customLong("smtp-max-sessions"), help: "RELAY_SMTP_MAX_SESSIONS (default 1000)")
    var smtpMaxSessions: String?
    @Option(name: .customLong("smtp-command-timeout"), help: "RELAY_SMTP_COMMAND_TIMEOUT (default 5m)")
    var smtpCommandTimeout: String?
    @Option(name: .customLong("log-retention"), help: "RELAY_LOG_RETENTION (default 30d, at least 1d): keep events and transcripts this long")
    var logRetention: String?
    @Option(name: .customLong("log-format"), help: "RELAY_LOG_FORMAT: text (default) or json")
    var logFormat: String?
    @Option(name: .customLong("bounce-domain"), help: "RELAY_BOUNCE_DOMAIN: domain of VERP bounce addresses (default bounces.<sender domain>)")
    var bounceDomain: String?
    @Option(name: .customLong("inbound-addr"), help: "RELAY_INBOUND_ADDR (default 0.0.0.0:25, off disables): bounce/complaint listener")
    var inboundAddr: String?
    @Option(name: .customLong("soft-bounce-limit"), help: "RELAY_SOFT_BOUNCE_LIMIT (default 3): soft bounces within a day that suppress an address")
    var softBounceLimit: String?
    @Option(name: .customLong("soft-bounce-suppression"), help: "RELAY_SOFT_BOUNCE_SUPPRESSION (default 24h): how long")
    var softBounceSuppression: String?
    @Option(name: .customLong("reputation-guard"), help: "RELAY_REPUTATION_GUARD (default true)")
    var reputationGuard: String?
    @Option(name: .customLong("reputation-window"), help: "RELAY_REPUTATION_WINDOW (default 24h)")
    var reputationWindow: String?
    @Option(name: .customLong("reputation-min-sends"), help: "RELAY_REPUTATION_MIN_SENDS (default 200)")
    var reputationMinSends: String?
    @Option(name: .customLong("reputation-bounce-rate"), help: "RELAY_REPUTATION_BOUNCE_RATE (default 0.10)")
    var reputationBounceRate: String?
    @Option(name: .customLong("reputation-complaint-rate"), help: "RELAY_REPUTATION_COMPLAINT_RATE (default 0.005)")
    var reputationComplaintRate: String?
    @Option(name: .customLong("webhook-allow-private"),
            help: "RELAY_WEBHOOK_ALLOW_PRIVATE (default false): allow webhook URLs on private, loopback and link-local addresses")
    var webhookAllowPrivate: String?
    @Option(name: .customLong("secret-key"), help: "RELAY_SECRET_KEY: 32 bytes in base64 sealing DKIM private keys (managed mode: generated into the data directory)")
    var secretKey: String?
    @Option(name: .customLong("require-verified-domains"),
            help: "RELAY_REQUIRE_VERIFIED_DOMAINS (default true; false in the managed local mode): only DKIM-verified domains send")
    var requireVerifiedDomains: String?
    @Option(name: .customLong("spf-include"), help: "RELAY_SPF_INCLUDE: the SPF include users publish (default a:<RELAY_HOSTNAME>)")
    var spfInclude: String?
    @Option(name: .customLong("dkim-rotation-grace"), help: "RELAY_DKIM_ROTATION_GRACE (default 7d): how long a replaced DKIM key stays published")
    var dkimRotationGrace: String?
    @Option(name: .customLong("domain-recheck-interval"), help: "RELAY_DOMAIN_RECHECK_INTERVAL (default 1h): how often domains' DNS records are re-checked")
    var domainRecheckInterval: String?
    @Option(name: .customLong("public-url"), help: "RELAY_PUBLIC_URL (default https://<RELAY_HOSTNAME>): base of hosted unsubscribe links")
    var publicURL: String?
    @Option(name: .customLong("proxy-protocol"), help: "RELAY_PROXY_PROTOCOL (default false): SMTP connections start with a PROXY v1/v2 header")
    var proxyProtocol: String?
    @Option(name: .customLong("tenant-rate-limit"), help: "RELAY_TENANT_RATE_LIMIT (default no limit): messages per tenant per minute, cluster-wide")
    var tenantRateLimit: String?
    @Option(name: .customLong("submission-trusted-networks"), help: "RELAY_SUBMISSION_TRUSTED_NETWORKS (default none): CIDR=tenant-id,… submit without AUTH")
    var submissionTrustedNetworks: String?
    @Option(name: .customLong("mx-max-connections"), help: "RELAY_MX_MAX_CONNECTIONS (default 10): concurrent connections to one MX host, cluster-wide")
    var mxMaxConnections: String?
    @Option(name: .customLong("mx-throttle-time"), help: "RELAY_MX_THROTTLE_TIME (default 5m): how long an MX host that asked to slow down keeps a lower limit")
    var mxThrottleTime: String?
    @Option(name: .customLong("drain-delay"), help: "RELAY_DRAIN_DELAY (default 5s, 0 in managed mode): after SIGTERM, /readyz answers 503 this long before listeners close")
    var drainDelay: String?
    @Option(name: .customLong("smarthost"), help: "RELAY_SMARTHOST: host:port of an upstream SMTP server for all mail no /admin/routes route covers")
    var smarthost: String?
    @Option(name: .customLong("smarthost-username"), help: "RELAY_SMARTHOST_USERNAME: AUTH user name (with the password; only over TLS)")
    var smarthostUsername: String?
    @Option(name: .customLong("smarthost-password"), help: "RELAY_SMARTHOST_PASSWORD: AUTH password")
    var smarthostPassword: String?
    @Option(name: .customLong("smarthost-tls"), help: "RELAY_SMARTHOST_TLS: starttls (default), implicit or none")
    var smarthostTLS: String?
    @Option(name: .customLong("smarthost-verify-certificate"), help: "RELAY_SMARTHOST_VERIFY_CERTIFICATE (default true)")
    var smarthostVerifyCertificate: String?
    @Option(name: .customLong("smarthost-ca-file"), help: "RELAY_SMARTHOST_CA_FILE: extra PEM trust roots for smarthost certificates")
    var smarthostCAFile: String?

    /// The environment with flags laid over it, parsed.
    func resolve() throws -> RelayConfiguration {
        var values = ProcessInfo.processInfo.environment
        let flags: [(String, String?)] = [
            ("DATABASE_URL", databaseURL), ("RELAY_DATA_DIR", dataDir), ("RELAY_HTTP_ADDR", httpAddr),
            ("RELAY_HOSTNAME", hostname), ("RELAY_ADMIN_TOKEN", adminToken), ("RELAY_DNS_SERVERS", dnsServers),
            ("RELAY_MX_PORT", mxPort), ("RELAY_RETRY_INITIAL", retryInitial), ("RELAY_RETRY_MAX", retryMax),
            ("RELAY_MAX_QUEUE_LIFETIME", maxQueueLifetime), ("RELAY_WORKER_CONCURRENCY", workerConcurrency),
            ("RELAY_MAX_MESSAGE_BYTES", maxMessageBytes), ("RELAY_LEASE_TIME", leaseTime),
            ("RELAY_SMTP_VERIFY_CERTIFICATES", verifyCertificates), ("RELAY_SMTP_PLAINTEXT_FALLBACK", plaintextFallback),
            ("RELAY_LOG_LEVEL", logLevel), ("RELAY_ROLES", roles), ("RELAY_SUBMISSION_ADDR", submissionAddr),
            ("RELAY_SUBMISSIONS_ADDR", submissionsAddr), ("RELAY_TLS_CERT", tlsCert), ("RELAY_TLS_KEY", tlsKey),
            ("RELAY_SMTP_AUTH_FAILURES", smtpAuthFailures), ("RELAY_SMTP_MAX_RECIPIENTS", smtpMaxRecipients),
            ("RELAY_SMTP_MAX_SESSIONS", smtpMaxSessions), ("RELAY_SMTP_COMMAND_TIMEOUT", smtpCommandTimeout),
            ("RELAY_LOG_RETENTION", logRetention), ("RELAY_LOG_FORMAT", logFormat),
            ("RELAY_BOUNCE_DOMAIN", bounceDomain), ("RELAY_INBOUND_ADDR", inboundAddr),
            ("RELAY_SOFT_BOUNCE_LIMIT", softBounceLimit), ("RELAY_SOFT_BOUNCE_SUPPRESSION", softBounceSuppression),
            ("RELAY_REPUTATION_GUARD", reputationGuard), ("RELAY_REPUTATION_WINDOW", reputationWindow),
            ("RELAY_REPUTATION_MIN_SENDS", reputationMinSends), ("RELAY_REPUTATION_BOUNCE_RATE", reputationBounceRate),
            ("RELAY_REPUTATION_COMPLAINT_RATE", reputationComplaintRate),
            ("RELAY_WEBHOOK_ALLOW_PRIVATE", webhookAllowPrivate), ("RELAY_SECRET_KEY", secretKey),
            ("RELAY_REQUIRE_VERIFIED_DOMAINS", requireVerifiedDomains), ("RELAY_SPF_INCLUDE", spfInclude),
            ("RELAY_DKIM_ROTATION_GRACE", dkimRotationGrace), ("RELAY_DOMAIN_RECHECK_INTERVAL", domainRecheckInterval),
            ("RELAY_PUBLIC_URL", publicURL), ("RELAY_PROXY_PROTOCOL", proxyProtocol),
            ("RELAY_TENANT_RATE_LIMIT", tenantRateLimit),
            ("RELAY_SUBMISSION_TRUSTED_NETWORKS", submissionTrustedNetworks), ("RELAY_MX_MAX_CONNECTIONS", mxMaxConnections),
            ("RELAY_MX_THROTTLE_TIME", mxThrottleTime), ("RELAY_DRAIN_DELAY", drainDelay), ("RELAY_SMARTHOST", smarthost),
            ("RELAY_SMARTHOST_USERNAME", smarthostUsername), ("RELAY_SMARTHOST_PASSWORD", smarthostPassword),
            ("RELAY_SMARTHOST_TLS", smarthostTLS), ("RELAY_SMARTHOST_VERIFY_CERTIFICATE", smarthostVerifyCertificate),
            ("RELAY_SMARTHOST_CA_FILE", smarthostCAFile),
        ]
        for case let (name, value?) in flags { values[name] = value }
        do {
            return try RelayConfiguration(values: values)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP API and the delivery workers.")
    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        try await RelayRunner.serve(options.resolve())
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations and exit.")
    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        try await RelayRunner.migrate(options.resolve())
    }
}

struct Tenant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage tenants.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant and print its API key (shown once).")
        @Argument(help: "The tenant's name") var name: String
        @Flag(help: "Print {\"id\",\"name\",\"api_key\"} as JSON") var json = false
        @OptionGroup var options: ConfigurationOptions

        func run() async throws {
            let trimmed = name.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, trimmed.count <= 200 else { throw ValidationError("the name must be 1–200 characters") }
            let created = try await RelayRunner.createTenant(name: trimmed, configuration: options.resolve())
            if json {
                let object = ["id": created.id, "name": created.name, "api_key": created.apiKey]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("Tenant \(created.name) created (id \(created.id)).")
                print("API key (shown once, store it now): \(created.apiKey)")
            }
        }
    }
}
