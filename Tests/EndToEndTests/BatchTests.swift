import Foundation
import PostgresNIO
import RelayTestSupport
import Testing

/// `POST /v1/messages/batch`: per-item results in input order, valid items delivered and invalid ones never
/// stored, size limits, the whole batch in one transaction, and Idempotency-Key over the batch.
@Suite struct BatchTests {
    static func count(_ relay: RelayHarness, _ sql: String) async throws -> Int {
        let rows = try await relay.database.client.query(PostgresQuery(unsafeSQL: sql), logger: .init(label: "test"))
        for try await value in rows.decode(Int.self) { return value }
        return -1
    }

    static func message(_ to: String, subject: String = "s") -> [String: any Sendable] {
        ["from": "alice@example.com", "to": to, "subject": subject, "text": "t"]
    }

    static func templated(_ to: String, data: [String: any Sendable]) -> [String: any Sendable] {
        let template: [String: any Sendable] = ["name": "hi", "data": data]
        return ["from": "alice@example.com", "to": to, "template": template]
    }

    @Test func mixedItemsGetResultsInOrderAndOnlyTheValidOnesAreDelivered() async throws {
        try await RelayHarness.withDestination { relay, sink in
            #expect(try await relay.send(.POST, "/v1/templates", json: ["name": "hi", "subject": "Hi {{name}}", "text": "Hello {{name}}"]).status == 201)
            let items: [any Sendable] = [
                Self.message("bob@dest.test", subject: "first"),
                ["from": "alice@example.com", "to": "not an address", "text": "t"] as [String: any Sendable],
                Self.templated("carol@dest.test", data: ["name": "Carol"]),
                ["from": "alice@elsewhere.test", "to": "dan@dest.test", "text": "t"] as [String: any Sendable],
                Self.templated("erin@dest.test", data: [:]),
                "not an object",
            ]
            let result = try await relay.send(.POST, "/v1/messages/batch", json: items)
            #expect(result.status == 207)
            let results = try #require(try JSONSerialization.jsonObject(with: Data(result.body)) as? [[String: Any]])
            #expect(results.compactMap { $0["index"] as? Int } == [0, 1, 2, 3, 4, 5])
            #expect(results.compactMap { $0["status"] as? Int } == [202, 422, 202, 403, 422, 422])
            let codes = results.map { ($0["error"] as? [String: Any])?["code"] as? String }
            #expect(codes == [nil, "validation_failed", nil, "sender_domain_not_allowed", "template_variable_missing", "validation_failed"])
            #expect((results[1]["error"] as? [String: Any])?["field"] as? String == "to")
            #expect((results[4]["error"] as? [String: Any])?["field"] as? String == "template.data.name")
            #expect(results[0]["message_status"] as? String == "queued")
            #expect((results[2]["recipients"] as? [[String: Any]])?.first?["email"] as? String == "carol@dest.test")

            let ids = [results[0]["id"] as? String, results[2]["id"] as? String].compactMap { $0 }
            try #require(ids.count == 2)
            for id in ids { #expect(try await relay.waitUntilFinal(id).first?["status"] as? String == "delivered") }
            #expect(try await relay.message(ids[1])["subject"] as? String == "Hi Carol")
            #expect(Set(try sink.received().flatMap(\.recipients)) == ["bob@dest.test", "carol@dest.test"])
            #expect(try await Self.count(relay, "SELECT count(*)::bigint FROM messages") == 2, "refused items are not stored")
        }
    }

    @Test func emptyOversizedAndMalformedBatchesAreRefusedWhole() async throws {
        try await RelayHarness.withAPIOnly { relay in
            let tooMany = (0...500).map { _ in Self.message("bob@dest.test") as any Sendable }
            let over = try await relay.send(.POST, "/v1/messages/batch", json: tooMany)
            #expect(over.status == 422)
            #expect(over.errorCode == "validation_failed")
            #expect(over.errorField == "messages")
            #expect(try await relay.send(.POST, "/v1/messages/batch", json: [any Sendable]()).errorField == "messages")
            #expect(try await relay.send(.POST, "/v1/messages/batch", json: Self.message("bob@dest.test")).errorField == "messages")
            #expect(try await relay.send(.POST, "/v1/messages/batch", json: ["messages": "x"]).errorField == "messages")
            #expect(try await Self.count(relay, "SELECT count(*)::bigint FROM messages") == 0)

            // Exactly 500 in the {"messages": […]} form is accepted.
            let full = (0..<500).map { index in Self.message("r\(index)@dest.test") as any Sendable }
            let started = ContinuousClock.now
            let accepted = try await relay.send(.POST, "/v1/messages/batch", json: ["messages": full])
            print("[batch] 500 messages validated, composed and stored in one request in \(ContinuousClock.now - started)")
            #expect(accepted.status == 207)
            #expect(try await Self.count(relay, "SELECT count(*)::bigint FROM messages") == 500)
            #expect(try await Self.count(relay, "SELECT count(*)::bigint FROM queue") == 500)
        }
    }

    @Test func aDatabaseFailureMidBatchStoresNothingAndIs503() async throws {
        try await RelayHarness.withAPIOnly { relay in
            // The third message's insert fails as a lost connection would (SQLSTATE 08006), after two succeeded
            // in the same transaction.
            for statement in [
                """
                CREATE FUNCTION fail_on_boom() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.subject = 'boom' THEN RAISE EXCEPTION 'injected failure' USING ERRCODE = '08006'; END IF;
                    RETURN NEW;
                END $$
                """,
                "CREATE TRIGGER fail_on_boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION fail_on_boom()",
            ] {
                try await relay.database.client.query(PostgresQuery(unsafeSQL: statement), logger: .init(label: "test"))
            }
            let items: [any Sendable] = [Self.message("a@dest.test"), Self.message("b@dest.test"), Self.message("c@dest.test", subject: "boom")]
            let failed = try await relay.send(.POST, "/v1/messages/batch", json: items)
            #expect(failed.status == 503, "\(failed.text)")
            #expect(failed.errorCode == "database_unavailable")
            #expect(try await Self.count(relay, "SELECT count(*)::bigint FROM messages") == 0)
            #expect(try await Self.count(relay, "SELECT count(*)::bigint FROM recipients") == 0)
            #expect(try await Self.count(relay, "SELECT count(*)::bigint FROM queue") == 0)
        }
    }

    @Test func anIdempotencyKeyReplaysTheWholeBatch() async throws {
        try await RelayHarness.withAPIOnly { relay in
            let items: [any Sendable] = [Self.message("a@dest.test"), ["to": "b@dest.test"] as [String: any Sendable]]
            let first = try await relay.send(.POST, "/v1/messages/batch", json: items, headers: ["Idempotency-Key": "batch-1"])
            #expect(first.status == 207)
            let replay = try await relay.send(.POST, "/v1/messages/batch", json: items, headers: ["Idempotency-Key": "batch-1"])
            #expect(replay.status == 207)
            #expect(replay.body == first.body)
            #expect(replay.headers.contains { $0.0.lowercased() == "idempotent-replayed" && $0.1 == "true" })
            #expect(try await Self.count(relay, "SELECT count(*)::bigint FROM messages") == 1)
            let other = try await relay.send(.POST, "/v1/messages/batch", json: [Self.message("c@dest.test")],
                                             headers: ["Idempotency-Key": "batch-1"])
            #expect(other.status == 409)
            #expect(other.errorCode == "idempotency_conflict")
        }
    }
}
