import DNSClient
import DNSTestServer
import Foundation
import RelayApp
import RelayTestSupport
import Testing

/// Cluster-wide connection limits per MX host (`RELAY_MX_MAX_CONNECTIONS`) and adaptive throttling, with two
/// Relay nodes on one PostgreSQL delivering to one recording sink.
@Suite struct MXLimitTests {
    /// Starts a sink on `address` and two nodes sharing a database, `dest.test`'s MX pointing at the sink.
    static func withTwoNodes(address: String, sinkLimit: Int? = nil, slowSeconds: Double,
                             _ configure: @escaping @Sendable (inout RelayConfiguration) -> Void,
                             _ body: (RelayHarness, RelayHarness, RecordingSMTPSink) async throws -> Void) async throws {
        let sink = try await RecordingSMTPSink.start(host: address, slowSeconds: slowSeconds, connectionLimit: sinkLimit)
        let port = sink.port
        defer { Task { await sink.stop() } }
        let first = try await RelayHarness.start { configuration in
            configuration.mxPort = port
            configure(&configuration)
        }
        defer { Task { try? await first.stop() } }
        let second = try await RelayHarness.start(dns: first.dns, databaseURL: first.databaseURL) { configuration in
            configuration.mxPort = port
            configure(&configuration)
        }
        defer { Task { try? await second.stop() } }
        first.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
        first.dns.set("mx1.dest.test", [.a(address)])
        try await body(first, second, sink)
    }

    @Test func twoNodesTogetherNeverOpenMoreThanTheLimitToOneHost() async throws {
        try await Self.withTwoNodes(address: "127.0.0.31", slowSeconds: 0.3, { $0.mxMaxConnections = 2 }) { first, second, sink in
            // Each message is its own delivery (slow* recipients make the sink take 0.3 s per message), sent
            // through both nodes so that both have work.
            var ids: [String] = []
            for index in 0..<16 {
                let node = index.isMultiple(of: 2) ? first : second
                let accepted = try await RelayHarness.send(port: node.port, .POST, "/v1/messages", json: [
                    "from": "alice@example.com", "to": "slow\(index)@dest.test", "subject": "s", "text": "t"], bearer: first.apiKey)
                #expect(accepted.status == 202)
                ids.append(accepted.json["id"] as? String ?? "")
            }
            for id in ids {
                let recipients = try await first.waitUntilFinal(id, timeout: .seconds(90))
                #expect(recipients.first?["status"] as? String == "delivered")
            }
            let received = try sink.received()
            #expect(received.count == 16)
            let connections = try sink.connectionLog()
            #expect(!connections.isEmpty)
            #expect(connections.allSatisfy { $0.event == "open" && $0.open <= 2 }, "\(connections)")
            #expect(received.allSatisfy { ($0.openConnections ?? 99) <= 2 })
            // The limit was used, not undercut: two connections carried mail at once.
            #expect(received.contains { $0.openConnections == 2 })
        }
    }

    @Test func aHostThatAnswers421GetsALowerLimitAndEverythingStillArrives() async throws {
        // The sink serves one connection at a time and answers any other with 421 4.7.0 "too many".
        try await Self.withTwoNodes(address: "127.0.0.32", sinkLimit: 1, slowSeconds: 0.2, { $0.mxMaxConnections = 4 }) { first, second, sink in
            var ids: [String] = []
            for index in 0..<12 {
                let node = index.isMultiple(of: 2) ? first : second
                let accepted = try await RelayHarness.send(port: node.port, .POST, "/v1/messages", json: [
                    "from": "alice@example.com", "to": "slow\(index)@dest.test", "subject": "s", "text": "t"], bearer: first.apiKey)
                ids.append(accepted.json["id"] as? String ?? "")
            }
            for id in ids {
                let recipients = try await first.waitUntilFinal(id, timeout: .seconds(90))
                #expect(recipients.first?["status"] as? String == "delivered")
            }
            #expect(try sink.received().count == 12)
            #expect(try sink.connectionLog().contains { $0.event == "refused" })
            // Both nodes see one throttle in PostgreSQL, below the configured 4.
            for node in [first, second] {
                let hosts = try await RelayHarness.send(port: node.port, .GET, "/admin/mx-hosts", bearer: node.adminToken)
                #expect(hosts.status == 200)
                let entry = (hosts.json["data"] as? [[String: Any]] ?? []).first { $0["host"] as? String == "mx1.dest.test" }
                #expect(entry?["throttled"] as? Bool == true)
                #expect((entry?["connection_limit"] as? Int ?? 99) < 4)
                #expect((entry?["reply"] as? String ?? "").hasPrefix("421 4.7.0"))
                #expect(entry?["throttled_until"] is String)
            }
            // A deferred attempt's transcript says why and what Relay did about it.
            var throttledTranscript = false
            for id in ids {
                let attempts = try await first.send(.GET, "/v1/messages/\(id)/attempts").json["data"] as? [[String: Any]] ?? []
                for attempt in attempts {
                    let texts = (attempt["transcript"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
                    if texts.contains(where: { $0.contains("mx1.dest.test asked to slow down: at most") }) { throttledTranscript = true }
                }
            }
            #expect(throttledTranscript)
            // The operator can lift it; a second lift finds nothing.
            #expect(try await first.send(.DELETE, "/admin/mx-hosts/mx1.dest.test/throttle", bearer: first.adminToken).status == 204)
            #expect(try await first.send(.DELETE, "/admin/mx-hosts/mx1.dest.test/throttle", bearer: first.adminToken).status == 404)
            let after = try await first.send(.GET, "/admin/mx-hosts", bearer: first.adminToken).json["data"] as? [[String: Any]] ?? []
            #expect(after.first { $0["host"] as? String == "mx1.dest.test" }?["throttled"] as? Bool != true)
        }
    }
}
