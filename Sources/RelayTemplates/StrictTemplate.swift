import Foundation
import Mustache

/// One part of a stored template (subject, text or html), compiled once and rendered strictly: every name the
/// template looks up while rendering must be in the data, or rendering fails naming it.
///
/// swift-mustache renders a missing name as nothing. To tell a miss apart from an ordinary step of Mustache's
/// name resolution (a name not on an inner section object is looked up on the enclosing ones), the data is
/// handed to the renderer as `Scope` objects that record misses that are final: a name missing from the data's
/// top-level object (the bottom of the context stack, the last place a lookup tries) or a later component of a
/// dotted name missing from the object the earlier components reached (Mustache does not climb the stack for
/// those). Names of sections that are not rendered are never looked up, so they need not be present; null,
/// false and [] count as present.
public struct StrictTemplate: Sendable {
    /// How `{{name}}` output is escaped; `{{{name}}}` and `{{&name}}` are never escaped.
    public enum Escaping: Sendable {
        /// Plain text (subject, text body): nothing is escaped.
        case none
        /// HTML: `& < > " '` are escaped as entities.
        case html
    }

    /// The template source as given.
    public let source: String
    private let template: MustacheTemplate

    /// Compiles `source`; a syntax error throws `TemplateSyntaxError` with its line, column and a message.
    public init(source: String, escaping: Escaping) throws(TemplateSyntaxError) {
        self.source = source
        try NestingGuard.check(source)
        let parsed: MustacheTemplate
        do {
            parsed = try MustacheTemplate(string: source)
        } catch let error as MustacheTemplate.ParserError {
            throw TemplateSyntaxError(error)
        } catch {
            throw TemplateSyntaxError(line: 1, column: 1, message: "\(error)")
        }
        switch escaping {
        case .html:
            template = parsed
        case .none:
            // The CONTENT_TYPE pragma on a line of its own is a standalone tag: it emits nothing and leaves the
            // first line of `source` at the start of a line, exactly as it parsed above.
            do {
                template = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}\n" + source)
            } catch {
                throw TemplateSyntaxError(line: 1, column: 1, message: "\(error)")
            }
        }
    }

    /// Renders with `data` as the top-level object; throws the first name that the template looked up and the
    /// data lacks, in rendering order.
    public func render(_ data: [String: TemplateValue]) throws(MissingTemplateVariable) -> String {
        let misses = MissRecorder()
        let output = template.render(Scope(fields: data, path: "", isRoot: true, hops: 1, misses: misses))
        if let first = misses.paths.first { throw MissingTemplateVariable(path: first) }
        return output
    }
}

/// A template that does not parse.
public struct TemplateSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line of the error.
    public var line: Int
    /// 1-based column of the error.
    public var column: Int
    /// What is wrong, in words.
    public var message: String

    /// Creates an error.
    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    init(_ error: MustacheTemplate.ParserError) {
        let what: String
        switch error.error as? MustacheTemplate.Error {
        case .sectionCloseNameIncorrect?: what = "a closing tag {{/…}} does not match the section it closes"
        case .unfinishedName?: what = "a tag is not closed or its name is malformed"
        case .expectedSectionEnd?: what = "a section {{#…}} or {{^…}} is never closed"
        case .invalidSetDelimiter?: what = "a set-delimiter tag {{=… …=}} is malformed"
        case .transformAppliedToInheritanceSection?: what = "a transform cannot be applied to an inheritance block"
        case .illegalTokenInsideInheritSection?, .textInsideInheritSection?:
            what = "only block definitions {{$…}} may appear inside a parent tag {{<…}}"
        case .invalidConfigVariableSyntax?: what = "a pragma tag {{%…}} is malformed"
        case .unrecognisedConfigVariable?: what = "unknown pragma; only CONTENT_TYPE is known"
        case nil:
            // The scanner's own errors: running off the end is a tag (or section) left open.
            let scanner = "\(error.error)"
            what = scanner == "overflow" ? "the template ends inside a tag that is not closed" : scanner
        }
        self.init(line: error.context.lineNumber, column: error.context.columnNumber + 1, message: what)
    }

    /// "line 2, column 7: a section {{#…}} or {{^…}} is never closed".
    public var description: String { "line \(line), column \(column): \(message)" }
}

/// A name the template looked up that the data does not have.
public struct MissingTemplateVariable: Error, Sendable, Equatable {
    /// The name as a path into the data: `name`, `user.address.city`, `items[2].price`.
    public var path: String

    /// Creates the error.
    public init(path: String) { self.path = path }
}

/// The final misses of one rendering, in order.
private final class MissRecorder {
    var paths: [String] = []

    func record(_ path: String) {
        if !paths.contains(path) { paths.append(path) }
    }
}

/// A data object as swift-mustache sees it. The renderer asks a value for its `representation` once before every
/// child lookup, and once more when it pushes a section's value on the context stack; counting those steps
/// (`hops`) tells a lookup on a stack entry (2 or more: a miss only means "try the next entry down", unless this
/// is the top-level object) from a lookup that continues a dotted name (1: a miss is final).
private final class Scope: MustacheParent, MustacheCustomRepresentation, CustomStringConvertible {
    let fields: [String: TemplateValue]
    let path: String
    let isRoot: Bool
    let hops: Int
    let misses: MissRecorder

    init(fields: [String: TemplateValue], path: String, isRoot: Bool, hops: Int, misses: MissRecorder) {
        self.fields = fields
        self.path = path
        self.isRoot = isRoot
        self.hops = hops
        self.misses = misses
    }

    var representation: Any? { Scope(fields: fields, path: path, isRoot: isRoot, hops: hops + 1, misses: misses) }

    func child(named name: String) -> Any? {
        let childPath = path.isEmpty ? name : "\(path).\(name)"
        guard let value = fields[name] else {
            if isRoot || hops == 1 { misses.record(childPath) }
            return nil
        }
        return Self.wrap(value, path: childPath, hops: 0, misses: misses)
    }

    /// A value for the renderer: scalars as Swift values (a `Bool` so that false hides a section), objects as
    /// scopes, arrays as arrays whose object elements are already "pushed" (the renderer pushes elements as is).
    static func wrap(_ value: TemplateValue, path: String, hops: Int, misses: MissRecorder) -> Any {
        switch value {
        case .null: return NSNull()
        case .bool(let bool): return bool
        case .number(let number): return Int(exactly: number).map { $0 as Any } ?? number
        case .string(let string): return string
        case .array(let items):
            return items.enumerated().map { index, item in
                wrap(item, path: "\(path)[\(index)]", hops: 1, misses: misses)
            }
        case .object(let fields):
            return Scope(fields: fields, path: path, isRoot: false, hops: hops, misses: misses)
        }
    }

    var description: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(TemplateValue.object(fields))).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}
