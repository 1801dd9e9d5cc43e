import Foundation
import Logging
import RelayApp
import RelayTestSupport
import SMTPServer
import Testing

/// The delivery log and statistics against real deliveries: a STARTTLS MX named like Google's and a plain MX
/// that bounces and defers (Tests/Peers/smtp_sink.py), then `/v1/events`, `/v1/messages/{id}/attempts`,
/// `/v1/stats` and `/admin/stats` are checked against what happened.
@Suite struct DeliveryLogTests {
    /// What the scenario sent, for the checks.
    struct Scenario {
        var relay: RelayHarness
        var delivered: [String]
        var bounced: String
        var deferred: String
    }

    /// 3 messages to a Google-hosted domain over TLS, and to dest.test one delivered, one bounced (550 5.1.1)
    /// and one deferred (451 4.3.0, next attempt in an hour).
    func withScenario(_ body: (Scenario) async throws -> Void) async throws {
        let port = try mxPort()
        let tlsDirectory = NSTemporaryDirectory() + "relay-mx-tls-\(UUID().uuidString.prefix(8))"
        _ = try TLSMaterial(certificatePath: nil, keyPath: nil, hostname: "gmail-smtp-in.l.google.com",
                            generatedDirectory: tlsDirectory, logger: Logger(label: "test"))
        let files = try FileManager.default.contentsOfDirectory(atPath: tlsDirectory)
        let certificate = tlsDirectory + "/" + (files.first { $0.hasSuffix("-cert.pem") } ?? "")
        let key = tlsDirectory + "/" + (files.first { $0.hasSuffix("-key.pem") } ?? "")
        let tlsSink = try await RecordingSMTPSink.start(host: "127.0.0.3", port: port, tls: (certificate, key))
        let plainSink = try await RecordingSMTPSink.start(host: "127.0.0.2", port: port)
        let relay = try await RelayHarness.start { configuration in
            configuration.mxPort = port
            configuration.retryPolicy.initialDelay = .seconds(3600)
            configuration.retryPolicy.maximumDelay = .seconds(3600)
        }
        do {
            relay.dns.set("hosted.test", [.mx(preference: 5, exchange: "gmail-smtp-in.l.google.com")])
            relay.dns.set("gmail-smtp-in.l.google.com", [.a("127.0.0.3")])
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.2")])
            func send(_ to: String) async throws -> String {
                try await relay.sendMessage(["from": "Alice <alice@example.com>", "to": to, "subject": "Secret subject",
                                             "text": "the body must never appear in a transcript"])
            }
            var delivered: [String] = []
            for index in 0..<3 { delivered.append(try await send("user\(index)@hosted.test")) }
            delivered.append(try await send("ok@dest.test"))
            let bounced = try await send("bounce@dest.test")
            let deferred = try await send("tempfail@dest.test")
            for id in delivered + [bounced] { try await relay.waitUntilFinal(id) }
            try await waitUntil("the tempfail recipient is deferred") {
                try await relay.recipients(deferred).first?["status"] as? String == "deferred"
            }
            try await body(Scenario(relay: relay, delivered: delivered, bounced: bounced, deferred: deferred))
        } catch {
            try? await relay.stop()
            await tlsSink.stop()
            await plainSink.stop()
            throw error
        }
        try await relay.stop()
        await tlsSink.stop()
        await plainSink.stop()
    }

    @Test func eventsAttemptsAndStatsDescribeWhatHappened() async throws {
        try await withScenario { scenario in
            let relay = scenario.relay

            // The event stream: every delivered event names the server, its address and the TLS of the session.
            let deliveredEvents = try await relay.send(.GET, "/v1/events?type=delivered").json["data"] as? [[String: Any]] ?? []
            #expect(deliveredEvents.count == 4)
            for event in deliveredEvents {
                #expect(event["reply_code"] as? Int == 250)
                #expect((event["attempt"] as? Int) == 1)
                #expect(event["attempt_id"] is String)
                #expect(event["duration_ms"] is Int)
                let hosted = (event["recipient"] as? String ?? "").hasSuffix("@hosted.test")
                #expect(event["mx"] as? String == (hosted ? "gmail-smtp-in.l.google.com" : "mx1.dest.test"))
                #expect(event["remote_ip"] as? String == (hosted ? "127.0.0.3" : "127.0.0.2"))
                #expect(event["tls"] as? Bool == hosted)
                if hosted { #expect((event["tls_version"] as? String)?.hasPrefix("TLSv1.") == true) }
            }

            // One recipient's events, newest first: the bounce, then the accept.
            let bounceEvents = try await relay.send(.GET, "/v1/events?recipient=bounce@dest.test").json["data"] as? [[String: Any]] ?? []
            #expect(bounceEvents.map { $0["type"] as? String } == ["bounced", "accepted"])
            #expect(bounceEvents.first?["reply_code"] as? Int == 550)
            #expect(bounceEvents.first?["enhanced_code"] as? String == "5.1.1")
            #expect(bounceEvents.first?["message_id"] as? String == scenario.bounced)
            #expect(bounceEvents.first?["bounce_type"] as? String == "hard")
            #expect(bounceEvents.first?["bounce_reason"] as? String == "mailbox_unknown")
            #expect(bounceEvents.last?["bounce_type"] is NSNull, "an accept is not a bounce")
            let deferredEvent = try await relay.send(.GET, "/v1/events?type=deferred").json["data"] as? [[String: Any]] ?? []
            #expect(deferredEvent.first?["bounce_type"] as? String == "soft")
            let bouncedRecipient = try await relay.recipients(scenario.bounced).first
            #expect(bouncedRecipient?["bounce_type"] as? String == "hard")
            #expect(bouncedRecipient?["bounce_reason"] as? String == "mailbox_unknown")

            // The transcript says exactly what the server answered, and never carries the message.
            let attempts = try await relay.send(.GET, "/v1/messages/\(scenario.bounced)/attempts").json["data"] as? [[String: Any]] ?? []
            try #require(attempts.count == 1)
            let lines = attempts[0]["transcript"] as? [[String: Any]] ?? []
            let texts = lines.map { "\($0["direction"] as? String ?? "") \($0["text"] as? String ?? "")" }
            #expect(texts.contains("client RCPT TO:<bounce@dest.test>"))
            #expect(texts.contains { $0.hasPrefix("server 550 5.1.1") && $0.contains("User unknown") })
            #expect(!texts.contains { $0.contains("Secret subject") || $0.contains("must never appear") })
            #expect(attempts[0]["remote_ip"] as? String == "127.0.0.2")
            #expect((attempts[0]["recipients"] as? [[String: Any]])?.first?["status"] as? String == "bounced")
            let tlsAttempts = try await relay.send(.GET, "/v1/messages/\(scenario.delivered[0])/attempts").json["data"] as? [[String: Any]] ?? []
            let tlsTexts = (tlsAttempts.first?["transcript"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
            #expect(tlsTexts.contains("STARTTLS"))
            #expect(tlsTexts.contains { $0.hasPrefix("TLS established") })
            #expect(tlsAttempts.first?["tls"] as? Bool == true)

            // Statistics: the arithmetic of what was sent.
            let stats = try await relay.send(.GET, "/v1/stats?bucket=hour")
            #expect(stats.status == 200)
            let totals = stats.json["totals"] as? [String: Any] ?? [:]
            #expect(totals["accepted"] as? Int == 6)
            #expect(totals["delivered"] as? Int == 4)
            #expect(totals["bounced"] as? Int == 1)
            #expect(totals["bounced_hard"] as? Int == 1)
            #expect(totals["deferred"] as? Int == 1)
            #expect(totals["bounced_soft"] as? Int == 0, "the one bounce (550 5.1.1) is hard; a deferral is not a bounce")
            #expect(totals["failed"] as? Int == 0)
            #expect(stats.json["delivery_rate"] as? Double == 0.8)
            #expect(stats.json["bounce_rate"] as? Double == 0.2)
            let latency = stats.json["delivery_time_ms"] as? [String: Any] ?? [:]
            #expect(latency["count"] as? Int == 4)
            #expect((latency["p50"] as? Int ?? 0) > 0)
            #expect((latency["p50"] as? Int ?? 0) <= (latency["p99"] as? Int ?? 0))
            let series = stats.json["series"] as? [[String: Any]] ?? []
            #expect(series.reduce(0) { $0 + ($1["delivered"] as? Int ?? 0) } == 4)
            let errors = stats.json["top_errors"] as? [[String: Any]] ?? []
            #expect(errors.contains { $0["code"] as? Int == 550 && $0["enhanced"] as? String == "5.1.1" && $0["count"] as? Int == 1
                                      && $0["reason"] as? String == "mailbox_unknown" && $0["bounce_type"] as? String == "hard" })
            #expect(errors.contains { $0["code"] as? Int == 451 && $0["count"] as? Int == 1 })
            let providers = stats.json["providers"] as? [[String: Any]] ?? []
            let google = providers.first { $0["provider"] as? String == "google" }
            #expect(google?["delivered"] as? Int == 3)
            #expect(google?["bounce_rate"] as? Double == 0)
            let domains = stats.json["domains"] as? [[String: Any]] ?? []
            let dest = domains.first { $0["domain"] as? String == "dest.test" }
            #expect(dest?["accepted"] as? Int == 3)
            #expect(dest?["delivered"] as? Int == 1)
            #expect(dest?["bounced"] as? Int == 1)
            #expect(dest?["delivery_rate"] as? Double == 0.5)
            #expect(domains.first { $0["domain"] as? String == "hosted.test" }?["provider"] as? String == "google")
            let queue = stats.json["queue"] as? [String: Any] ?? [:]
            #expect(queue["deferred"] as? Int == 1)

            // Folding the deltas into the rollups changes no figure.
            _ = try await relay.database.foldStats()
            let folded = try await relay.send(.GET, "/v1/stats?bucket=hour")
            #expect(folded.json["totals"] as? [String: Any] as NSDictionary? == totals as NSDictionary)

            // The operator's view spans tenants and shows the queue by state.
            let admin = try await relay.send(.GET, "/admin/stats", bearer: relay.adminToken)
            #expect(admin.status == 200)
            #expect((admin.json["totals"] as? [String: Any])?["accepted"] as? Int == 6)
            let adminQueue = admin.json["queue"] as? [String: Any] ?? [:]
            #expect(adminQueue["scheduled"] as? Int == 1)
            #expect(adminQueue["due"] as? Int == 0)
            #expect(adminQueue["oldest_queued_age_seconds"] is Double)
            #expect(try await relay.send(.GET, "/admin/stats").status == 401, "an API key is not the admin token")
        }
    }

    @Test func anotherTenantSeesNothing() async throws {
        try await withScenario { scenario in
            let relay = scenario.relay
            let (_, otherKey) = try await relay.database.createTenant(name: "other")
            #expect(try await relay.send(.GET, "/v1/messages/\(scenario.bounced)/attempts", bearer: otherKey).status == 404)
            let events = try await relay.send(.GET, "/v1/events", bearer: otherKey)
            #expect(events.status == 200)
            #expect((events.json["data"] as? [Any])?.isEmpty == true)
            let stats = try await relay.send(.GET, "/v1/stats", bearer: otherKey)
            #expect((stats.json["totals"] as? [String: Any])?["accepted"] as? Int == 0)
            #expect((stats.json["top_errors"] as? [Any])?.isEmpty == true)
            #expect(stats.json["delivery_rate"] is NSNull)
        }
    }

    @Test func theEventStreamPagesWithoutGapsOrDuplicatesWhileEventsArrive() async throws {
        try await withScenario { scenario in
            let relay = scenario.relay
            let before = try await relay.send(.GET, "/v1/events?limit=500").json["data"] as? [[String: Any]] ?? []
            let existing = Set(before.compactMap { $0["id"] as? String })
            #expect(existing.count == before.count)
            var seen: [String] = []
            var cursor: String?
            repeat {
                let path = "/v1/events?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await relay.send(.GET, path).json
                seen += (page["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                cursor = page["next_cursor"] as? String
                // New events arrive while paging; they sort before the first page.
                _ = try await relay.sendMessage(["from": "alice@example.com", "to": "ok@dest.test", "subject": "more", "text": "x"])
            } while cursor != nil
            #expect(seen.count == Set(seen).count, "no event appears twice")
            #expect(Set(seen) == existing, "every event that existed is seen, and none that came later")

            // Oldest first from a point in time.
            let ascending = try await relay.send(.GET, "/v1/events?order=asc&limit=3&type=accepted").json["data"] as? [[String: Any]] ?? []
            let times = ascending.compactMap { $0["at"] as? String }
            #expect(times == times.sorted())
            #expect(try await relay.send(.GET, "/v1/events?type=nonsense").status == 422)
            #expect(try await relay.send(.GET, "/v1/events?cursor=!!").status == 422)
            #expect(try await relay.send(.GET, "/v1/stats?bucket=week").status == 422)
            #expect(try await relay.send(.GET, "/v1/stats?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z").status == 422)
        }
    }
}
