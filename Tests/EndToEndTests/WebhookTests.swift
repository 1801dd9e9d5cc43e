import Foundation
import NIOHTTP1
import PostgresNIO
import RelayApp
import RelayTestSupport
import Testing

/// Tests/Peers/webhook_receiver.py: an HTTP receiver that verifies every request with the PyPI `standardwebhooks`
/// package against the secrets it is told to trust, and records what it saw.
final class WebhookReceiver: Sendable {
    struct Received: @unchecked Sendable {
        var headers: [String: String]
        var body: String
        /// Secret → whether `standardwebhooks` accepted the request with it.
        var verified: [String: Bool]
        var status: Int
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]) ?? [:] }
        var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
    }

    let port: Int
    let recordPath: String
    let secretsPath: String
    private let child: ChildProcess

    var url: String { "http://127.0.0.1:\(port)/hook" }

    /// Answers 500 to the first `failFirst` requests, then `status` to every request, each after `delay`.
    static func start(failFirst: Int = 0, status: Int = 204, delay: Duration = .zero) async throws -> WebhookReceiver {
        try await startOnFreePort(host: "127.0.0.1", port: 0) { port in
            try await start(port: port, failFirst: failFirst, status: status, delay: delay)
        }
    }

    private static func start(port: Int, failFirst: Int, status: Int, delay: Duration) async throws -> WebhookReceiver {
        let base = NSTemporaryDirectory() + "relay-webhooks-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: base + ".jsonl", contents: nil)
        _ = FileManager.default.createFile(atPath: base + ".secrets", contents: nil)
        let child = try ChildProcess(try findExecutable("python3"), [
            try peerScript("webhook_receiver.py"), "--port", "\(port)", "--record", base + ".jsonl",
            "--secrets-file", base + ".secrets", "--fail-first", "\(failFirst)", "--status", "\(status)",
            "--delay", "\(Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)",
        ], logPath: base + ".log")
        let receiver = WebhookReceiver(port: port, recordPath: base + ".jsonl", secretsPath: base + ".secrets", child: child)
        try await waitUntilListening(child, host: "127.0.0.1", port: port, name: "the webhook receiver",
                                     package: "standardwebhooks", logPath: base + ".log")
        return receiver
    }

    private init(port: Int, recordPath: String, secretsPath: String, child: ChildProcess) {
        self.port = port
        self.recordPath = recordPath
        self.secretsPath = secretsPath
        self.child = child
    }

    /// The secrets the receiver verifies with.
    func trust(_ secrets: [String]) throws {
        try secrets.joined(separator: "\n").write(toFile: secretsPath, atomically: true, encoding: .utf8)
    }

    func received() throws -> [Received] {
        try completeLines(ofFile: recordPath).map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TestSupportError("unreadable receiver record: \(line)")
            }
            return Received(headers: object["headers"] as? [String: String] ?? [:], body: object["body"] as? String ?? "",
                            verified: object["verified"] as? [String: Bool] ?? [:], status: object["status"] as? Int ?? 0)
        }
    }

    /// Polls until at least `count` requests arrived; returns them all.
    @discardableResult
    func waitForRequests(_ count: Int, timeout: Duration = .seconds(30)) async throws -> [Received] {
        var requests: [Received] = []
        try await waitUntil("the receiver got \(count) request(s)", timeout: timeout) {
            requests = try self.received()
            return requests.count >= count
        }
        return requests
    }

    func stop() async {
        await child.stop()
    }
}

extension RelayHarness {
    /// POST /v1/webhooks, expecting 201; returns the endpoint with its secret.
    func createWebhook(url: String, events: [String]? = nil) async throws -> [String: Any] {
        var body: [String: any Sendable] = ["url": url]
        if let events { body["events"] = events }
        let created = try await send(.POST, "/v1/webhooks", json: body)
        guard created.status == 201 else { throw TestSupportError("creating a webhook failed: \(created.status) \(created.text)") }
        return created.json
    }

    /// The endpoint's delivery log, newest first.
    func webhookDeliveries(_ id: String) async throws -> [[String: Any]] {
        try await send(.GET, "/v1/webhooks/\(id)/deliveries").json["data"] as? [[String: Any]] ?? []
    }
}

/// Signed webhooks end to end: real PostgreSQL (the outbox trigger), the dispatcher, and a receiver that checks every
/// signature with the `standardwebhooks` package. The private-address guard is off except where a test checks it.
/// Serialized: each test runs a Relay (two in one), and on two cores the suite's peak load made other suites'
/// database deadlines fire.
@Suite(.serialized) struct WebhookTests {
    static func allowPrivate(_ configuration: inout RelayConfiguration) {
        configuration.webhookAllowPrivate = true
    }

    /// A running Relay (API and dispatcher) with the guard off and a receiver; both stopped afterwards.
    func withReceiver(failFirst: Int = 0, status: Int = 204,
                      _ body: (RelayHarness, WebhookReceiver) async throws -> Void) async throws {
        let receiver = try await WebhookReceiver.start(failFirst: failFirst, status: status)
        do {
            let relay = try await RelayHarness.start(Self.allowPrivate)
            do {
                try await body(relay, receiver)
            } catch {
                try? await relay.stop()
                throw error
            }
            try await relay.stop()
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    @Test func aDeliveredMessageIsPostedSignedWithItsData() async throws {
        let receiver = try await WebhookReceiver.start()
        do {
            try await deliveredMessageScenario(receiver)
        } catch {
            await receiver.stop()
            throw error
        }
        await receiver.stop()
    }

    func deliveredMessageScenario(_ receiver: WebhookReceiver) async throws {
        try await RelayHarness.withDestination(Self.allowPrivate) { relay, _ in
            let endpoint = try await relay.createWebhook(url: receiver.url, events: ["delivered"])
            let id = try #require(endpoint["id"] as? String)
            let secret = try #require(endpoint["secret"] as? String)
            #expect(secret.hasPrefix("whsec_"))
            #expect(endpoint["url"] as? String == receiver.url)
            #expect(endpoint["events"] as? [String] == ["delivered"])
            #expect(endpoint["enabled"] as? Bool == true)
            #expect(endpoint["disabled_reason"] is NSNull)
            try receiver.trust([secret])
            // The secret is shown once.
            let shown = try await relay.send(.GET, "/v1/webhooks/\(id)")
            #expect(shown.status == 200)
            #expect(shown.json["secret"] == nil)
            #expect(!shown.text.contains(secret))
            let listed = try await relay.send(.GET, "/v1/webhooks")
            #expect((listed.json["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [id])
            #expect(!listed.text.contains(secret))

            let messageID = try await relay.sendMessage([
                "from": "alice@example.com", "to": "bob@dest.test", "subject": "Hello", "text": "Hi",
                "tags": ["welcome"], "metadata": ["order": "1234"]])
            let request = try #require(try await receiver.waitForRequests(1).first)
            #expect(request.verified[secret] == true, "standardwebhooks accepts the signature")
            #expect(request.headers["content-type"] == "application/json")
            let webhookID = try #require(request.headers["webhook-id"])
            #expect(webhookID.hasPrefix("msg_"))
            let timestamp = try #require(request.headers["webhook-timestamp"].flatMap(Int.init))
            #expect(abs(timestamp - Int(Date().timeIntervalSince1970)) < 60)
            #expect(request.json["type"] as? String == "delivered")
            #expect((request.json["timestamp"] as? String)?.hasSuffix("Z") == true)
            let data = request.data
            #expect(data["message_id"] as? String == messageID)
            #expect(data["recipient"] as? String == "bob@dest.test")
            #expect(data["status"] as? String == "delivered")
            #expect(data["tags"] as? [String] == ["welcome"])
            #expect((data["metadata"] as? [String: String]) == ["order": "1234"])
            #expect(data["attempt"] as? Int == 1)
            #expect(data["mx"] as? String == "mx1.dest.test")
            #expect((data["reply"] as? [String: Any])?["code"] as? Int == 250)
            #expect(data["bounce_type"] is NSNull)
            #expect(data["event_id"] is String)

            try await waitUntil("the attempt is logged") { try await !relay.webhookDeliveries(id).isEmpty }
            let log = try await relay.webhookDeliveries(id)
            #expect(log.count == 1)
            #expect(log.first?["webhook_id"] as? String == webhookID)
            #expect(log.first?["status"] as? String == "succeeded")
            #expect(log.first?["response_code"] as? Int == 204)
            #expect(log.first?["error"] is NSNull)
            #expect(log.first?["event_type"] as? String == "delivered")
            #expect(log.first?["attempt"] as? Int == 1)
            #expect(log.first?["latency_ms"] is Int)

            // Only the subscribed types are sent: a bounce (and its accepted event) is not.
            let bounced = try await relay.sendMessage(["from": "alice@example.com", "to": "bounce@dest.test", "subject": "s", "text": "t"])
            try await relay.waitUntilFinal(bounced)
            let test = try await relay.send(.POST, "/v1/webhooks/\(id)/test")
            #expect(test.status == 202)
            let deliveryID = try #require(test.json["delivery_id"] as? String)
            let requests = try await receiver.waitForRequests(2)
            #expect(requests.map { $0.json["type"] as? String } == ["delivered", "webhook.test"])
            #expect(requests[1].headers["webhook-id"] == deliveryID)
            #expect(requests[1].verified[secret] == true)
        }
    }

    @Test func aFailedAttemptIsRetriedWithTheSameIdAndBody() async throws {
        try await withReceiver(failFirst: 1) { relay, receiver in
            let endpoint = try await relay.createWebhook(url: receiver.url)
            let id = try #require(endpoint["id"] as? String)
            try receiver.trust([try #require(endpoint["secret"] as? String)])
            let test = try await relay.send(.POST, "/v1/webhooks/\(id)/test")
            #expect(test.status == 202)
            let deliveryID = try #require(test.json["delivery_id"] as? String)
            // The first retry comes 5 s after the failure.
            let requests = try await receiver.waitForRequests(2, timeout: .seconds(40))
            #expect(requests.map(\.status) == [500, 204])
            #expect(requests.map { $0.headers["webhook-id"] } == [deliveryID, deliveryID])
            #expect(requests[0].body == requests[1].body, "the body is identical on every retry")
            #expect(requests.allSatisfy { $0.verified.values.allSatisfy { $0 } })
            #expect(requests[0].json["type"] as? String == "webhook.test")

            try await waitUntil("both attempts are logged") { try await relay.webhookDeliveries(id).count == 2 }
            let log = try await relay.webhookDeliveries(id)
            #expect(log.map { $0["attempt"] as? Int } == [2, 1], "newest first")
            #expect(log.map { $0["status"] as? String } == ["succeeded", "failed"])
            #expect(log.map { $0["response_code"] as? Int } == [204, 500])
            #expect((log[1]["error"] as? String)?.contains("500") == true)
            #expect(log[1]["next_attempt_at"] is String, "the failed attempt said when it would be retried")
            #expect(log[0]["next_attempt_at"] is NSNull)
            #expect(log.allSatisfy { $0["webhook_id"] as? String == deliveryID })
            let metrics = try await relay.send(.GET, "/metrics").text
            #expect(metrics.contains(#"relay_webhook_attempts_total{result="failed",code_class="5xx"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"relay_webhook_attempts_total{result="succeeded",code_class="2xx"} 1"#))
            // Pagination of the log.
            let first = try await relay.send(.GET, "/v1/webhooks/\(id)/deliveries?limit=1").json
            let cursor = try #require(first["next_cursor"] as? String)
            let second = try await relay.send(.GET, "/v1/webhooks/\(id)/deliveries?limit=1&cursor=\(cursor)").json
            #expect((second["data"] as? [[String: Any]])?.first?["attempt"] as? Int == 1)
            #expect(second["next_cursor"] is NSNull)

            // tenant.paused, queued by SQL as the other services do.
            let queued = try await relay.database.enqueueWebhookEvent(
                tenantID: try #require(UUID(uuidString: relay.tenantID)), type: "tenant.paused",
                dataJSON: #"{"tenant_id": "\#(relay.tenantID)", "reason": "bounce_rate", "bounce_rate": 0.12, "complaint_rate": 0.0}"#)
            #expect(queued == 1)
            let paused = try await receiver.waitForRequests(3).last
            #expect(paused?.json["type"] as? String == "tenant.paused")
            #expect(paused?.data["bounce_rate"] as? Double == 0.12)
        }
    }

    @Test func twoNodesSendEveryEventExactlyOnce() async throws {
        try await withReceiver { first, receiver in
            let second = try await RelayHarness.start(databaseURL: first.databaseURL, Self.allowPrivate)
            do {
                let endpoint = try await first.createWebhook(url: receiver.url, events: ["tenant.paused"])
                try receiver.trust([try #require(endpoint["secret"] as? String)])
                let tenant = try #require(UUID(uuidString: first.tenantID))
                for number in 0..<200 {
                    try await first.database.enqueueWebhookEvent(tenantID: tenant, type: "tenant.paused", dataJSON: #"{"n": \#(number)}"#)
                }
                let requests = try await receiver.waitForRequests(200, timeout: .seconds(60))
                #expect(Set(requests.compactMap { $0.headers["webhook-id"] }).count == 200)
                #expect(Set(requests.compactMap { $0.data["n"] as? Int }) == Set(0..<200))
                #expect(requests.allSatisfy { $0.verified.values.allSatisfy { $0 } })
                // Nothing more arrives: both dispatchers have finished and none sent a row twice.
                try await waitUntil("every attempt is logged") {
                    try await first.send(.GET, "/v1/webhooks/\(endpoint["id"] as? String ?? "")/deliveries?limit=500")
                        .json["data"].map { ($0 as? [Any])?.count == 200 } ?? false
                }
                #expect(try receiver.received().count == 200)
            } catch {
                try? await second.stop()
                throw error
            }
            try await second.stop()
        }
    }

    @Test func aSlowEndpointDoesNotHoldUpTheOthers() async throws {
        let slow = try await WebhookReceiver.start(delay: .seconds(4))
        do {
            try await withReceiver { relay, fast in
                _ = try await relay.createWebhook(url: slow.url, events: ["tenant.paused"])
                let fastID = try #require(try await relay.createWebhook(url: fast.url, events: ["bounced"])["id"] as? String)
                let tenant = try #require(UUID(uuidString: relay.tenantID))
                for _ in 0..<40 { try await relay.database.enqueueWebhookEvent(tenantID: tenant, type: "tenant.paused", dataJSON: "{}") }
                try await slow.waitForRequests(8)
                // 40 slow requests are due before it, yet the test event goes out while they hang.
                #expect(try await relay.send(.POST, "/v1/webhooks/\(fastID)/test").status == 202)
                let started = ContinuousClock.now
                try await fast.waitForRequests(1, timeout: .seconds(10))
                #expect(ContinuousClock.now - started < .seconds(3), "not stuck behind the slow endpoint's 4 s requests")
                #expect(try slow.received().count <= 16, "at most about twice the per-endpoint limit in flight")
            }
        } catch {
            await slow.stop()
            throw error
        }
        await slow.stop()
    }

    @Test func goneDisablesTheEndpointAndReEnablingClearsTheReason() async throws {
        try await withReceiver(status: 410) { relay, receiver in
            let endpoint = try await relay.createWebhook(url: receiver.url)
            let id = try #require(endpoint["id"] as? String)
            #expect(try await relay.send(.POST, "/v1/webhooks/\(id)/test").status == 202)
            var shown: [String: Any] = [:]
            try await waitUntil("the endpoint is disabled") {
                shown = try await relay.send(.GET, "/v1/webhooks/\(id)").json
                return shown["enabled"] as? Bool == false
            }
            #expect(shown["disabled_reason"] as? String == "gone_410")
            #expect(try receiver.received().count == 1, "410 is not retried")
            let enabled = try await relay.send(.PATCH, "/v1/webhooks/\(id)", json: ["enabled": true])
            #expect(enabled.status == 200)
            #expect(enabled.json["enabled"] as? Bool == true)
            #expect(enabled.json["disabled_reason"] is NSNull)
            // Re-enabling resumed the delivery that waited; the receiver is still gone, so it is disabled again.
            try await receiver.waitForRequests(2)
            try await waitUntil("the endpoint is disabled again") {
                try await relay.send(.GET, "/v1/webhooks/\(id)").json["disabled_reason"] as? String == "gone_410"
            }

            let other = try #require(try await relay.createWebhook(url: receiver.url)["id"] as? String)
            let change: [String: any Sendable] = ["enabled": false, "events": ["bounced"]]
            let disabled = try await relay.send(.PATCH, "/v1/webhooks/\(other)", json: change)
            #expect(disabled.json["enabled"] as? Bool == false)
            #expect(disabled.json["disabled_reason"] as? String == "manual")
            #expect(disabled.json["events"] as? [String] == ["bounced"])
        }
    }

    @Test func aRedirectIsAFailureAndIsNotFollowed() async throws {
        try await withReceiver(status: 302) { relay, receiver in
            let id = try #require(try await relay.createWebhook(url: receiver.url)["id"] as? String)
            #expect(try await relay.send(.POST, "/v1/webhooks/\(id)/test").status == 202)
            try await waitUntil("the attempt is logged") { try await !relay.webhookDeliveries(id).isEmpty }
            let attempt = try #require(try await relay.webhookDeliveries(id).first)
            #expect(attempt["status"] as? String == "failed")
            #expect(attempt["response_code"] as? Int == 302)
            #expect((attempt["error"] as? String)?.contains("redirects are not followed (Location: /elsewhere)") == true, "\(attempt)")
            #expect(try receiver.received().map(\.status) == [302], "the redirect was not followed")
            #expect(try await relay.send(.GET, "/v1/webhooks/\(id)").json["enabled"] as? Bool == true)
        }
    }

    @Test func privateAddressesAreRefusedAtCreationAndAtDelivery() async throws {
        let receiver = try await WebhookReceiver.start()
        let relay = try await RelayHarness.start()
        do {
            for url in ["http://127.0.0.1:\(receiver.port)/hook", "http://169.254.169.254/latest/meta-data/", "http://localhost/",
                        "http://[::ffff:127.0.0.1]/", "http://2130706433/", "http://10.0.0.1/"] {
                let refused = try await relay.send(.POST, "/v1/webhooks", json: ["url": url])
                #expect(refused.status == 422, "\(url)")
                #expect(refused.errorCode == "validation_failed")
                #expect(refused.errorField == "url")
                #expect(refused.text.contains("private address"), "\(refused.text)")
            }
            for url in ["ftp://example.com/", "http://user:pw@example.com/", "not a url"] {
                #expect(try await relay.send(.POST, "/v1/webhooks", json: ["url": url]).errorField == "url", "\(url)")
            }
            let unknownEvent: [String: any Sendable] = ["url": "https://93.184.216.34/", "events": ["delivered", "opened"]]
            let refused = try await relay.send(.POST, "/v1/webhooks", json: unknownEvent)
            #expect(refused.status == 422)
            #expect(refused.errorField == "events")
            let created = try await relay.createWebhook(url: "https://93.184.216.34/hook")
            let id = try #require(created["id"] as? String)
            #expect(created["events"] as? [String] == [])
            #expect(try await relay.send(.PATCH, "/v1/webhooks/\(id)", json: ["url": "http://192.168.1.1/"]).errorField == "url")

            // An endpoint written straight into the database (as by an older version) is refused at delivery.
            try await relay.database.client.query("""
                UPDATE webhook_endpoints SET url = \(receiver.url) WHERE id = \(try #require(UUID(uuidString: id)))
                """, logger: .init(label: "test"))
            #expect(try await relay.send(.POST, "/v1/webhooks/\(id)/test").status == 202)
            try await waitUntil("the refusal is logged") { try await !relay.webhookDeliveries(id).isEmpty }
            let attempt = try #require(try await relay.webhookDeliveries(id).first)
            #expect(attempt["status"] as? String == "failed")
            #expect(attempt["response_code"] is NSNull)
            #expect((attempt["error"] as? String)?.contains("private address") == true, "\(attempt)")
            #expect(try receiver.received().isEmpty, "the receiver was never contacted")
        } catch {
            try? await relay.stop()
            await receiver.stop()
            throw error
        }
        try await relay.stop()
        await receiver.stop()
    }

    @Test func rotatingTheSecretSignsWithBothDuringTheOverlap() async throws {
        try await withReceiver { relay, receiver in
            let endpoint = try await relay.createWebhook(url: receiver.url)
            let id = try #require(endpoint["id"] as? String)
            let old = try #require(endpoint["secret"] as? String)
            let rotated = try await relay.send(.POST, "/v1/webhooks/\(id)/rotate-secret")
            #expect(rotated.status == 200)
            let new = try #require(rotated.json["secret"] as? String)
            #expect(new.hasPrefix("whsec_") && new != old)
            #expect(rotated.json["id"] as? String == id)
            try receiver.trust([old, new])
            #expect(try await relay.send(.POST, "/v1/webhooks/\(id)/test").status == 202)
            let request = try #require(try await receiver.waitForRequests(1).first)
            let signatures = (request.headers["webhook-signature"] ?? "").split(separator: " ")
            #expect(signatures.count == 2)
            #expect(signatures.allSatisfy { $0.hasPrefix("v1,") })
            #expect(request.verified[new] == true, "the new secret verifies")
            #expect(request.verified[old] == true, "the old secret still verifies")
        }
    }

    @Test func anotherTenantsEndpointIsNotFound() async throws {
        let relay = try await RelayHarness.start { configuration in
            configuration.roles = [.api]
            configuration.webhookAllowPrivate = true
        }
        do {
            let endpoint = try await relay.createWebhook(url: "http://127.0.0.1:9/hook", events: ["bounced", "tenant.paused"])
            let id = try #require(endpoint["id"] as? String)
            let (_, otherKey) = try await relay.database.createTenant(name: "other")
            for (method, path) in [(HTTPMethod.GET, ""), (.PATCH, ""), (.DELETE, ""), (.POST, "/rotate-secret"), (.POST, "/test"),
                                   (.GET, "/deliveries")] {
                let body: [String: Bool]? = method == .PATCH ? ["enabled": false] : nil
                let result = try await relay.send(method, "/v1/webhooks/\(id)\(path)", json: body, bearer: otherKey)
                #expect(result.status == 404, "\(method) \(path)")
                #expect(result.errorCode == "not_found")
            }
            #expect((try await relay.send(.GET, "/v1/webhooks", bearer: otherKey).json["data"] as? [[String: Any]])?.isEmpty == true)
            #expect(try await relay.send(.GET, "/v1/webhooks/not-a-uuid").status == 404)
            #expect(try await relay.send(.GET, "/v1/webhooks/\(UUID().uuidString)").status == 404)
            #expect(try await relay.send(.GET, "/v1/webhooks/\(id)").json["enabled"] as? Bool == true, "untouched")
            #expect(try await relay.send(.DELETE, "/v1/webhooks/\(id)").status == 204)
            #expect(try await relay.send(.GET, "/v1/webhooks/\(id)").status == 404)
        } catch {
            try? await relay.stop()
            throw error
        }
        try await relay.stop()
    }
}
