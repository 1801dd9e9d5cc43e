import DNSTestServer
import Foundation
import Logging
import PostgresNIO
import RelayStore
import RelayTestSupport
import Testing

/// The `relay` binary as an operator runs it: crash safety under kill -9, the managed local PostgreSQL,
/// the CLI, and graceful shutdown on SIGTERM.
@Suite struct ProcessTests {
    static func relayBinary() throws -> String {
        let path = repositoryRoot() + "/.build/debug/relay"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSupportError("\(path) is missing: build it first (scripts/test runs swift build)")
        }
        return path
    }

    /// Starts `relay serve` with the environment; waits until /readyz answers 200.
    static func startRelay(_ environment: [String: String], port: Int, log: String, readyTimeout: Duration = RelayHarness.startupTimeout) async throws -> ChildProcess {
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        env["RELAY_HTTP_ADDR"] = "127.0.0.1:\(port)"
        let child = try ChildProcess(try relayBinary(), ["serve"], environment: env, logPath: log)
        try await waitUntil("relay serve is ready", timeout: readyTimeout) {
            if !child.isRunning {
                throw TestSupportError("relay exited early: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
            return (try? await RelayHarness.send(port: port, .GET, "/readyz").status) == 200
        }
        return child
    }

    @Test func killDashNineWhileDeliveringLosesNothing() async throws {
        let databaseURL = try await TestDatabase.create()
        let dns = try await DNSTestServer.start(negativeTTL: 0)
        let mxPort = try freePort()
        let sink = try await RecordingSMTPSink.start(host: "127.0.0.7", port: mxPort, slowSeconds: 0.4)
        defer { Task { await sink.stop(); try? await dns.stop() } }
        dns.set("crash.test", [.mx(preference: 10, exchange: "mx.crash.test")])
        dns.set("mx.crash.test", [.a("127.0.0.7")])
        let port = try freePort()
        let log = NSTemporaryDirectory() + "relay-crash-\(UUID().uuidString).log"
        let environment = [
            "DATABASE_URL": databaseURL, "RELAY_DNS_SERVERS": "\(dns.address.host):\(dns.address.port)",
            "RELAY_MX_PORT": "\(mxPort)", "RELAY_LEASE_TIME": "2s", "RELAY_RETRY_INITIAL": "1s", "RELAY_RETRY_MAX": "2s",
            "RELAY_HOSTNAME": "relay.test", "RELAY_WORKER_CONCURRENCY": "16", "RELAY_LOG_LEVEL": "warning",
            "RELAY_SUBMISSION_ADDR": "off", "RELAY_SUBMISSIONS_ADDR": "off", "RELAY_INBOUND_ADDR": "off", "RELAY_REQUIRE_VERIFIED_DOMAINS": "false",
        ]
        let first = try await Self.startRelay(environment, port: port, log: log)
        let (database, task) = try TestDatabase.connect(databaseURL)
        defer { task.cancel() }
        let (_, key) = try await database.createTenant(name: "crash")
        #expect(try await RelayHarness.send(port: port, .POST, "/v1/domains", json: ["name": "example.com"], bearer: key).status == 201)

        // 500 messages, each to a slow* recipient so that many are in flight when the process dies.
        let count = 500
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            var ids: [String] = []
            for index in 0..<count {
                if index >= 16 { ids.append(try await group.next()!) }
                group.addTask {
                    let result = try await RelayHarness.send(port: port, .POST, "/v1/messages", json: [
                        "from": "a@example.com", "to": "slow\(index)@crash.test", "subject": "crash \(index)", "text": "n=\(index)",
                    ], bearer: key)
                    guard result.status == 202, let id = result.json["id"] as? String else {
                        throw TestSupportError("accept failed: \(result.status) \(result.text)")
                    }
                    return id
                }
            }
            for try await id in group { ids.append(id) }
            return ids
        }
        #expect(Set(ids).count == count)
        try await waitUntil("some messages are delivered", timeout: .seconds(60)) { try sink.received().count >= 20 }
        first.signal(SIGKILL)
        #expect(await first.waitForExit(timeout: .seconds(10)) == 128 + SIGKILL)
        let deliveredBeforeCrash = try sink.received().count
        #expect(deliveredBeforeCrash < count, "the crash must happen while messages are still in flight")

        let second = try await Self.startRelay(environment, port: port, log: log)
        defer { Task { await second.stop() } }
        try await waitUntil("every message is delivered after the restart", timeout: .seconds(120), interval: .milliseconds(200)) {
            try await database.queueDepth() == (0, 0)
        }
        // Every message reached the sink (duplicates are possible only for deliveries cut by the kill).
        let subjects = try sink.received().compactMap { received -> String? in
            String(decoding: received.data, as: UTF8.self).split(separator: "\r\n").first { $0.hasPrefix("Subject: ") }.map(String.init)
        }
        #expect(Set(subjects).count == count, "every accepted message must arrive")
        let duplicates = subjects.count - Set(subjects).count
        print("[crash] \(deliveredBeforeCrash) delivered before kill -9, \(count) after restart, \(duplicates) duplicates (in-flight at the kill)")
        #expect(duplicates <= 32, "duplicates only for deliveries in flight at the kill (bounded by the worker concurrency and the outcome batch)")
        for id in ids.shuffled().prefix(25) {
            let message = try await RelayHarness.send(port: port, .GET, "/v1/messages/\(id)", bearer: key)
            #expect(message.json["status"] as? String == "delivered")
        }
    }

    @Test func managedPostgresServeCreateTenantAndGracefulShutdown() async throws {
        let dataDirectory = NSTemporaryDirectory() + "relay-managed-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let port = try freePort()
        let log = dataDirectory + ".log"
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = nil
        environment["RELAY_DATA_DIR"] = dataDirectory
        environment["RELAY_ADMIN_TOKEN"] = "managed-admin"
        environment["RELAY_DNS_SERVERS"] = "127.0.0.1:9"
        environment["RELAY_SUBMISSION_ADDR"] = "127.0.0.1:\(try freePort())"
        environment["RELAY_SUBMISSIONS_ADDR"] = "off"
        environment["RELAY_INBOUND_ADDR"] = "off"
        environment["RELAY_REQUIRE_VERIFIED_DOMAINS"] = nil
        environment["RELAY_SECRET_KEY"] = nil
        let serve = try ChildProcess(try Self.relayBinary(), ["serve", "--http-addr", "127.0.0.1:\(port)"], environment: environment, logPath: log)
        try await waitUntil("relay serve with a managed PostgreSQL is ready", timeout: .seconds(90)) {
            if !serve.isRunning { throw TestSupportError("relay exited: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")") }
            return (try? await RelayHarness.send(port: port, .GET, "/readyz").status) == 200
        }
        #expect(FileManager.default.fileExists(atPath: dataDirectory + "/postgres/PG_VERSION"))
        let firstStartLog = try String(contentsOfFile: log, encoding: .utf8)
        #expect(firstStartLog.contains("relay tenant create"), "an empty database tells the operator how to create a tenant")

        // The CLI reuses the running managed server.
        let cliLog = dataDirectory + "-cli.log"
        let cli = try ChildProcess(try Self.relayBinary(), ["tenant", "create", "acme", "--json"], environment: environment, logPath: cliLog)
        #expect(await cli.waitForExit(timeout: .seconds(60)) == 0)
        let output = try String(contentsOfFile: cliLog, encoding: .utf8)
        let jsonLine = try #require(output.split(separator: "\n").first { $0.hasPrefix("{") })
        let created = try #require(try JSONSerialization.jsonObject(with: Data(jsonLine.utf8)) as? [String: String])
        #expect(created["name"] == "acme")
        let key = try #require(created["api_key"])
        #expect(key.hasPrefix("rly_"))
        #expect(try await RelayHarness.send(port: port, .GET, "/v1/domains", bearer: key).status == 200)
        // The managed local mode seals DKIM keys with a key generated into the data directory, and lets a
        // domain send before its DNS records verify (a laptop has no public DNS).
        #expect(try await RelayHarness.send(port: port, .POST, "/v1/domains", json: ["name": "example.com"], bearer: key).status == 201)
        let secret = try FileManager.default.attributesOfItem(atPath: dataDirectory + "/secret.key")
        #expect((secret[.posixPermissions] as? Int) == 0o600)
        let sent = try await RelayHarness.send(port: port, .POST, "/v1/messages", json: [
            "from": "app@example.com", "to": "bob@[127.0.0.1]", "subject": "local", "text": "unverified is fine here"], bearer: key)
        #expect(sent.status == 202, "\(sent.text)")

        serve.signal(SIGTERM)
        #expect(await serve.waitForExit(timeout: .seconds(60)) == 0, "SIGTERM is a graceful shutdown with exit status 0")
        #expect(!FileManager.default.fileExists(atPath: dataDirectory + "/postgres/postmaster.pid"), "the managed PostgreSQL is stopped too")
    }

    @Test func sigtermWhileTheDatabaseIsDownStillExitsCleanly() async throws {
        let database = try await ProxiedTestDatabase.create()
        let proxy = try await database.startProxy()
        let port = try freePort()
        let log = NSTemporaryDirectory() + "relay-dbdown-\(UUID().uuidString).log"
        let relay = try await Self.startRelay([
            "DATABASE_URL": database.url, "RELAY_DNS_SERVERS": "127.0.0.1:9", "RELAY_LOG_LEVEL": "warning",
            "RELAY_SUBMISSION_ADDR": "off", "RELAY_SUBMISSIONS_ADDR": "off", "RELAY_INBOUND_ADDR": "off", "RELAY_REQUIRE_VERIFIED_DOMAINS": "false",
        ], port: port, log: log)
        await proxy.stop()
        try await waitUntil("readiness reports the lost database", timeout: .seconds(30)) {
            (try? await RelayHarness.send(port: port, .GET, "/readyz").status) == 503
        }
        relay.signal(SIGTERM)
        let status = await relay.waitForExit(timeout: .seconds(60))
        #expect(status == 0, "graceful shutdown must not hang on an unreachable database: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        if status == nil { relay.signal(SIGKILL) }
    }

    /// SIGTERM first turns /readyz to 503 `draining` while the HTTP server still answers (so a load balancer's
    /// health check takes the node out), and only after RELAY_DRAIN_DELAY do the listeners close.
    @Test func sigtermTurnsReadinessToDrainingBeforeTheListenersClose() async throws {
        let databaseURL = try await TestDatabase.create()
        let port = try freePort()
        let log = NSTemporaryDirectory() + "relay-drain-\(UUID().uuidString).log"
        let relay = try await Self.startRelay([
            "DATABASE_URL": databaseURL, "RELAY_DNS_SERVERS": "127.0.0.1:9", "RELAY_LOG_LEVEL": "notice",
            "RELAY_DRAIN_DELAY": "3s", "RELAY_SUBMISSION_ADDR": "off", "RELAY_SUBMISSIONS_ADDR": "off",
            "RELAY_INBOUND_ADDR": "off", "RELAY_REQUIRE_VERIFIED_DOMAINS": "false",
        ], port: port, log: log)
        let signalled = ContinuousClock.now
        relay.signal(SIGTERM)
        var draining: RelayHarness.HTTPResult?
        try await waitUntil("/readyz answers 503 draining", timeout: .seconds(3)) {
            let result = try? await RelayHarness.send(port: port, .GET, "/readyz")
            if result?.status == 503 { draining = result }
            return draining != nil
        }
        #expect(draining?.errorCode == "draining")
        // Still serving during the delay: liveness and every other route answer.
        #expect(try await RelayHarness.send(port: port, .GET, "/healthz").status == 200)
        #expect(relay.isRunning)
        let status = await relay.waitForExit(timeout: .seconds(60))
        #expect(status == 0)
        #expect(ContinuousClock.now - signalled >= .seconds(3), "the listeners stayed open for the drain delay")
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.contains("draining: /readyz answers 503"), "\(output)")
    }
}
