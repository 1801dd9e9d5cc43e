import DNSTestServer
import Foundation
import RelayTestSupport
import Testing

/// The dashboard in a real browser (headless Chromium driven by selenium, Tests/Peers/dashboard_check.py)
/// against a running `relay serve` with delivered, bounced and deferred mail; the check compares every figure
/// on the page with `/v1/stats` and `/admin/stats`, opens a message's SMTP transcript, and saves screenshots
/// to test-output/dashboard/ (the CI artefact). The same run checks the JSON log format.
@Suite struct DashboardTests {
    static func outputDirectory() -> String {
        ProcessInfo.processInfo.environment["RELAY_TEST_OUTPUT"] ?? (repositoryRoot() + "/test-output")
    }

    @Test func theDashboardShowsWhatTheAPISaysInARealBrowser() async throws {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        try #require(chromium.allSatisfy { FileManager.default.isExecutableFile(atPath: $0) },
                     "chromium and chromium-driver are needed (scripts/install-test-peers installs them)")
        let mxPort = try mxPort()
        let sink = try await RecordingSMTPSink.start(host: "127.0.0.2", port: mxPort)
        let dns = try await DNSTestServer.start(negativeTTL: 0)
        dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
        dns.set("mx1.dest.test", [.a("127.0.0.2")])
        dns.set("gmail.com", [.mx(preference: 5, exchange: "gmail-smtp-in.l.google.com")])
        dns.set("gmail-smtp-in.l.google.com", [.a("127.0.0.2")])
        let port = try freePort()
        let log = NSTemporaryDirectory() + "relay-dashboard-\(UUID().uuidString).log"
        let relay = try await ProcessTests.startRelay([
            "DATABASE_URL": try await TestDatabase.create(), "RELAY_DNS_SERVERS": "\(dns.address.host):\(dns.address.port)",
            "RELAY_MX_PORT": "\(mxPort)", "RELAY_RETRY_INITIAL": "1h", "RELAY_RETRY_MAX": "1h",
            "RELAY_HOSTNAME": "relay.test", "RELAY_ADMIN_TOKEN": "dashboard-admin", "RELAY_LOG_FORMAT": "json",
            "RELAY_SUBMISSION_ADDR": "off", "RELAY_SUBMISSIONS_ADDR": "off", "RELAY_INBOUND_ADDR": "off", "RELAY_REQUIRE_VERIFIED_DOMAINS": "false",
            // 2 hard bounces in 19 sends (10.5%) pause the tenant: the page must say so.
            "RELAY_REPUTATION_MIN_SENDS": "19",
            // Webhook endpoints on loopback (nothing listens there): the page lists them with their state.
            "RELAY_WEBHOOK_ALLOW_PRIVATE": "true",
        ], port: port, log: log)
        defer { try? FileManager.default.removeItem(atPath: log) }
        do {
            let tenant = try await RelayHarness.send(port: port, .POST, "/admin/tenants", json: ["name": "dash"], bearer: "dashboard-admin")
            let key = try #require(tenant.json["api_key"] as? String)
            _ = try await RelayHarness.send(port: port, .POST, "/v1/domains", json: ["name": "example.com"], bearer: key)
            let hook = try await RelayHarness.send(port: port, .POST, "/v1/webhooks", json: [
                "url": "http://127.0.0.1:9/paused-by-hand", "events": ["bounced"]] as [String: any Sendable], bearer: key)
            let hookID = try #require(hook.json["id"] as? String)
            #expect(try await RelayHarness.send(port: port, .PATCH, "/v1/webhooks/\(hookID)", json: ["enabled": false], bearer: key).status == 200)
            #expect(try await RelayHarness.send(port: port, .POST, "/v1/webhooks", json: ["url": "http://127.0.0.1:9/all"], bearer: key).status == 201)
            let recipients = (0..<12).map { "user\($0)@gmail.com" } + (0..<5).map { "ok\($0)@dest.test" }
                + ["bounce1@dest.test", "bounce2@dest.test", "tempfail1@dest.test"]
            var ids: [String] = []
            for recipient in recipients {
                let sent = try await RelayHarness.send(port: port, .POST, "/v1/messages", json: [
                    "from": "Shop <shop@example.com>", "to": recipient, "subject": "Order <b>#\(ids.count)</b>", "text": "hi"], bearer: key)
                ids.append(try #require(sent.json["id"] as? String))
            }
            try await waitUntil("every message reached its outcome") {
                let stats = try await RelayHarness.send(port: port, .GET, "/v1/stats", bearer: key).json
                let totals = stats["totals"] as? [String: Any] ?? [:]
                return totals["delivered"] as? Int == 17 && totals["bounced"] as? Int == 2 && totals["deferred"] as? Int == 1
            }
            try await waitUntil("the reputation guard pauses the tenant") {
                let stats = try await RelayHarness.send(port: port, .GET, "/v1/stats", bearer: key).json
                return (stats["reputation"] as? [String: Any])?["state"] as? String == "paused"
            }

            let output = Self.outputDirectory() + "/dashboard"
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let (status, transcript) = try await runToCompletion(try findExecutable("python3"), [
                try peerScript("dashboard_check.py"), "--base-url", "http://127.0.0.1:\(port)", "--token", key,
                "--out", output, "--recipient", "bounce1@dest.test", "--admin-token", "dashboard-admin",
            ], timeout: .seconds(180))
            #expect(status == 0, "dashboard_check.py failed:\n\(transcript)")
            for name in ["dashboard-laptop.png", "dashboard-phone.png"] {
                let size = (try? FileManager.default.attributesOfItem(atPath: output + "/" + name)[.size] as? Int) ?? 0
                #expect(size > 10_000, "\(name) was saved")
            }

            // RELAY_LOG_FORMAT=json: every line is a JSON object; each delivery outcome names message and server.
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(objects.count == lines.count, "every log line is JSON")
            let outcomes = objects.filter { $0["msg"] as? String == "delivery outcome" }
            #expect(outcomes.count == 20)
            let bounce = outcomes.first { $0["recipient"] as? String == "bounce1@dest.test" }
            #expect(bounce?["message_id"] as? String == ids[17])
            #expect(bounce?["mx"] as? String == "mx1.dest.test")
            #expect(bounce?["reply_code"] as? String == "550")
            #expect(bounce?["enhanced_code"] as? String == "5.1.1")
            #expect(bounce?["attempt"] as? String == "1")
            #expect(bounce?["level"] as? String == "info")
        } catch {
            await relay.stop()
            await sink.stop()
            try? await dns.stop()
            throw error
        }
        await relay.stop()
        await sink.stop()
        try? await dns.stop()
    }
}
