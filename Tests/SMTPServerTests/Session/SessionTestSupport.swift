import NIOCore
import SMTPCore
import Testing
#if canImport(SMTPServerSession)
import SMTPServerSession  // the isolated helper package
#else
import SMTPServer
#endif

typealias SessionAction = SMTPServerSession.Action

let sessionHostname = "mx.relay.test"
let sessionMaximumSize = 1_000_000

func sessionConfiguration(offersSTARTTLS: Bool = true, maximumRecipients: Int = 1000) -> SMTPServerConfiguration {
    SMTPServerConfiguration(hostname: sessionHostname, maximumMessageSize: sessionMaximumSize,
                            maximumRecipients: maximumRecipients, offersSTARTTLS: offersSTARTTLS)
}

/// base64 of the UTF-8 bytes of `text` (test side; independent of the session's decoder).
func base64(_ text: String) -> String { base64(Array(text.utf8)) }

func base64(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    var result = ""
    var index = 0
    while index < bytes.count {
        let chunk = Array(bytes[index..<min(index + 3, bytes.count)])
        let value = (UInt32(chunk[0]) << 16) | (chunk.count > 1 ? UInt32(chunk[1]) << 8 : 0) | (chunk.count > 2 ? UInt32(chunk[2]) : 0)
        for position in 0..<4 {
            if position <= chunk.count {
                result.append(alphabet[Int((value >> UInt32(18 - 6 * position)) & 0x3F)])
            } else {
                result.append("=")
            }
        }
        index += 3
    }
    return result
}

func plainCredentials(_ user: String, _ password: String, authzid: String = "") -> String {
    base64(Array(authzid.utf8) + [0] + Array(user.utf8) + [0] + Array(password.utf8))
}

extension SMTPServerSession {
    /// Feeds one command line (without CRLF).
    mutating func line(_ text: String) -> SessionAction { commandLineReceived(Array(text.utf8)) }

    /// Feeds DATA bytes.
    mutating func data(_ text: String) -> SessionAction { dataReceived(ByteBuffer(string: text)) }

    /// A session on port 587 after EHLO, STARTTLS, EHLO again and a successful AUTH PLAIN.
    static func authenticated(configuration: SMTPServerConfiguration = sessionConfiguration(),
                              principal: String = "tenant-1") -> SMTPServerSession {
        var session = SMTPServerSession(configuration: configuration, remoteAddress: "192.0.2.7", tlsActive: false)
        _ = session.connected()
        _ = session.line("EHLO client.example")
        _ = session.line("STARTTLS")
        _ = session.tlsEstablished()
        _ = session.line("EHLO client.example")
        _ = session.line("AUTH PLAIN \(plainCredentials("any", "rk_secret"))")
        let action = session.authenticationCompleted(.accepted(principal: principal))
        precondition(action == .reply(SMTPReply(code: 235, enhancedCode: EnhancedStatusCode("2.7.0"), text: "Authentication successful")))
        return session
    }

    /// An authenticated session inside a transaction with the given recipients.
    static func inTransaction(from: String = "app@tenant.example", to recipients: [String] = ["user@example.net"],
                              configuration: SMTPServerConfiguration = sessionConfiguration()) -> SMTPServerSession {
        var session = authenticated(configuration: configuration)
        _ = session.line("MAIL FROM:<\(from)>")
        _ = session.senderChecked(.accepted)
        for recipient in recipients { _ = session.line("RCPT TO:<\(recipient)>") }
        return session
    }
}

/// The reply an action writes, if any.
extension SMTPServerSession.Action {
    var reply: SMTPReply? {
        switch self {
        case .reply(let reply), .replyAndClose(let reply), .replyAndStartTLS(let reply): reply
        default: nil
        }
    }

    var closes: Bool {
        switch self {
        case .replyAndClose, .close: true
        default: false
        }
    }
}

/// Expects `action` to write a reply with `code` and `enhanced` code (nil: none), and to close or not.
func expectReply(_ action: SessionAction, _ code: Int, _ enhanced: String?, closes: Bool = false, textContains: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    guard let reply = action.reply else {
        Issue.record("expected a \(code) reply, got \(action)", sourceLocation: sourceLocation)
        return
    }
    #expect(reply.code == code, "\(reply)", sourceLocation: sourceLocation)
    #expect(reply.enhancedCode?.description == enhanced, "\(reply)", sourceLocation: sourceLocation)
    #expect(action.closes == closes, "\(action)", sourceLocation: sourceLocation)
    if case .replyAndStartTLS = action { #expect(code == 220, sourceLocation: sourceLocation) }
    if let textContains {
        #expect(reply.text.contains(textContains), "\(reply)", sourceLocation: sourceLocation)
    }
}

/// Plays the NIO layer: frames lines from a byte stream, holds input while the session is busy, switches to raw
/// bytes during DATA, hands pipelined bytes after the end of data back to line framing, discards plaintext after
/// STARTTLS. Backend calls are recorded and answered by ``completeBackend()``, or at once when `autoBackend`.
struct SessionDriver {
    var session: SMTPServerSession
    var buffer: [UInt8] = []
    var written: [SMTPReply] = []
    var committed: [SubmittedMessage] = []
    var backendCalls: [SessionAction] = []
    var pendingBackend: SessionAction?
    var closed = false
    var tlsHandshakes = 0
    var autoBackend = true
    var authResult: AuthenticationResult = .accepted(principal: "tenant-1")
    var senderVerdict: SenderVerdict = .accepted
    var commitReply = SMTPReply(code: 250, enhancedCode: EnhancedStatusCode("2.0.0"), text: "Queued as 42")

    init(configuration: SMTPServerConfiguration = sessionConfiguration(), tlsActive: Bool = false) {
        session = SMTPServerSession(configuration: configuration, remoteAddress: "192.0.2.7", tlsActive: tlsActive)
        perform(session.connected())
    }

    /// The replies written so far as `code enhanced` strings, for compact assertions.
    var codes: [String] {
        written.map { reply in reply.enhancedCode.map { "\(reply.code) \($0)" } ?? "\(reply.code)" }
    }

    /// Bytes arrive from the client.
    mutating func receive(_ text: String) { receive(Array(text.utf8)) }

    mutating func receive(_ bytes: [UInt8]) {
        guard !closed else { return }
        buffer += bytes
        process()
    }

    mutating func process() {
        while !closed, pendingBackend == nil, !session.isBusy {
            if session.expectsRawData {
                guard !buffer.isEmpty else { return }
                let chunk = buffer
                buffer = []
                perform(session.dataReceived(ByteBuffer(bytes: chunk)))
                if let rest = session.takeRemainingAfterData() { buffer = Array(rest.readableBytesView) + buffer }
                continue
            }
            guard let end = crlfIndex() else {
                if buffer.count > 512 {
                    buffer = []
                    perform(session.commandLineTooLong())
                }
                return
            }
            let line = Array(buffer[..<end])
            buffer.removeFirst(end + 2)
            if line.count + 2 > 512 {
                perform(session.commandLineTooLong())
            } else {
                perform(session.commandLineReceived(line))
            }
        }
    }

    private func crlfIndex() -> Int? {
        guard buffer.count >= 2 else { return nil }
        for index in 0..<(buffer.count - 1) where buffer[index] == 0x0D && buffer[index + 1] == 0x0A { return index }
        return nil
    }

    mutating func perform(_ action: SessionAction) {
        switch action {
        case .none: break
        case .reply(let reply): written.append(reply)
        case .replyAndClose(let reply):
            written.append(reply)
            closed = true
        case .replyAndStartTLS(let reply):
            written.append(reply)
            buffer = []  // CVE-2011-0411: nothing received before the handshake survives it
            tlsHandshakes += 1
            perform(session.tlsEstablished())
        case .authenticate, .checkSender, .commit:
            backendCalls.append(action)
            if case .commit(let message) = action { committed.append(message) }
            pendingBackend = action
            if autoBackend { completeBackend() }
        case .close:
            closed = true
        }
    }

    /// Answers the pending backend call, then goes on with the held input.
    mutating func completeBackend() {
        guard let pending = pendingBackend else { return }
        pendingBackend = nil
        switch pending {
        case .authenticate: perform(session.authenticationCompleted(authResult))
        case .checkSender: perform(session.senderChecked(senderVerdict))
        case .commit: perform(session.messageCommitted(commitReply))
        default: break
        }
        process()
    }
}
