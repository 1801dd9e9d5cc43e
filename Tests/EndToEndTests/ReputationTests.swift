import Foundation
import RelayApp
import RelayCore
import RelayStore
import RelayTestSupport
import Testing

/// The reputation guard: a tenant whose bounce rate passes the threshold is paused (API 403, SMTP 550 5.7.1,
/// queued mail held, not lost) until an admin resumes it.
@Suite struct ReputationTests {
    @Test func aHighBounceRatePausesTheTenantUntilAnAdminResumesIt() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        try await RelayHarness.withDestination(smtp: true, { configuration in
            configuration.reputation.minimumSends = 20
            configuration.webhookAllowPrivate = true
        }) { relay, sink in
            let endpoint = try await relay.createWebhook(url: receiver.url, events: ["tenant.paused"])
            try receiver.trust([try #require(endpoint["secret"] as? String)])
            // 20 sends, 3 of them hard bounces: 15% ≥ 10%.
            let recipients = (1...17).map { "ok\($0)@dest.test" } + (1...3).map { "bounce\($0)@dest.test" }
            let id = try await relay.sendMessage(["from": "alice@example.com", "to": recipients, "subject": "s", "text": "t"])
            _ = try await relay.waitUntilFinal(id)

            try await waitUntil("the guard pauses the tenant", timeout: .seconds(30)) {
                let stats = try await relay.send(.GET, "/v1/stats").json
                return (stats["reputation"] as? [String: Any])?["state"] as? String == "paused"
            }
            let reputation = try await relay.send(.GET, "/v1/stats").json["reputation"] as? [String: Any] ?? [:]
            #expect(reputation["reason"] as? String == "bounce_rate")
            #expect(reputation["bounce_rate"] as? Double == 0.15)
            #expect(reputation["paused_at"] is String)
            #expect(reputation["sends"] as? Int == 20)
            // The tenant's own systems hear of it: a signed tenant.paused webhook.
            let paused = try await receiver.waitForRequests(1).first
            #expect(paused?.json["type"] as? String == "tenant.paused")
            #expect(paused?.data["reason"] as? String == "bounce_rate")
            #expect(paused?.data["bounce_rate"] as? Double == 0.15)
            #expect(paused?.data["tenant_id"] as? String == relay.tenantID)
            #expect(paused?.verified.values.allSatisfy { $0 } == true, "standardwebhooks verified the signature")

            let refused = try await relay.send(.POST, "/v1/messages", json: [
                "from": "alice@example.com", "to": "ok1@dest.test", "subject": "s", "text": "t"])
            #expect(refused.status == 403)
            #expect(refused.errorCode == "sending_paused")
            let smtp = try await runToCompletion(try findExecutable("swaks"), [
                "--server", "127.0.0.1", "--port", "\(relay.submissionPort!)", "--tls", "--auth", "PLAIN",
                "--auth-user", "relay", "--auth-password", relay.apiKey, "--from", "alice@example.com", "--to", "ok1@dest.test"])
            #expect(smtp.status != 0)
            #expect(smtp.output.contains("550 5.7.1"), "\(smtp.output)")

            // Resuming is the operator's call.
            #expect(try await relay.send(.POST, "/admin/tenants/\(relay.tenantID)/resume").status == 401)
            let resumed = try await relay.send(.POST, "/admin/tenants/\(relay.tenantID)/resume", bearer: relay.adminToken)
            #expect(resumed.status == 200)
            #expect(resumed.json["was_paused"] as? Bool == true)
            #expect(try await relay.send(.POST, "/admin/tenants/\(UUID())/resume", bearer: relay.adminToken).status == 404)
            let again = try await relay.sendMessage(["from": "alice@example.com", "to": "ok1@dest.test", "subject": "s", "text": "t"])
            #expect(try await relay.waitUntilFinal(again).first?["status"] as? String == "delivered")
            #expect(try sink.received().count == 18)
        }
    }

    /// Mail queued when the pause comes is held (due at infinity, never attempted), then delivered after the resume.
    @Test func queuedMailIsHeldWhilePausedAndDeliveredAfterTheResume() async throws {
        // The retry comes 5 s (±20%) after the first attempt, so that the pause lands before it even on a loaded
        // machine (with the harness's 1–2 s the retry could be claimed before the pause and go out).
        try await RelayHarness.withDestination({
            $0.retryPolicy.initialDelay = .seconds(5)
            $0.retryPolicy.maximumDelay = .seconds(5)
        }) { relay, sink in
            // The sink greylists "defer…" once.
            let id = try await relay.sendMessage(["from": "alice@example.com", "to": "defer-held@dest.test", "subject": "s", "text": "t"])
            try await waitUntil("the first attempt is deferred") {
                try await relay.recipients(id).first?["status"] as? String == "deferred"
            }
            let tenant = try #require(UUID(uuidString: relay.tenantID))
            let assessment = ReputationAssessment(state: .paused, reason: "complaint_rate", bounceRate: 0, complaintRate: 0.02, sends: 500)
            #expect(try await relay.database.pauseTenant(tenant, assessment: assessment))
            try await waitUntil("the retry is held instead of attempted", timeout: .seconds(30)) {
                let rows = try await relay.database.client.query("SELECT due_at = 'infinity' FROM queue")
                for try await held in rows.decode(Bool.self) { return held }
                return false
            }
            #expect(try sink.received().isEmpty)
            let waiting = try await relay.recipients(id).first ?? [:]
            #expect(waiting["status"] as? String == "deferred")
            #expect(waiting["attempts"] as? Int == 1)
            let stats = try await relay.send(.GET, "/v1/stats").json["reputation"] as? [String: Any] ?? [:]
            #expect(stats["state"] as? String == "paused")
            #expect(stats["reason"] as? String == "complaint_rate")

            #expect(try await relay.send(.POST, "/admin/tenants/\(relay.tenantID)/resume", bearer: relay.adminToken).status == 200)
            #expect(try await relay.waitUntilFinal(id).first?["status"] as? String == "delivered")
            #expect(try sink.received().count == 1)
        }
    }
}
