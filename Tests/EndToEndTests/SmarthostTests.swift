import DNSTestServer
import Foundation
import NIOHTTP1
import RelayApp
import RelayCore
import RelayStore
import RelayTestSupport
import Testing

/// Smarthost routing end to end: mail handed to an upstream SMTP server (Tests/Peers/smtp_sink.py requiring AUTH,
/// with a certificate made for the test) instead of the MX hosts, by `RELAY_SMARTHOST` or by `/admin/routes`.
@Suite struct SmarthostTests {
    static let hostname = "smarthost.test"
    static let address = "127.0.0.7"
    static let user = RecordingSMTPSink.Authentication(username: "relay-user", password: "s3cret pass")

    /// A running smarthost, its certificate, and the port it listens on.
    struct Smarthost {
        var sink: RecordingSMTPSink
        var certificate: String
        var port: Int { sink.port }
    }

    /// Starts a smarthost at 127.0.0.7 (STARTTLS unless `tls` is false; implicit TLS with `implicitTLS`), then
    /// Relay (with an MX sink for dest.test when `mxSink`) whose smarthost settings `configure` makes, with
    /// `smarthost.test` resolving to the smarthost; stops everything afterwards.
    static func withSmarthost(tls: Bool = true, implicitTLS: Bool = false, authentication: RecordingSMTPSink.Authentication? = user,
                              mxSink: Bool = false,
                              _ configure: (inout RelayConfiguration, Smarthost) throws -> Void,
                              _ body: (RelayHarness, Smarthost, RecordingSMTPSink?) async throws -> Void) async throws {
        let certificate = try await makeSelfSignedCertificate(hostname: hostname)
        let sink = try await RecordingSMTPSink.start(host: address,
                                                     tls: tls ? certificate : nil, implicitTLS: implicitTLS,
                                                     authentication: authentication)
        let smarthost = Smarthost(sink: sink, certificate: certificate.certificate)
        do {
            // Only the smarthost settings are taken from what `configure` sets.
            var settings = RelayConfiguration()
            try configure(&settings, smarthost)
            let adjust: (inout RelayConfiguration) -> Void = { [settings] configuration in
                configuration.smarthost = settings.smarthost
                configuration.smarthostCAFile = settings.smarthostCAFile
                configuration.routeCacheTime = settings.routeCacheTime
            }
            if mxSink {
                try await RelayHarness.withDestination(adjust) { relay, mx in
                    relay.dns.set(hostname, [.a(address)])
                    try await body(relay, smarthost, mx)
                }
            } else {
                let relay = try await RelayHarness.start(adjust)
                do {
                    relay.dns.set(hostname, [.a(address)])
                    try await body(relay, smarthost, nil)
                } catch {
                    try? await relay.stop()
                    throw error
                }
                try await relay.stop()
            }
        } catch {
            await sink.stop()
            throw error
        }
        await sink.stop()
    }

    /// The `RELAY_SMARTHOST*` variables, parsed as `relay serve` parses them, applied to `configuration`.
    static func environment(_ values: [String: String], _ configuration: inout RelayConfiguration) throws {
        let parsed = try RelayConfiguration(values: values)
        configuration.smarthost = parsed.smarthost
        configuration.smarthostCAFile = parsed.smarthostCAFile
    }

    static func send(_ relay: RelayHarness, to: String) async throws -> String {
        try await relay.sendMessage(["from": "Alice <alice@example.com>", "to": to, "subject": "Via the smarthost",
                                     "text": "routed, not looked up"])
    }

    /// The message's attempts' transcripts, joined.
    static func transcript(_ relay: RelayHarness, _ id: String) async throws -> [[String: Any]] {
        let attempts = try await relay.send(.GET, "/v1/messages/\(id)/attempts").json["data"] as? [[String: Any]] ?? []
        return attempts.flatMap { $0["transcript"] as? [[String: Any]] ?? [] }
    }

    /// Waits until the recipient is deferred; returns it.
    static func waitUntilDeferred(_ relay: RelayHarness, _ id: String) async throws -> [String: Any] {
        var recipient: [String: Any] = [:]
        try await waitUntil("the recipient is deferred") {
            recipient = try await relay.recipients(id).first ?? [:]
            return recipient["status"] as? String == "deferred"
        }
        return recipient
    }

    /// The password, its base64 and the PLAIN response appear nowhere in what Relay shows.
    static func expectNoCredentials(in text: String) {
        for secret in ["s3cret pass", Data("s3cret pass".utf8).base64EncodedString(),
                       Data("\u{0}relay-user\u{0}s3cret pass".utf8).base64EncodedString()] {
            #expect(!text.contains(secret), "a credential leaked: \(secret)")
        }
    }

    static func smarthostVariables(_ smarthost: Smarthost, password: String = "s3cret pass", caFile: Bool = true,
                                   extra: [String: String] = [:]) -> [String: String] {
        var values = ["RELAY_SMARTHOST": "\(hostname):\(smarthost.port)", "RELAY_SMARTHOST_USERNAME": "relay-user",
                      "RELAY_SMARTHOST_PASSWORD": password]
        if caFile { values["RELAY_SMARTHOST_CA_FILE"] = smarthost.certificate }
        return values.merging(extra) { $1 }
    }

    // MARK: RELAY_SMARTHOST

    @Test func relaySmarthostDeliversWithAuthOverSTARTTLS() async throws {
        try await Self.withSmarthost({ configuration, smarthost in
            try Self.environment(Self.smarthostVariables(smarthost), &configuration)
        }) { relay, smarthost, _ in
            // No MX record anywhere: without the smarthost this domain would fail as NXDOMAIN.
            let id = try await Self.send(relay, to: "bob@nowhere.test")
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients.first?["status"] as? String == "delivered", "\(recipients)")
            #expect(recipients.first?["mx"] as? String == Self.hostname)
            let received = try smarthost.sink.received()
            #expect(received.count == 1)
            #expect(received.first?.authUser == "relay-user")
            #expect(received.first?.tls == true)
            #expect(received.first?.recipients == ["bob@nowhere.test"])
            let stored = try await relay.storedBody(id)
            #expect(RelayHarness.withoutDKIMSignatures(received.first?.data ?? []) == stored, "the bytes arrived unchanged")
            #expect(try smarthost.sink.authAttempts() == [.init(mechanism: "PLAIN", tls: true)])

            let transcript = try await Self.transcript(relay, id)
            let texts = transcript.compactMap { $0["text"] as? String }
            #expect(texts.contains("STARTTLS"))
            #expect(texts.contains("AUTH PLAIN ***"))
            #expect(texts.contains { $0.hasPrefix("235") })
            Self.expectNoCredentials(in: try await relay.send(.GET, "/v1/messages/\(id)/attempts").text)
        }
    }

    @Test func authLoginWhenPlainIsNotOffered() async throws {
        let loginOnly = RecordingSMTPSink.Authentication(username: "relay-user", password: "s3cret pass", mechanisms: ["LOGIN"])
        try await Self.withSmarthost(authentication: loginOnly, { configuration, smarthost in
            try Self.environment(Self.smarthostVariables(smarthost), &configuration)
        }) { relay, smarthost, _ in
            let id = try await Self.send(relay, to: "carol@nowhere.test")
            #expect(try await relay.waitUntilFinal(id).first?["status"] as? String == "delivered")
            #expect(try smarthost.sink.received().first?.authUser == "relay-user")
            #expect(try smarthost.sink.authAttempts() == [.init(mechanism: "LOGIN", tls: true)])
            let clientLines = try await Self.transcript(relay, id).filter { $0["direction"] as? String == "client" }
                .compactMap { $0["text"] as? String }
            let auth = try #require(clientLines.firstIndex(of: "AUTH LOGIN"))
            #expect(Array(clientLines[auth...].prefix(3)) == ["AUTH LOGIN", "***", "***"])
            Self.expectNoCredentials(in: try await relay.send(.GET, "/v1/messages/\(id)/attempts").text)
        }
    }

    @Test func wrongPasswordDefersAndDeliversNothing() async throws {
        try await Self.withSmarthost({ configuration, smarthost in
            try Self.environment(Self.smarthostVariables(smarthost, password: "wrong"), &configuration)
        }) { relay, smarthost, _ in
            let id = try await Self.send(relay, to: "dave@nowhere.test")
            let recipient = try await Self.waitUntilDeferred(relay, id)
            // Relay's own settings failed, not the recipient: no reply is held against it, the error says it all.
            let error = recipient["last_error"] as? String ?? ""
            #expect(error.hasPrefix("smarthost.test [127.0.0.7]: authentication failed (credentials rejected)"), "\(recipient)")
            #expect(error.hasSuffix("535 5.7.8 Authentication credentials invalid"))
            #expect(recipient["last_reply"] is NSNull)
            #expect(recipient["mx"] as? String == Self.hostname)
            let texts = try await Self.transcript(relay, id).compactMap { $0["text"] as? String }
            #expect(texts.contains("AUTH PLAIN ***"))
            #expect(try smarthost.sink.received().isEmpty)
        }
    }

    @Test func certificatesAreVerifiedByDefault() async throws {
        try await Self.withSmarthost({ configuration, smarthost in
            // No RELAY_SMARTHOST_CA_FILE: the self-signed certificate is not trusted.
            try Self.environment(Self.smarthostVariables(smarthost, caFile: false), &configuration)
        }) { relay, smarthost, _ in
            let id = try await Self.send(relay, to: "erin@nowhere.test")
            let recipient = try await Self.waitUntilDeferred(relay, id)
            #expect((recipient["last_error"] as? String ?? "").contains("TLS handshake failed"), "\(recipient)")
            #expect(try smarthost.sink.received().isEmpty)
            #expect(try smarthost.sink.authAttempts().isEmpty, "no credentials for an unverified server")
        }
    }

    @Test func credentialsAreNeverSentWithoutTLS() async throws {
        // A smarthost that would take credentials in plaintext (AUTH offered, no STARTTLS).
        let plaintext = RecordingSMTPSink.Authentication(username: "relay-user", password: "s3cret pass", plaintext: true)
        try await Self.withSmarthost(tls: false, authentication: plaintext, { configuration, smarthost in
            try Self.environment(Self.smarthostVariables(smarthost), &configuration)
        }) { relay, smarthost, _ in
            let id = try await Self.send(relay, to: "frank@nowhere.test")
            let recipient = try await Self.waitUntilDeferred(relay, id)
            #expect((recipient["last_error"] as? String ?? "").contains("TLS is required"), "\(recipient)")
            #expect(try smarthost.sink.authAttempts().isEmpty, "no AUTH command reached the server")
            #expect(try smarthost.sink.received().isEmpty)
        }
        // Nor can they be configured without TLS.
        #expect(throws: ConfigurationError.self) {
            try RelayConfiguration(values: ["RELAY_SMARTHOST": "smarthost.test:25", "RELAY_SMARTHOST_TLS": "none",
                                            "RELAY_SMARTHOST_USERNAME": "u", "RELAY_SMARTHOST_PASSWORD": "p"])
        }
    }

    // MARK: Database routes

    @Test func databaseRouteTakesOnlyMatchingDomains() async throws {
        try await Self.withSmarthost(mxSink: true, { configuration, smarthost in
            configuration.smarthostCAFile = smarthost.certificate
            configuration.routeCacheTime = .zero
        }) { relay, smarthost, mx in
            let mx = try #require(mx)
            let created = try await relay.send(.POST, "/admin/routes", json: [
                "domain": "*.dest.test", "host": Self.hostname, "port": smarthost.port, "username": "relay-user",
                "password": "s3cret pass", "tls": "starttls",
            ] as [String: any Sendable], bearer: relay.adminToken)
            #expect(created.status == 201, "\(created.text)")
            let routeID = try #require(created.json["id"] as? String)

            // sub.dest.test has no DNS records at all: only the route can deliver it. dest.test itself is not a
            // subdomain of dest.test and goes to its MX.
            let routed = try await Self.send(relay, to: "gina@sub.dest.test")
            let direct = try await Self.send(relay, to: "hank@dest.test")
            #expect(try await relay.waitUntilFinal(routed).first?["mx"] as? String == Self.hostname)
            #expect(try await relay.waitUntilFinal(direct).first?["mx"] as? String == "mx1.dest.test")
            #expect(try smarthost.sink.received().map(\.recipients) == [["gina@sub.dest.test"]])
            #expect(try smarthost.sink.received().first?.authUser == "relay-user")
            #expect(try mx.received().map(\.recipients) == [["hank@dest.test"]])
            #expect(try mx.received().first?.authUser == nil)

            // Deleting the route sends the subdomain to its MX again, without a restart.
            #expect(try await relay.send(.DELETE, "/admin/routes/\(routeID)", bearer: relay.adminToken).status == 204)
            relay.dns.set("sub.dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
            let afterDelete = try await Self.send(relay, to: "ivy@sub.dest.test")
            #expect(try await relay.waitUntilFinal(afterDelete).first?["mx"] as? String == "mx1.dest.test")
            #expect(try smarthost.sink.received().count == 1)
        }
    }

    @Test func databaseRouteBeatsRelaySmarthostAndImplicitTLSWorks() async throws {
        try await Self.withSmarthost(implicitTLS: true, { configuration, smarthost in
            // RELAY_SMARTHOST points at a port where nothing listens: used, it would defer.
            try Self.environment(["RELAY_SMARTHOST": "\(Self.hostname):\(try freePort(host: Self.address))"], &configuration)
            configuration.routeCacheTime = .zero
        }) { relay, smarthost, _ in
            let created = try await relay.send(.POST, "/admin/routes", json: [
                "domain": "implicit.test", "host": Self.address, "port": smarthost.port, "username": "relay-user",
                "password": "s3cret pass", "tls": "implicit", "verify_certificate": false,
            ] as [String: any Sendable], bearer: relay.adminToken)
            #expect(created.status == 201, "\(created.text)")
            let id = try await Self.send(relay, to: "jo@implicit.test")
            let recipient = try await relay.waitUntilFinal(id).first ?? [:]
            #expect(recipient["status"] as? String == "delivered", "\(recipient)")
            #expect(recipient["mx"] as? String == Self.address)
            #expect(try smarthost.sink.received().first?.authUser == "relay-user")
            #expect(try smarthost.sink.received().first?.tls == true)

            let other = try await Self.send(relay, to: "kim@other.test")
            let deferred = try await Self.waitUntilDeferred(relay, other)
            #expect((deferred["last_error"] as? String ?? "").contains("connection refused"), "RELAY_SMARTHOST took it: \(deferred)")
        }
    }

    // MARK: Configuration

    @Test func relaySmarthostVariablesParse() throws {
        let parsed = try RelayConfiguration(values: ["RELAY_SMARTHOST": "[2001:db8::25]:2525", "RELAY_SMARTHOST_USERNAME": "u",
                                                     "RELAY_SMARTHOST_PASSWORD": " p w ", "RELAY_SMARTHOST_TLS": "IMPLICIT",
                                                     "RELAY_SMARTHOST_VERIFY_CERTIFICATE": "false"]).smarthost
        #expect(parsed == SMTPRoute(id: "env", pattern: .any, host: "2001:db8::25", port: 2525, username: "u", password: " p w ",
                                    tls: .implicit, verifyCertificate: false))
        let defaults = try RelayConfiguration(values: ["RELAY_SMARTHOST": "smtp.provider.test:587"]).smarthost
        #expect(defaults?.tls == .startTLS)
        #expect(defaults?.verifyCertificate == true)
        #expect(defaults?.username == nil)
        #expect(try RelayConfiguration(values: [:]).smarthost == nil)
        for values in [
            ["RELAY_SMARTHOST": "smtp.provider.test"], ["RELAY_SMARTHOST": "smtp.provider.test:0"],
            ["RELAY_SMARTHOST": "bad host:25"], ["RELAY_SMARTHOST": "h.test:25", "RELAY_SMARTHOST_TLS": "ssl"],
            ["RELAY_SMARTHOST": "h.test:25", "RELAY_SMARTHOST_USERNAME": "u"],
            ["RELAY_SMARTHOST": "h.test:25", "RELAY_SMARTHOST_VERIFY_CERTIFICATE": "maybe"],
            ["RELAY_SMARTHOST_USERNAME": "u", "RELAY_SMARTHOST_PASSWORD": "p"],
            ["RELAY_SMARTHOST_CA_FILE": "/nonexistent/ca.pem"],
        ] {
            #expect(throws: ConfigurationError.self, "\(values)") { try RelayConfiguration(values: values) }
        }
    }
}
