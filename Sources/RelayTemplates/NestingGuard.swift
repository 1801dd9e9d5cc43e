/// Refuses, before swift-mustache parses it, a template whose sections nest deeper than `maximumDepth`: the
/// parser and the renderer recurse once per level, and a few thousand levels (a few kilobytes of `{{#a}}`)
/// overflow a thread's stack and kill the process. Also refuses set-delimiter tags (`{{=<% %>=}}`), so that
/// every tag this scan sees is a tag the parser sees.
///
/// The scan reads tags as the parser does with the default delimiters: from `{{` to the next `}}` (`}}}` for
/// `{{{`). Sections, inverted sections, blocks and parents (`#`, `^`, `$`, `<`) open a level, `/` closes one.
enum NestingGuard {
    /// Sections may nest this deep; far more than any message needs, far less than the stack allows.
    static let maximumDepth = 50

    /// Throws `TemplateSyntaxError` at the first tag that nests too deep or changes delimiters.
    static func check(_ source: String) throws(TemplateSyntaxError) {
        let bytes = Array(source.utf8)
        let open = Array("{{".utf8)
        var depth = 0
        var index = 0
        while let start = find(open, in: bytes, from: index) {
            var cursor = start + 2
            let triple = cursor < bytes.count && bytes[cursor] == UInt8(ascii: "{")
            guard let end = find(Array((triple ? "}}}" : "}}").utf8), in: bytes, from: cursor) else { return }
            while cursor < end, bytes[cursor] == UInt8(ascii: " ") || bytes[cursor] == UInt8(ascii: "\t") { cursor += 1 }
            let sigil = cursor < end ? bytes[cursor] : 0
            switch sigil {
            case UInt8(ascii: "#"), UInt8(ascii: "^"), UInt8(ascii: "$"), UInt8(ascii: "<"):
                depth += 1
                if depth > maximumDepth {
                    throw error(at: start, in: bytes, "sections nest more than \(maximumDepth) deep")
                }
            case UInt8(ascii: "/"):
                depth = max(0, depth - 1)
            case UInt8(ascii: "="):
                throw error(at: start, in: bytes, "set-delimiter tags {{=… …=}} are not supported")
            default:
                break
            }
            index = end + (triple ? 3 : 2)
        }
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard needle.count <= bytes.count else { return nil }
        var index = start
        while index + needle.count <= bytes.count {
            if bytes[index] == needle[0] && Array(bytes[index..<index + needle.count]) == needle { return index }
            index += 1
        }
        return nil
    }

    private static func error(at offset: Int, in bytes: [UInt8], _ message: String) -> TemplateSyntaxError {
        let before = bytes[..<offset]
        let line = before.count(where: { $0 == UInt8(ascii: "\n") }) + 1
        let lineStart = before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        let column = String(decoding: bytes[lineStart..<offset], as: UTF8.self).count + 1
        return TemplateSyntaxError(line: line, column: column, message: message)
    }
}
