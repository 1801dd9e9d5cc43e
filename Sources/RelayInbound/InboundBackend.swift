import BounceParser
import Foundation
import Logging
import RelayCore
import RelayStore
import SMTPCore
import SMTPServer

/// The inbound listener's backend: mail to a verified bounce address (see ``ReturnPath``) is parsed as a
/// bounce, complaint or auto-reply and applied to the delivery the address names. The SMTP session has
/// already refused every other recipient (550 5.7.1), so this listener never relays.
public struct InboundBackend: SubmissionBackend {
    let database: RelayDatabase
    let returnPath: ReturnPath
    let softBounces: SoftBouncePolicy
    let logger: Logger

    public init(database: RelayDatabase, returnPath: ReturnPath, softBounces: SoftBouncePolicy, logger: Logger) {
        self.database = database
        self.returnPath = returnPath
        self.softBounces = softBounces
        self.logger = logger
    }

    /// The RCPT policy of the inbound session.
    public var acceptsRecipient: @Sendable (String) -> Bool {
        { [returnPath] address in returnPath.recipientID(of: address) != nil }
    }

    /// Never asked: inbound sessions do not offer AUTH.
    public func authenticate(username: String, password: String, remoteAddress: String) async -> AuthenticationResult {
        .rejected
    }

    /// Never asked: inbound sessions take any sender.
    public func checkSender(principal: String, address: String) async -> SenderVerdict {
        .accepted
    }

    /// Parses the message once and applies it to every delivery its recipients name; 250 once written, 451 when
    /// the database cannot take it (the reporting MTA will retry).
    public func commit(_ message: SubmittedMessage) async -> SMTPReply {
        let report = BounceParser.parse(message.data)
        do {
            for rcpt in message.recipients {
                guard let recipientID = returnPath.recipientID(of: rcpt) else { continue }
                let envelope = InboundEnvelope(mailFrom: message.mailFrom, rcptTo: rcpt, remoteIP: message.remoteAddress,
                                               sizeBytes: message.data.count)
                let target = try await database.feedbackTarget(recipientID: recipientID)
                var write = FeedbackWrite(provider: "other", reportKind: report.kind.rawValue,
                                          outcome: "the delivery no longer exists")
                if let target { write = FeedbackDecision.decide(report, target: target) }
                let changed = try await database.applyFeedback(write, target: target, envelope: envelope, softBounces: softBounces)
                logger.info("inbound report", metadata: [
                    "kind": "\(report.kind.rawValue)", "recipient_id": "\(recipientID)",
                    "message_id": "\(target?.messageID.uuidString.lowercased() ?? "-")",
                    "recipient": "\(target?.email ?? "-")", "outcome": "\(write.outcome)",
                    "status_changed": "\(changed)", "remote_ip": "\(message.remoteAddress)"])
            }
            return SMTPReply(code: 250, enhancedCode: EnhancedStatusCode("2.0.0"), text: "Ok: report received")
        } catch {
            logger.warning("inbound report could not be stored", metadata: ["error": "\(String(reflecting: error))"])
            return SMTPReply(code: 451, enhancedCode: EnhancedStatusCode("4.3.0"), text: "Temporary failure storing the report, try again later")
        }
    }
}
