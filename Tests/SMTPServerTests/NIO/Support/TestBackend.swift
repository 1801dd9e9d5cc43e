import Foundation
import SMTPCore
import SMTPServer
import Synchronization

/// The in-memory Relay stand-in for the server tests: any user name with the password "good-key" is principal
/// "t1"; an address that failed `lockoutAfter` times is locked out; senders @example.com are accepted; committed
/// messages are recorded. `senderDelay` slows the sender check, to test that pipelined commands wait.
final class TestBackend: SubmissionBackend {
    struct State {
        var failures: [String: Int] = [:]
        var messages: [SubmittedMessage] = []
        var passwordsSeen: [String] = []
    }

    let lockoutAfter: Int
    let senderDelay: Duration
    private let state = Mutex(State())

    init(lockoutAfter: Int = 3, senderDelay: Duration = .zero) {
        self.lockoutAfter = lockoutAfter
        self.senderDelay = senderDelay
    }

    var messages: [SubmittedMessage] { state.withLock { $0.messages } }

    func authenticate(username: String, password: String, remoteAddress: String) async -> AuthenticationResult {
        state.withLock { state in
            if state.failures[remoteAddress, default: 0] >= lockoutAfter { return .lockedOut }
            if password == "good-key" { return .accepted(principal: "t1") }
            state.failures[remoteAddress, default: 0] += 1
            return state.failures[remoteAddress, default: 0] >= lockoutAfter ? .lockedOut : .rejected
        }
    }

    func checkSender(principal: String, address: String) async -> SenderVerdict {
        if senderDelay > .zero { try? await Task.sleep(for: senderDelay) }
        if address.lowercased().hasSuffix("@example.com") { return .accepted }
        return .rejected(SMTPReply(code: 550, enhancedCode: EnhancedStatusCode("5.7.1"), text: "Sender domain not registered"))
    }

    func commit(_ message: SubmittedMessage) async -> SMTPReply {
        let count = state.withLock { state in
            state.messages.append(message)
            return state.messages.count
        }
        return SMTPReply(code: 250, enhancedCode: EnhancedStatusCode("2.0.0"), text: "Queued as test-\(count)")
    }
}
