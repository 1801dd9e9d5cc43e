import MailMessage
import RelayCore

/// Complaint reports: RFC 5965 Abuse Reporting Format (`multipart/report; report-type=feedback-report` with a
/// `message/feedback-report` part — Yahoo, AOL, Comcast, Return Path FBLs, and RFC 6591 DMARC failure reports),
/// Microsoft's JMRP (a `message/rfc822` forwarded by staff@hotmail.com with X-HmXmrOriginalRecipient), and
/// Apple Mail's one-click unsubscribe (`X-Apple-Unsubscribe: true`, reported with feedback type `unsubscribe`).
enum FeedbackReport {
    static func parse(_ message: BounceMessage) -> ParsedReport? {
        let parts = message.parts
        if let report = parts.first(where: { $0.contentType == "message/feedback-report" }) {
            let fields = report.fieldGroups.flatMap { $0 }
            func values(_ name: String) -> [String] {
                fields.filter { $0.name.lowercased() == name }.map { $0.value.trimmingWhitespace() }
            }
            // RFC 5965 §3.2: Original-Rcpt-To may repeat, one per recipient; otherwise the original's To.
            var addresses = values("original-rcpt-to").compactMap { ReportText.address(in: $0) }
            if addresses.isEmpty { addresses = originalRecipients(message) }
            let original = OriginalMessage.find(in: message, perMessage: nil)
            let mailFrom = values("original-mail-from").compactMap { ReportText.address(in: $0) }.first
            return ParsedReport(
                kind: .complaint, recipients: addresses.map(complained), originalMessageID: original.messageID,
                originalEnvelopeSender: mailFrom ?? original.envelopeSender,
                feedbackType: values("feedback-type").first?.lowercased())
        }
        // Microsoft JMRP: "complaint about message from <ip>", the complained message attached whole.
        if message.from.contains("staff@hotmail.com") || message.lowerSubject.hasPrefix("complaint about message from"),
           parts.contains(where: { $0.encapsulatedMessage != nil }) {
            let original = OriginalMessage.find(in: message, perMessage: nil)
            return ParsedReport(kind: .complaint, recipients: originalRecipients(message).map(complained),
                                originalMessageID: original.messageID, originalEnvelopeSender: original.envelopeSender,
                                feedbackType: "abuse")
        }
        // Apple Mail sends this when a user taps "Unsubscribe" on a message with a List-Unsubscribe mailto:.
        if message.header("X-Apple-Unsubscribe")?.lowercased().trimmingWhitespace() == "true",
           let address = ReportText.firstAddress(in: message.from) {
            return ParsedReport(kind: .complaint, recipients: [complained(address)], feedbackType: "unsubscribe")
        }
        return nil
    }

    /// The recipients of the complained-about message: X-HmXmrOriginalRecipient (JMRP), else its To addresses.
    private static func originalRecipients(_ message: BounceMessage) -> [String] {
        guard let headers = message.returnedHeaders else { return [] }
        func values(_ name: String) -> [String] { headers.filter { $0.name.lowercased() == name }.map(\.decodedValue) }
        let jmrp = values("x-hmxmroriginalrecipient").compactMap { ReportText.address(in: $0.trimmingWhitespace()) }
        if !jmrp.isEmpty { return jmrp }
        return values("to").flatMap { value in
            value.split(separator: ",").compactMap { ReportText.firstAddress(in: $0) }
        }
    }

    /// A complained-about recipient: there is no failure to classify.
    static func complained(_ address: String) -> FailedRecipient {
        FailedRecipient(address: address, action: nil, status: nil, replyCode: nil, diagnostic: nil,
                        classification: BounceClassification(permanent: false, reason: .other, type: .soft))
    }
}
