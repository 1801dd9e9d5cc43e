import DNSClient
import Foundation
import Logging
import RelayApp
import RelayDomains
import RelayTestSupport
import Testing

/// Sender domains end to end: DKIM keys and the records to publish, verification against a real DNS server,
/// the verified-domain requirement, signatures checked by an independent verifier (dkimpy), rotation, and
/// one-click unsubscribe.
@Suite(.serialized) struct DomainTests {
    /// Publishes a record list from the API in the test DNS server (TXT data split into ≤255-octet strings; the
    /// server keeps one record set per name, so records sharing a name are set together).
    static func publish(_ records: [[String: Any]], in relay: RelayHarness, only purposes: Set<String>? = nil) {
        var byName: [String: [DNSRecordData]] = [:]
        for record in records {
            guard let purpose = record["purpose"] as? String, purposes?.contains(purpose) ?? true,
                  let name = record["name"] as? String, let value = record["value"] as? String else { continue }
            if record["type"] as? String == "MX" {
                byName[name, default: []].append(.mx(preference: UInt16(record["priority"] as? Int ?? 10), exchange: value))
            } else {
                let bytes = Array(value.utf8)
                let chunks = stride(from: 0, to: bytes.count, by: 255).map { String(decoding: bytes[$0..<min($0 + 255, bytes.count)], as: UTF8.self) }
                byName[name, default: []].append(.txt(chunks))
            }
        }
        for (name, data) in byName { relay.dns.set(name, data) }
    }

    static func records(_ json: [String: Any]) -> [[String: Any]] {
        json["records"] as? [[String: Any]] ?? []
    }

    static func dkimRecords(_ json: [String: Any]) -> [[String: Any]] {
        records(json).filter { $0["purpose"] as? String == "dkim" }
    }

    /// Runs dkimpy over a delivered message with the given DKIM records as its DNS; returns (all verified, output).
    static func dkimpyVerifies(_ message: [UInt8], records: [[String: Any]]) async throws -> (Bool, String) {
        let directory = NSTemporaryDirectory() + "relay-dkim-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var dns: [String: String] = [:]
        for record in records { dns[record["name"] as? String ?? ""] = record["value"] as? String }
        try Data(message).write(to: URL(fileURLWithPath: directory + "/message.eml"))
        try JSONSerialization.data(withJSONObject: dns).write(to: URL(fileURLWithPath: directory + "/dns.json"))
        let (status, output) = try await runToCompletion(try findExecutable("python3"),
                                                         [try peerScript("dkim_verify.py"), directory + "/message.eml", directory + "/dns.json"])
        return (status == 0, output)
    }

    static func header(_ name: String, in message: [UInt8]) -> [String] {
        let text = String(decoding: message, as: UTF8.self)
        let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
        let unfolded = head.replacingOccurrences(of: "\r\n ", with: " ").replacingOccurrences(of: "\r\n\t", with: " ")
        return unfolded.components(separatedBy: "\r\n").compactMap { line in
            guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == name.lowercased() else { return nil }
            return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }

    static let message: [String: any Sendable] = [
        "from": "Acme <hello@example.com>", "to": "someone@dest.test", "subject": "Grüße, signed",
        "text": "Hello — UTF-8 body\nsecond line  \n\n", "html": "<p>Hello</p>",
        "headers": ["X-Campaign": "a very long header value that will certainly have to be folded somewhere by a careful composer xxxxxxxxxxxxxxxx"],
        "attachments": [["filename": "a.bin", "content": Data((0..<300).map { UInt8($0 % 256) }).base64EncodedString(),
                         "content_type": "application/octet-stream"]],
    ]

    @Test func aNewDomainListsItsRecordsAndCannotSendUntilItsDKIMRecordVerifies() async throws {
        try await RelayHarness.withDestination({ $0.requireVerifiedDomains = true }) { relay, sink in
            let created = try await relay.send(.POST, "/v1/domains", json: ["name": "news.test"])
            #expect(created.status == 201, "\(created.text)")
            #expect(created.json["status"] as? String == "pending")
            #expect(created.json["dkim_verified"] as? Bool == false)
            let month = Date().formatted(Date.VerbatimFormatStyle(format: "\(year: .defaultDigits)\(month: .twoDigits)",
                                                                     timeZone: .gmt, calendar: Calendar(identifier: .gregorian)))
            let dkim = Self.dkimRecords(created.json)
            #expect(dkim.compactMap { $0["name"] as? String }.sorted()
                    == ["relay\(month)e._domainkey.news.test", "relay\(month)r._domainkey.news.test"])
            #expect(dkim.contains { ($0["value"] as? String)?.hasPrefix("v=DKIM1; k=rsa; p=") == true })
            #expect(dkim.contains { ($0["value"] as? String)?.hasPrefix("v=DKIM1; k=ed25519; p=") == true })
            let byPurpose = Dictionary(Self.records(created.json).map { ($0["purpose"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
            #expect(byPurpose["spf"]?["name"] as? String == "bounces.news.test")
            #expect(byPurpose["spf"]?["value"] as? String == "v=spf1 a:relay.test ~all")
            #expect(byPurpose["return_path"]?["type"] as? String == "MX")
            #expect(byPurpose["return_path"]?["value"] as? String == "relay.test")
            #expect(byPurpose["dmarc"]?["name"] as? String == "_dmarc.news.test")
            #expect(Self.records(created.json).allSatisfy { $0["status"] as? String == "pending" })
            #expect(!created.text.contains("PRIVATE") && !created.text.contains("private"), "no private key material is shown")

            // Not verified: the API refuses with 403 domain_not_verified and stores nothing.
            var body = Self.message
            body["from"] = "hello@news.test"
            let refused = try await relay.send(.POST, "/v1/messages", json: body)
            #expect(refused.status == 403)
            #expect(refused.errorCode == "domain_not_verified")

            // Checked with nothing published: each record says not_found.
            let unpublished = try await relay.send(.POST, "/v1/domains/news.test/verify")
            #expect(unpublished.status == 200)
            #expect(Self.records(unpublished.json).allSatisfy { $0["status"] as? String == "not_found" }, "\(unpublished.text)")
            #expect(unpublished.json["checked_at"] as? String != nil)

            // A wrong key is a mismatch that shows what DNS holds.
            let rsaName = try #require(dkim.first { ($0["value"] as? String)?.contains("k=rsa") == true }?["name"] as? String)
            relay.dns.set(rsaName, [.txt(["v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwrong"])])
            let wrong = try await relay.send(.POST, "/v1/domains/news.test/verify")
            let wrongRecord = Self.records(wrong.json).first { $0["name"] as? String == rsaName }
            #expect(wrongRecord?["status"] as? String == "mismatch")
            #expect((wrongRecord?["found"] as? String)?.contains("wrong") == true)

            // Everything published: verified, and mail flows, signed with both keys.
            Self.publish(Self.records(created.json), in: relay)
            let verified = try await relay.send(.POST, "/v1/domains/news.test/verify")
            #expect(verified.json["status"] as? String == "verified", "\(verified.text)")
            #expect(Self.records(verified.json).allSatisfy { $0["status"] as? String == "verified" }, "\(verified.text)")
            let id = try await relay.sendMessage(body)
            let final = try await relay.waitUntilFinal(id)
            #expect(final.first?["status"] as? String == "delivered")
            let delivered = try #require(try sink.received().last)
            let signatures = Self.header("DKIM-Signature", in: delivered.data)
            #expect(signatures.count == 2)
            #expect(signatures.contains { $0.contains("a=rsa-sha256") } && signatures.contains { $0.contains("a=ed25519-sha256") })
            #expect(signatures.allSatisfy { $0.contains("c=relaxed/relaxed") && $0.contains("d=news.test") })
            let (ok, output) = try await Self.dkimpyVerifies(delivered.data, records: dkim)
            #expect(ok, "dkimpy: \(output)")
        }
    }

    /// What the periodic re-check runs: every domain due is looked up again without anyone calling verify.
    @Test func thePeriodicRecheckVerifiesPublishedRecords() async throws {
        let relay = try await RelayHarness.start()
        defer { Task { try? await relay.stop() } }
        let created = try await relay.send(.POST, "/v1/domains", json: ["name": "periodic.test"])
        Self.publish(Self.records(created.json), in: relay)
        var settings = DomainSettings(hostname: "relay.test")
        settings.recheckInterval = .zero
        let manager = DomainManager(database: relay.database, settings: settings, secretKey: nil,
                                    lookup: ResolverLookup(servers: [relay.dns.address]), logger: Logger(label: "test"))
        #expect(try await manager.recheckDue(limit: 100) >= 2, "periodic.test and example.com are due")
        let after = try await relay.send(.GET, "/v1/domains/periodic.test")
        #expect(after.json["status"] as? String == "verified", "\(after.text)")
        #expect(after.json["checked_at"] as? String != nil)
        let example = try await relay.send(.GET, "/v1/domains/example.com")
        #expect(Self.records(example.json).allSatisfy { $0["status"] as? String == "not_found" }, "nothing published for example.com")
    }

    @Test func rotationSignsWithTheNewKeyOnlyAfterItsRecordVerifiesAndKeepsTheOldOneForTheGrace() async throws {
        try await RelayHarness.withDestination { relay, sink in
            let created = try await relay.send(.POST, "/v1/domains", json: ["name": "rotate.test"])
            let first = Self.dkimRecords(created.json)
            Self.publish(Self.records(created.json), in: relay)
            #expect(try await relay.send(.POST, "/v1/domains/rotate.test/verify").json["status"] as? String == "verified")

            let rotated = try await relay.send(.POST, "/v1/domains/rotate.test/dkim/rotate")
            #expect(rotated.status == 201, "\(rotated.text)")
            let pending = Self.dkimRecords(rotated.json).filter { $0["key_state"] as? String == "pending" }
            #expect(pending.count == 2)
            #expect(Set(pending.compactMap { $0["selector"] as? String }).isDisjoint(with: first.compactMap { $0["selector"] as? String }))
            #expect(try await relay.send(.POST, "/v1/domains/rotate.test/dkim/rotate").errorCode == "rotation_pending")

            // Until the new records verify, mail is signed with the old selectors.
            var body = Self.message
            body["from"] = "hello@rotate.test"
            _ = try await relay.waitUntilFinal(try await relay.sendMessage(body))
            let before = try #require(try sink.received().last)
            let oldSelectors = Set(first.compactMap { $0["selector"] as? String })
            #expect(Self.header("DKIM-Signature", in: before.data).allSatisfy { sig in oldSelectors.contains { sig.contains("s=\($0);") } })

            // Published and verified: the new keys sign, the old ones retire but stay listed for the grace period.
            Self.publish(pending, in: relay)
            let after = try await relay.send(.POST, "/v1/domains/rotate.test/verify")
            let states = Dictionary(Self.dkimRecords(after.json).map { ($0["selector"] as? String ?? "", $0["key_state"] as? String ?? "") },
                                    uniquingKeysWith: { a, _ in a })
            for selector in oldSelectors { #expect(states[selector] == "retiring", "\(after.text)") }
            for record in pending { #expect(states[record["selector"] as? String ?? ""] == "active") }
            // Signing keys are cached for up to a minute per node; a restart-free check waits for the new selector.
            let newSelectors = Set(pending.compactMap { $0["selector"] as? String })
            try await waitUntil("mail is signed with the rotated keys", timeout: .seconds(90), interval: .seconds(2)) {
                _ = try await relay.waitUntilFinal(try await relay.sendMessage(body))
                let latest = try sink.received().last!
                return Self.header("DKIM-Signature", in: latest.data).allSatisfy { sig in newSelectors.contains { sig.contains("s=\($0);") } }
            }
            let latest = try #require(try sink.received().last)
            let (ok, output) = try await Self.dkimpyVerifies(latest.data, records: pending)
            #expect(ok, "dkimpy: \(output)")
        }
    }

    @Test func hostedOneClickUnsubscribeIsSignedAndAPostSuppressesTheAddress() async throws {
        try await RelayHarness.withDestination { relay, sink in
            let domain = try await relay.send(.GET, "/v1/domains/example.com")
            #expect(domain.status == 200)
            var body = Self.message
            body["unsubscribe"] = true
            body["to"] = "reader@dest.test"
            _ = try await relay.waitUntilFinal(try await relay.sendMessage(body))
            let delivered = try #require(try sink.received().last)
            let link = try #require(Self.header("List-Unsubscribe", in: delivered.data).first)
            #expect(link.hasPrefix("<https://relay.test/unsubscribe/") && link.hasSuffix(">"))
            #expect(Self.header("List-Unsubscribe-Post", in: delivered.data) == ["List-Unsubscribe=One-Click"])
            #expect(Self.header("DKIM-Signature", in: delivered.data).allSatisfy { $0.contains("list-unsubscribe") })
            let (ok, output) = try await Self.dkimpyVerifies(delivered.data, records: Self.dkimRecords(domain.json))
            #expect(ok, "dkimpy: \(output)")

            let path = String(link.dropFirst("<https://relay.test".count).dropLast())
            // A GET (a link scanner) shows a page and changes nothing.
            let page = try await RelayHarness.send(port: relay.port, .GET, path)
            #expect(page.status == 200)
            #expect(page.text.contains("reader@dest.test"))
            #expect(!(try await relay.send(.GET, "/v1/suppressions?email=reader@dest.test").text.contains("reader@dest.test")))
            // The RFC 8058 POST suppresses; a second one changes nothing more.
            for _ in 0..<2 {
                let post = try await RelayHarness.send(port: relay.port, .POST, path, rawBody: Array("List-Unsubscribe=One-Click".utf8),
                                                       headers: ["Content-Type": "application/x-www-form-urlencoded"])
                #expect(post.status == 200)
            }
            let listed = try await relay.send(.GET, "/v1/suppressions?email=reader@dest.test")
            #expect(listed.text.contains("unsubscribed"), "\(listed.text)")
            // A forged token is refused.
            let forged = path.dropLast(3) + "aaa"
            #expect(try await RelayHarness.send(port: relay.port, .POST, String(forged)).status == 404)

            // The sender's own link: List-Unsubscribe with it, and one-click by default.
            var own = Self.message
            own["unsubscribe"] = ["url": "https://example.com/unsub?u=42"]
            _ = try await relay.waitUntilFinal(try await relay.sendMessage(own))
            let second = try #require(try sink.received().last)
            #expect(Self.header("List-Unsubscribe", in: second.data) == ["<https://example.com/unsub?u=42>"])
            own["unsubscribe"] = ["url": "http://insecure.example.com/u"]
            #expect(try await relay.send(.POST, "/v1/messages", json: own).errorField == "unsubscribe.url")
        }
    }
}
