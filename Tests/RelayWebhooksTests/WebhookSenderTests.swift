#if canImport(Glibc)
import Glibc
#endif
import Foundation
@testable import RelayStore
@testable import RelayWebhooks
import Testing

@Suite struct WebhookSenderTests {
    /// A loopback port that accepts connections (the kernel completes the handshake) but never answers.
    func silentListener() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 8) == 0
                && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    func webhook(url: String, secret: String = WebhookSecret.generate().description) -> ClaimedWebhook {
        ClaimedWebhook(outboxID: 1, endpointID: UUID(), url: url, secrets: [secret], eventType: "webhook.test", attempts: 0,
                       createdAt: Date(), payload: #"{"type":"webhook.test"}"#, dataJSON: nil, messageEvent: nil)
    }

    /// Bounded by the time limit rather than a stopwatch: on a loaded machine the 1 s deadline fires late, but fires.
    @Test(.timeLimit(.minutes(1))) func anEndpointThatNeverAnswersTimesOut() async throws {
        let (fd, port) = try silentListener()
        defer { close(fd) }
        let clients = PinnedHTTPClients(timeout: .seconds(1))
        let sender = WebhookSender(targetCheck: WebhookTargetCheck(allowPrivate: true), requestTimeout: .seconds(1))
        let result = await sender.send(webhook(url: "http://127.0.0.1:\(port)/hook"), clients: clients)
        await clients.shutdownAll()
        #expect(result == .init(succeeded: false, responseCode: nil, error: "no response within 1.0 seconds"))
    }

    @Test func aPrivateTargetIsRefusedBeforeConnecting() async throws {
        let clients = PinnedHTTPClients(timeout: .seconds(1))
        let sender = WebhookSender(targetCheck: WebhookTargetCheck(allowPrivate: false), requestTimeout: .seconds(1))
        let result = await sender.send(webhook(url: "http://169.254.169.254/latest/meta-data/"), clients: clients)
        await clients.shutdownAll()
        #expect(result.responseCode == nil)
        #expect(result.error == "refused before connecting: 169.254.169.254 is a private address (link-local); "
                + "webhooks are only sent to public addresses")
    }

    @Test func anUnreadableSecretIsAFailureNotACrash() async throws {
        let clients = PinnedHTTPClients(timeout: .seconds(1))
        let sender = WebhookSender(targetCheck: WebhookTargetCheck(allowPrivate: true), requestTimeout: .seconds(1))
        let result = await sender.send(webhook(url: "http://127.0.0.1:9/", secret: "not-a-secret"), clients: clients)
        await clients.shutdownAll()
        #expect(result.error == "the endpoint's secret is unreadable")
    }
}
