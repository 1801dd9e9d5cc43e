import ArgumentParser
import BounceParser
import Foundation

/// `relay bounces …`: operator tools for bounce, complaint and auto-reply messages.
struct Bounces: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Inspect bounce and complaint reports.", subcommands: [Parse.self])

    struct Parse: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Parse message files and print what they report.",
            discussion: """
                Prints, per file, its kind (bounce, complaint, auto_reply, not_a_bounce) and one line per recipient: \
                address, action, status, reply code, hard/soft, reason and the server's text. Exits 0 even when a \
                file is not a bounce, 1 when a file cannot be read.
                """)

        @Argument(help: "Message files as received (RFC 5322)") var files: [String]
        @Flag(help: "Print one JSON object per file") var json = false

        func run() async throws {
            var unreadable = false
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else {
                    FileHandle.standardError.write(Data("relay: cannot read \(file)\n".utf8))
                    unreadable = true
                    continue
                }
                let report = BounceParser.parse(Array(data))
                print(json ? try Self.json(file: file, report) : Self.text(file: file, report))
            }
            if unreadable { throw ExitCode(1) }
        }

        static func text(file: String, _ report: ParsedReport) -> String {
            var header = "\(file): \(report.kind.rawValue)"
            if let id = report.originalMessageID { header += " message-id=<\(id)>" }
            if let sender = report.originalEnvelopeSender { header += " sender=\(sender)" }
            if let type = report.feedbackType { header += " feedback-type=\(type)" }
            let lines = report.recipients.map { recipient in
                [recipient.address, recipient.action ?? "-", recipient.status ?? "-", recipient.replyCode.map(String.init) ?? "-",
                 recipient.classification.type.rawValue, recipient.classification.reason.rawValue,
                 recipient.diagnostic ?? "-"].joined(separator: "  ")
            }
            return ([header] + lines.map { "  " + $0 }).joined(separator: "\n")
        }

        static func json(file: String, _ report: ParsedReport) throws -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(Output(file: file, report)), as: UTF8.self)
        }
    }

    /// The JSON shape of one file's report (absent values are left out).
    struct Output: Encodable {
        struct Recipient: Encodable {
            let address: String
            let action: String?
            let status: String?
            let replyCode: Int?
            let permanent: Bool
            let type: String
            let reason: String
            let diagnostic: String?

            enum CodingKeys: String, CodingKey {
                case address, action, status, replyCode = "reply_code", permanent, type, reason, diagnostic
            }
        }

        let file: String
        let kind: String
        let originalMessageID: String?
        let originalEnvelopeSender: String?
        let feedbackType: String?
        let recipients: [Recipient]

        enum CodingKeys: String, CodingKey {
            case file, kind, originalMessageID = "original_message_id", originalEnvelopeSender = "original_envelope_sender"
            case feedbackType = "feedback_type", recipients
        }

        init(file: String, _ report: ParsedReport) {
            self.file = file
            kind = report.kind.rawValue
            originalMessageID = report.originalMessageID
            originalEnvelopeSender = report.originalEnvelopeSender
            feedbackType = report.feedbackType
            recipients = report.recipients.map {
                Recipient(address: $0.address, action: $0.action, status: $0.status, replyCode: $0.replyCode,
                          permanent: $0.classification.permanent, type: $0.classification.type.rawValue,
                          reason: $0.classification.reason.rawValue, diagnostic: $0.diagnostic)
            }
        }
    }
}
