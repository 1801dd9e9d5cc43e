/// qmail's bounce ("Hi. This is the qmail-send program at …"): one paragraph per recipient starting with
/// `<addr>:` at the start of a line, then the reason ("Remote host said: 550 5.1.1 …", or qmail's own
/// sentence ending in a status like "(#5.1.2)"), up to "--- Below this line is a copy of the message.".
/// netqmail, indimail and vpopmail keep the layout.
enum QmailFormat: MTAFormat {
    static let name = "qmail"

    static func recognises(_ message: BounceMessage) -> Bool {
        ["this is the qmail-send program", "qmail-send program", "--- below this line is a copy of the message",
         "--- enclosed is a copy of the message"].contains { message.lowerText.contains($0) }
    }

    static func failures(in message: BounceMessage) -> [TextFailure] {
        let permanent: Bool? = message.lowerText.contains("this is a permanent error") ? true : nil
        var failures: [TextFailure] = []
        var current: (address: String, lines: [Substring])?
        func flush() {
            if let current {
                failures.append(TextFailure(address: current.address, diagnostic: MTAHeuristics.join(current.lines), permanent: permanent))
            }
            current = nil
        }
        for line in message.lines {
            let lower = line.lowercased()
            if lower.hasPrefix("--- below this line") || lower.hasPrefix("--- enclosed is a copy") { break }
            let trimmed = line.trimmingWhitespace()
            if trimmed.first == "<", let close = trimmed.firstIndex(of: ">"),
               trimmed[trimmed.index(after: close)...].trimmingWhitespace().hasPrefix(":"),
               let address = ReportText.address(in: trimmed[trimmed.index(after: trimmed.startIndex)..<close]) {
                flush()
                let rest = trimmed[trimmed.index(after: close)...].trimmingWhitespace().dropFirst()
                current = (address, rest.isEmpty ? [] : [Substring(rest)])
                continue
            }
            if ReportText.isBlank(line) { flush(); continue }
            if current != nil { current!.lines.append(line) }
        }
        flush()
        return failures.map { failure in
            var failure = failure
            // indimail prefixes "From: <sender> RCPT: <rcpt> " to the reason; it is not the server's text.
            if failure.diagnostic.hasPrefix("From: "), let rcpt = failure.diagnostic.firstRange(of: " RCPT: <"),
               let close = failure.diagnostic[rcpt.upperBound...].firstIndex(of: ">") {
                failure.diagnostic = failure.diagnostic[failure.diagnostic.index(after: close)...].trimmingWhitespace()
            }
            return failure
        }
    }
}
