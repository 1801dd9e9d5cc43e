import Foundation
import PostgresNIO
import RelayStore
import RelayTestSupport
import Testing

/// The delivery log and statistics through the HTTP API over a seeded tenant (`relay dev seed`'s generator):
/// filters return exactly what SQL says, pages have no duplicates or gaps while new messages arrive, the
/// statistics equal the events, and a second tenant sees none of it.
@Suite(.serialized) struct SeededLogTests {
    func scalar(_ relay: RelayHarness, _ sql: String) async throws -> Int {
        let rows = try await relay.database.client.query(PostgresQuery(unsafeSQL: sql), logger: .init(label: "test"))
        for try await value in rows.decode(Int.self) { return value }
        return 0
    }

    func strings(_ relay: RelayHarness, _ sql: String) async throws -> Set<String> {
        let rows = try await relay.database.client.query(PostgresQuery(unsafeSQL: sql), logger: .init(label: "test"))
        var values: Set<String> = []
        for try await value in rows.decode(String.self) { values.insert(value) }
        return values
    }

    /// Every id of a paged list, following `next_cursor`; `between` runs after each page.
    func allPages(_ relay: RelayHarness, _ path: String, key: String? = nil, between: () async throws -> Void = {}) async throws -> [String] {
        var ids: [String] = []
        var cursor: String?
        repeat {
            let separator = path.contains("?") ? "&" : "?"
            let page = try await relay.send(.GET, path + (cursor.map { "\(separator)cursor=\($0)" } ?? ""), bearer: key).json
            ids += (page["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            cursor = page["next_cursor"] as? String
            try await between()
        } while cursor != nil
        return ids
    }

    @Test func filtersPagesStatisticsAndIsolationOverASeededLog() async throws {
        // API only: no worker, so nothing changes the log while it is compared with SQL.
        let relay = try await RelayHarness.start { $0.roles = [.api] }
        do {
            let tenant = try #require(UUID(uuidString: relay.tenantID))
            let counts = try await relay.database.seed(tenantID: tenant, messages: 3000, days: 10, seed: 7)
            #expect(counts.messages == 3000)
            let t = relay.tenantID.lowercased()

            // status=bounced: exactly the messages with a bounced recipient, in pages of 100 with no duplicates,
            // while new messages keep arriving (they sort before the first page and are not in it).
            let bounced = try await allPages(relay, "/v1/messages?status=bounced&limit=100") {
                _ = try await relay.sendMessage(["from": "alice@example.com", "to": "bob@[127.0.0.1]", "subject": "s", "text": "t"])
            }
            #expect(bounced.count == Set(bounced).count, "no message twice")
            let expectedBounced = try await strings(relay, """
                SELECT DISTINCT message_id::text FROM recipients WHERE tenant_id = '\(t)' AND status = 'bounced'
                """)
            #expect(Set(bounced) == expectedBounced)
            #expect(expectedBounced.count > 30, "the seed bounces about 3%")

            // domain=, tag= and recipient= filters against SQL.
            let outlook = try await allPages(relay, "/v1/messages?domain=OUTLOOK.com&limit=500")
            #expect(Set(outlook) == (try await strings(relay, """
                SELECT DISTINCT message_id::text FROM recipients WHERE tenant_id = '\(t)' AND domain = 'outlook.com'
                """)))
            let receipts = try await allPages(relay, "/v1/messages?tag=receipt&limit=500")
            #expect(Set(receipts) == (try await strings(relay, """
                SELECT id::text FROM messages WHERE tenant_id = '\(t)' AND 'receipt' = ANY(tags)
                """)))
            let someone = try #require(try await strings(relay, """
                SELECT email FROM recipients WHERE tenant_id = '\(t)' AND status = 'bounced' ORDER BY id LIMIT 1
                """).first)
            let theirs = try await allPages(relay, "/v1/messages?recipient=\(someone)")
            #expect(Set(theirs) == (try await strings(relay, """
                SELECT DISTINCT message_id::text FROM recipients WHERE tenant_id = '\(t)' AND email = '\(someone)'
                """)))

            // The event stream of that recipient ends with the bounce and says what the server answered.
            let events = try await relay.send(.GET, "/v1/events?recipient=\(someone)").json["data"] as? [[String: Any]] ?? []
            let bounce = try #require(events.first { $0["type"] as? String == "bounced" })
            #expect((bounce["reply_code"] as? Int ?? 0) >= 500)
            #expect(bounce["remote_ip"] is String)

            // Event pages: no duplicates, and exactly the tenant's delivered events of the window.
            let since = "2000-01-01T00:00:00Z"
            let delivered = try await allPages(relay, "/v1/events?type=delivered&since=\(since)&limit=500")
            #expect(delivered.count == Set(delivered).count)
            #expect(delivered.count == (try await scalar(relay, """
                SELECT count(*)::bigint FROM events WHERE tenant_id = '\(t)' AND type = 'delivered'
                """)))

            // Statistics over the 10 seeded days equal the events (accepted includes the messages sent above).
            let statsSince = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-11 * 86_400))
            let stats = try await relay.send(.GET, "/v1/stats?since=\(statsSince)&bucket=day").json
            let totals = stats["totals"] as? [String: Any] ?? [:]
            for (field, type) in [("accepted", "accepted"), ("delivered", "delivered"), ("bounced", "bounced"),
                                  ("deferred", "deferred"), ("failed", "failed")] {
                let expected = try await scalar(relay, "SELECT count(*)::bigint FROM events WHERE tenant_id = '\(t)' AND type = '\(type)'")
                #expect(totals[field] as? Int == expected, "\(field)")
            }
            let domainsDelivered = (stats["domains"] as? [[String: Any]] ?? []).reduce(0) { $0 + ($1["delivered"] as? Int ?? 0) }
            #expect(domainsDelivered <= totals["delivered"] as? Int ?? 0)
            let providersDelivered = (stats["providers"] as? [[String: Any]] ?? []).reduce(0) { $0 + ($1["delivered"] as? Int ?? 0) }
            #expect(providersDelivered == totals["delivered"] as? Int)

            // Another tenant sees nothing of it.
            let (_, otherKey) = try await relay.database.createTenant(name: "other")
            #expect(try await allPages(relay, "/v1/messages?status=bounced", key: otherKey).isEmpty)
            #expect(try await allPages(relay, "/v1/events", key: otherKey).isEmpty)
            #expect(try await relay.send(.GET, "/v1/messages/\(bounced[0])/attempts", bearer: otherKey).status == 404)
            let otherStats = try await relay.send(.GET, "/v1/stats", bearer: otherKey).json
            #expect((otherStats["totals"] as? [String: Any])?["accepted"] as? Int == 0)
        } catch {
            try? await relay.stop()
            throw error
        }
        try await relay.stop()
    }

    @Test func theSeedCommandCreatesATenantAndAddsToItOnASecondRun() async throws {
        let url = try await TestDatabase.create()
        let binary = try ProcessTests.relayBinary()
        let environment = ["DATABASE_URL": url, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"]
        let (status, output) = try await runToCompletion(binary, ["dev", "seed", "--messages", "400", "--tenant", "demo", "--days", "3"],
                                                         environment: environment, timeout: .seconds(120))
        #expect(status == 0, "\(output)")
        #expect(output.contains("rly_"), "the new tenant's API key is printed once")
        #expect(output.contains("seeded 400 messages"))
        let (again, secondOutput) = try await runToCompletion(binary, ["dev", "seed", "--messages", "100", "--tenant", "demo"],
                                                              environment: environment, timeout: .seconds(120))
        #expect(again == 0, "\(secondOutput)")
        #expect(!secondOutput.contains("rly_"), "an existing tenant is reused")
        let (database, task) = try TestDatabase.connect(url)
        defer { task.cancel() }
        let rows = try await database.client.query("SELECT count(*)::bigint FROM messages", logger: .init(label: "test"))
        var total = 0
        for try await count in rows.decode(Int.self) { total = count }
        #expect(total == 500)
        #expect(try await runToCompletion(binary, ["dev", "seed", "--messages", "-1"], environment: environment).status != 0)
    }
}
