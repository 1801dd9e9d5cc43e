import MailMessage

/// Finds the original message's Message-ID and envelope sender in a report: the returned `message/rfc822` or
/// `text/rfc822-headers` part, else the copy of the message that text-only bounces append after a marker
/// line; the envelope sender from the DSN (X-Postfix-Sender), the copy's Return-Path, or an
/// `envelope-from <…>` comment in its Received fields.
enum OriginalMessage {
    /// Lines after which text-only bounces append the original message, lower-case.
    static let copyMarkers = [
        "this is a copy of the message", "below this line is a copy of the message", "enclosed is a copy of the message",
        "----- original message -----", "original message headers:", "below is a copy of the original message",
        "original message follows", "message text follows", "content-type: message/rfc822", "undelivered message follows",
        "returned message follows", "bounced e-mail:",
    ]

    static func find(in message: BounceMessage, perMessage: DeliveryStatusReport.PerMessage?)
        -> (messageID: String?, envelopeSender: String?) {
        let headers = message.returnedHeaders ?? inlineHeaders(message)
        func value(_ name: String) -> String? {
            headers?.first { $0.name.lowercased() == name }?.value.trimmingWhitespace()
        }
        var messageID = (value("message-id") ?? perMessage?.originalMessageID).map(stripAngles)
        if messageID?.isEmpty == true { messageID = nil }
        var sender = perMessage?.envelopeSender
        if sender == nil, let returnPath = value("return-path") { sender = ReportText.address(in: returnPath) }
        if sender == nil, let headers {
            for field in headers where field.name.lowercased() == "received" {
                if let range = field.value.firstRange(of: "envelope-from ") ?? field.value.firstRange(of: "envelope-from=") {
                    sender = ReportText.firstAddress(in: field.value[range.upperBound...].prefix(300))
                    if sender != nil { break }
                }
            }
        }
        if sender == nil { sender = eximSender(message) }
        return (messageID, sender)
    }

    /// The header section of an original message copied into the text after a marker line.
    static func inlineHeaders(_ message: BounceMessage) -> [MIMEHeader]? {
        guard let marker = message.lines.firstIndex(where: { line in
            let lower = line.lowercased()
            return copyMarkers.contains { lower.contains($0) }
        }) else { return nil }
        var start = marker + 1
        while start < message.lines.endIndex, ReportText.isBlank(message.lines[start]) { start += 1 }
        let copy = message.lines[start...].prefix(400).joined(separator: "\n")
        return MIMEEntity.parseFieldGroups(Array(copy.utf8)).first
    }

    /// Exim names the sender when it is not the recipient of the bounce: "A message sent by\n\n  <addr>\n\n".
    private static func eximSender(_ message: BounceMessage) -> String? {
        guard let index = message.lines.firstIndex(where: { $0.trimmingWhitespace() == "A message sent by" }) else { return nil }
        return message.lines[(index + 1)...].prefix(3).lazy.compactMap { ReportText.firstAddress(in: $0) }.first
    }

    private static func stripAngles(_ id: String) -> String {
        var text = Substring(id.trimmingWhitespace())
        if text.hasPrefix("<") { text = text.dropFirst() }
        if let close = text.firstIndex(of: ">") { text = text[..<close] }
        return String(text)
    }
}
