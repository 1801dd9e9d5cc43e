import Foundation
import RelayApp
import RelayCore
import RelayStore
import RelayTestSupport
import Testing

/// Asynchronous bounces and complaints: VERP envelope senders on every delivery, the inbound listener that takes
/// mail only for them (swaks as the reporting MTA), and what each report does to its delivery.
@Suite struct InboundTests {
    /// Sends `data` to the inbound listener with swaks from the null sender; returns swaks' transcript.
    static func report(to address: String, port: Int, data: String) async throws -> (status: Int32, output: String) {
        let file = NSTemporaryDirectory() + "relay-report-\(UUID().uuidString).eml"
        try data.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        return try await runToCompletion(try findExecutable("swaks"), [
            "--server", "127.0.0.1", "--port", "\(port)", "--from", "<>", "--to", address,
            "--helo", "mx.dest.test", "--data", "@\(file)", "--timeout", "20"])
    }

    /// An RFC 3464 report as Postfix writes it, about `recipient`.
    static func deliveryStatusNotification(recipient: String, status: String = "5.1.1",
                                           diagnostic: String = "550 5.1.1 <%@>: Recipient address rejected: User unknown") -> String {
        let diagnosticText = diagnostic.replacingOccurrences(of: "%@", with: recipient)
        return """
            From: MAILER-DAEMON@mx.dest.test (Mail Delivery System)
            To: someone@bounces.example.com
            Subject: Undelivered Mail Returned to Sender
            Auto-Submitted: auto-replied
            MIME-Version: 1.0
            Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

            --B1
            Content-Type: text/plain

            I'm sorry to have to inform you that your message could not be delivered.

            --B1
            Content-Type: message/delivery-status

            Reporting-MTA: dns; mx.dest.test
            Arrival-Date: Sun, 29 Nov 2026 08:00:00 +0000

            Final-Recipient: rfc822; \(recipient)
            Original-Recipient: rfc822;\(recipient)
            Action: failed
            Status: \(status)
            Diagnostic-Code: smtp; \(diagnosticText)

            --B1
            Content-Type: text/rfc822-headers

            From: alice@example.com
            To: \(recipient)
            Subject: s

            --B1--

            """
    }

    static func feedbackReport(recipient: String) -> String {
        """
        From: feedback@fbl.dest.test
        To: fbl@bounces.example.com
        Subject: FW: s
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=feedback-report; boundary="F1"

        --F1
        Content-Type: text/plain

        This is an email abuse report.

        --F1
        Content-Type: message/feedback-report

        Feedback-Type: abuse
        User-Agent: dest-fbl/1.0
        Version: 1
        Original-Rcpt-To: \(recipient)

        --F1
        Content-Type: message/rfc822

        From: alice@example.com
        To: \(recipient)
        Subject: s

        t
        --F1--

        """
    }

    @Test func everyRecipientGetsItsOwnVerifiableReturnPath() async throws {
        try await RelayHarness.withDestination { relay, sink in
            let id = try await relay.sendMessage(["from": "alice@example.com", "to": ["bob@dest.test", "carol@dest.test"],
                                                  "subject": "s", "text": "t"])
            #expect(try await relay.waitUntilFinal(id).allSatisfy { $0["status"] as? String == "delivered" })
            let received = try sink.received()
            #expect(received.count == 2, "one transaction per recipient: each has its own envelope sender")
            let key = try await relay.database.secret(named: "verp")
            let codec = ReturnPath(key: key, bounceDomain: nil)
            for message in received {
                #expect(message.mailFrom.hasPrefix("bounce+"))
                #expect(message.mailFrom.hasSuffix("@bounces.example.com"))
                #expect(codec.recipientID(of: message.mailFrom) != nil)
            }
            #expect(Set(received.map(\.mailFrom)).count == 2)
            #expect(Set(received.map { $0.peerPort }).count == 1, "both transactions used one connection")
        }
    }

    @Test func aDSNForADeliveredMessageBouncesAndSuppressesTheRecipient() async throws {
        try await RelayHarness.withDestination(inbound: true, { $0.bounceDomain = "bounces.relay.test" }) { relay, sink in
            let id = try await relay.sendMessage(["from": "alice@example.com", "to": "gone@dest.test", "subject": "s", "text": "t"])
            #expect(try await relay.waitUntilFinal(id).first?["status"] as? String == "delivered")
            let returnPath = try #require(try sink.received().first?.mailFrom)
            #expect(returnPath.hasSuffix("@bounces.relay.test"))

            let sent = try await Self.report(to: returnPath, port: relay.inboundPort!,
                                             data: Self.deliveryStatusNotification(recipient: "gone@dest.test"))
            #expect(sent.status == 0, "\(sent.output)")
            #expect(sent.output.contains("250 2.0.0"))

            try await waitUntil("the recipient is bounced") {
                try await relay.recipients(id).first?["status"] as? String == "bounced"
            }
            let recipient = try await relay.recipients(id).first ?? [:]
            #expect(recipient["bounce_type"] as? String == "hard")
            #expect(recipient["bounce_reason"] as? String == "mailbox_unknown")
            let events = try await relay.send(.GET, "/v1/messages/\(id)/events").json["data"] as? [[String: Any]] ?? []
            #expect(events.map { $0["type"] as? String } == ["accepted", "delivered", "bounced"])
            let bounced = events.last ?? [:]
            #expect((bounced["reply"] as? [String: Any])?["code"] as? Int == 550)
            #expect((bounced["reply"] as? [String: Any])?["enhanced"] as? String == "5.1.1")
            let listed = try await relay.send(.GET, "/v1/suppressions?email=gone@dest.test").json["data"] as? [[String: Any]] ?? []
            #expect(listed.first?["reason"] as? String == "hard_bounce")
            #expect(listed.first?["source_message_id"] as? String == id)
            let totals = try await relay.send(.GET, "/v1/stats").json["totals"] as? [String: Any] ?? [:]
            #expect(totals["bounced_hard"] as? Int == 1)
            #expect(totals["delivered"] as? Int == 1)

            // The next message to the address is not attempted.
            let again = try await relay.send(.POST, "/v1/messages", json: [
                "from": "alice@example.com", "to": "gone@dest.test", "subject": "s", "text": "t"])
            #expect((again.json["recipients"] as? [[String: Any]])?.first?["status"] as? String == "suppressed")
        }
    }

    @Test func aComplaintMarksTheRecipientComplainedAndSuppressesIt() async throws {
        let receiver = try await WebhookReceiver.start()
        defer { Task { await receiver.stop() } }
        try await RelayHarness.withDestination(inbound: true, { $0.webhookAllowPrivate = true }) { relay, sink in
            let endpoint = try await relay.createWebhook(url: receiver.url, events: ["complained"])
            try receiver.trust([try #require(endpoint["secret"] as? String)])
            let id = try await relay.sendMessage(["from": "alice@example.com", "to": "grumpy@dest.test", "subject": "s", "text": "t"])
            #expect(try await relay.waitUntilFinal(id).first?["status"] as? String == "delivered")
            let returnPath = try #require(try sink.received().first?.mailFrom)
            let sent = try await Self.report(to: returnPath, port: relay.inboundPort!, data: Self.feedbackReport(recipient: "grumpy@dest.test"))
            #expect(sent.status == 0, "\(sent.output)")
            try await waitUntil("the recipient is complained") {
                try await relay.recipients(id).first?["status"] as? String == "complained"
            }
            // The same report again (a reporting server that did not see our 250) is taken but not counted twice.
            #expect(try await Self.report(to: returnPath, port: relay.inboundPort!,
                                          data: Self.feedbackReport(recipient: "grumpy@dest.test")).status == 0)
            let events = try await relay.send(.GET, "/v1/messages/\(id)/events").json["data"] as? [[String: Any]] ?? []
            #expect(events.map { $0["type"] as? String } == ["accepted", "delivered", "complained"])
            let listed = try await relay.send(.GET, "/v1/suppressions?email=grumpy@dest.test").json["data"] as? [[String: Any]] ?? []
            #expect(listed.first?["reason"] as? String == "complaint")
            let totals = try await relay.send(.GET, "/v1/stats").json["totals"] as? [String: Any] ?? [:]
            #expect(totals["complained"] as? Int == 1)
            // The app hears of it once, signed, with the message and recipient.
            let complained = try await receiver.waitForRequests(1)
            #expect(complained.count == 1)
            #expect(complained.first?.json["type"] as? String == "complained")
            #expect(complained.first?.data["message_id"] as? String == id)
            #expect(complained.first?.data["recipient"] as? String == "grumpy@dest.test")
            #expect(complained.first?.verified.values.allSatisfy { $0 } == true)
        }
    }

    /// A real provider's report (sisimai's ARF sample, naming none of our addresses) still lands on the delivery
    /// its bounce address names; an auto-reply changes nothing.
    @Test func aRealFeedbackReportMapsByItsBounceAddressAndAnAutoReplyChangesNothing() async throws {
        try await RelayHarness.withDestination(inbound: true) { relay, sink in
            let first = try await relay.sendMessage(["from": "alice@example.com", "to": "one@dest.test", "subject": "s", "text": "t"])
            let second = try await relay.sendMessage(["from": "alice@example.com", "to": "two@dest.test", "subject": "s", "text": "t"])
            _ = try await relay.waitUntilFinal(first)
            _ = try await relay.waitUntilFinal(second)
            let byRecipient = Dictionary(try sink.received().map { ($0.recipients[0], $0.mailFrom) }, uniquingKeysWith: { a, _ in a })
            let fixture = try String(contentsOfFile: repositoryRoot() + "/Tests/Fixtures/bounces/arf-01.eml", encoding: .utf8)
            #expect(try await Self.report(to: byRecipient["one@dest.test"]!, port: relay.inboundPort!, data: fixture).status == 0)
            let vacation = """
                From: two@dest.test
                To: alice@example.com
                Subject: Out of office
                Auto-Submitted: auto-replied

                I am away until Monday.

                """
            #expect(try await Self.report(to: byRecipient["two@dest.test"]!, port: relay.inboundPort!, data: vacation).status == 0)
            try await waitUntil("the report is applied") {
                try await relay.recipients(first).first?["status"] as? String == "complained"
            }
            #expect(try await relay.recipients(second).first?["status"] as? String == "delivered")
            let reports = try await relay.database.client.query("SELECT kind, outcome FROM inbound_reports ORDER BY received_at")
            var kinds: [String] = []
            for try await (kind, _) in reports.decode((String, String).self) { kinds.append(kind) }
            #expect(kinds == ["complaint", "auto_reply"])
        }
    }

    @Test func theListenerRefusesEveryOtherRecipientAndForgedTokens() async throws {
        try await RelayHarness.withDestination(inbound: true) { relay, sink in
            let id = try await relay.sendMessage(["from": "alice@example.com", "to": "bob@dest.test", "subject": "s", "text": "t"])
            _ = try await relay.waitUntilFinal(id)
            let genuine = try #require(try sink.received().first?.mailFrom)
            let local = genuine.split(separator: "@")[0]
            let mac = local.split(separator: "-").last!
            let recipientID = Int64(local.dropFirst("bounce+".count).split(separator: "-")[0])!
            let forged = [
                "postmaster@bounces.example.com",                                   // not a bounce address
                "bob@dest.test",                                                    // relaying
                "bounce+\(recipientID + 1)-\(mac)@bounces.example.com",             // another delivery's id, same mac
                "bounce+\(recipientID)-\(String(mac.reversed()))@bounces.example.com", // a made-up mac
                "bounce+\(recipientID)@bounces.example.com",                        // no mac
            ]
            for address in forged {
                let result = try await Self.report(to: address, port: relay.inboundPort!,
                                                   data: Self.deliveryStatusNotification(recipient: "bob@dest.test"))
                #expect(result.status != 0, "\(address) must be refused")
                #expect(result.output.contains("550 5.7.1"), "\(address): \(result.output)")
            }
            #expect(try await relay.recipients(id).first?["status"] as? String == "delivered")
            // AUTH is not offered: this is not a submission port.
            let auth = try await runToCompletion(try findExecutable("swaks"), [
                "--server", "127.0.0.1", "--port", "\(relay.inboundPort!)", "--to", genuine, "--auth", "PLAIN",
                "--auth-user", "x", "--auth-password", relay.apiKey, "--quit-after", "AUTH"])
            #expect(auth.status != 0)
            // A genuine address in upper case (some MTAs fold local parts) still verifies.
            let upper = try await Self.report(to: genuine.uppercased(), port: relay.inboundPort!,
                                              data: Self.deliveryStatusNotification(recipient: "bob@dest.test", status: "4.2.2",
                                                                                    diagnostic: "452 4.2.2 Mailbox full"))
            #expect(upper.status == 0, "\(upper.output)")
        }
    }
}
