import Foundation
import RelayTestSupport
import Testing

/// `GET /metrics` after real deliveries, parsed by prometheus_client's parser (Tests/Peers/parse_metrics.py).
@Suite struct MetricsTests {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    func scrape(_ relay: RelayHarness) async throws -> [Sample] {
        let response = try await relay.send(.GET, "/metrics", bearer: "")
        #expect(response.status == 200)
        #expect(response.headers.contains { $0.0.lowercased() == "content-type" && $0.1.hasPrefix("text/plain; version=0.0.4") })
        let file = NSTemporaryDirectory() + "relay-metrics-\(UUID().uuidString).txt"
        try response.text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (status, output) = try await runToCompletion(try findExecutable("python3"), [try peerScript("parse_metrics.py"), file])
        try #require(status == 0, "prometheus_client could not parse /metrics: \(output)")
        let json = output.split(separator: "\n").last.map(String.init) ?? "[]"
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]] ?? []
        return parsed.map { Sample(name: $0["name"] as? String ?? "", labels: $0["labels"] as? [String: String] ?? [:],
                                   value: $0["value"] as? Double ?? .nan) }
    }

    func value(_ samples: [Sample], _ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }

    @Test func deliveriesRequestsAndTheQueueAreCounted() async throws {
        try await RelayHarness.withDestination { relay, sink in
            // One after the other, so that the second reuses the first one's connection.
            let ok = try await relay.sendMessage(["from": "alice@example.com", "to": "bob@dest.test", "subject": "s", "text": "t"])
            try await relay.waitUntilFinal(ok)
            let bounce = try await relay.sendMessage(["from": "alice@example.com", "to": "bounce@dest.test", "subject": "s", "text": "t"])
            try await relay.waitUntilFinal(bounce)
            _ = try await relay.send(.GET, "/v1/messages/00000000-0000-0000-0000-000000000000")

            let samples = try await scrape(relay)
            #expect(value(samples, "relay_messages_accepted_total", ["source": "api"]) == 2)
            #expect(value(samples, "relay_deliveries_total", ["result": "delivered", "code_class": "2xx"]) == 1)
            #expect(value(samples, "relay_deliveries_total", ["result": "bounced", "code_class": "5xx"]) == 1)
            // One duration per recipient outcome (a deferral on a loaded machine adds one of each).
            let outcomes = samples.filter { $0.name == "relay_deliveries_total" }.reduce(0) { $0 + $1.value }
            #expect(value(samples, "relay_delivery_duration_seconds_count") == outcomes)
            #expect(value(samples, "relay_http_requests_total", ["method": "POST", "route": "/v1/messages", "status": "202"]) == 2)
            #expect(value(samples, "relay_http_requests_total", ["method": "GET", "route": "/v1/messages/{id}", "status": "404"]) == 1,
                    "routes are patterns, not raw paths")
            #expect(value(samples, "relay_queue_depth", ["state": "due"]) == 0)
            #expect(value(samples, "relay_queue_depth", ["state": "in_flight"]) == 0)
            #expect(value(samples, "relay_queue_oldest_due_age_seconds") == 0)
            #expect((1...2).contains(value(samples, "relay_smtp_sessions_active", ["direction": "outbound"]) ?? 0),
                    "the pooled connection (a second one only if the first was lost)")
            #expect(value(samples, "relay_smtp_sessions_active", ["direction": "inbound"]) == 0)
            #expect(value(samples, "relay_db_connections", ["state": "max"]) == 20)
        }
    }
}
