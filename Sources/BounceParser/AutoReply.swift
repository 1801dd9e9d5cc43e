/// Automatic replies (RFC 3834): vacation and out-of-office notices. Recognised by `Auto-Submitted:
/// auto-replied` (§5), the de-facto headers X-Autoreply / X-Autorespond / `Precedence: auto_reply`, and the
/// subjects mail clients and servers use. Checked after the bounce recognisers, because some MTAs mark their
/// bounces `auto-replied` too (Exim, Office 365).
enum AutoReply {
    static let subjectPrefixes = [
        "auto:", "automatic reply", "auto reply", "auto-reply", "autoreply", "auto response", "auto-response",
        "autoresponse", "out of office", "out of the office", "away from", "away until", "vacation", "on vacation",
        "abwesenheitsnotiz", "automatische antwort", "réponse automatique", "respuesta automática", "risposta automatica",
        "automatisch antwoord", "自動応答", "自动回复", "i am out of", "i'm out of",
    ]

    static func isAutoReply(_ message: BounceMessage) -> Bool {
        if message.isAutoReplied { return true }
        for name in ["X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-AutoReply-From", "X-Mail-Autoreply"]
        where message.header(name) != nil {
            return true
        }
        if (message.header("Precedence") ?? "").lowercased().trimmingWhitespace() == "auto_reply" { return true }
        let subject = message.lowerSubject
        return subjectPrefixes.contains { subject.hasPrefix($0) }
    }
}
