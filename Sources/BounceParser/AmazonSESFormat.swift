/// Amazon SES's prose around its DSNs: "The following message to <addr> was undeliverable. The reason for the
/// problem: …" (2011-era) and "An error occurred while trying to deliver the mail to the following
/// recipients:" followed by the addresses. Its JSON notifications are read by ``AmazonSESNotification``.
enum AmazonSESFormat: MTAFormat {
    static let name = "amazonses"

    static func recognises(_ message: BounceMessage) -> Bool {
        message.from.contains("amazonses.com")
            || ["the following message to <", "an error occurred while trying to deliver the mail to the following recipients"]
                .contains { message.lowerText.contains($0) }
    }

    static func failures(in message: BounceMessage) -> [TextFailure] {
        if let line = message.lines.first(where: { $0.lowercased().contains("the following message to <") }),
           let address = ReportText.firstAddress(in: line) {
            let reason = MTAHeuristics.section(message.lines, after: ["the reason for the problem:"], until: ["--"])
                .map(MTAHeuristics.join) ?? ""
            return [TextFailure(address: address, diagnostic: reason)]
        }
        guard let section = MTAHeuristics.section(
            message.lines, after: ["an error occurred while trying to deliver the mail to the following recipients"], until: ["--"])
        else { return [] }
        return section.compactMap { ReportText.firstAddress(in: $0) }.map { TextFailure(address: $0, diagnostic: "") }
    }
}
