/// Postfix's bounce text (`bounce(8)` templates): "This is the mail system at host …" then one paragraph
/// per recipient, `<addr>: reason` or `<addr> (expanded from <alias>): reason`, continued by indented lines;
/// the reason is often `host mx[ip] said: 550 5.1.1 … (in reply to RCPT TO command)`.
enum PostfixFormat: MTAFormat {
    static let name = "postfix"

    static func recognises(_ message: BounceMessage) -> Bool {
        ["this is the postfix program", "this is the mail system at host"].contains { message.lowerText.contains($0) }
            || ["undelivered mail returned to sender", "delayed mail (still being retried)", "mail delivery status report"]
                .contains { message.lowerSubject.contains($0) }
    }

    static func failures(in message: BounceMessage) -> [TextFailure] {
        let delayed = message.lowerSubject.contains("delayed mail") || message.lowerText.contains("this is a warning only")
        var failures: [TextFailure] = []
        var index = message.lines.startIndex
        while index < message.lines.endIndex {
            let line = message.lines[index]
            index += 1
            guard line.first == "<", line.contains(">") else { continue }
            var block = [line]
            while index < message.lines.endIndex, let first = message.lines[index].first, first == " " || first == "\t",
                  !ReportText.isBlank(message.lines[index]) {
                block.append(message.lines[index])
                index += 1
            }
            if let failure = parseParagraph(MTAHeuristics.join(block), delayed: delayed) { failures.append(failure) }
        }
        return failures
    }

    /// `<addr> (expanded from <alias>): reason` → address and reason.
    static func parseParagraph(_ paragraph: String, delayed: Bool) -> TextFailure? {
        guard paragraph.first == "<", let close = paragraph.firstIndex(of: ">"),
              let address = ReportText.address(in: paragraph[paragraph.index(after: paragraph.startIndex)..<close])
        else { return nil }
        var rest = paragraph[paragraph.index(after: close)...].drop { $0 == " " }
        if rest.hasPrefix("(") {
            guard let end = rest.firstIndex(of: ")") else { return nil }
            rest = rest[rest.index(after: end)...].drop { $0 == " " }
        }
        guard rest.first == ":" else { return nil }
        let reason = rest.dropFirst().trimmingWhitespace()
        guard !reason.isEmpty else { return nil }
        return TextFailure(address: address, diagnostic: reason, delayed: delayed, afterData: TextFailure.saysAfterData(reason))
    }
}
