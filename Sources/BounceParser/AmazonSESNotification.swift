import Foundation

/// Amazon SES notifications delivered by e-mail through SNS: a JSON document (`notificationType` Bounce,
/// Complaint or Delivery), often wrapped in an SNS envelope whose `Message` holds it as a string. Mailers
/// sometimes fold the long JSON line; the fold ("\n ") is removed before decoding.
enum AmazonSESNotification {
    static func parse(_ message: BounceMessage) -> ParsedReport? {
        guard message.text.contains("notificationType"), var object = jsonObject(in: message.text) else { return nil }
        if object["notificationType"] == nil, let inner = object["Message"] as? String,
           let decoded = jsonObject(in: inner) {
            object = decoded
        }
        guard let type = (object["notificationType"] ?? object["eventType"]) as? String else { return nil }
        let mail = object["mail"] as? [String: Any] ?? [:]
        let sender = (mail["source"] as? String).flatMap { ReportText.address(in: $0) }
        let messageID = messageIDHeader(mail)
        switch type.lowercased() {
        case "bounce":
            let bounce = object["bounce"] as? [String: Any] ?? [:]
            let permanent = (bounce["bounceType"] as? String).map { $0.lowercased() == "permanent" }
            let listed = bounce["bouncedRecipients"] as? [[String: Any]] ?? []
            let recipients = listed.compactMap { entry -> FailedRecipient? in
                guard let address = (entry["emailAddress"] as? String).flatMap({ ReportText.address(in: $0) }) else { return nil }
                let diagnostic = (entry["diagnosticCode"] as? String).flatMap(DeliveryStatusReport.diagnosticValue)
                return RecipientBuilder.make(
                    address: address, action: (entry["action"] as? String)?.lowercased() ?? "failed",
                    reportedStatus: entry["status"] as? String, diagnostic: diagnostic, permanentHint: permanent)
            }
            return ParsedReport(kind: .bounce, recipients: recipients, originalMessageID: messageID, originalEnvelopeSender: sender)
        case "complaint":
            let complaint = object["complaint"] as? [String: Any] ?? [:]
            let listed = complaint["complainedRecipients"] as? [[String: Any]] ?? []
            let addresses = listed.compactMap { ($0["emailAddress"] as? String).flatMap { ReportText.address(in: $0) } }
            return ParsedReport(kind: .complaint, recipients: addresses.map(FeedbackReport.complained), originalMessageID: messageID,
                                originalEnvelopeSender: sender,
                                feedbackType: (complaint["complaintFeedbackType"] as? String)?.lowercased() ?? "abuse")
        default:
            // "Delivery" and anything newer: not a failure.
            return ParsedReport(kind: .notABounce, originalMessageID: messageID, originalEnvelopeSender: sender)
        }
    }

    /// The Message-ID header of the original: `commonHeaders.messageId`, else the `headers` list.
    private static func messageIDHeader(_ mail: [String: Any]) -> String? {
        var value = (mail["commonHeaders"] as? [String: Any])?["messageId"] as? String
        if value == nil, let headers = mail["headers"] as? [[String: Any]] {
            value = headers.first { ($0["name"] as? String)?.lowercased() == "message-id" }?["value"] as? String
        }
        guard var text = value?.trimmingWhitespace(), !text.isEmpty else { return nil }
        if text.hasPrefix("<"), text.hasSuffix(">") { text = String(text.dropFirst().dropLast()) }
        return text
    }

    /// The first balanced JSON object in the text, decoded; folded lines are unfolded first.
    static func jsonObject(in text: String) -> [String: Any]? {
        let unfolded = text.replacingAll("\r\n ", with: "").replacingAll("\n ", with: "")
        let bytes = Array(unfolded.utf8)
        guard let start = bytes.firstIndex(of: UInt8(ascii: "{")) else { return nil }
        var depth = 0
        var inString = false
        var escaped = false
        var end: Int?
        for index in start..<bytes.count {
            let byte = bytes[index]
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            if byte == UInt8(ascii: "\"") { inString = true }
            else if byte == UInt8(ascii: "{") { depth += 1 }
            else if byte == UInt8(ascii: "}") {
                depth -= 1
                if depth == 0 { end = index; break }
            }
        }
        guard let end else { return nil }
        let data = Data(bytes[start...end])
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }
}
