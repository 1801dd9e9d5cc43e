/// Sendmail's bounce text: "----- The following addresses had permanent fatal errors -----" listing each
/// address with an indented "(reason: 550 …)", then "----- Transcript of session follows -----" with the
/// server's replies (`<<< 550 5.1.1 …`) and sendmail's summary lines (`550 5.1.1 <addr>... User unknown`).
/// Transient errors ("… had transient non-fatal errors", "Warning: could not send message for past …")
/// are delays.
enum SendmailFormat: MTAFormat {
    static let name = "sendmail"

    static func recognises(_ message: BounceMessage) -> Bool {
        ["----- transcript of session follows -----", "addresses had permanent fatal errors",
         "addresses had transient non-fatal errors"].contains { message.lowerText.contains($0) }
    }

    static func failures(in message: BounceMessage) -> [TextFailure] {
        let lines = message.lines.map(ReportText.unquoted)
        let transcript = MTAHeuristics.section(lines, after: ["transcript of session follows"],
                                               until: ["-----", "content-type:", "reporting-mta:"]).map(Array.init) ?? []
        let serverReplies = transcript.compactMap { line -> String? in
            let trimmed = line.trimmingWhitespace()
            return trimmed.hasPrefix("<<< ") ? String(trimmed.dropFirst(4)) : nil
        }
        let summaries = transcript.map { $0.trimmingWhitespace() }.filter { line in
            line.count > 4 && line.prefix(3).allSatisfy(\.isNumber) && (line.dropFirst(3).first == " " || line.dropFirst(3).first == "-")
        }

        var failures: [TextFailure] = []
        let sections = [(["addresses had permanent fatal errors"], false), (["addresses had transient non-fatal errors"], true)]
        for (starts, delayed) in sections {
            guard let section = MTAHeuristics.section(lines, after: starts, until: ["-----"]) else { continue }
            var entries: [(head: String, detail: [String])] = []
            for line in section where !ReportText.isBlank(line) {
                if ReportText.indentation(line) == 0 {
                    entries.append((line.trimmingWhitespace(), []))
                } else if !entries.isEmpty {
                    entries[entries.count - 1].detail.append(line.trimmingWhitespace())
                }
            }
            for entry in entries {
                var address = ReportText.address(in: entry.head)
                var reason: String?
                for detail in entry.detail {
                    let lower = detail.lowercased()
                    if lower.hasPrefix("(expanded from:"), address == nil { address = ReportText.firstAddress(in: detail.dropFirst(15)) }
                    if lower.hasPrefix("(reason:") {
                        reason = detail.dropFirst(8).dropLast(detail.hasSuffix(")") ? 1 : 0).trimmingWhitespace()
                    }
                }
                let diagnostic = reason ?? transcriptLine(for: address, summaries: summaries, replies: serverReplies) ?? ""
                failures.append(TextFailure(address: address, diagnostic: diagnostic, delayed: delayed))
            }
        }
        if failures.isEmpty, let line = transcriptLine(for: nil, summaries: summaries, replies: serverReplies) {
            failures.append(TextFailure(address: nil, diagnostic: line))
        }
        return failures
    }

    /// The summary line naming the address, else the first failing server reply, else the first summary line.
    private static func transcriptLine(for address: String?, summaries: [String], replies: [String]) -> String? {
        if let address, let named = summaries.first(where: { $0.lowercased().contains(address.lowercased()) }) { return named }
        let failing = { (line: String) -> Bool in line.first == "4" || line.first == "5" }
        return replies.first(where: failing) ?? summaries.first(where: failing)
    }
}
