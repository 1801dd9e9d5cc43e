/// Smail 3 and its descendants: "|---- Failed addresses follow: ----|" then one line per address,
/// ` addr ... reason`, up to "|---- Message text follows: ----|".
enum SmailFormat: MTAFormat {
    static let name = "smail"

    static func recognises(_ message: BounceMessage) -> Bool { message.lowerText.contains("failed addresses follow:") }

    static func failures(in message: BounceMessage) -> [TextFailure] {
        guard let section = MTAHeuristics.section(message.lines, after: ["failed addresses follow:"], until: ["|----"]) else { return [] }
        return section.compactMap { line in
            let trimmed = line.trimmingWhitespace()
            guard let first = trimmed.split(separator: " ").first, let address = ReportText.address(in: first) else { return nil }
            var reason = trimmed.dropFirst(first.count).trimmingWhitespace()
            if reason.hasPrefix("...") { reason = String(reason.dropFirst(3)).trimmingWhitespace() }
            return TextFailure(address: address, diagnostic: reason)
        }
    }
}
