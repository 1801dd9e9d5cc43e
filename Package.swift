// swift-tools-version:6.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Relay",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "relay", targets: ["relay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // RFC 5321 grammar: replies, commands, enhanced status codes, dot-stuffing. No channels.
        .target(
            name: "SMTPCore",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // Outbound SMTP: pure client session state machine plus the NIO connection that drives it.
        .target(
            name: "SMTPClient",
            dependencies: [
                "SMTPCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // SMTP submission server: pure session state machine (Session/) + thin NIO layer, TLS (NIO/).
        .target(
            name: "SMTPServer",
            dependencies: [
                "SMTPCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // A bounded, dependency-free fuzz driver over the command parser, DATA decoder and server session.
        .executableTarget(
            name: "SMTPFuzz",
            dependencies: ["SMTPCore", "SMTPServer", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        // Relay's submission policy: API-key AUTH with lockout, sender domains, header rewriting, enqueue.
        .target(
            name: "RelaySubmission",
            dependencies: [
                "SMTPServer", "SMTPCore", "RelayCore", "RelayStore", "MailMessage",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The inbound listener's backend: bounce and complaint reports to VERP addresses, applied to their deliveries.
        .target(
            name: "RelayInbound",
            dependencies: [
                "SMTPServer", "SMTPCore", "RelayCore", "RelayStore", "BounceParser",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // DNS wire format, UDP/TCP transport, MX/A/AAAA/TXT lookups with a TTL cache.
        .target(
            name: "DNSClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // An authoritative DNS server for tests: answers from an in-memory zone over UDP and TCP.
        .target(
            name: "DNSTestServer",
            dependencies: [
                "DNSClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // RFC 5322 addresses and MIME composition/parsing.
        .target(
            name: "MailMessage",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
        // DKIM signing (RFC 6376, RFC 8463): relaxed canonicalisation, rsa-sha256 and ed25519-sha256, and the
        // AES-GCM box that keeps private keys sealed at rest. Pure: swift-crypto and Foundation only.
        .target(
            name: "DKIM",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Domain model: recipient states, delivery outcomes, classification, retry policy.
        .target(
            name: "RelayCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // Bounce, complaint and auto-reply parsing: RFC 3464 DSNs, MTA formats, RFC 5965 ARF. Pure, no I/O.
        .target(
            name: "BounceParser",
            dependencies: ["MailMessage", "RelayCore"],
            swiftSettings: swiftSettings
        ),
        // Numbered SQL migrations, embedded into the binary.
        .target(
            name: "RelayMigrations",
            path: "Migrations",
            resources: [
                .embedInCode("0001_init.sql"),
                .embedInCode("0002_smtp_auth_failures.sql"),
                .embedInCode("0003_message_log_indexes.sql"),
                .embedInCode("0004_logs_and_stats.sql"),
                .embedInCode("0005_suppressions.sql"),
                .embedInCode("0006_bounces_and_reputation.sql"),
                .embedInCode("0007_webhooks.sql"),
                .embedInCode("0008_domain_dkim.sql"),
                .embedInCode("0009_templates.sql"),
                .embedInCode("0010_scheduling.sql"),
                .embedInCode("0011_nodes.sql"),
                .embedInCode("0012_tenant_rate_limits.sql"),
                .embedInCode("0013_mx_connection_limits.sql"),
                .embedInCode("0014_smtp_routes.sql"),
                .embedInCode("0015_queue_domain_due.sql"),
            ],
            swiftSettings: swiftSettings
        ),
        // PostgreSQL persistence and the migrations runner.
        .target(
            name: "RelayStore",
            dependencies: [
                "RelayCore", "RelayMigrations",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Sender domains: DKIM keys (made, sealed, opened), the DNS records to publish and their verification,
        // rotation, the periodic re-check, and signing at delivery time.
        .target(
            name: "RelayDomains",
            dependencies: [
                "DKIM", "DNSClient", "RelayCore", "RelayStore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Prometheus metrics through swift-metrics, one registry per application instance.
        .target(
            name: "RelayMetrics",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        // Delivery workers: claim, resolve, deliver, record, back off.
        .target(
            name: "RelayQueue",
            dependencies: [
                "RelayCore", "RelayStore", "SMTPClient", "DNSClient", "RelayMetrics", "RelayDomains", "DKIM",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Signed webhooks: Standard Webhooks signing, payloads, the private-address guard, retry schedule, and
        // the dispatcher that sends the PostgreSQL outbox with AsyncHTTPClient.
        .target(
            name: "RelayWebhooks",
            dependencies: [
                "RelayCore", "RelayStore", "RelayMetrics",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Stored Mustache templates: compile at save time, render strictly (a name the data lacks is an error).
        .target(
            name: "RelayTemplates",
            dependencies: [.product(name: "Mustache", package: "swift-mustache")],
            swiftSettings: swiftSettings
        ),
        // HTTP API: controllers, request validation, auth, error rendering, and the dashboard's static files.
        .target(
            name: "RelayAPI",
            dependencies: [
                "RelayCore", "RelayStore", "MailMessage", "RelayMetrics", "RelayWebhooks", "RelayDomains", "RelayTemplates",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [
                .embedInCode("Dashboard/index.html"),
                .embedInCode("Dashboard/app.css"),
                .embedInCode("Dashboard/app.js"),
            ],
            swiftSettings: swiftSettings
        ),
        // Configuration, managed PostgreSQL, and the composition root shared by the binary and the tests.
        .target(
            name: "RelayApp",
            dependencies: [
                "RelayCore", "RelayStore", "RelayQueue", "RelayAPI", "DNSClient", "SMTPClient", "SMTPServer", "RelaySubmission",
                "RelayMetrics", "RelayInbound", "RelayWebhooks", "RelayDomains", "DKIM",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Shared by the integration and end-to-end tests: per-test databases, SMTP peers, polling helpers.
        .target(
            name: "RelayTestSupport",
            dependencies: [
                "RelayCore", "RelayStore", "RelayMigrations",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "relay",
            dependencies: [
                "RelayApp", "BounceParser", "RelayStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // Unit tier: no sockets except loopback peers started by the test itself.
        .testTarget(name: "SMTPCoreTests", dependencies: ["SMTPCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SMTPClientTests",
            dependencies: [
                "SMTPClient", "SMTPCore", "RelayTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SMTPServerTests",
            dependencies: [
                "SMTPServer", "SMTPCore", "RelayTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "DNSClientTests", dependencies: ["DNSClient", "DNSTestServer", "RelayTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "MailMessageTests", dependencies: ["MailMessage"], swiftSettings: swiftSettings),
        .testTarget(name: "RelayCoreTests", dependencies: ["RelayCore"], swiftSettings: swiftSettings),
        // Known answers from RFC 6376/8463, plus signatures checked by dkimpy (Tests/Peers/dkim_verify.py).
        .testTarget(
            name: "DKIMTests",
            dependencies: [
                "DKIM", "RelayTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "RelayDomainsTests", dependencies: ["RelayDomains", "RelayStore", "RelayCore", "DKIM"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "RelayTemplatesTests", dependencies: ["RelayTemplates"], swiftSettings: swiftSettings),
        .testTarget(name: "RelayWebhooksTests", dependencies: ["RelayWebhooks", "RelayStore", "RelayCore"], swiftSettings: swiftSettings),
        // Reads the sample corpus in Tests/Fixtures/bounces through #filePath (no resources).
        .testTarget(name: "BounceParserTests", dependencies: ["BounceParser", "RelayCore"], swiftSettings: swiftSettings),
        .testTarget(name: "RelayInboundTests", dependencies: ["RelayInbound", "BounceParser", "RelayStore", "RelayCore"],
                    swiftSettings: swiftSettings),
        .testTarget(
            name: "RelayQueueTests",
            dependencies: ["RelayQueue", "RelayCore", "RelayStore", "SMTPClient", "SMTPCore",
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Integration tier: a real PostgreSQL (PG* environment variables, started by scripts/test).
        .testTarget(
            name: "RelayIntegrationTests",
            dependencies: ["RelayStore", "RelayQueue", "RelayCore", "RelayTestSupport", "RelayMigrations",
                           .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: swiftSettings
        ),
        // End to end: HTTP in → queue → SMTP out to real peers on loopback.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "RelayApp", "DNSTestServer", "MailMessage", "RelayTestSupport", "RelayStore", "SMTPServer", "RelayDomains",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
