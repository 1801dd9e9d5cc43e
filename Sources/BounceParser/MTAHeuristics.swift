/// One recipient's failure as an MTA's prose states it.
struct TextFailure: Sendable, Equatable {
    /// The address, or nil when the text names something else (`pipe to |…`, `save to …`): the caller then
    /// falls back on X-Failed-Recipients.
    var address: String?
    /// The reply or explanation, white space collapsed.
    var diagnostic: String
    /// The report says delivery is still being tried (a warning, not a failure).
    var delayed: Bool = false
    /// The report's own word on permanence, when it gives one.
    var permanent: Bool?
    /// The server refused after DATA (it had accepted the recipient at RCPT TO).
    var afterData: Bool = false
    /// The MTA's whole sentence around the reply ("Connected to … but my name was rejected."), for the
    /// classification when the reply alone says nothing.
    var context: String?

    /// Whether a diagnostic says the reply came after DATA: Postfix "(in reply to end of DATA command)",
    /// Exim "SMTP error from remote mail server after end of data".
    static func saysAfterData(_ text: String) -> Bool {
        let lower = text.lowercased()
        return ["in reply to end of data command", "in reply to data command", "after end of data", "after data:"]
            .contains { lower.contains($0) }
    }
}

/// The non-standard bounce format of one MTA or provider: how to recognise it and how to read its failures.
protocol MTAFormat: Sendable {
    /// A short name for diagnostics and tests.
    static var name: String { get }
    /// Whether the message looks like this format (headers, subject, tell-tale sentences).
    static func recognises(_ message: BounceMessage) -> Bool
    /// The failures the text lists, in order.
    static func failures(in message: BounceMessage) -> [TextFailure]
}

/// The MTA formats, tried in order; the first that recognises the message and finds failures wins.
enum MTAHeuristics {
    static let formats: [any MTAFormat.Type] = [
        PostfixFormat.self, EximFormat.self, QmailFormat.self, SendmailFormat.self, OpenSMTPDFormat.self,
        ExchangeFormat.self, GmailFormat.self, AmazonSESFormat.self, SmailFormat.self,
    ]

    /// The failures in the prose of the first format that finds any (empty when none does).
    static func failures(in message: BounceMessage) -> [TextFailure] {
        for format in formats where format.recognises(message) {
            let found = format.failures(in: message)
            if !found.isEmpty {
                return found.map { failure in
                    var failure = failure
                    let reply = ReportText.serverReply(in: failure.diagnostic)
                    if reply != failure.diagnostic { failure.context = failure.diagnostic }
                    failure.diagnostic = reply
                    return failure
                }
            }
        }
        return []
    }

    /// A bounce read from prose alone (no DSN part), or nil.
    static func parse(_ message: BounceMessage) -> ParsedReport? {
        let found = failures(in: message)
        guard !found.isEmpty else { return nil }
        return report(from: found, message: message)
    }

    /// Builds the report, resolving recipients the text does not name by address through X-Failed-Recipients.
    static func report(from failures: [TextFailure], message: BounceMessage) -> ParsedReport {
        let failedHeader = message.failedRecipientsHeader
        var recipients: [FailedRecipient] = []
        for (index, failure) in failures.prefix(BounceParser.maxRecipients).enumerated() {
            let address = failure.address
                ?? (index < failedHeader.count ? failedHeader[index] : failedHeader.first)
                ?? ""
            recipients.append(RecipientBuilder.make(
                address: address, action: failure.delayed ? "delayed" : "failed", reportedStatus: nil,
                diagnostic: failure.diagnostic, permanentHint: failure.permanent, afterData: failure.afterData,
                context: failure.context))
        }
        let original = OriginalMessage.find(in: message, perMessage: nil)
        return ParsedReport(kind: .bounce, recipients: recipients, originalMessageID: original.messageID,
                            originalEnvelopeSender: original.envelopeSender)
    }

    // MARK: - Shared scanning

    /// The lines after the first line containing one of `starts` (lower-case) up to, not including, the first
    /// line containing one of `ends`; nil when no start line exists.
    static func section(_ lines: [Substring], after starts: [String], until ends: [String]) -> ArraySlice<Substring>? {
        guard let startIndex = lines.firstIndex(where: { line in
            let lower = line.lowercased()
            return starts.contains { lower.contains($0) }
        }) else { return nil }
        let rest = lines[(startIndex + 1)...]
        let endIndex = rest.firstIndex(where: { line in
            let lower = line.lowercased()
            return ends.contains { lower.contains($0) }
        }) ?? rest.endIndex
        return rest[..<endIndex]
    }

    /// Joins lines into one diagnostic string.
    static func join(_ lines: some Sequence<Substring>) -> String {
        lines.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }.joined(separator: " ")
    }
}
