import MailMessage
import RelayCore

/// RFC 3464 delivery status notifications: the `message/delivery-status` part of a `multipart/report`
/// (RFC 6522), or its RFC 6533 UTF-8 twin `message/global-delivery-status`, read as one block of per-message
/// fields and one block per recipient (§2.1). When no such part exists, DSN fields written into the text are
/// read the same way: reports whose MIME structure was lost, and forwarded reports quoted with `>`.
enum DeliveryStatusReport {
    /// One per-recipient block (RFC 3464 §2.3).
    struct Record {
        var finalRecipient: String?
        var originalRecipient: String?
        var actualRecipient: String?
        var action: String?
        var status: String?
        var diagnostic: String?

        var hasRecipient: Bool { finalRecipient != nil || originalRecipient != nil }
        /// A recipient with its action and status: a recipient field after this starts the next record (fields
        /// before the recipient, "Action: failed" then "Final-Recipient: …" as Exim and SES write, stay with it).
        var isComplete: Bool { hasRecipient && action != nil && status != nil }
    }

    /// The per-message fields that matter here (RFC 3464 §2.2, and Postfix's X-Postfix-Sender).
    struct PerMessage {
        var envelopeSender: String?
        var originalMessageID: String?
    }

    static func parse(_ message: BounceMessage) -> ParsedReport? {
        var groups: [[MIMEHeader]] = []
        for part in message.parts where part.contentType == "message/delivery-status"
            || part.contentType == "message/global-delivery-status" {
            groups += part.fieldGroups
        }
        var (records, perMessage) = read(groups)
        if records.isEmpty {
            (records, perMessage) = read(textualFieldGroups(message.lines))
            // Fields in prose must look like a real report: a recipient and an action or a status.
            records = records.filter { $0.action != nil || $0.status != nil }
        }
        guard !records.isEmpty else { return nil }

        // RFC 3464 §2.3.3: only failed and delayed recipients are failures; delivered, relayed and expanded
        // are success notices. A report of successes only is not a bounce.
        let failures = records.prefix(BounceParser.maxRecipients).filter { record in
            let action = record.action.map(firstWord) ?? ""
            if ["delivered", "deliverable", "relayed", "expanded"].contains(action) { return false }
            if !["failed", "delayed"].contains(action), let status = record.status, status.hasPrefix("2.") { return false }
            return true
        }
        let original = OriginalMessage.find(in: message, perMessage: perMessage)
        guard !failures.isEmpty else {
            return ParsedReport(kind: .notABounce, originalMessageID: original.messageID,
                                originalEnvelopeSender: original.envelopeSender)
        }

        let prose = MTAHeuristics.failures(in: message)
        var proseByAddress: [String: TextFailure] = [:]
        for failure in prose.reversed() { if let address = failure.address { proseByAddress[address.lowercased()] = failure } }
        let failedHeader = message.failedRecipientsHeader
        var recipients: [FailedRecipient] = []
        for (index, record) in failures.enumerated() {
            let address = recipientAddress(record, failedHeader: failedHeader, index: index)
            let names = [address, record.finalRecipient, record.originalRecipient].compactMap { $0?.lowercased() }
            let text = names.lazy.compactMap { proseByAddress[$0] }.first
                ?? (failures.count == 1 && prose.count == 1 ? prose[0] : nil)
            var diagnostic = record.diagnostic
            // Prefer the prose when the DSN's diagnostic is missing or is only the MTA's own words without a
            // reply (OpenSMTPD writes "Status: 5.0.0" and no Diagnostic-Code; the text has "550 5.7.26 …").
            if let text, !text.diagnostic.isEmpty {
                let dsnHasCode = diagnostic.map { ReportText.replyParts(in: $0).code != nil } ?? false
                let proseHasCode = ReportText.replyParts(in: text.diagnostic).code != nil
                // An exit status ("X-Unix; 77") says less than sendmail's "(reason: Insufficient permission)".
                let dsnIsExitCode = diagnostic.map { $0.allSatisfy(\.isNumber) } ?? false
                if diagnostic == nil || dsnIsExitCode || (!dsnHasCode && proseHasCode) { diagnostic = text.diagnostic }
            }
            recipients.append(RecipientBuilder.make(
                address: address, action: record.action.map(firstWord), reportedStatus: record.status,
                diagnostic: diagnostic, permanentHint: text?.permanent, afterData: text?.afterData ?? false,
                context: text?.context))
        }
        return ParsedReport(kind: .bounce, recipients: recipients, originalMessageID: original.messageID,
                            originalEnvelopeSender: original.envelopeSender)
    }

    private static func firstWord(_ value: String) -> String {
        String(value.trimmingWhitespace().lowercased().prefix { !$0.isWhitespace && $0 != "(" && $0 != ";" })
    }

    /// A `multipart/report; report-type=delivery-status` that names no recipient at all (Postfix's "Delivery
    /// report unavailable"): still a bounce, for the recipient of the returned message when it names exactly one.
    static func parseWithoutRecipients(_ message: BounceMessage) -> ParsedReport? {
        guard message.entity.contentType == "multipart/report",
              message.entity.parameters["report-type"]?.lowercased() == "delivery-status" else { return nil }
        let original = OriginalMessage.find(in: message, perMessage: nil)
        let to = (message.returnedHeaders ?? []).filter { $0.name.lowercased() == "to" }
            .flatMap { $0.decodedValue.split(separator: ",").compactMap { ReportText.firstAddress(in: $0) } }
        let recipients = to.count == 1
            ? [FailedRecipient(address: to[0], action: nil, status: nil, replyCode: nil, diagnostic: nil,
                               classification: BounceClassification(permanent: false, reason: .other))]
            : []
        return ParsedReport(kind: .bounce, recipients: recipients, originalMessageID: original.messageID,
                            originalEnvelopeSender: original.envelopeSender)
    }

    /// Final-Recipient, else a plausible address inside it (`|/usr/bin/prog user@host` from a pipe), else
    /// X-Actual-Recipient, Original-Recipient, X-Failed-Recipients, else the raw value.
    static func recipientAddress(_ record: Record, failedHeader: [String], index: Int) -> String {
        let candidates = [record.finalRecipient, record.actualRecipient, record.originalRecipient].compactMap { $0 }
        for candidate in candidates { if let address = ReportText.address(in: candidate) { return address } }
        for candidate in candidates { if let address = ReportText.firstAddress(in: candidate) { return address } }
        if index < failedHeader.count { return failedHeader[index] }
        return candidates.first ?? ""
    }

    // MARK: - Fields

    /// Splits field blocks into per-recipient records and collects the per-message fields. A block may hold
    /// several recipients when the blank lines between them were lost: a recipient field seen again, or one
    /// after a complete record, starts a new record.
    static func read(_ groups: [[MIMEHeader]]) -> ([Record], PerMessage) {
        var records: [Record] = []
        var perMessage = PerMessage()
        for group in groups {
            var current = Record()
            for field in group {
                let value = field.value.trimmingWhitespace()
                switch field.name.lowercased() {
                case "final-recipient":
                    if current.finalRecipient != nil || current.isComplete {
                        records.append(current)
                        current = Record()
                    }
                    current.finalRecipient = addressValue(value)
                case "original-recipient":
                    if current.originalRecipient != nil || current.isComplete {
                        records.append(current)
                        current = Record()
                    }
                    current.originalRecipient = addressValue(value)
                case "x-actual-recipient":
                    current.actualRecipient = addressValue(value)
                case "action":
                    current.action = value
                case "status":
                    current.status = ReportText.leadingStatus(value) ?? (value.isEmpty ? nil : value)
                case "diagnostic-code":
                    current.diagnostic = diagnosticValue(value)
                case "x-postfix-sender", "x-original-mail-from", "original-mail-from":
                    perMessage.envelopeSender = perMessage.envelopeSender ?? ReportText.address(in: addressValue(value))
                case "x-original-message-id", "original-message-id":
                    perMessage.originalMessageID = perMessage.originalMessageID ?? value
                default:
                    break
                }
            }
            if current.hasRecipient { records.append(current) }
        }
        return (records, perMessage)
    }

    /// `rfc822; user@example.com` → `user@example.com` (RFC 3464 §2.3.2 address-type; RFC 6533 `utf-8;`).
    static func addressValue(_ value: String) -> String {
        guard let semicolon = value.firstIndex(of: ";") else { return value.trimmingWhitespace() }
        let rest = value[value.index(after: semicolon)...].trimmingWhitespace()
        return rest.hasPrefix("<") && rest.hasSuffix(">") && rest.count > 2 ? String(rest.dropFirst().dropLast()) : rest
    }

    /// `smtp; 550 5.1.1 …` → `550 5.1.1 …` (RFC 3464 §2.3.6 diagnostic-type), white space collapsed.
    static func diagnosticValue(_ value: String) -> String? {
        var text = Substring(value)
        if let semicolon = text.firstIndex(of: ";") {
            let type = text[..<semicolon].trimmingWhitespace()
            if !type.isEmpty, type.count <= 20, type.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) {
                text = text[text.index(after: semicolon)...]
            }
        }
        let collapsed = text.collapsingWhitespace()
        return collapsed.isEmpty ? nil : collapsed
    }

    /// The DSN field names looked for in prose.
    static let fieldNames: Set<String> = [
        "final-recipient", "original-recipient", "x-actual-recipient", "action", "status", "diagnostic-code",
        "remote-mta", "last-attempt-date", "will-retry-until", "final-log-id", "reporting-mta", "received-from-mta",
        "arrival-date", "x-postfix-sender", "x-postfix-queue-id", "original-envelope-id", "dsn-gateway",
    ]

    /// DSN field blocks found in prose: consecutive lines `Name: value` with a known DSN field name (quoting
    /// removed), continued by indented lines, separated by anything else.
    static func textualFieldGroups(_ lines: [Substring]) -> [[MIMEHeader]] {
        var groups: [[MIMEHeader]] = []
        var group: [MIMEHeader] = []
        var inField = false
        for rawLine in lines {
            let line = ReportText.unquoted(rawLine)
            if inField, let first = line.first, first == " " || first == "\t", !ReportText.isBlank(line) {
                group[group.count - 1].value += " " + line.trimmingWhitespace()
                continue
            }
            inField = false
            if let colon = line.firstIndex(of: ":"), colon > line.startIndex {
                let name = line[..<colon].lowercased()
                if fieldNames.contains(name) {
                    group.append(MIMEHeader(name: String(line[..<colon]), value: line[line.index(after: colon)...].trimmingWhitespace()))
                    inField = true
                    continue
                }
            }
            if !group.isEmpty { groups.append(group) }
            group = []
        }
        if !group.isEmpty { groups.append(group) }
        return groups
    }
}
