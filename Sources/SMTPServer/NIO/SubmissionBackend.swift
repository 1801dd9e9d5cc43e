import SMTPCore

/// What the submission server asks of Relay: checking credentials, the sender-domain policy and storing a message.
///
/// The server calls these off the event loop and feeds the answer back to the session; until it arrives the
/// session reads no further commands (pipelined ones wait), so replies keep their order. Implementations should
/// bound their own time (a database that hangs should turn into a 451 from ``commit(_:)``).
public protocol SubmissionBackend: Sendable {
    /// Checks a user name and password (an API key) from AUTH PLAIN or AUTH LOGIN; `remoteAddress` is the
    /// client's IP address, for counting failures. Answers ``AuthenticationResult/lockedOut`` once the address
    /// has failed too often.
    func authenticate(username: String, password: String, remoteAddress: String) async -> AuthenticationResult
    /// Decides whether the authenticated `principal` may use `address` as the envelope sender.
    func checkSender(principal: String, address: String) async -> SenderVerdict
    /// Stores the message durably and answers the reply to the end of data: 250 only once it is committed,
    /// a 4xx (451 4.3.0) when storage is unavailable, a 5xx when the content is refused.
    func commit(_ message: SubmittedMessage) async -> SMTPReply
}
