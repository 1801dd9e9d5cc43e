import Foundation
import RelayApp
import RelayStore
import Synchronization
import RelayTestSupport
import Testing

/// The HTTP contract: every documented error code, tenant isolation, idempotency, and the accept response.
/// One Relay instance serves the whole suite (each test uses its own data).
@Suite(.serialized) struct APITests {
    static let shared = SharedRelay()

    actor SharedRelay {
        private var harness: RelayHarness?
        func get() async throws -> RelayHarness {
            if let harness { return harness }
            let started = try await RelayHarness.start { $0.maxMessageBytes = 64 * 1024 }
            harness = started
            return started
        }
    }

    var valid: [String: any Sendable] {
        ["from": "Alice <alice@example.com>", "to": "bob@dest.test", "subject": "Hi", "text": "Hello"]
    }

    func post(_ body: [String: any Sendable], headers: [String: String] = [:]) async throws -> RelayHarness.HTTPResult {
        try await Self.shared.get().send(.POST, "/v1/messages", json: body, headers: headers)
    }

    @Test func acceptReturns202WithQueuedRecipients() async throws {
        var body = valid
        body["to"] = ["bob@dest.test", "Carol <carol@dest.test>"]
        body["bcc"] = "bob@DEST.test"  // same mailbox as a To address: delivered once
        body["tags"] = ["welcome"]
        body["metadata"] = ["user_id": "42"]
        let result = try await post(body)
        #expect(result.status == 202)
        #expect(result.json["status"] as? String == "queued")
        let recipients = result.json["recipients"] as? [[String: Any]] ?? []
        #expect(recipients.map { $0["email"] as? String } == ["bob@dest.test", "carol@dest.test"])
        #expect(recipients.allSatisfy { $0["status"] as? String == "queued" })
        let id = try #require(result.json["id"] as? String)
        let message = try await Self.shared.get().message(id)
        #expect(message["from"] as? String == "Alice <alice@example.com>")
        #expect(message["subject"] as? String == "Hi")
        #expect(message["tags"] as? [String] == ["welcome"])
        #expect(message["metadata"] as? [String: String] == ["user_id": "42"])
        #expect(message["created_at"] as? String != nil)
    }

    @Test func missingOrWrongAPIKeyIs401() async throws {
        let relay = try await Self.shared.get()
        for bearer in ["", "rly_not-a-key"] {
            let result = try await RelayHarness.send(port: relay.port, .POST, "/v1/messages", json: valid, bearer: bearer.isEmpty ? nil : bearer)
            #expect(result.status == 401)
            #expect(result.errorCode == "unauthorized")
        }
        let list = try await RelayHarness.send(port: relay.port, .GET, "/v1/domains", bearer: "wrong")
        #expect(list.status == 401)
    }

    @Test func malformedJSONIs400() async throws {
        let result = try await Self.shared.get().send(.POST, "/v1/messages", rawBody: Array("{\"from\": ".utf8))
        #expect(result.status == 400)
        #expect(result.errorCode == "invalid_json")
    }

    @Test(arguments: [
        (["from": "not an address"], "from"),
        (["from": "Alice <alice@example.com>\r\nBcc: x@evil.test"], "from"),
        (["to": "bob@"], "to"),
        (["to": [String]()], "to"),
        (["subject": "Hi\r\nBcc: victim@evil.test"], "subject"),
        (["text": "", "html": ""], "text"),
        (["surprise": "field"], "surprise"),
        (["headers": ["Bcc": "x@evil.test"]], "headers.Bcc"),
        (["headers": ["X-Ok": "a\r\nInjected: yes"]], "headers.X-Ok"),
        (["headers": ["Bad Name": "v"]], "headers.Bad Name"),
        (["attachments": [["filename": "a.txt", "content": "***not base64***"]]], "attachments[0].content"),
        (["attachments": [["content": "aGk="]]], "attachments[0].filename"),
        (["tags": (0..<11).map { "t\($0)" }], "tags"),
        (["metadata": ["k": 1]], "metadata.k"),
        (["to": 42], "to"),
        (["metadata": ["k": "a\u{0}b"]], "metadata.k"),
        (["tags": ["ok", "a\u{0}b"]], "tags[1]"),
    ] as [([String: any Sendable], String)])
    func invalidInputIs422NamingTheField(change: [String: any Sendable], field: String) async throws {
        var body = valid
        for (key, value) in change { body[key] = value }
        let result = try await post(body)
        #expect(result.status == 422, "\(change): \(result.text)")
        #expect(result.errorCode == "validation_failed")
        #expect(result.errorField == field, "\(result.text)")
    }

    @Test func tooManyRecipientsIs422() async throws {
        var body = valid
        body["to"] = (0..<1001).map { "user\($0)@dest.test" }
        let result = try await post(body)
        #expect(result.status == 422)
        #expect(result.errorField == "to")
    }

    @Test func invalidInputStoresNothing() async throws {
        let relay = try await Self.shared.get()
        let before = try await relay.database.queueDepth()
        var body = valid
        body["subject"] = "a\nb"
        #expect(try await post(body).status == 422)
        #expect(try await relay.database.queueDepth() == before)
    }

    @Test func unregisteredSenderDomainIs403() async throws {
        var body = valid
        body["from"] = "mallory@not-mine.test"
        let result = try await post(body)
        #expect(result.status == 403)
        #expect(result.errorCode == "sender_domain_not_allowed")
    }

    @Test func anotherTenantsMessageIs404() async throws {
        let relay = try await Self.shared.get()
        let id = try await relay.sendMessage(valid)
        let other = try await RelayHarness.send(port: relay.port, .POST, "/admin/tenants", json: ["name": "other"], bearer: relay.adminToken)
        let otherKey = try #require(other.json["api_key"] as? String)
        for path in ["/v1/messages/\(id)", "/v1/messages/\(id)/events"] {
            let result = try await relay.send(.GET, path, bearer: otherKey)
            #expect(result.status == 404)
            #expect(result.errorCode == "not_found")
        }
        #expect(try await relay.send(.GET, "/v1/messages/\(id)").status == 200)
        #expect(try await relay.send(.GET, "/v1/messages/\(UUID().uuidString)").status == 404)
        #expect(try await relay.send(.GET, "/v1/messages/not-a-uuid").status == 404)
        let domains = try await relay.send(.GET, "/v1/domains", bearer: otherKey)
        #expect((domains.json["data"] as? [Any])?.isEmpty == true, "domains are per tenant")
    }

    @Test func idempotencyKeyReplaysTheFirstResponseAndRefusesADifferentBody() async throws {
        let key = UUID().uuidString
        let first = try await post(valid, headers: ["Idempotency-Key": key])
        #expect(first.status == 202)
        let again = try await post(valid, headers: ["Idempotency-Key": key])
        #expect(again.status == 202)
        #expect(again.json["id"] as? String == first.json["id"] as? String)
        var changed = valid
        changed["subject"] = "Different"
        let conflict = try await post(changed, headers: ["Idempotency-Key": key])
        #expect(conflict.status == 409)
        #expect(conflict.errorCode == "idempotency_conflict")
        let tooLong = try await post(valid, headers: ["Idempotency-Key": String(repeating: "k", count: 257)])
        #expect(tooLong.status == 422)
    }

    @Test func oversizedMessageIs413() async throws {
        var body = valid
        body["text"] = String(repeating: "a", count: 70 * 1024)
        let result = try await post(body)
        #expect(result.status == 413)
        #expect(result.errorCode == "message_too_large")
        var huge = valid
        huge["text"] = String(repeating: "a", count: 2 * 1024 * 1024)
        let tooBig = try await post(huge)
        #expect(tooBig.status == 413)
        #expect(tooBig.errorCode == "payload_too_large")
    }

    @Test func domainsAreValidatedAndListed() async throws {
        let relay = try await Self.shared.get()
        let created = try await relay.send(.POST, "/v1/domains", json: ["name": "Mail.Example.ORG"])
        #expect(created.status == 201)
        #expect(created.json["name"] as? String == "mail.example.org")
        #expect(try await relay.send(.POST, "/v1/domains", json: ["name": "mail.example.org"]).status == 409)
        let invalid = try await relay.send(.POST, "/v1/domains", json: ["name": "-bad-.test"])
        #expect(invalid.status == 422)
        #expect(invalid.errorField == "name")
        let list = try await relay.send(.GET, "/v1/domains")
        let names = (list.json["data"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(names.contains("mail.example.org") && names.contains("example.com"))
    }

    @Test func theDeliveryLogFiltersAndPagesWithoutGapsOrDuplicates() async throws {
        let relay = try await Self.shared.get()
        let tag = "log-\(UUID().uuidString.prefix(8))"
        var ids: [String] = []
        for index in 0..<7 {
            var body = valid
            body["to"] = index % 2 == 0 ? "even\(index)@evens.test" : "odd\(index)@odds.test"
            body["tags"] = [tag]
            ids.append(try await relay.sendMessage(body))
        }
        func page(_ query: String) async throws -> (ids: [String], next: String?) {
            let result = try await relay.send(.GET, "/v1/messages?\(query)")
            #expect(result.status == 200, "\(result.text)")
            let data = result.json["data"] as? [[String: Any]] ?? []
            return (data.compactMap { $0["id"] as? String }, result.json["next_cursor"] as? String)
        }
        var collected: [String] = []
        var addedWhilePaging = 0
        var cursor: String?
        repeat {
            let (pageIDs, next) = try await page("tag=\(tag)&limit=3" + (cursor.map { "&cursor=\($0)" } ?? ""))
            collected += pageIDs
            cursor = next
            if cursor != nil {
                // A message accepted while paging sorts before the first page and must not disturb later pages.
                var body = valid
                body["tags"] = [tag]
                _ = try await relay.sendMessage(body)
                addedWhilePaging += 1
            }
        } while cursor != nil
        #expect(collected.count == Set(collected).count, "no duplicates across pages")
        #expect(collected == Array(ids.reversed()), "newest first, no gaps, unaffected by messages accepted meanwhile")
        let total = ids.count + addedWhilePaging
        #expect(try await page("tag=\(tag)&recipient=even2@evens.test").ids == [ids[2]])
        #expect(try await page("tag=\(tag)&domain=ODDS.test").ids == [ids[5], ids[3], ids[1]])
        #expect(try await page("tag=\(tag)&from=alice@example.com").ids.count == total)
        #expect(try await page("tag=\(tag)&since=2999-01-01T00:00:00Z").ids.isEmpty)
        try await waitUntil("the undeliverable test domains have failed") {
            try await page("tag=\(tag)&status=failed").ids.count == total
        }
        let other = try await RelayHarness.send(port: relay.port, .POST, "/admin/tenants", json: ["name": "log-other"], bearer: relay.adminToken)
        let otherList = try await relay.send(.GET, "/v1/messages?tag=\(tag)", bearer: other.json["api_key"] as? String)
        #expect((otherList.json["data"] as? [Any])?.isEmpty == true, "another tenant sees none of these")
        for query in ["limit=0", "limit=501", "limit=", "status=lost", "status=", "since=yesterday", "since=", "cursor=%21%21", "domain=a%00b"] {
            let invalid = try await relay.send(.GET, "/v1/messages?\(query)")
            #expect(invalid.status == 422, "\(query): \(invalid.text)")
        }
    }

    @Test func adminRoutesNeedTheAdminToken() async throws {
        let relay = try await Self.shared.get()
        let wrong = try await RelayHarness.send(port: relay.port, .POST, "/admin/tenants", json: ["name": "x"], bearer: relay.apiKey)
        #expect(wrong.status == 401)
        for name in ["", "a\u{0}b", String(repeating: "n", count: 201)] {
            let invalid = try await RelayHarness.send(port: relay.port, .POST, "/admin/tenants", json: ["name": name], bearer: relay.adminToken)
            #expect(invalid.status == 422, "tenant name \(name.debugDescription)")
            #expect(invalid.errorField == "name")
        }
        let unknownRoute = try await RelayHarness.send(port: relay.port, .GET, "/v1/nothing-here", bearer: relay.apiKey)
        #expect(unknownRoute.status == 404)
        #expect(unknownRoute.errorCode == "not_found")
        #expect(try await RelayHarness.send(port: relay.port, .GET, "/healthz").status == 200)
    }
}

/// Behaviour that needs its own Relay instance.
@Suite struct APIAvailabilityTests {
    @Test func adminAnswers404WhenNoAdminTokenIsConfigured() async throws {
        let relay = try await RelayHarness.start { $0.adminToken = nil }
        defer { Task { try? await relay.stop() } }
        for bearer in [nil, "test-admin-token"] as [String?] {
            let result = try await RelayHarness.send(port: relay.port, .POST, "/admin/tenants", json: ["name": "x"], bearer: bearer)
            #expect(result.status == 404)
            #expect(result.errorCode == "not_found")
        }
    }

    @Test func unreachableDatabaseAtStartIs503AndNothingIsAccepted() async throws {
        // A database URL where nothing listens: the server comes up, reports not ready, and refuses to accept.
        var configuration = RelayConfiguration()
        configuration.databaseURL = "postgres://relay@127.0.0.1:\(try freePort())/relay"
        configuration.httpHost = "127.0.0.1"
        configuration.httpPort = 0
        configuration.dnsServers = [.init(host: "127.0.0.1", port: 9)]
        configuration.submissionAddress = nil
        configuration.submissionsAddress = nil
        configuration.inboundAddress = nil
        let (port, group, task) = try await RelayHarness.startApplication(configuration)
        defer { Task { await group.triggerGracefulShutdown(); _ = try? await task.value } }
        #expect(try await RelayHarness.send(port: port, .GET, "/healthz").status == 200)
        let ready = try await RelayHarness.send(port: port, .GET, "/readyz")
        #expect(ready.status == 503)
        let send = try await RelayHarness.send(port: port, .POST, "/v1/messages",
                                               json: ["from": "a@example.com", "to": "b@dest.test", "text": "x"], bearer: "rly_x")
        #expect(send.status == 503)
        #expect(send.errorCode == "not_ready")
    }

    @Test func databaseLostWhileRunningIs503ThenRecovers() async throws {
        // Relay reaches PostgreSQL through a TCP proxy; stopping the proxy is the database going away.
        let database = try await ProxiedTestDatabase.create()
        let proxy = try await database.startProxy()
        let relay = try await RelayHarness.start(databaseURL: database.url)
        defer { Task { try? await relay.stop() } }
        let message: [String: any Sendable] = ["from": "a@example.com", "to": "b@dest.test", "text": "x"]
        #expect(try await relay.send(.POST, "/v1/messages", json: message).status == 202)

        await proxy.stop()
        let during = try await relay.send(.POST, "/v1/messages", json: message)
        #expect(during.status == 503)
        #expect(during.errorCode == "database_unavailable")
        let readiness = try await RelayHarness.send(port: relay.port, .GET, "/readyz")
        #expect(readiness.status == 503, "readiness reports the lost database instead of hanging")

        let restarted = try await database.startProxy()
        defer { Task { await restarted.stop() } }
        try await waitUntil("sending works again once the database is back", timeout: .seconds(30)) {
            try await relay.send(.POST, "/v1/messages", json: message).status == 202
        }
    }
}

/// `--roles`: a node runs only the parts it is given.
@Suite struct RoleTests {
    @Test func aNodeWithoutTheAPIRoleServesOnlyHealthAndNoSMTP() async throws {
        var configuration = RelayConfiguration()
        configuration.databaseURL = try await TestDatabase.create()
        configuration.httpHost = "127.0.0.1"
        configuration.httpPort = 0
        configuration.dnsServers = [.init(host: "127.0.0.1", port: 9)]
        configuration.roles = [.worker]
        configuration.submissionAddress = .init(host: "127.0.0.1", port: 0)
        configuration.submissionsAddress = nil
        let bound = Mutex(false)
        let (port, group, task) = try await RelayHarness.startApplication(configuration) { _, _ in bound.withLock { $0 = true } }
        defer { Task { await group.triggerGracefulShutdown(); _ = try? await task.value } }
        try await waitUntil("the node is ready", timeout: RelayHarness.startupTimeout) {
            (try? await RelayHarness.send(port: port, .GET, "/readyz").status) == 200
        }
        #expect(try await RelayHarness.send(port: port, .GET, "/v1/domains", bearer: "rly_x").status == 404)
        #expect(try await RelayHarness.send(port: port, .GET, "/healthz").status == 200)
        #expect(!bound.withLock { $0 }, "no SMTP listener without the smtp role")
    }

    @Test(arguments: ["api,smtp,worker", "api", "smtp, worker"])
    func rolesParse(text: String) throws {
        let configuration = try RelayConfiguration(values: ["RELAY_ROLES": text])
        #expect(configuration.roles == Set(text.split(separator: ",").map { RelayConfiguration.Role(rawValue: $0.trimmingCharacters(in: .whitespaces))! }))
    }

    @Test func unknownRoleIsAConfigurationError() throws {
        #expect(throws: ConfigurationError.self) { try RelayConfiguration(values: ["RELAY_ROLES": "api,mailer"]) }
        #expect(throws: ConfigurationError.self) { try RelayConfiguration(values: ["RELAY_SUBMISSION_ADDR": "nonsense"]) }
        let off = try RelayConfiguration(values: ["RELAY_SUBMISSIONS_ADDR": "off"])
        #expect(off.submissionsAddress == nil)
    }

    @Test func logRetentionAndFormatParse() throws {
        #expect(RelayConfiguration().logRetention == .seconds(30 * 86_400))
        #expect(RelayConfiguration().logFormat == .text)
        let configuration = try RelayConfiguration(values: ["RELAY_LOG_RETENTION": "7d", "RELAY_LOG_FORMAT": "JSON"])
        #expect(configuration.logRetention == .seconds(7 * 86_400))
        #expect(configuration.logFormat == .json)
        #expect(throws: ConfigurationError.self) { try RelayConfiguration(values: ["RELAY_LOG_RETENTION": "12h"]) }
        #expect(throws: ConfigurationError.self) { try RelayConfiguration(values: ["RELAY_LOG_FORMAT": "xml"]) }
    }
}

/// The node registry behind `GET /admin/nodes`: every node on the database is listed with its roles, and a node
/// shutting down is marked draining.
@Suite struct NodeRegistryTests {
    static func nodes(_ relay: RelayHarness) async throws -> [[String: Any]] {
        let result = try await relay.send(.GET, "/admin/nodes", bearer: relay.adminToken)
        #expect(result.status == 200, "\(result.text)")
        return result.json["data"] as? [[String: Any]] ?? []
    }

    @Test func nodesRegisterAndAreMarkedDrainingOnShutdown() async throws {
        let first = try await RelayHarness.start()
        defer { Task { try? await first.stop() } }
        try await waitUntil("the first node registers") { try await Self.nodes(first).count == 1 }
        let second = try await RelayHarness.start(databaseURL: first.databaseURL) { $0.roles = [.api, .worker] }
        try await waitUntil("both nodes are listed") { try await Self.nodes(first).count == 2 }
        let listed = try await Self.nodes(first)
        #expect(listed.contains { ($0["roles"] as? [String]) == ["api", "worker"] && $0["draining"] as? Bool == false })
        #expect(listed.allSatisfy { $0["version"] as? String == RelayVersion.current && $0["hostname"] as? String == "relay.test" })
        try await second.stop()
        let afterStop = try await Self.nodes(first)
        #expect(afterStop.contains { ($0["roles"] as? [String]) == ["api", "worker"] && $0["draining"] as? Bool == true },
                "a stopped node stays listed as draining until its heartbeat ages out: \(afterStop)")
        #expect(try await RelayHarness.send(port: first.port, .GET, "/admin/nodes", bearer: "wrong").status == 401)
    }
}
