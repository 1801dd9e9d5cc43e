/// Gmail's older plain-text bounces (From mailer-daemon@googlemail.com): "Delivery to the following recipient
/// failed permanently:" (or "… has been delayed:") and the indented addresses, then "Technical details of
/// permanent failure:" with "The error that the other server returned was: 550 5.1.1 …".
enum GmailFormat: MTAFormat {
    static let name = "gmail"

    static func recognises(_ message: BounceMessage) -> Bool {
        ["delivery to the following recipient", "technical details of permanent failure",
         "technical details of temporary failure", "** address not found **", "** message not delivered **",
         "your message wasn't delivered to", "message not delivered"].contains { message.lowerText.contains($0) }
    }

    static func failures(in message: BounceMessage) -> [TextFailure] {
        guard let start = message.lines.firstIndex(where: { $0.lowercased().contains("delivery to the following recipient") })
        else { return currentFormat(message) }
        let marker = message.lines[start].lowercased()
        let delayed = marker.contains("delayed")
        let permanent: Bool? = marker.contains("permanently") ? true : nil
        var addresses: [String] = []
        var index = start + 1
        while index < message.lines.endIndex, ReportText.isBlank(message.lines[index]) { index += 1 }
        while index < message.lines.endIndex, !ReportText.isBlank(message.lines[index]) {
            if let address = ReportText.firstAddress(in: message.lines[index]) { addresses.append(address) }
            index += 1
        }
        var details = ""
        if let section = MTAHeuristics.section(
            message.lines, after: ["technical details of permanent failure", "technical details of temporary failure"],
            until: ["----- original message -----", "----- message header follows -----", "------- original message"]) {
            details = MTAHeuristics.join(section)
            if let range = details.firstRange(of: "The error that the other server returned was:") {
                details = details[range.upperBound...].trimmingWhitespace()
            }
        }
        return addresses.map { TextFailure(address: $0, diagnostic: details, delayed: delayed, permanent: delayed ? false : permanent) }
    }

    /// The layout since about 2016 (usually with a DSN part too): "** Address not found **", "Your message
    /// wasn't delivered to <addr> because …", then "The response was:" / "The response from the remote server
    /// was:" and the reply.
    static func currentFormat(_ message: BounceMessage) -> [TextFailure] {
        guard let line = message.lines.first(where: { $0.contains("wasn't delivered to ") }),
              let range = line.firstRange(of: "wasn't delivered to "),
              let address = ReportText.firstAddress(in: line[range.upperBound...]) else { return [] }
        var diagnostic = line.trimmingWhitespace()
        if let section = MTAHeuristics.section(message.lines, after: ["the response was:", "the response from the remote server was:"],
                                               until: ["-----", "content-type:"]) {
            let reply = MTAHeuristics.join(section.prefix { !ReportText.isBlank($0) })
            if !reply.isEmpty { diagnostic = reply }
        }
        return [TextFailure(address: address, diagnostic: diagnostic)]
    }
}
