/// OpenSMTPD's bounce ("This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail."): after
/// "… the following list of recipients:" one line per recipient, `addr: reason`; "A message is delayed for
/// more than …" marks a delay warning.
enum OpenSMTPDFormat: MTAFormat {
    static let name = "opensmtpd"

    static func recognises(_ message: BounceMessage) -> Bool {
        ["this is the mailer-daemon, please do not reply to this e-mail", "this is the mailer-daemon, please do not reply to this email"]
            .contains { message.lowerText.contains($0) }
    }

    static func failures(in message: BounceMessage) -> [TextFailure] {
        guard let section = MTAHeuristics.section(
            message.lines, after: ["list of recipients:"],
            until: ["below is a copy of the original message", "please note that this is only a temporary failure report"])
        else { return [] }
        let delayed = message.lowerText.contains("a message is delayed for more than")
        return section.compactMap { line in
            guard ReportText.indentation(line) == 0, let colon = line.firstIndex(of: ":"),
                  let address = ReportText.address(in: line[..<colon]) else { return nil }
            return TextFailure(address: address, diagnostic: line[line.index(after: colon)...].trimmingWhitespace(), delayed: delayed)
        }
    }
}
