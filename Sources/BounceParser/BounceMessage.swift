import MailMessage

/// The parsed inbound message with the views every recogniser needs: a few headers, the human-readable
/// notification text (outside any returned message) split into lines, and the returned message's headers.
struct BounceMessage {
    /// The whole message.
    let entity: MIMEEntity
    /// The From header, lower-cased.
    let from: String
    /// The Subject header, decoded.
    let subject: String
    /// The Subject header, decoded and lower-cased.
    let lowerSubject: String
    /// The text/* parts outside returned messages and report parts, joined; the body when there are no parts.
    let text: String
    /// `text`, lower-cased.
    let lowerText: String
    /// `text` split into lines without line ends.
    let lines: [Substring]

    init(_ entity: MIMEEntity) {
        self.entity = entity
        from = (entity.header("From") ?? "").lowercased()
        subject = (entity.header("Subject") ?? "").collapsingWhitespace()
        lowerSubject = subject.lowercased()
        var collected = ""
        Self.collectText(entity, into: &collected, depth: 0)
        if collected.count > BounceParser.maxTextCharacters { collected = String(collected.prefix(BounceParser.maxTextCharacters)) }
        text = collected
        lowerText = collected.lowercased()
        lines = ReportText.lines(collected)
    }

    /// The first header field with this name, decoded.
    func header(_ name: String) -> String? { entity.header(name) }

    /// Whether the header section says this is an automatic reply (RFC 3834 §5 `Auto-Submitted: auto-replied`).
    /// Some MTAs set it on bounces too, so it decides nothing alone.
    var isAutoReplied: Bool {
        (header("Auto-Submitted") ?? "").lowercased().trimmingWhitespace().hasPrefix("auto-replied")
    }

    /// Whether From names a mail system rather than a person.
    var fromMailSystem: Bool {
        ["mailer-daemon", "postmaster", "mail delivery", "mailer daemon", "mail administrator", "mmdf", "mail-daemon"]
            .contains { from.contains($0) }
    }

    /// The addresses of the X-Failed-Recipients header (Exim, and others that copy it), in order.
    var failedRecipientsHeader: [String] {
        entity.headerValues("X-Failed-Recipients")
            .flatMap { $0.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) }
            .compactMap { ReportText.address(in: $0) }
    }

    /// Every part outside encapsulated messages, depth first, the message itself first.
    var parts: [MIMEEntity] {
        var result: [MIMEEntity] = []
        Self.walk(entity, depth: 0) { result.append($0) }
        return result
    }

    /// The headers of the returned original message: a `message/rfc822` (or `message/global`) part, else a
    /// `text/rfc822-headers` part (RFC 6522), else nil.
    var returnedHeaders: [MIMEHeader]? {
        for part in parts {
            if let inner = part.encapsulatedMessage { return inner.headers }
            if part.contentType == "text/rfc822-headers" || part.contentType == "message/global-headers" {
                return MIMEEntity.parseFieldGroups(part.decodedBody).first
            }
        }
        return nil
    }

    static func walk(_ entity: MIMEEntity, depth: Int, _ visit: (MIMEEntity) -> Void) {
        visit(entity)
        guard entity.isMultipart, depth < 16 else { return }
        for part in entity.parts { walk(part, depth: depth + 1, visit) }
    }

    /// Report parts that are not prose: they are read by their own parsers.
    static let nonProseTypes: Set<String> = [
        "message/delivery-status", "message/global-delivery-status", "message/feedback-report",
        "text/rfc822-headers", "message/global-headers", "message/disposition-notification",
    ]

    private static func collectText(_ entity: MIMEEntity, into text: inout String, depth: Int) {
        guard text.count < BounceParser.maxTextCharacters, depth < 16 else { return }
        if entity.isMultipart {
            if entity.parts.isEmpty {
                // A multipart whose boundary never appears: read the body as text (rfc3464-04).
                append(entity.decodedText, to: &text)
            } else if entity.contentType == "multipart/alternative" {
                let plain = entity.parts.first { $0.contentType == "text/plain" }
                if let chosen = plain ?? entity.parts.first { collectText(chosen, into: &text, depth: depth + 1) }
            } else {
                for part in entity.parts { collectText(part, into: &text, depth: depth + 1) }
            }
            return
        }
        if Encapsulation.isEncapsulation(entity.contentType) || nonProseTypes.contains(entity.contentType) { return }
        if entity.contentType == "text/html" {
            append(ReportText.strippingHTML(entity.decodedText), to: &text)
        } else if entity.contentType.hasPrefix("text/") {
            append(entity.decodedText, to: &text)
        }
    }

    private static func append(_ part: String, to text: inout String) {
        if !text.isEmpty { text += "\n" }
        text += part
    }
}

/// The media types that carry a whole message (RFC 2046 §5.2.1, RFC 6532 §3.7), as MailMessage treats them.
enum Encapsulation {
    static func isEncapsulation(_ type: String) -> Bool { type == "message/rfc822" || type == "message/global" }
}
