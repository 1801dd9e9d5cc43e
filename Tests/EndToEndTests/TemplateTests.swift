import Foundation
import MailMessage
import PostgresNIO
import RelayTestSupport
import Testing

/// Stored Mustache templates: the CRUD API, per-tenant isolation, compile-at-save errors, and sends that render a
/// template into the message a real MX receives (escaping in html only, strict names).
@Suite struct TemplateTests {
    static let welcome: [String: any Sendable] = [
        "name": "welcome", "subject": "Hello {{name}}", "text": "Hi {{name}}", "html": "<p>Hi {{name}}</p>",
    ]

    @Test func createListShowReplaceDeleteAndRefusals() async throws {
        try await RelayHarness.withAPIOnly { relay in
            let created = try await relay.send(.POST, "/v1/templates", json: Self.welcome)
            #expect(created.status == 201)
            #expect(created.json["name"] as? String == "welcome")
            #expect(created.json["html"] as? String == "<p>Hi {{name}}</p>")
            #expect(created.json["created_at"] is String && created.json["updated_at"] is String)
            let again = try await relay.send(.POST, "/v1/templates", json: Self.welcome)
            #expect(again.status == 409)
            #expect(again.errorCode == "template_exists")

            let second: [String: any Sendable] = ["name": "a.first_one-1", "text": "plain"]
            #expect(try await relay.send(.POST, "/v1/templates", json: second).status == 201)
            let list = try await relay.send(.GET, "/v1/templates").json["data"] as? [[String: Any]] ?? []
            #expect(list.compactMap { $0["name"] as? String } == ["a.first_one-1", "welcome"])
            #expect(list.first?["html"] is NSNull, "a template without html shows html: null")

            let shown = try await relay.send(.GET, "/v1/templates/welcome")
            #expect(shown.status == 200)
            #expect(shown.json["subject"] as? String == "Hello {{name}}")

            // PUT replaces (200) and creates when absent (201).
            let replaced = try await relay.send(.PUT, "/v1/templates/welcome", json: ["subject": "Welcome {{name}}", "text": "t"])
            #expect(replaced.status == 200)
            #expect(replaced.json["subject"] as? String == "Welcome {{name}}")
            #expect(replaced.json["html"] is NSNull)
            #expect(try await relay.send(.PUT, "/v1/templates/fresh", json: ["text": "x"]).status == 201)

            #expect(try await relay.send(.DELETE, "/v1/templates/fresh").status == 204)
            #expect(try await relay.send(.GET, "/v1/templates/fresh").status == 404)
            #expect(try await relay.send(.DELETE, "/v1/templates/fresh").status == 404)

            // Refusals are 422s naming the field, and change nothing.
            let broken = try await relay.send(.POST, "/v1/templates", json: ["name": "broken", "text": "ok", "html": "<p>{{#items}}x</p>"])
            #expect(broken.status == 422)
            #expect(broken.errorCode == "validation_failed")
            #expect(broken.errorField == "html")
            let message = (broken.json["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("line 1") && message.contains("never closed"), "the parser's message: \(message)")
            #expect(try await relay.send(.POST, "/v1/templates", json: ["name": "broken", "subject": "{{x", "text": "t"]).errorField == "subject")
            let deep = String(repeating: "{{#a}}", count: 10_000) + String(repeating: "{{/a}}", count: 10_000)
            let tooDeep = try await relay.send(.POST, "/v1/templates", json: ["name": "broken", "html": deep])
            #expect(tooDeep.status == 422, "refused before the recursive parser could overflow the stack")
            #expect(tooDeep.errorField == "html")
            #expect(try await relay.send(.GET, "/v1/templates/broken").status == 404)
            #expect(try await relay.send(.POST, "/v1/templates", json: ["name": "bad name", "text": "t"]).errorField == "name")
            #expect(try await relay.send(.POST, "/v1/templates", json: ["name": String(repeating: "a", count: 65), "text": "t"]).errorField == "name")
            #expect(try await relay.send(.POST, "/v1/templates", json: ["name": "empty", "subject": "s"]).errorField == "text")
            #expect(try await relay.send(.PUT, "/v1/templates/welcome", json: ["text": "{{/x}}"]).errorField == "text")
            #expect(try await relay.send(.GET, "/v1/templates/welcome").json["text"] as? String == "t", "a refused PUT changes nothing")
        }
    }

    @Test func anotherTenantsTemplateIsNotFound() async throws {
        try await RelayHarness.withAPIOnly { relay in
            #expect(try await relay.send(.POST, "/v1/templates", json: Self.welcome).status == 201)
            let (_, otherKey) = try await relay.database.createTenant(name: "other")
            #expect(try await relay.send(.GET, "/v1/templates/welcome", bearer: otherKey).status == 404)
            let borrowed = try await relay.send(.POST, "/v1/messages", json: [
                "from": "a@example.com", "to": "bob@dest.test", "template": ["name": "welcome"] as [String: any Sendable],
            ] as [String: any Sendable], bearer: otherKey)
            #expect(borrowed.errorCode == "template_not_found", "another tenant's template cannot be sent from")
            #expect(try await relay.send(.DELETE, "/v1/templates/welcome", bearer: otherKey).status == 404)
            #expect((try await relay.send(.GET, "/v1/templates", bearer: otherKey).json["data"] as? [Any])?.isEmpty == true)
            // The other tenant's PUT creates its own template, leaving this one as it was.
            #expect(try await relay.send(.PUT, "/v1/templates/welcome", json: ["text": "theirs"], bearer: otherKey).status == 201)
            #expect(try await relay.send(.GET, "/v1/templates/welcome").json["text"] as? String == "Hi {{name}}")
            #expect(try await relay.send(.DELETE, "/v1/templates/welcome", bearer: otherKey).status == 204)
            #expect(try await relay.send(.GET, "/v1/templates/welcome").status == 200)
        }
    }

    @Test func aRenderedTemplateIsWhatTheMXReceives() async throws {
        try await RelayHarness.withDestination { relay, sink in
            let template: [String: any Sendable] = [
                "name": "receipt",
                "subject": "Order {{order.id}} for {{name}} & co",
                "text": "Dear {{name}},\n{{#items}}- {{title}} {{currency}}\n{{/items}}{{{raw}}}",
                "html": "<p>{{name}}</p><ul>{{#items}}<li>{{title}}</li>{{/items}}</ul>{{{raw}}}",
            ]
            #expect(try await relay.send(.POST, "/v1/templates", json: template).status == 201)
            let data: [String: any Sendable] = [
                "name": "<script>alert(1)</script> & Ann", "raw": "<b>bold</b>", "currency": "EUR",
                "order": ["id": 42], "items": [["title": "Tea & <cake>"], ["title": "Jam"]],
            ]
            let reference: [String: any Sendable] = ["name": "receipt", "data": data]
            let sent = try await relay.send(.POST, "/v1/messages", json: [
                "from": "shop@example.com", "to": "bob@dest.test", "template": reference,
            ] as [String: any Sendable])
            #expect(sent.status == 202)
            let id = try #require(sent.json["id"] as? String)
            #expect(try await relay.waitUntilFinal(id).first?["status"] as? String == "delivered")
            #expect(try await relay.message(id)["subject"] as? String == "Order 42 for <script>alert(1)</script> & Ann & co")

            let received = try sink.received()
            try #require(received.count == 1)
            let message = try MIMEEntity(parsing: received[0].data)
            #expect(message.header("Subject") == "Order 42 for <script>alert(1)</script> & Ann & co",
                    "the subject is not HTML-escaped")
            let text = try #require(message.parts.first { $0.contentType == "text/plain" })
            let html = try #require(message.parts.first { $0.contentType == "text/html" })
            #expect(text.decodedText.replacingOccurrences(of: "\r\n", with: "\n")
                    == "Dear <script>alert(1)</script> & Ann,\n- Tea & <cake> EUR\n- Jam EUR\n<b>bold</b>")
            #expect(html.decodedText.replacingOccurrences(of: "\r\n", with: "\n")
                    == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Ann</p><ul><li>Tea &amp; &lt;cake&gt;</li><li>Jam</li></ul><b>bold</b>")
        }
    }

    @Test func aMissingNameOrTemplateIsRefusedAndNothingIsStored() async throws {
        try await RelayHarness.withAPIOnly { relay in
            let template: [String: any Sendable] = [
                "name": "welcome", "subject": "Hello {{name}}", "text": "{{#user}}{{greeting}} {{user.address.city}}{{/user}}",
            ]
            #expect(try await relay.send(.POST, "/v1/templates", json: template).status == 201)
            func send(_ name: String, _ data: (any Sendable)?, extra: [String: any Sendable] = [:]) async throws -> RelayHarness.HTTPResult {
                var reference: [String: any Sendable] = ["name": name]
                if let data { reference["data"] = data }
                var body: [String: any Sendable] = ["from": "a@example.com", "to": "bob@dest.test", "template": reference]
                for (key, value) in extra { body[key] = value }
                return try await relay.send(.POST, "/v1/messages", json: body)
            }
            let user: [String: any Sendable] = ["address": ["city": "Oslo"]]

            let noName = try await send("welcome", ["greeting": "hi", "user": user] as [String: any Sendable])
            #expect(noName.status == 422)
            #expect(noName.errorCode == "template_variable_missing")
            #expect(noName.errorField == "template.data.name")
            #expect(((noName.json["error"] as? [String: Any])?["message"] as? String ?? "").contains("{{name}}"))

            // Inside {{#user}}, `greeting` is looked up on user and then on the top level: missing on both.
            let noGreeting = try await send("welcome", ["name": "Ann", "user": user] as [String: any Sendable])
            #expect(noGreeting.errorField == "template.data.greeting")
            let noCity = try await send("welcome", ["name": "Ann", "greeting": "hi", "user": ["address": [String: String]()] as [String: any Sendable]] as [String: any Sendable])
            #expect(noCity.errorField == "template.data.user.address.city")

            let unknown = try await send("nope", [String: String]())
            #expect(unknown.status == 422)
            #expect(unknown.errorCode == "template_not_found")
            #expect(unknown.errorField == "template.name")
            #expect(try await send("welcome", nil, extra: ["subject": "s"]).errorField == "template")
            #expect(try await send("welcome", nil, extra: ["html": "<p>x</p>"]).errorField == "template")
            #expect(try await send("welcome", "x").errorField == "template.data")

            // A rendered subject with a line break is refused: no header can be injected.
            let injected = try await send("welcome", ["name": "x\r\nBcc: eve@evil.test", "greeting": "hi", "user": user] as [String: any Sendable])
            #expect(injected.status == 422)
            #expect(injected.errorField == "template.data")

            #expect((try await relay.send(.GET, "/v1/messages").json["data"] as? [Any])?.isEmpty == true, "nothing was stored")
            // null for subject, text or html is the same as leaving it out.
            let ok = try await send("welcome", ["name": "Ann", "greeting": "hi", "user": user] as [String: any Sendable],
                                    extra: ["subject": NSNull(), "text": NSNull()])
            #expect(ok.status == 202)
        }
    }
}
