import AsyncHTTPClient
import DNSClient
import DNSTestServer
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import PostgresNIO
import RelayApp
import RelayStore
import RelayTestSupport
import ServiceLifecycle
import SMTPServer
import Synchronization
import Testing

/// Swift Testing has its own `Attachment`; the tests mean MailMessage's.
typealias Attachment = MailMessage.Attachment
import MailMessage

/// One Relay application running in-process against its own fresh database and an in-process DNS server,
/// with a tenant, an API key and the sender domain `example.com` registered.
final class RelayHarness: Sendable {
    let port: Int
    let dns: DNSTestServer
    let databaseURL: String
    let apiKey: String
    let tenantID: String
    let adminToken = "test-admin-token"
    let database: RelayDatabase
    /// Ports of the SMTP submission listeners (STARTTLS, implicit TLS) when started with `smtp: true`.
    let submissionPort: Int?
    let submissionsPort: Int?
    /// Port of the inbound (bounce) listener when started with `inbound: true`.
    let inboundPort: Int?
    private let databaseTask: Task<Void, Never>
    private let group: ServiceGroup
    private let runTask: Task<Void, any Error>
    private let lifecycle: LifecycleLog

    /// How long a start may take: the schema gate opens only after migrations, and when the whole suite starts
    /// at once dozens of Relays migrate their databases together on two cores (one CI run needed more than 30 s).
    static let startupTimeout: Duration = .seconds(120)

    /// Starts Relay; `configure` adjusts the configuration (MX port, retry times, …).
    static func start(dns: DNSTestServer? = nil, databaseURL: String? = nil, smtp: Bool = false, inbound: Bool = false,
                      _ configure: (inout RelayConfiguration) -> Void = { _ in }) async throws -> RelayHarness {
        let dns = if let dns { dns } else { try await DNSTestServer.start(negativeTTL: 0) }
        let url = if let databaseURL { databaseURL } else { try await TestDatabase.create() }
        var configuration = RelayConfiguration()
        configuration.databaseURL = url
        configuration.httpHost = "127.0.0.1"
        configuration.httpPort = 0
        configuration.hostname = "relay.test"
        configuration.adminToken = "test-admin-token"
        configuration.dnsServers = [dns.address]
        configuration.retryPolicy.initialDelay = .seconds(1)
        configuration.retryPolicy.maximumDelay = .seconds(2)
        configuration.workerConcurrency = 16
        configuration.submissionAddress = smtp ? .init(host: "127.0.0.1", port: 0) : nil
        configuration.submissionsAddress = smtp ? .init(host: "127.0.0.1", port: 0) : nil
        configuration.inboundAddress = inbound ? .init(host: "127.0.0.1", port: 0) : nil
        configuration.dataDirectory = NSTemporaryDirectory() + "relay-harness-\(UUID().uuidString.prefix(8))"
        // Most suites are not about DNS verification; DomainTests turn the requirement back on.
        configuration.requireVerifiedDomains = false
        configure(&configuration)
        let smtpPorts = Mutex<[String: Int]>([:])
        let lifecycle = LifecycleLog()
        let (port, group, runTask) = try await startApplication(configuration, lifecycle: lifecycle, onSubmissionBound: { security, port in
            smtpPorts.withLock { $0[security == .startTLS ? "587" : "465"] = port }
        }, onInboundBound: { port in
            smtpPorts.withLock { $0["25"] = port }
        })
        let expected = (smtp ? 2 : 0) + (inbound ? 1 : 0)
        if expected > 0 {
            try await waitUntil("the SMTP listeners are bound", timeout: startupTimeout) { smtpPorts.withLock { $0.count } == expected }
        }
        let (database, databaseTask) = try TestDatabase.connect(url)

        // Wait for migrations, then create a tenant (in the store, so it works without an admin token) and
        // register its sender domain through the API.
        try await waitUntil("Relay is ready", timeout: startupTimeout) {
            (try? await Self.send(port: port, .GET, "/readyz").status) == 200
        }
        let (tenant, key) = try await database.createTenant(name: "acme")
        // As the API asks of its clients: a 503 (the database did not answer in time — here, when dozens of
        // Relays register domains and generate RSA keys at once on two cores) is retried; the name is free until
        // a registration commits, and a retry after one that did commit is a 409.
        var domain: HTTPResult?
        try await waitUntil("the domain is registered", timeout: startupTimeout, interval: .milliseconds(500)) {
            domain = try await Self.send(port: port, .POST, "/v1/domains", json: ["name": "example.com"], bearer: key)
            return domain?.status != 503
        }
        guard let domain, domain.status == 201 || domain.status == 409 else {
            throw TestSupportError("domain registration failed: \(domain?.text ?? "no answer")")
        }
        let ports = smtpPorts.withLock { $0 }
        return RelayHarness(port: port, dns: dns, databaseURL: url, apiKey: key, tenantID: tenant.id.uuidString.lowercased(),
                            database: database, submissionPort: ports["587"], submissionsPort: ports["465"],
                            inboundPort: ports["25"], databaseTask: databaseTask, group: group, runTask: runTask,
                            lifecycle: lifecycle)
    }

    /// Runs the application in this process until its group is shut down; returns its HTTP port once it listens.
    static func startApplication(
        _ configuration: RelayConfiguration,
        lifecycle: LifecycleLog = LifecycleLog(),
        onSubmissionBound: @escaping @Sendable (SMTPSubmissionServer.Security, Int) -> Void = { _, _ in },
        onInboundBound: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> (Int, ServiceGroup, Task<Void, any Error>) {
        let logger = lifecycle.logger(label: "relay-test")
        let boundPort = Mutex<Int?>(nil)
        let location = try DatabaseLocation(url: configuration.databaseURL ?? "")
        let app = try buildApplication(configuration: configuration, database: location, logger: logger, onServerRunning: { channel in
            boundPort.withLock { $0 = channel.localAddress?.port }
        }, onSubmissionBound: onSubmissionBound, onInboundBound: onInboundBound)
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let runTask = Task { try await group.run() }
        try await waitUntil("the HTTP server listens", timeout: startupTimeout) { boundPort.withLock { $0 } != nil }
        return (boundPort.withLock { $0 }!, group, runTask)
    }

    private init(port: Int, dns: DNSTestServer, databaseURL: String, apiKey: String, tenantID: String,
                 database: RelayDatabase, submissionPort: Int?, submissionsPort: Int?, inboundPort: Int?,
                 databaseTask: Task<Void, Never>, group: ServiceGroup, runTask: Task<Void, any Error>, lifecycle: LifecycleLog) {
        self.lifecycle = lifecycle
        self.submissionPort = submissionPort
        self.submissionsPort = submissionsPort
        self.inboundPort = inboundPort
        self.port = port
        self.dns = dns
        self.databaseURL = databaseURL
        self.apiKey = apiKey
        self.tenantID = tenantID
        self.database = database
        self.databaseTask = databaseTask
        self.group = group
        self.runTask = runTask
    }

    /// Graceful shutdown, as on SIGTERM; throws if the application failed.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        // A graceful shutdown that never ends is a bug to report, not a test run to hang until CI's limit.
        let runTask = self.runTask
        let ended = Mutex(false)
        Task { _ = try? await runTask.value; ended.withLock { $0 = true } }
        let finished = (try? await waitUntil("the graceful shutdown ends", timeout: Self.stopTimeout) { ended.withLock { $0 } }) != nil
        databaseTask.cancel()
        try? await dns.stop()
        guard finished else {
            let waitingFor = lifecycle.unfinishedShutdowns
            throw TestSupportError("""
                Relay on port \(port) did not finish its graceful shutdown within \(Self.stopTimeout); \
                services told to stop that have not finished: \(waitingFor.isEmpty ? "none" : waitingFor.joined(separator: " | ")); \
                last lifecycle events: \(lifecycle.recorded.suffix(12).joined(separator: " | "))
                """)
        }
        try await runTask.value
    }

    /// How long `stop()` waits for a graceful shutdown.
    static let stopTimeout: Duration = .seconds(120)

    /// An HTTP response with its body parsed as a JSON object when it is one.
    struct HTTPResult: Sendable {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] {
            ((try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]) ?? [:]
        }
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
        var errorField: String? { (json["error"] as? [String: Any])?["field"] as? String }
    }

    static func send(port: Int, _ method: HTTPMethod, _ path: String, json: (any Sendable)? = nil, rawBody: [UInt8]? = nil,
                     bearer: String? = nil, headers extra: [String: String] = [:]) async throws -> HTTPResult {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
        } else if let rawBody {
            request.body = .bytes(ByteBuffer(bytes: rawBody))
        }
        // Generous: a 500-message batch validates each item against the database, slowly while the suite starts.
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(90))
        let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return HTTPResult(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
                          body: Array(body.readableBytesView))
    }

    /// A request with this tenant's API key (or another bearer).
    func send(_ method: HTTPMethod, _ path: String, json: (any Sendable)? = nil, rawBody: [UInt8]? = nil,
              bearer: String? = nil, headers: [String: String] = [:]) async throws -> HTTPResult {
        try await Self.send(port: port, method, path, json: json, rawBody: rawBody, bearer: bearer ?? apiKey, headers: headers)
    }

    /// POST /v1/messages, expecting 202; returns the message id.
    func sendMessage(_ body: [String: any Sendable]) async throws -> String {
        let result = try await send(.POST, "/v1/messages", json: body)
        guard result.status == 202, let id = result.json["id"] as? String else {
            throw TestSupportError("send failed: \(result.status) \(result.text)")
        }
        return id
    }

    /// GET /v1/messages/{id} as JSON.
    func message(_ id: String) async throws -> [String: Any] {
        let result = try await send(.GET, "/v1/messages/\(id)")
        guard result.status == 200 else { throw TestSupportError("GET message failed: \(result.status) \(result.text)") }
        return result.json
    }

    /// The recipients of a message as JSON objects.
    func recipients(_ id: String) async throws -> [[String: Any]] {
        try await message(id)["recipients"] as? [[String: Any]] ?? []
    }

    /// Polls until every recipient of the message has reached a final status; returns the recipients. The bound is
    /// generous: while the integration tier starts (about 60 suites at once on two cores) one delivery in
    /// DomainTests took more than 30 s; a message that never gets there still fails the test.
    @discardableResult
    func waitUntilFinal(_ id: String, timeout: Duration = .seconds(90)) async throws -> [[String: Any]] {
        var recipients: [[String: Any]] = []
        try await waitUntil("message \(id) reaches a final state", timeout: timeout) {
            recipients = try await self.recipients(id)
            return !recipients.isEmpty && recipients.allSatisfy { !["queued", "deferred"].contains($0["status"] as? String ?? "") }
        }
        return recipients
    }

    /// The stored message bytes.
    /// A delivered message without the DKIM-Signature fields the worker prepends at delivery (each a field with
    /// its folded continuation lines), i.e. the stored message as it was accepted.
    static func withoutDKIMSignatures(_ data: [UInt8]) -> [UInt8] {
        var rest = data[...]
        let prefix = Array("DKIM-Signature:".utf8)
        while rest.starts(with: prefix) {
            // The field ends at the first CRLF not followed by WSP.
            var index = rest.startIndex
            while index + 1 < rest.endIndex {
                if rest[index] == 0x0D, rest[index + 1] == 0x0A,
                   index + 2 >= rest.endIndex || (rest[index + 2] != 0x20 && rest[index + 2] != 0x09) { break }
                index += 1
            }
            rest = rest[min(index + 2, rest.endIndex)...]
        }
        return Array(rest)
    }

    func storedBody(_ id: String) async throws -> [UInt8] {
        guard let uuid = UUID(uuidString: id), let body = try await database.messageBody(messageID: uuid) else {
            throw TestSupportError("no stored body for \(id)")
        }
        return Array(body.readableBytesView)
    }
}

/// A port that is free on 127.0.0.1, used for every loopback MX address of one test (127.0.0.N:port).
func mxPort() throws -> Int { try freePort() }

extension RelayHarness {
    /// A Relay whose `dest.test` is served by one MX (`exchange` at `address`) that is a recording sink (holding the
    /// end of data of slow* recipients for `sinkSlowSeconds`); both are stopped afterwards, also when `body` throws.
    static func withDestination(address: String = "127.0.0.2", exchange: String = "mx1.dest.test", smtp: Bool = false,
                                inbound: Bool = false, sinkSlowSeconds: Double? = nil,
                                _ configure: @escaping (inout RelayConfiguration) -> Void = { _ in },
                                _ body: (RelayHarness, RecordingSMTPSink) async throws -> Void) async throws {
        // A port free on the sink's own address, chosen again if another test's peer took it meanwhile.
        let sink = try await RecordingSMTPSink.start(host: address, slowSeconds: sinkSlowSeconds)
        let port = sink.port
        let relay: RelayHarness
        do {
            relay = try await RelayHarness.start(smtp: smtp, inbound: inbound) { configuration in
                configuration.mxPort = port
                configure(&configuration)
            }
        } catch {
            await sink.stop()
            throw error
        }
        relay.dns.set("dest.test", [.mx(preference: 10, exchange: exchange)])
        relay.dns.set(exchange, [.a(address)])
        do {
            try await body(relay, sink)
        } catch {
            try? await relay.stop()
            await sink.stop()
            throw error
        }
        try await relay.stop()
        await sink.stop()
    }
}

extension RelayHarness {
    /// A Relay serving the API only (no worker: accepted mail stays queued), stopped afterwards, also when `body`
    /// throws.
    static func withAPIOnly(_ body: (RelayHarness) async throws -> Void) async throws {
        let relay = try await RelayHarness.start { $0.roles = [.api] }
        do {
            try await body(relay)
        } catch {
            try? await relay.stop()
            throw error
        }
        try await relay.stop()
    }
}
