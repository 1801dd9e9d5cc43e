import Foundation
import RelayApp
import RelayStore
import RelayTestSupport
import Testing

/// Per-tenant send rate limits held in PostgreSQL: one budget for the whole cluster, 429 with Retry-After over
/// HTTP, 451 4.7.1 over SMTP, nothing stored when refused.
@Suite(.serialized) struct RateLimitTests {
    static let message: [String: any Sendable] = ["from": "app@example.com", "to": "bob@dest.test", "subject": "s", "text": "t"]

    /// The budget is per clock minute: start well inside one, so that the window cannot turn over mid-test.
    static func awayFromAWindowEnd() async throws {
        try await waitUntil("not within 15 s of a rate window's end", timeout: .seconds(20), interval: .milliseconds(200)) {
            Int(Date().timeIntervalSince1970) % RelayDatabase.rateLimitWindow < 45
        }
    }

    @Test func twoNodesShareOneBudgetAndRefuseWith429AndRetryAfter() async throws {
        let first = try await RelayHarness.start { $0.tenantRateLimit = 3 }
        defer { Task { try? await first.stop() } }
        let second = try await RelayHarness.start(databaseURL: first.databaseURL) { $0.tenantRateLimit = 3 }
        defer { Task { try? await second.stop() } }
        try await Self.awayFromAWindowEnd()
        for node in [first, second, first] {
            let accepted = try await RelayHarness.send(port: node.port, .POST, "/v1/messages", json: Self.message, bearer: first.apiKey)
            #expect(accepted.status == 202, "\(accepted.text)")
        }
        let refused = try await RelayHarness.send(port: second.port, .POST, "/v1/messages", json: Self.message, bearer: first.apiKey)
        #expect(refused.status == 429)
        #expect(refused.errorCode == "rate_limited")
        let retryAfter = try #require(refused.headers.first { $0.0.lowercased() == "retry-after" }.flatMap { Int($0.1) })
        #expect((1...60).contains(retryAfter))
        let stored = try await first.send(.GET, "/v1/messages?limit=10").json["data"] as? [[String: Any]] ?? []
        #expect(stored.count == 3, "the refused message was not stored")
        // A batch larger than what is left is refused whole.
        let batch = try await first.send(.POST, "/v1/messages/batch", json: [Self.message])
        #expect(batch.status == 429)
    }

    @Test func submissionOverTheLimitIs451() async throws {
        try await RelayHarness.withDestination(address: "127.0.0.11", exchange: "mx.dest.test", smtp: true, { $0.tenantRateLimit = 1 }) { relay, _ in
            try await Self.awayFromAWindowEnd()
            #expect(try await relay.send(.POST, "/v1/messages", json: Self.message).status == 202)
            let (status, output) = try await runToCompletion(try findExecutable("swaks"), [
                "--server", "127.0.0.1:\(relay.submissionPort!)", "--auth-user", "anyone", "--auth-password", relay.apiKey,
                "--from", "app@example.com", "--to", "bob@dest.test", "--helo", "client.test", "--tls", "--auth", "PLAIN",
                "--timeout", "30"])
            #expect(status != 0)
            #expect(output.contains("451 4.7.1"), "\(output)")
        }
    }
}
