import Foundation
import NIOHTTP1
import RelayStore
import RelayTestSupport
import Testing

/// `/admin/routes`: validation, conflicts, not found, and no password in any response.
@Suite struct RoutesAPITests {
    static let valid: [String: any Sendable] = [
        "domain": "*.example.org", "host": "smtp.provider.test", "port": 587, "username": "relay",
        "password": "pa55 word!", "tls": "starttls", "verify_certificate": true,
    ]

    static func post(_ relay: RelayHarness, _ body: [String: any Sendable]) async throws -> RelayHarness.HTTPResult {
        try await relay.send(.POST, "/admin/routes", json: body, bearer: relay.adminToken)
    }

    static func admin(_ relay: RelayHarness, _ method: HTTPMethod, _ path: String) async throws -> RelayHarness.HTTPResult {
        try await relay.send(method, path, bearer: relay.adminToken)
    }

    @Test func createListGetDelete() async throws {
        try await RelayHarness.withAPIOnly { relay in
            let created = try await Self.post(relay, Self.valid)
            #expect(created.status == 201, "\(created.text)")
            let id = try #require(created.json["id"] as? String)
            #expect(Set(created.json.keys) == ["id", "domain", "host", "port", "username", "has_password", "tls",
                                               "verify_certificate", "created_at"])
            #expect(created.json["domain"] as? String == "*.example.org")
            #expect(created.json["has_password"] as? Bool == true)
            #expect(created.json["username"] as? String == "relay")

            let list = try await Self.admin(relay, .GET, "/admin/routes")
            #expect(list.status == 200)
            #expect((list.json["data"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            let one = try await Self.admin(relay, .GET, "/admin/routes/\(id)")
            #expect(one.status == 200)
            #expect(one.json["host"] as? String == "smtp.provider.test")
            for response in [created, list, one] {
                #expect(!response.text.contains("pa55 word!"))
                #expect(!response.text.contains("\"password\""))
            }
            // Sealed at rest.
            let stored = try #require(try await relay.database.routes().first)
            #expect(stored.sealedPassword != nil)
            #expect(!String(decoding: stored.sealedPassword ?? [], as: UTF8.self).contains("pa55"))
            #expect(stored.sealedWith == "database")

            // Defaults: starttls on 587, verification on, no credentials (username null).
            let minimal = try await Self.post(relay, ["domain": "Example.NET", "host": "[::1]"])
            #expect(minimal.status == 201, "\(minimal.text)")
            #expect(minimal.json["domain"] as? String == "example.net")
            #expect(minimal.json["host"] as? String == "::1")
            #expect(minimal.json["port"] as? Int == 587)
            #expect(minimal.json["tls"] as? String == "starttls")
            #expect(minimal.json["verify_certificate"] as? Bool == true)
            #expect(minimal.json["has_password"] as? Bool == false)
            #expect(minimal.json["username"] is NSNull)
            let implicitPort = try await Self.post(relay, ["domain": "*", "host": "10.0.0.1", "tls": "implicit"])
            #expect(implicitPort.json["port"] as? Int == 465)

            #expect(try await Self.admin(relay, .DELETE, "/admin/routes/\(id)").status == 204)
            #expect(try await Self.admin(relay, .DELETE, "/admin/routes/\(id)").status == 404)
            #expect(try await Self.admin(relay, .GET, "/admin/routes/\(id)").status == 404)
        }
    }

    @Test func duplicatesUnknownIdsAndAuth() async throws {
        try await RelayHarness.withAPIOnly { relay in
            #expect(try await Self.post(relay, Self.valid).status == 201)
            var again = Self.valid
            again["domain"] = "*.EXAMPLE.org"
            let duplicate = try await Self.post(relay, again)
            #expect(duplicate.status == 409)
            #expect(duplicate.errorCode == "route_exists")
            #expect(duplicate.errorField == "domain")

            for path in ["/admin/routes/\(UUID().uuidString.lowercased())", "/admin/routes/not-a-uuid"] {
                let missing = try await Self.admin(relay, .GET, path)
                #expect(missing.status == 404)
                #expect(missing.errorCode == "not_found")
                #expect(try await Self.admin(relay, .DELETE, path).status == 404)
            }
            #expect(try await relay.send(.GET, "/admin/routes").status == 401, "a tenant key is not the admin token")
            #expect(try await relay.send(.POST, "/admin/routes", json: Self.valid).status == 401)
        }
    }

    @Test(arguments: [
        (["domain": "bad domain"], "domain"), (["domain": "*."], "domain"), (["domain": "*.*.example.org"], "domain"),
        (["domain": "[127.0.0.1]"], "domain"), (["domain": 5], "domain"), (["domain": " example.org"], "domain"),
        (["host": " smtp.example.com"], "host"),
        (["host": ""], "host"), (["host": "smtp.example.com:587"], "host"), (["host": "a b"], "host"),
        (["port": 0], "port"), (["port": 70000], "port"), (["port": "587"], "port"), (["port": 25.5], "port"),
        (["tls": "ssl"], "tls"), (["tls": "STARTTLS"], "tls"),
        (["verify_certificate": "yes"], "verify_certificate"),
        (["username": ""], "username"), (["password": "a\u{0}b"], "password"),
        (["nickname": "x"], "nickname"),
    ] as [([String: any Sendable], String)])
    func validationNamesTheField(change: [String: any Sendable], field: String) async throws {
        try await RelayHarness.withAPIOnly { relay in
            let body = Self.valid.merging(change) { $1 }
            let result = try await Self.post(relay, body)
            #expect(result.status == 422, "\(result.text)")
            #expect(result.errorCode == "validation_failed")
            #expect(result.errorField == field, "\(result.text)")
            #expect(!result.text.contains("pa55 word!"))
            #expect(try await relay.database.routes().isEmpty)
        }
    }

    @Test func credentialsMustComeTogetherAndOnlyOverTLS() async throws {
        try await RelayHarness.withAPIOnly { relay in
            var noPassword = Self.valid
            noPassword["password"] = nil
            #expect(try await Self.post(relay, noPassword).errorField == "password")
            var noUsername = Self.valid
            noUsername["username"] = nil
            #expect(try await Self.post(relay, noUsername).errorField == "username")
            var plaintext = Self.valid
            plaintext["tls"] = "none"
            let refused = try await Self.post(relay, plaintext)
            #expect(refused.status == 422)
            #expect(refused.errorField == "tls")
            #expect(((refused.json["error"] as? [String: Any])?["message"] as? String ?? "").contains("only over TLS"))
            // Without credentials, tls none is fine.
            let bare = try await Self.post(relay, ["domain": "plain.example.org", "host": "10.0.0.2", "tls": "none"])
            #expect(bare.status == 201)
            #expect(bare.json["port"] as? Int == 25)
        }
    }
}
