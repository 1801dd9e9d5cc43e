import DNSClient
import DNSTestServer
import Foundation
import MailMessage
import NIOCore
import RelayCore
import RelayStore
import RelayApp
import RelayTestSupport
import Testing

/// HTTP in → PostgreSQL queue → SMTP out, against real SMTP servers (aiosmtpd, Postfix smtp-sink) on loopback
/// addresses and an in-process DNS server. The sink's behaviour is chosen by recipient local part
/// (Tests/Peers/smtp_sink.py): bounce*, defer*, tempfail*, datafail*.
@Suite struct DeliveryTests {
    /// A harness whose MX port is `port`, with `dest.test` served by MX hosts at 127.0.0.N.
    func withRelay(_ configure: (inout RelayConfiguration) -> Void = { _ in },
                   _ body: (RelayHarness, Int) async throws -> Void) async throws {
        let port = try mxPort()
        let harness = try await RelayHarness.start { configuration in
            configuration.mxPort = port
            configure(&configuration)
        }
        do {
            try await body(harness, port)
        } catch {
            try? await harness.stop()
            throw error
        }
        try await harness.stop()
    }

    func message(to: Any, extra: [String: any Sendable] = [:]) -> [String: any Sendable] {
        var body: [String: any Sendable] = ["from": "Alice <alice@example.com>", "subject": "Hello", "text": "Hi there"]
        body["to"] = to as? String ?? (to as? [String]) ?? []
        for (key, value) in extra { body[key] = value }
        return body
    }

    @Test func deliversAndTheBytesReceivedEqualTheStoredMessage() async throws {
        try await withRelay { relay, port in
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.2", port: port)
            defer { Task { await sink.stop() } }
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.2")])
            let text = ".starts with a dot\n..two dots\nnormal\n.\nend"
            let id = try await relay.sendMessage(message(to: "bob@dest.test", extra: ["text": text]))
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients[0]["status"] as? String == "delivered")
            #expect(recipients[0]["attempts"] as? Int == 1)
            #expect(recipients[0]["mx"] as? String == "mx1.dest.test")
            #expect((recipients[0]["last_reply"] as? [String: Any])?["code"] as? Int == 250)
            let received = try sink.received()
            try #require(received.count == 1)
            // VERP: the envelope sender is this delivery's own bounce address (see InboundTests).
            #expect(received[0].mailFrom.hasPrefix("bounce+") && received[0].mailFrom.hasSuffix("@bounces.example.com"))
            #expect(received[0].recipients == ["bob@dest.test"])
            #expect(received[0].data.starts(with: Array("DKIM-Signature:".utf8)), "signed at delivery")
            #expect(RelayHarness.withoutDKIMSignatures(received[0].data) == (try await relay.storedBody(id)),
                    "after the DKIM signatures, the bytes received must equal the stored message")
            let parsed = try MIMEEntity(parsing: received[0].data)
            #expect(parsed.decodedText.replacingOccurrences(of: "\r\n", with: "\n") == text + "\n")
            let events = try await relay.send(.GET, "/v1/messages/\(id)/events").json["data"] as? [[String: Any]] ?? []
            #expect(events.map { $0["type"] as? String } == ["accepted", "delivered"])
            #expect(events[1]["mx"] as? String == "mx1.dest.test")
            #expect((events[1]["duration_ms"] as? Int ?? -1) >= 0)
        }
    }

    @Test func bccRecipientsAreDeliveredButNeverInTheHeaders() async throws {
        try await withRelay { relay, port in
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.2", port: port)
            defer { Task { await sink.stop() } }
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.2")])
            let id = try await relay.sendMessage(message(to: "bob@dest.test", extra: ["bcc": ["hidden@dest.test"], "cc": "carol@dest.test"]))
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients.map { $0["status"] as? String } == ["delivered", "delivered", "delivered"])
            let received = try sink.received()
            #expect(Set(received.flatMap(\.recipients)) == ["bob@dest.test", "carol@dest.test", "hidden@dest.test"])
            #expect(received.count == 3, "one transaction per recipient (each has its own VERP return path)")
            #expect(Set(received.map(\.peerPort)).count == 1, "over one connection")
            for message in received {
                let headers = try MIMEEntity(parsing: message.data).headers
                #expect(!headers.contains { $0.name.lowercased() == "bcc" })
                #expect(!String(decoding: message.data, as: UTF8.self).contains("hidden@"))
            }
        }
    }

    /// The connection lost after the end of the data, before the reply: the recipient is deferred with reason
    /// `outcome_unknown`, retried, and — as documented — may then arrive twice.
    @Test func aConnectionLostAfterTheDataIsAnUnknownOutcomeAndIsRetried() async throws {
        // A retry 4 s later leaves time to see the deferral even on a loaded machine.
        try await withRelay({ $0.retryPolicy.initialDelay = .seconds(4); $0.retryPolicy.maximumDelay = .seconds(4) }) { relay, port in
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.2", port: port)
            defer { Task { await sink.stop() } }
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.2")])
            let id = try await relay.sendMessage(message(to: "vanish-once@dest.test"))
            var unknown: [String: Any]?
            try await waitUntil("the recipient is deferred with an unknown outcome", timeout: .seconds(20)) {
                let recipient = try await relay.recipients(id).first ?? [:]
                if recipient["status"] as? String == "deferred" { unknown = recipient }
                return unknown != nil || recipient["status"] as? String == "delivered"
            }
            #expect(unknown?["reason"] as? String == "outcome_unknown")
            #expect((unknown?["last_error"] as? String ?? "").contains("outcome unknown, will retry (a duplicate is possible)"))
            let recipients = try await relay.waitUntilFinal(id, timeout: .seconds(30))
            #expect(recipients[0]["status"] as? String == "delivered")
            #expect(recipients[0]["reason"] is NSNull || recipients[0]["reason"] == nil)
            #expect(try sink.received().count == 2, "the one duplicate window: the first copy had arrived")
        }
    }

    @Test func transientRejectionIsRetriedAndThenDelivered() async throws {
        try await withRelay { relay, port in
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.2", port: port)
            defer { Task { await sink.stop() } }
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.2")])
            let id = try await relay.sendMessage(message(to: "defer-once@dest.test"))
            var sawDeferred = false
            try await waitUntil("the recipient is deferred", timeout: .seconds(20)) {
                let status = try await relay.recipients(id).first?["status"] as? String
                sawDeferred = sawDeferred || status == "deferred"
                return sawDeferred || status == "delivered"
            }
            let recipients = try await relay.waitUntilFinal(id, timeout: .seconds(30))
            #expect(recipients[0]["status"] as? String == "delivered")
            #expect(recipients[0]["attempts"] as? Int == 2)
            let events = try await relay.send(.GET, "/v1/messages/\(id)/events").json["data"] as? [[String: Any]] ?? []
            #expect(events.map { $0["type"] as? String } == ["accepted", "deferred", "delivered"])
            let deferredReply = events[1]["reply"] as? [String: Any]
            #expect(deferredReply?["code"] as? Int == 451)
            #expect(deferredReply?["enhanced"] as? String == "4.3.0")
            #expect(try sink.received().count == 1)
        }
    }

    @Test func permanentRejectionBouncesAndKeepsTheEnhancedCode() async throws {
        try await withRelay { relay, port in
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.2", port: port)
            defer { Task { await sink.stop() } }
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.2")])
            let id = try await relay.sendMessage(message(to: ["bounce-me@dest.test", "ok@dest.test"]))
            let recipients = try await relay.waitUntilFinal(id)
            let bounced = try #require(recipients.first { $0["email"] as? String == "bounce-me@dest.test" })
            #expect(bounced["status"] as? String == "bounced")
            let reply = bounced["last_reply"] as? [String: Any]
            #expect(reply?["code"] as? Int == 550)
            #expect(reply?["enhanced"] as? String == "5.1.1")
            #expect((reply?["text"] as? String ?? "").contains("User unknown"))
            #expect(recipients.first { $0["email"] as? String == "ok@dest.test" }?["status"] as? String == "delivered")
            #expect(try await relay.message(id)["status"] as? String == "partially_delivered")
        }
    }

    @Test func aSecondMessageToTheSameMXReusesTheConnection() async throws {
        // An idle timeout longer than the gaps between the messages can be on a loaded machine (5 s was not).
        try await withRelay({ $0.mxIdleTimeout = .seconds(60) }) { relay, port in
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.2", port: port)
            defer { Task { await sink.stop() } }
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.2")])
            for index in 0..<3 {
                let id = try await relay.sendMessage(message(to: "user\(index)@dest.test"))
                try await relay.waitUntilFinal(id)
            }
            let received = try sink.received()
            #expect(received.count == 3)
            #expect(Set(received.compactMap(\.peerPort)).count == 1, "one connection carried all three transactions")
        }
    }

    @Test func secondaryMXIsUsedWhenThePrimaryIsDown() async throws {
        try await withRelay { relay, port in
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.4", port: port)
            defer { Task { await sink.stop() } }
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test"), .mx(preference: 20, exchange: "mx2.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.3")])  // nothing listens there
            relay.dns.set("mx2.dest.test", [.a("127.0.0.4")])
            let id = try await relay.sendMessage(message(to: "bob@dest.test"))
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients[0]["status"] as? String == "delivered")
            #expect(recipients[0]["mx"] as? String == "mx2.dest.test")
            #expect(try sink.received().count == 1)
        }
    }

    @Test func aPrimaryThatGreetsWith421IsSkipped() async throws {
        try await withRelay { relay, port in
            let busy = try await RecordingSMTPSink.start(host: "127.0.0.3", port: port, greeting: "421")
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.4", port: port)
            defer { Task { await busy.stop(); await sink.stop() } }
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test"), .mx(preference: 20, exchange: "mx2.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.3")])
            relay.dns.set("mx2.dest.test", [.a("127.0.0.4")])
            let id = try await relay.sendMessage(message(to: "bob@dest.test"))
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients[0]["status"] as? String == "delivered")
            #expect(recipients[0]["mx"] as? String == "mx2.dest.test")
        }
    }

    @Test func aDomainWithoutMXIsDeliveredToItsAddressRecord() async throws {
        try await withRelay { relay, port in
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.5", port: port)
            defer { Task { await sink.stop() } }
            relay.dns.set("bare.test", [.a("127.0.0.5")])
            let id = try await relay.sendMessage(message(to: "bob@bare.test"))
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients[0]["status"] as? String == "delivered")
            #expect(try sink.received().map(\.recipients) == [["bob@bare.test"]])
        }
    }

    @Test func aDomainThatDoesNotExistFailsAtOnce() async throws {
        try await withRelay { relay, _ in
            let id = try await relay.sendMessage(message(to: "bob@nowhere.test"))
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients[0]["status"] as? String == "failed")
            #expect(recipients[0]["reason"] as? String == "domain_not_found")
            #expect(recipients[0]["attempts"] as? Int == 1)
            #expect((recipients[0]["last_error"] as? String ?? "").contains("NXDOMAIN"))
        }
    }

    @Test func aNullMXFailsAtOnce() async throws {
        try await withRelay { relay, _ in
            relay.dns.set("nomail.test", [.mx(preference: 0, exchange: ".")])
            let id = try await relay.sendMessage(message(to: "bob@nomail.test"))
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients[0]["status"] as? String == "failed")
            #expect(recipients[0]["reason"] as? String == "null_mx")
        }
    }

    @Test func aRecipientStillDeferredAtItsLifetimeFailsAsExpired() async throws {
        // 8 s: long enough for the first attempt (and its 451) to come first even while the whole suite starts.
        try await withRelay({ $0.retryPolicy.maximumLifetime = .seconds(8) }) { relay, port in
            let sink = try await RecordingSMTPSink.start(host: "127.0.0.2", port: port)
            defer { Task { await sink.stop() } }
            relay.dns.set("dest.test", [.mx(preference: 10, exchange: "mx1.dest.test")])
            relay.dns.set("mx1.dest.test", [.a("127.0.0.2")])
            let id = try await relay.sendMessage(message(to: "tempfail@dest.test"))
            let recipients = try await relay.waitUntilFinal(id, timeout: .seconds(40))
            #expect(recipients[0]["status"] as? String == "failed")
            #expect(recipients[0]["reason"] as? String == "expired")
            #expect((recipients[0]["attempts"] as? Int ?? 0) >= 1)
            #expect((recipients[0]["last_reply"] as? [String: Any])?["code"] as? Int == 451)
        }
    }

    @Test func aDNSServerFailureDefers() async throws {
        try await withRelay { relay, _ in
            relay.dns.failWithServFail("flaky.test")
            let id = try await relay.sendMessage(message(to: "bob@flaky.test"))
            try await waitUntil("the recipient is deferred") {
                try await relay.recipients(id).first?["status"] as? String == "deferred"
            }
            let recipient = try await relay.recipients(id)[0]
            #expect(recipient["next_attempt_at"] as? String != nil)
            #expect((recipient["last_error"] as? String ?? "").contains("MX lookup"))
        }
    }

    @Test func deliversWithMXRecordsServedByDnsmasq() async throws {
        // The same path with Debian's dnsmasq as the DNS server instead of the in-process one.
        let dnsPort = try freePort()
        let port = try mxPort()
        let sink = try await RecordingSMTPSink.start(host: "127.0.0.8", port: port)
        let dnsmasq = try ChildProcess(try findExecutable("dnsmasq", extraDirectories: ["/usr/sbin", "/sbin"]), [
            "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--user=root",
            "--pid-file=\(NSTemporaryDirectory())relay-dnsmasq-\(dnsPort).pid", "--port=\(dnsPort)",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--local=/test/",
            "--mx-host=viadnsmasq.test,mx.viadnsmasq.test,10", "--host-record=mx.viadnsmasq.test,127.0.0.8",
        ])
        defer { Task { dnsmasq.signal(SIGKILL); _ = await dnsmasq.waitForExit(); await sink.stop() } }
        let resolver = DNSResolver(servers: [.init(host: "127.0.0.1", port: dnsPort)], timeout: .milliseconds(300))
        try await waitUntil("dnsmasq answers") {
            (try? await resolver.mailExchangers(for: "viadnsmasq.test")) == .exchangers([MXRecord(preference: 10, host: "mx.viadnsmasq.test")])
        }
        let relay = try await RelayHarness.start { configuration in
            configuration.mxPort = port
            configuration.dnsServers = [.init(host: "127.0.0.1", port: dnsPort)]
        }
        defer { Task { try? await relay.stop() } }
        let id = try await relay.sendMessage(message(to: "bob@viadnsmasq.test"))
        let recipients = try await relay.waitUntilFinal(id)
        #expect(recipients[0]["status"] as? String == "delivered")
        #expect(recipients[0]["mx"] as? String == "mx.viadnsmasq.test")
        #expect(try sink.received().map(\.recipients) == [["bob@viadnsmasq.test"]])
    }

    @Test func twoNodesOnOneDatabaseDeliverEachRecipientExactlyOnce() async throws {
        let url = try await TestDatabase.create()
        let port = try mxPort()
        let sink = try await RecordingSMTPSink.start(host: "127.0.0.9", port: port)
        defer { Task { await sink.stop() } }
        let dns = try await DNSTestServer.start(negativeTTL: 0)
        dns.set("both.test", [.mx(preference: 10, exchange: "mx.both.test")])
        dns.set("mx.both.test", [.a("127.0.0.9")])
        let nodes = [
            try await RelayHarness.start(dns: dns, databaseURL: url) { $0.mxPort = port },
            try await RelayHarness.start(dns: dns, databaseURL: url) { $0.mxPort = port },
        ]
        defer { Task { for node in nodes { try? await node.stop() } } }
        let count = 300
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<count {
                let node = nodes[index % 2]
                group.addTask { try await node.sendMessage(self.message(to: ["a\(index)@both.test", "b\(index)@both.test"])) }
            }
            var ids: [String] = []
            for try await id in group { ids.append(id) }
            return ids
        }
        try await waitUntil("both nodes drained the queue", timeout: .seconds(120), interval: .milliseconds(100)) {
            try await nodes[0].database.queueDepth() == (0, 0)
        }
        let delivered = try sink.received().flatMap(\.recipients)
        #expect(delivered.count == 2 * count, "every recipient delivered once, none twice")
        #expect(Set(delivered).count == 2 * count)
        #expect(ids.count == count)
    }

    @Test func aThousandPrequeuedMessagesDrainIntoPostfixSmtpSink() async throws {
        // 1,000 small messages are queued before Relay starts; the figure printed is the drain rate
        // (informative: performance is measured in bench/, not asserted here).
        let url = try await TestDatabase.create()
        let (store, storeTask) = try TestDatabase.connect(url)
        defer { storeTask.cancel() }
        try await Migrator(client: store.client, logger: .init(label: "test")).migrate()
        let (tenant, _) = try await store.createTenant(name: "bulk")
        let count = 1000
        let body = MessageComposer.compose(MessageDraft(
            from: try Mailbox(parsing: "Alice <alice@example.com>"), to: [try Mailbox(parsing: "user@sink.test")],
            subject: "bulk", text: String(repeating: "All work and no play. ", count: 45), messageID: "bulk@relay.test"))
        for index in 0..<count {
            let message = NewMessage(
                id: TimeOrderedUUID.make(), tenantID: tenant.id, mailFrom: "alice@example.com", fromHeader: "alice@example.com",
                subject: "bulk", messageIDHeader: "bulk\(index)@relay.test", tags: [], metadataJSON: "{}",
                body: ByteBuffer(bytes: body), requiresSMTPUTF8: false, recipients: [("user\(index)@sink.test", "sink.test")],
                lifetime: .seconds(3600))
            _ = try await store.enqueue(message, idempotency: nil)
        }
        let port = try mxPort()
        let sink = try await PostfixSMTPSink.start(host: "127.0.0.6", port: port)
        defer { Task { await sink.stop() } }
        let dns = try await DNSTestServer.start(negativeTTL: 0)
        dns.set("sink.test", [.mx(preference: 10, exchange: "mx.sink.test")])
        dns.set("mx.sink.test", [.a("127.0.0.6")])
        let started = ContinuousClock.now
        let relay = try await RelayHarness.start(dns: dns, databaseURL: url) { configuration in
            configuration.mxPort = port
            configuration.workerConcurrency = 32
        }
        defer { Task { try? await relay.stop() } }
        try await waitUntil("all \(count) messages are delivered", timeout: .seconds(120), interval: .milliseconds(50)) {
            try await relay.database.queueDepth() == (0, 0)
        }
        let elapsed = ContinuousClock.now - started
        let rows = try await store.client.query("SELECT status, count(*)::bigint FROM recipients GROUP BY status")
        var statuses: [String: Int] = [:]
        for try await (status, number) in rows.decode((String, Int).self) { statuses[status] = number }
        #expect(statuses == ["delivered": count])
        print("[throughput] \(count) pre-queued \(body.count)-byte messages delivered into smtp-sink in \(elapsed) (\(Int(Double(count) / elapsed.seconds))/s, including startup)")
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
