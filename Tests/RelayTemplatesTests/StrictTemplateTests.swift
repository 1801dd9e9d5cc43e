import RelayTemplates
import Testing

@Suite struct StrictTemplateTests {
    static func render(_ source: String, _ data: [String: TemplateValue], escaping: StrictTemplate.Escaping = .none) throws -> String {
        try StrictTemplate(source: source, escaping: escaping).render(data)
    }

    static func missing(_ source: String, _ data: [String: TemplateValue]) throws -> String? {
        do {
            _ = try StrictTemplate(source: source, escaping: .none).render(data)
            return nil
        } catch let error as MissingTemplateVariable {
            return error.path
        }
    }

    @Test func rendersPresentVariablesAndSections() throws {
        let data: [String: TemplateValue] = [
            "name": .string("Ann"), "count": .number(3), "premium": .bool(true),
            "items": .array([.object(["title": .string("a")]), .object(["title": .string("b")])]),
        ]
        #expect(try Self.render("Hi {{name}}, {{count}}{{#premium}}!{{/premium}}{{#items}} {{title}}/{{name}}{{/items}}", data)
            == "Hi Ann, 3! a/Ann b/Ann")
    }

    @Test func htmlEscapingOnlyForDoubleMustacheInHTML() throws {
        let data: [String: TemplateValue] = ["v": .string("<script>&\"")]
        #expect(try Self.render("{{v}}|{{{v}}}|{{&v}}", data, escaping: .html) == "&lt;script&gt;&amp;&quot;|<script>&\"|<script>&\"")
        #expect(try Self.render("{{v}}|{{{v}}}", data, escaping: .none) == "<script>&\"|<script>&\"")
    }

    @Test func plainTextKeepsAStandaloneFirstLineAsHTMLDoes() throws {
        let source = "{{#on}}\nyes\n{{/on}}\nend"
        let data: [String: TemplateValue] = ["on": .bool(true)]
        #expect(try Self.render(source, data, escaping: .none) == "yes\nend")
        #expect(try Self.render(source, data, escaping: .html) == "yes\nend")
        #expect(try Self.render("\nx", [:], escaping: .none) == "\nx")
    }

    @Test func topLevelMissIsReported() throws {
        #expect(try Self.missing("Hi {{name}}", [:]) == "name")
        #expect(try Self.missing("{{{raw}}}", ["name": .string("x")]) == "raw")
    }

    @Test func dottedMissNamesTheFullPath() throws {
        let data: [String: TemplateValue] = ["user": .object(["address": .object(["street": .string("x")])])]
        #expect(try Self.missing("{{user.address.city}}", data) == "user.address.city")
        #expect(try Self.missing("{{user.address.street}}", data) == nil)
        #expect(try Self.missing("{{nobody.address}}", data) == "nobody")
    }

    @Test func sectionLookupsClimbTheStackBeforeMissing() throws {
        let data: [String: TemplateValue] = ["greeting": .string("hi"), "user": .object(["name": .string("Ann")])]
        // `greeting` is not on `user` but on the top-level object: found, not a miss.
        #expect(try Self.render("{{#user}}{{greeting}} {{name}}{{/user}}", data) == "hi Ann")
        // Missing everywhere on the stack: reported by its name.
        #expect(try Self.missing("{{#user}}{{surname}}{{/user}}", data) == "surname")
        // A dotted name inside a section reaches into what it resolved; a later component missing is final.
        #expect(try Self.missing("{{#user}}{{user.age}}{{/user}}", data) == "user.age")
    }

    @Test func arrayElementsClimbToTheTopLevel() throws {
        let data: [String: TemplateValue] = [
            "currency": .string("EUR"),
            "items": .array([.object(["price": .number(1.5), "meta": .object([:])])]),
        ]
        #expect(try Self.render("{{#items}}{{price}} {{currency}}{{/items}}", data) == "1.5 EUR")
        #expect(try Self.missing("{{#items}}{{meta.sku}}{{/items}}", data) == "items[0].meta.sku")
        #expect(try Self.missing("{{#items}}{{weight}}{{/items}}", data) == "weight")
    }

    @Test func unrenderedSectionsNeedNothingAndNullFalseEmptyArePresent() throws {
        let data: [String: TemplateValue] = ["off": .bool(false), "none": .null, "list": .array([])]
        #expect(try Self.render("{{#off}}{{a}}{{/off}}{{#none}}{{b}}{{/none}}{{#list}}{{c}}{{/list}}[{{none}}]", data) == "[]")
        #expect(try Self.render("{{^off}}shown{{/off}}", data) == "shown")
        #expect(try Self.missing("{{#absent}}x{{/absent}}", data) == "absent")
    }

    @Test func integralNumbersRenderWithoutFraction() throws {
        #expect(try Self.render("{{n}} {{m}}", ["n": .number(42), "m": .number(0.25)]) == "42 0.25")
    }

    @Test(arguments: [
        ("{{#a}}x", 1, "never closed"),
        ("ok\n{{#a}}x{{/b}}", 2, "does not match"),
        ("{{name", 1, "not closed"),
    ])
    func syntaxErrorsSayWhereAndWhat(source: String, line: Int, phrase: String) {
        let error = #expect(throws: TemplateSyntaxError.self) {
            _ = try StrictTemplate(source: source, escaping: .html)
        }
        #expect(error?.line == line)
        #expect(error?.message.contains(phrase) == true, "\(String(describing: error))")
    }

    @Test func deepNestingIsRefusedBeforeTheParserRecurses() throws {
        // 100,000 levels would overflow the stack in swift-mustache's recursive parser and kill the process.
        let deep = String(repeating: "{{#a}}", count: 100_000) + "x" + String(repeating: "{{/a}}", count: 100_000)
        let error = #expect(throws: TemplateSyntaxError.self) { _ = try StrictTemplate(source: deep, escaping: .html) }
        #expect(error?.message.contains("nest more than 50") == true)
        #expect(error?.line == 1 && error?.column == 50 * 6 + 1, "at the 51st {{#a}}")
        // A closing tag inside a comment does not close anything; siblings do not add up; 50 levels are fine.
        let fifty = String(repeating: "{{# a}}{{! {{/b}}{{{c}}}", count: 50) + String(repeating: "{{/a}}", count: 50)
        let data: [String: TemplateValue] = ["a": .bool(true), "c": .string("<")]
        #expect(try StrictTemplate(source: fifty, escaping: .html).render(data) == String(repeating: "<", count: 50))
        let sneaky = String(repeating: "{{#a}}{{! {{/a}}", count: 51) + String(repeating: "{{/a}}", count: 51)
        #expect(throws: TemplateSyntaxError.self) { _ = try StrictTemplate(source: sneaky, escaping: .html) }
        let siblings = String(repeating: "{{#a}}x{{/a}}", count: 500)
        #expect(try StrictTemplate(source: siblings, escaping: .none).render(data).count == 500)
    }

    @Test(arguments: [
        "{{<p}}{{$a}}x{{/a}}{{/p}}", "{{$a}}{{$b}}x{{/b}}{{/a}}", "{{<p}}{{$a}}{{$b}}y{{/b}}{{/a}}{{/p}}",
        "{{>p}}", "{{>*name}}", "{{#a}}{{$b}}z{{/b}}{{/a}}",
    ])
    func inheritanceAndPartialTagsRenderWithoutALibrary(source: String) throws {
        // There is no partial library: these render their defaults or nothing, and must never trap.
        let output = try StrictTemplate(source: source, escaping: .html).render(["a": .bool(true), "name": .string("p")])
        #expect(!output.contains("{{"))
    }

    @Test func setDelimiterTagsAreRefused() {
        let error = #expect(throws: TemplateSyntaxError.self) {
            _ = try StrictTemplate(source: "hi\n  {{=<% %>=}}<% name %>", escaping: .none)
        }
        #expect(error?.line == 2)
        #expect(error?.column == 3)
        #expect(error?.message.contains("set-delimiter") == true)
    }

    @Test func messageTemplateNamesThePartAtFault() {
        #expect(throws: MessageTemplate.PartError.self) { _ = try MessageTemplate(subject: "ok", text: nil, html: "{{#x}}") }
        do {
            _ = try MessageTemplate(subject: "ok", text: "{{#x}}", html: "fine")
            Issue.record("expected a syntax error")
        } catch {
            #expect(error.part == .text)
        }
    }
}
