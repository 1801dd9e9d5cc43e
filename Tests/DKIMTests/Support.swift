import Foundation

/// `text` with each LF turned into CRLF, as bytes: fixtures are written with plain newlines.
func crlf(_ text: String) -> [UInt8] {
    Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8)
}

/// Bytes as text, for readable expectation failures (fixtures are UTF-8).
func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

/// The tags of a DKIM-Signature field (or its value) as name → value, with all whitespace removed, so that
/// fields folded differently compare equal.
func tags(of field: [UInt8]) -> [String: String] {
    var value = text(field)
    if value.lowercased().hasPrefix("dkim-signature:") { value = String(value.dropFirst("dkim-signature:".count)) }
    var result: [String: String] = [:]
    for spec in value.split(separator: ";") {
        let compact = spec.filter { !$0.isWhitespace }
        guard let equals = compact.firstIndex(of: "=") else { continue }
        result[String(compact[..<equals])] = String(compact[compact.index(after: equals)...])
    }
    return result
}

/// The lines of a folded field, without their CRLFs.
func lines(of field: [UInt8]) -> [String] {
    text(field).components(separatedBy: "\r\n").filter { !$0.isEmpty }
}
