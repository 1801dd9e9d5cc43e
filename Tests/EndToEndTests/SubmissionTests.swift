import DNSTestServer
import Foundation
import RelayApp
import RelayStore
import RelayTestSupport
import SMTPServer
import Testing

/// SMTP submission (RFC 6409) end to end: real clients (swaks, Python smtplib) submit to Relay's 587-style
/// (STARTTLS) and 465-style (implicit TLS) listeners; the messages are delivered to a recording MX and compared
/// byte for byte with what the client sent, after the headers Relay adds.
@Suite struct SubmissionTests {
    /// A relay with SMTP listeners, and `dest.test` delivered to a recording sink.
    func withSubmission(_ configure: @escaping (inout RelayConfiguration) -> Void = { _ in },
                        _ body: (RelayHarness, RecordingSMTPSink) async throws -> Void) async throws {
        try await RelayHarness.withDestination(address: "127.0.0.10", exchange: "mx.dest.test", smtp: true, configure, body)
    }

    func run(_ executable: String, _ arguments: [String]) async throws -> (Int32, String) {
        try await runToCompletion(executable, arguments)
    }

    func swaks(_ relay: RelayHarness, port: Int, _ extra: [String], password: String? = nil, from: String = "app@example.com",
               to: String = "bob@dest.test", data: String? = nil) async throws -> (Int32, String) {
        var arguments = ["--server", "127.0.0.1:\(port)", "--auth-user", "anyone", "--auth-password", password ?? relay.apiKey,
                         "--from", from, "--to", to, "--helo", "client.test", "--timeout", "30"] + extra
        if let data {
            let file = NSTemporaryDirectory() + "relay-swaks-\(UUID().uuidString).eml"
            try data.write(toFile: file, atomically: true, encoding: .utf8)
            arguments += ["--data", "@\(file)"]
        }
        return try await run(try findExecutable("swaks"), arguments)
    }

    static func messageID(in output: String) -> String? {
        guard let range = output.range(of: #"queued as [0-9a-f-]{36}"#, options: .regularExpression) else { return nil }
        return String(output[range].dropFirst("queued as ".count))
    }

    static let fixedMessage = [
        "From: App <app@example.com>", "To: Bob <bob@dest.test>", "Subject: Submitted over SMTP",
        "Date: Sun, 29 Nov 2026 01:00:00 +0000", "Message-ID: <fixed-1@client.test>", "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8", "", "Hello Bob,", ".a line that starts with a dot", "..and two", "bye",
    ].joined(separator: "\r\n")
    /// What the server receives for it: swaks ends the data with CRLF "." CRLF.
    static let fixedMessageAsReceived = fixedMessage + "\r\n"

    @Test func swaksWithSTARTTLSAndAuthPlainIsDeliveredByteForByte() async throws {
        try await withSubmission { relay, sink in
            let (status, output) = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"], data: Self.fixedMessage)
            #expect(status == 0, "\(output)")
            let id = try #require(Self.messageID(in: output), "\(output)")
            #expect(try await relay.waitUntilFinal(id)[0]["status"] as? String == "delivered")
            let received = try #require(try sink.received().first)
            #expect(received.mailFrom.hasPrefix("bounce+") && received.mailFrom.hasSuffix("@bounces.example.com"),
                    "the submitted envelope sender is replaced by the delivery's VERP return path")
            let text = String(decoding: RelayHarness.withoutDKIMSignatures(received.data), as: UTF8.self)
            #expect(text.hasPrefix("Received: from client.test"), "Relay prepends its Received header (after the DKIM signatures)")
            #expect(text.hasSuffix(Self.fixedMessageAsReceived), "the rest arrives exactly as submitted (dot-stuffing undone and redone)")
            #expect(text.contains("with ESMTPSA"))
        }
    }

    /// Over SMTP as over HTTP: a recipient on the suppression list is accepted, stored as suppressed and never
    /// attempted, while the message's other recipient is delivered.
    @Test func aSuppressedRecipientSubmittedOverSMTPIsNotAttempted() async throws {
        try await withSubmission { relay, sink in
            #expect(try await relay.send(.POST, "/v1/suppressions", json: ["email": "bob@dest.test"]).status == 201)
            let (status, output) = try await swaks(relay, port: relay.submissionPort!,
                                                   ["--tls", "--auth", "PLAIN", "--to", "bob@dest.test,carol@dest.test"],
                                                   data: Self.fixedMessage)
            #expect(status == 0, "\(output)")
            let id = try #require(Self.messageID(in: output), "\(output)")
            let recipients = try await relay.waitUntilFinal(id)
            #expect(recipients.map { $0["status"] as? String } == ["suppressed", "delivered"])
            #expect(recipients.first?["reason"] as? String == "manual")
            #expect(try sink.received().flatMap(\.recipients) == ["carol@dest.test"])
        }
    }

    /// With verified domains required, a sender domain whose DKIM record has not verified is refused at MAIL
    /// FROM with 550 5.7.1, and accepted once it has.
    @Test func anUnverifiedSenderDomainIsRefusedWith550() async throws {
        try await withSubmission({ $0.requireVerifiedDomains = true }) { relay, sink in
            let (status, output) = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"], data: Self.fixedMessage)
            #expect(status != 0)
            #expect(output.contains("550 5.7.1") && output.contains("not verified"), "\(output)")
            #expect(try sink.received().isEmpty)

            let domain = try await relay.send(.GET, "/v1/domains/example.com")
            DomainTests.publish(DomainTests.records(domain.json), in: relay, only: ["dkim"])
            #expect(try await relay.send(.POST, "/v1/domains/example.com/verify").json["status"] as? String == "verified")
            let (again, secondOutput) = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"], data: Self.fixedMessage)
            #expect(again == 0, "\(secondOutput)")
        }
    }

    /// Behind a load balancer (RELAY_PROXY_PROTOCOL): the PROXY v1 or v2 header's client address is the session's
    /// (here in the Received header), on STARTTLS and implicit-TLS listeners; a connection without a header is closed.
    @Test(arguments: [("1", "TCP4"), ("2", "AF_INET")])
    func theProxyProtocolHeaderGivesTheClientAddress(version: String, family: String) async throws {
        try await withSubmission({ $0.proxyProtocol = true }) { relay, sink in
            for (port, tls) in [(relay.submissionPort!, "--tls"), (relay.submissionsPort!, "--tls-on-connect")] {
                let (status, output) = try await swaks(relay, port: port, [
                    tls, "--auth", "PLAIN", "--proxy-version", version, "--proxy-family", family,
                    "--proxy-source", "203.0.113.7", "--proxy-source-port", "56324",
                    "--proxy-dest", "127.0.0.1", "--proxy-dest-port", "\(port)",
                ], data: Self.fixedMessage)
                #expect(status == 0, "\(output)")
                let id = try #require(Self.messageID(in: output), "\(output)")
                #expect(try await relay.waitUntilFinal(id)[0]["status"] as? String == "delivered")
            }
            let received = try sink.received()
            #expect(received.count == 2)
            for message in received {
                let text = String(decoding: RelayHarness.withoutDKIMSignatures(message.data), as: UTF8.self)
                #expect(text.hasPrefix("Received: from client.test ([203.0.113.7])") || text.contains("[203.0.113.7]"),
                        "\(text.prefix(200))")
            }
            // Without the header: no greeting, closed after 10 s.
            let (status, output) = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"], data: Self.fixedMessage)
            #expect(status != 0)
            #expect(!output.contains("220 "), "\(output)")
        }
    }

    @Test func swaksOverImplicitTLSWithAuthLogin() async throws {
        try await withSubmission { relay, sink in
            let (status, output) = try await swaks(relay, port: relay.submissionsPort!, ["--tls-on-connect", "--auth", "LOGIN"], data: Self.fixedMessage)
            #expect(status == 0, "\(output)")
            let id = try #require(Self.messageID(in: output))
            #expect(try await relay.waitUntilFinal(id)[0]["status"] as? String == "delivered")
            #expect(String(decoding: try sink.received()[0].data, as: UTF8.self).hasSuffix(Self.fixedMessageAsReceived))
        }
    }

    @Test func swaksPipelining() async throws {
        try await withSubmission { relay, _ in
            let (status, output) = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN", "--pipeline"], data: Self.fixedMessage)
            #expect(status == 0, "\(output)")
            #expect(Self.messageID(in: output) != nil)
        }
    }

    @Test(arguments: ["starttls", "ssl"])
    func pythonSmtplibWithAttachmentAndUTF8(mode: String) async throws {
        try await withSubmission { relay, sink in
            let sent = NSTemporaryDirectory() + "relay-smtplib-\(UUID().uuidString).eml"
            let port = mode == "ssl" ? relay.submissionsPort! : relay.submissionPort!
            let (status, output) = try await run(try findExecutable("python3"), [
                try peerScript("submit.py"), "--port", "\(port)", "--mode", mode, "--password", relay.apiKey,
                "--from", "app@example.com", "--to", "bob@dest.test", "--to", "carol@dest.test", "--sent", sent, "--attachment", "--utf8",
            ])
            #expect(status == 0, "\(output)")
            // One transaction per recipient (VERP), the same bytes in each.
            try await waitUntil("the sink receives the message") { try sink.received().count == 2 }
            let received = try sink.received()
            #expect(Set(received.flatMap(\.recipients)) == ["bob@dest.test", "carol@dest.test"])
            let original = try Data(contentsOf: URL(fileURLWithPath: sent))
            for message in received {
                let delivered = Data(RelayHarness.withoutDKIMSignatures(message.data))
                #expect(delivered.starts(with: Data("Received: ".utf8)))
                #expect(delivered.suffix(original.count) == original, "delivered bytes equal the submitted bytes after Relay's Received header")
            }
        }
    }

    @Test func bccAndRelayControlHeadersAreRemovedAndApplied() async throws {
        try await withSubmission { relay, sink in
            let message = [
                "From: app@example.com", "To: bob@dest.test", "Bcc: hidden@dest.test", "Subject: tags",
                "X-Relay-Tags: welcome, onboarding", "X-Relay-Metadata-user-id: 42", "", "body", "",
            ].joined(separator: "\r\n")
            let (status, output) = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"],
                                                   to: "bob@dest.test,hidden@dest.test", data: message)
            #expect(status == 0, "\(output)")
            let id = try #require(Self.messageID(in: output))
            try await relay.waitUntilFinal(id)
            let stored = try await relay.message(id)
            #expect(stored["tags"] as? [String] == ["welcome", "onboarding"])
            #expect(stored["metadata"] as? [String: String] == ["user-id": "42"])
            let text = String(decoding: try sink.received()[0].data, as: UTF8.self)
            #expect(!text.contains("Bcc:") && !text.contains("X-Relay-"))
            #expect(text.contains("\r\nMessage-ID: <") && text.contains("\r\nDate: "), "Message-ID and Date are added when missing")
            #expect(Set(try sink.received().flatMap(\.recipients)) == ["bob@dest.test", "hidden@dest.test"])
        }
    }

    @Test func relayIdempotencyKeyQueuesARetriedSubmissionOnce() async throws {
        try await withSubmission { relay, sink in
            let message = "From: app@example.com\r\nTo: bob@dest.test\r\nSubject: once\r\nRelay-Idempotency-Key: order-77\r\n\r\nbody"
            let first = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"], data: message)
            let second = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"], data: message)
            #expect(first.0 == 0 && second.0 == 0)
            let id = try #require(Self.messageID(in: first.1))
            #expect(second.1.contains("already queued as \(id)"), "\(second.1)")
            try await relay.waitUntilFinal(id)
            let received = try sink.received()
            #expect(received.count == 1, "the retried submission is not queued again")
            #expect(!String(decoding: received[0].data, as: UTF8.self).contains("Relay-Idempotency-Key"))
            let changed = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"],
                                          data: message.replacingOccurrences(of: "body", with: "other body"))
            #expect(changed.0 != 0)
            #expect(changed.1.contains("554 5.7.0"), "\(changed.1)")
        }
    }

    @Test func unregisteredSenderDomainsAreRefused() async throws {
        try await withSubmission { relay, _ in
            let envelope = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"], from: "x@not-mine.test")
            #expect(envelope.0 != 0)
            #expect(envelope.1.contains("550 5.7.1"), "\(envelope.1)")
            let spoofed = "From: ceo@not-mine.test\r\nTo: bob@dest.test\r\nSubject: spoof\r\n\r\nhi\r\n"
            let header = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"], data: spoofed)
            #expect(header.0 != 0)
            #expect(header.1.contains("550 5.7.1"), "\(header.1)")
        }
    }

    /// RELAY_SUBMISSION_TRUSTED_NETWORKS: a client in a trusted block sends as its tenant without AUTH or TLS; the
    /// sender policy still holds; a client outside the block must authenticate.
    @Test func trustedNetworkSubmitsWithoutAuthentication() async throws {
        try await withSubmission { relay, sink in
            // The setting names a tenant, so a second node (no worker; the first one delivers) starts once it exists.
            let trusting = try await RelayHarness.start(databaseURL: relay.databaseURL, smtp: true) { configuration in
                configuration.roles = [.smtp, .api]
                configuration.submissionTrustedNetworks = try! TrustedNetworks(parsing: "127.0.0.3/32=\(relay.tenantID)")
            }
            defer { Task { try? await trusting.stop() } }
            func plain(from local: String, sender: String = "app@example.com") async throws -> (Int32, String) {
                try await run(try findExecutable("swaks"), [
                    "--server", "127.0.0.1:\(trusting.submissionPort!)", "--local-interface", local, "--from", sender,
                    "--to", "bob@dest.test", "--helo", "legacy.internal", "--timeout", "30"])
            }
            let (status, output) = try await plain(from: "127.0.0.3")
            #expect(status == 0, "\(output)")
            let id = try #require(Self.messageID(in: output), "\(output)")
            #expect(try await relay.waitUntilFinal(id)[0]["status"] as? String == "delivered")
            #expect(try sink.received().count == 1)
            let message = try await relay.database.message(id: UUID(uuidString: id)!, tenantID: UUID(uuidString: relay.tenantID)!)
            #expect(message != nil, "the message belongs to the trusted network's tenant")

            let untrusted = try await plain(from: "127.0.0.1")
            #expect(untrusted.0 != 0)
            #expect(untrusted.1.contains("530 5.7.0"), "\(untrusted.1)")
            let foreign = try await plain(from: "127.0.0.3", sender: "x@not-mine.test")
            #expect(foreign.0 != 0)
            #expect(foreign.1.contains("550 5.7.1"), "\(foreign.1)")
        }
    }

    @Test func trustedNetworksSettingParses() throws {
        let tenant = UUID().uuidString.lowercased()
        let configuration = try RelayConfiguration(values: ["RELAY_SUBMISSION_TRUSTED_NETWORKS": "10.0.0.0/8=\(tenant), ::1=\(tenant)"])
        #expect(configuration.submissionTrustedNetworks.principal(for: "10.20.30.40") == tenant)
        #expect(configuration.submissionTrustedNetworks.principal(for: "::1") == tenant)
        #expect(RelayConfiguration().submissionTrustedNetworks.isEmpty, "nobody is trusted by default")
        for bad in ["10.0.0.0/8", "10.0.0.0/8=acme", "10.0.0.1/8=\(tenant)", "10.0.0.0/40=\(tenant)"] {
            #expect(throws: ConfigurationError.self, "\(bad)") {
                try RelayConfiguration(values: ["RELAY_SUBMISSION_TRUSTED_NETWORKS": bad])
            }
        }
    }

    @Test func bruteForceIsLockedOutAcrossNodes() async throws {
        try await withSubmission({ $0.smtpAuthFailures = 3 }) { relay, _ in
            for _ in 0..<3 {
                let (status, output) = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN", "--quit-after", "AUTH"],
                                                       password: "rly_wrong")
                #expect(status != 0)
                #expect(output.contains("535 5.7.8"), "\(output)")
            }
            // A second node on the same database sees the same count.
            let other = try await RelayHarness.start(databaseURL: relay.databaseURL, smtp: true) { $0.smtpAuthFailures = 3 }
            defer { Task { try? await other.stop() } }
            let (_, output) = try await swaks(other, port: other.submissionPort!, ["--tls", "--auth", "PLAIN", "--quit-after", "AUTH"],
                                              password: relay.apiKey)
            #expect(output.contains("421 4.7.0"), "locked out even with the right key: \(output)")
        }
    }

    @Test func databaseDownAtEndOfDataIs451AndNothingIsLostAfterwards() async throws {
        let database = try await ProxiedTestDatabase.create()
        let proxy = try await database.startProxy()
        let relay = try await RelayHarness.start(databaseURL: database.url, smtp: true)
        defer { Task { try? await relay.stop() } }
        let flag = NSTemporaryDirectory() + "relay-go-\(UUID().uuidString)"
        let log = NSTemporaryDirectory() + "relay-submit-\(UUID().uuidString).log"
        let client = try ChildProcess(try findExecutable("python3"), [
            try peerScript("submit.py"), "--port", "\(relay.submissionPort!)", "--mode", "starttls", "--password", relay.apiKey,
            "--from", "app@example.com", "--to", "bob@dest.test", "--sent", log + ".eml", "--pause-before-data", flag,
        ], logPath: log)
        try await waitUntil("the client reached DATA") { (try? String(contentsOfFile: log, encoding: .utf8))?.contains("READY-FOR-DATA") == true }
        await proxy.stop()
        FileManager.default.createFile(atPath: flag, contents: nil)
        #expect(await client.waitForExit(timeout: .seconds(60)) == 1)
        let output = try String(contentsOfFile: log, encoding: .utf8)
        #expect(output.contains("REPLY 451"), "\(output)")

        let restarted = try await database.startProxy()
        defer { Task { await restarted.stop() } }
        try await waitUntil("submission works again once the database is back", timeout: .seconds(60)) {
            let (status, _) = try await swaks(relay, port: relay.submissionPort!, ["--tls", "--auth", "PLAIN"], data: Self.fixedMessage)
            return status == 0
        }
    }
}
