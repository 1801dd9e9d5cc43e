/// A stored template's three parts compiled together: the subject and the text body render as plain text, the
/// html body with HTML escaping of `{{name}}`.
public struct MessageTemplate: Sendable {
    /// Which part of a template.
    public enum Part: String, Sendable {
        /// The subject line (plain text, one line).
        case subject
        /// The plain-text body.
        case text
        /// The HTML body.
        case html
    }

    /// A part that does not parse.
    public struct PartError: Error, Sendable, Equatable {
        /// The part at fault.
        public var part: Part
        /// Where and what.
        public var error: TemplateSyntaxError
    }

    /// A rendered message: subject, and the bodies the template has.
    public struct Rendered: Sendable, Equatable {
        /// The rendered subject (may contain a line break if the data did; the caller refuses that).
        public var subject: String
        /// The rendered text body, when the template has one.
        public var text: String?
        /// The rendered HTML body, when the template has one.
        public var html: String?
    }

    let subject: StrictTemplate
    let text: StrictTemplate?
    let html: StrictTemplate?

    /// Compiles each part, checking subject, text, html in that order.
    public init(subject: String, text: String?, html: String?) throws(PartError) {
        func compile(_ source: String, _ part: Part, _ escaping: StrictTemplate.Escaping) throws(PartError) -> StrictTemplate {
            do {
                return try StrictTemplate(source: source, escaping: escaping)
            } catch {
                throw PartError(part: part, error: error)
            }
        }
        self.subject = try compile(subject, .subject, .none)
        self.text = try text.map { source throws(PartError) in try compile(source, .text, .none) }
        self.html = try html.map { source throws(PartError) in try compile(source, .html, .html) }
    }

    /// Renders every part with the same data; the first missing name in subject, text, html order throws.
    public func render(_ data: [String: TemplateValue]) throws(MissingTemplateVariable) -> Rendered {
        Rendered(subject: try subject.render(data), text: try text?.render(data), html: try html?.render(data))
    }
}
