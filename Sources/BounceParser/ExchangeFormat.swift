/// Exchange and Office 365 non-delivery reports ("Delivery has failed to these recipients or groups:",
/// "Undeliverable: …", header X-MS-Exchange-Message-Is-Ndr). The part for administrators lists each
/// recipient on its own line, then "Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; …'" or
/// "Server at host returned '…'"; older versions write `#550 5.1.1 … ##`.
enum ExchangeFormat: MTAFormat {
    static let name = "exchange"

    static func recognises(_ message: BounceMessage) -> Bool {
        message.header("X-MS-Exchange-Message-Is-Ndr") != nil
            || message.lowerSubject.hasPrefix("undeliverable")
            || ["delivery has failed to these recipients or groups", "diagnostic information for administrators",
                "rejected your message to the following email address"].contains { message.lowerText.contains($0) }
    }

    static func failures(in message: BounceMessage) -> [TextFailure] {
        var failures: [TextFailure] = []
        if let section = MTAHeuristics.section(message.lines, after: ["diagnostic information for administrators"],
                                               until: ["original message headers"]) {
            for line in section {
                let trimmed = line.trimmingWhitespace()
                let lower = trimmed.lowercased()
                if trimmed.isEmpty || lower.hasPrefix("generating server:") || lower.hasPrefix("receiving server:") { continue }
                if !trimmed.contains(" "), let address = ReportText.address(in: trimmed) {
                    failures.append(TextFailure(address: address, diagnostic: ""))
                    continue
                }
                guard !failures.isEmpty, failures[failures.count - 1].diagnostic.isEmpty else { continue }
                if let range = trimmed.firstRange(of: "returned '") {
                    var reply = trimmed[range.upperBound...]
                    if let quote = reply.lastIndex(of: "'") { reply = reply[..<quote] }
                    failures[failures.count - 1].diagnostic = String(reply)
                } else if trimmed.hasPrefix("#") {
                    failures[failures.count - 1].diagnostic = trimmed.dropFirst().replacingAll("##", with: "").trimmingWhitespace()
                }
            }
        }
        if failures.isEmpty,
           let section = MTAHeuristics.section(message.lines, after: ["delivery has failed to these recipients or groups",
                                                                       "rejected your message to the following email address"],
                                               until: ["original message headers"]) {
            let status = message.lines.first { $0.lowercased().contains("status code:") }
                .map { $0[$0.index(after: $0.firstIndex(of: ":")!)...].trimmingWhitespace() } ?? ""
            for line in section.prefix(20) where !ReportText.isBlank(line) {
                guard let address = ReportText.firstAddress(in: line) else { continue }
                failures.append(TextFailure(address: address, diagnostic: status))
                break
            }
        }
        return failures
    }
}
