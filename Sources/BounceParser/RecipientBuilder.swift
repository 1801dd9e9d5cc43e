import RelayCore

/// Turns what a report says about one recipient into a ``FailedRecipient``: the reply code and status read
/// from the diagnostic, the status chosen between the report's field and the diagnostic, and the classification.
enum RecipientBuilder {
    /// - Parameters:
    ///   - reportedStatus: the DSN `Status` field, if any.
    ///   - diagnostic: the remote server's reply or the MTA's explanation.
    ///   - permanentHint: the MTA's own word on permanence ("This is a permanent error", "failed permanently"),
    ///     used only when neither a reply code nor a status says it.
    ///   - afterData: the prose says the refusal came after DATA.
    ///   - context: the MTA's sentence around the reply, consulted when the reply alone gives reason `other`.
    static func make(address: String, action: String?, reportedStatus: String?, diagnostic: String?,
                     permanentHint: Bool?, afterData: Bool = false, context: String? = nil) -> FailedRecipient {
        let cleaned = diagnostic.map { ReportText.joiningContinuations($0.collapsingWhitespace()) }
        let diagnosticText = cleaned?.isEmpty == false ? cleaned : nil
        let parts: (code: Int?, status: String?) = diagnosticText.map { ReportText.replyParts(in: $0) } ?? (nil, nil)
        let status = chooseStatus(reported: reportedStatus, inDiagnostic: parts.status)
        var classification = BounceClassifier.classify(code: parts.code, enhanced: status, text: diagnosticText ?? "")
        if classification.reason == .other, let context {
            classification.reason = BounceClassifier.classify(code: parts.code, enhanced: status, text: context).reason
        }
        if parts.code == nil, status == nil, let permanentHint {
            classification.permanent = permanentHint
        }
        if classification.reason == .mailboxUnknown,
           isFilterRefusal(status: status, diagnostic: diagnosticText ?? "", afterData: afterData) {
            classification.reason = .policyOrSpamBlock
        }
        // RFC 3464 §2.3.3: "delayed" means the MTA is still trying; nothing about it is final.
        if action == "delayed" { classification.permanent = false }
        classification.type = BounceClassifier.type(permanent: classification.permanent, reason: classification.reason)
        return FailedRecipient(address: address, action: action, status: status, replyCode: parts.code,
                               diagnostic: diagnosticText, classification: classification)
    }

    /// An "unknown user" that is really the recipient's filter refusing the sender, so not a reason to suppress
    /// the address:
    /// - the status is X.2.0, which RFC 3463 §3.3 defines as "the mailbox exists, but something about the
    ///   destination mailbox has caused the sending of this DSN";
    /// - or an unknown-user refusal came after DATA without a precise X.1.x status: RFC 5321 §3.3 has the server check a
    ///   recipient at RCPT TO, so one accepted there exists and its system is filtering (Japanese mobile carriers
    ///   answer "550 Unknown user" after DATA when the recipient's filter blocks the sender);
    /// - or the reply is au (KDDI)'s filter refusal "550 : User unknown", with the address left out (relays such
    ///   as Office 365 pass it on under their own status, 5.1.351).
    static func isFilterRefusal(status: String?, diagnostic: String, afterData: Bool) -> Bool {
        if diagnostic.lowercased().contains(" : user unknown") { return true }
        let statusParts = status?.split(separator: ".") ?? []
        if statusParts.count == 3, statusParts[1] == "2", statusParts[2] == "0" { return true }
        if statusParts.count == 3, statusParts[1] == "1" { return false }
        let lower = diagnostic.lowercased()
        let unknownUser = ["user unknown", "unknown user", "unknown recipient", "no such user", "recipient not found", "user not found"]
            .contains { lower.contains($0) }
        return unknownUser && (afterData || TextFailure.saysAfterData(diagnostic))
    }

    /// The report's status wins, except that a vague one (X.0.0, or X.Y.0 of the same subject) gives way to
    /// a precise code of the same class in the diagnostic: Exim and OpenSMTPD write `Status: 5.0.0` over
    /// a `550 5.7.1` reply.
    static func chooseStatus(reported: String?, inDiagnostic: String?) -> String? {
        guard let reported, let reportedParts = parts(reported) else { return inDiagnostic ?? reported }
        guard let inDiagnostic, let diagnosticParts = parts(inDiagnostic) else { return reported }
        guard diagnosticParts.0 == reportedParts.0, reportedParts.2 == 0 else { return reported }
        if reportedParts.1 == 0 || reportedParts.1 == diagnosticParts.1 { return inDiagnostic }
        return reported
    }

    private static func parts(_ status: String) -> (Int, Int, Int)? {
        let numbers = status.split(separator: ".").compactMap { Int($0) }
        return numbers.count == 3 ? (numbers[0], numbers[1], numbers[2]) : nil
    }
}
