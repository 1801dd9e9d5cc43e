/// A cautious catch-all for bounces in no known format: a message from a mail system (MAILER-DAEMON,
/// postmaster) with a bounce-like subject, whose text names addresses before any copy of the original.
/// Each line naming an address becomes a failure with that line as its diagnostic. Not applied to
/// auto-replies, which are recognised before it.
enum GenericBounce {
    static let subjectWords = [
        "undeliver", "undelivered", "returned mail", "returning message", "delivery failure", "delivery failed",
        "failure notice", "delivery status notification", "non-delivery", "nondelivery", "could not be delivered",
        "mail failed", "delivery problem", "bounce",
    ]
    static let copyMarkers = [
        "original message", "copy of", "message follows", "message text follows", "received:", "return-path:",
        "content-type:", "message-id:", "from:", "to:",
    ]

    static func parse(_ message: BounceMessage) -> ParsedReport? {
        guard message.fromMailSystem, subjectWords.contains(where: { message.lowerSubject.contains($0) }) else { return nil }
        let own = [message.from, (message.header("To") ?? "").lowercased()].compactMap { ReportText.firstAddress(in: $0)?.lowercased() }
        var failures: [TextFailure] = []
        for line in message.lines {
            let lower = line.lowercased().trimmingWhitespace()
            if copyMarkers.contains(where: { lower.hasPrefix($0) || lower.contains("-- " + $0) }) { break }
            guard let address = ReportText.firstAddress(in: line), !own.contains(address.lowercased()),
                  !failures.contains(where: { $0.address == address }) else { continue }
            failures.append(TextFailure(address: address, diagnostic: line.trimmingWhitespace()))
            if failures.count >= 50 { break }
        }
        return failures.isEmpty ? nil : MTAHeuristics.report(from: failures, message: message)
    }
}
