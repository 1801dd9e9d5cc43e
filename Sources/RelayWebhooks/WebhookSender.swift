import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import RelayStore

/// One attempt of one webhook: the address guard, the Standard Webhooks headers, and the POST with a deadline
/// and no redirects. Every outcome is a `Result` (never a thrown error), so the dispatcher can log it.
struct WebhookSender: Sendable {
    /// Response bytes read (for the error text of a failure); the rest is discarded.
    static let responseExcerptBytes = 512

    let targetCheck: WebhookTargetCheck
    /// Deadline of the whole request: connect, send, and the response.
    let requestTimeout: Duration

    /// What one attempt got.
    struct Result: Sendable, Equatable {
        var succeeded: Bool
        var responseCode: Int?
        /// Why it failed, as a sentence for the delivery log; nil on success.
        var error: String?
    }

    /// Checks the target, signs and posts; never throws (every failure is a result with an error sentence).
    func send(_ webhook: ClaimedWebhook, clients: PinnedHTTPClients) async -> Result {
        let url: WebhookURL
        do {
            url = try WebhookURL(webhook.url)
        } catch {
            return Result(succeeded: false, error: "invalid endpoint URL: \(error)")
        }
        let pinned: IPAddress?
        switch await targetCheck.check(url) {
        case .refused(let reason):
            return Result(succeeded: false, error: "refused before connecting: \(reason)")
        case .allowed(let address):
            pinned = address
        }
        let secrets = webhook.secrets.compactMap(WebhookSecret.init)
        guard !secrets.isEmpty else { return Result(succeeded: false, error: "the endpoint's secret is unreadable") }
        let body = Array(WebhookPayload.body(of: webhook).utf8)
        let id = "msg_\(webhook.outboxID)"
        let timestamp = Int(Date().timeIntervalSince1970)

        var request = HTTPClientRequest(url: url.text)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Relay-Webhooks/1")
        request.headers.add(name: "webhook-id", value: id)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(name: "webhook-signature",
                            value: WebhookSignature.header(id: id, timestamp: timestamp, body: body, secrets: secrets))
        request.body = .bytes(ByteBuffer(bytes: body))
        do {
            let client = await clients.client(host: url.host, pinnedTo: pinned)
            let response = try await client.execute(request, deadline: .now() + .seconds(requestTimeout.components.seconds))
            var excerpt = ByteBuffer()
            for try await var chunk in response.body {
                let room = Self.responseExcerptBytes - excerpt.readableBytes
                if room > 0, let bytes = chunk.readSlice(length: min(room, chunk.readableBytes)) { excerpt.writeImmutableBuffer(bytes) }
            }
            let code = Int(response.status.code)
            if (200..<300).contains(code) { return Result(succeeded: true, responseCode: code) }
            let text = String(decoding: excerpt.readableBytesView, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            var error = "the endpoint answered \(code) \(response.status.reasonPhrase)"
            if (300..<400).contains(code) {
                error += "; redirects are not followed" + (response.headers.first(name: "location").map { " (Location: \($0))" } ?? "")
            }
            if !text.isEmpty { error += ": " + String(text.prefix(200)) }
            return Result(succeeded: false, responseCode: code, error: error)
        } catch let error as HTTPClientError where [.deadlineExceeded, .readTimeout, .connectTimeout].contains(error) {
            return Result(succeeded: false, error: "no response within \(requestTimeout)")
        } catch {
            return Result(succeeded: false, error: "request failed: \(error)")
        }
    }
}

/// HTTP clients that connect to a checked address: one shared client for URLs whose host is an address (or when
/// the guard is off), and one per (host name, address) whose `dnsOverride` pins the name to the address while
/// keeping the Host header and TLS server name and certificate check on the name. Idle ones are closed.
actor PinnedHTTPClients {
    private let configuration: HTTPClient.Configuration
    private let shared: HTTPClient
    private var pinned: [String: (client: HTTPClient, lastUsed: ContinuousClock.Instant)] = [:]

    init(timeout: Duration) {
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                     timeout: .init(connect: .seconds(Int64(timeout.components.seconds)),
                                                                    read: .seconds(Int64(timeout.components.seconds))))
        configuration.connectionPool.idleTimeout = .seconds(30)
        self.configuration = configuration
        self.shared = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    func client(host: String, pinnedTo address: IPAddress?) -> HTTPClient {
        guard let address, IPAddress(host) == nil else { return shared }
        let key = "\(host)\u{0}\(address)"
        if let entry = pinned[key] {
            pinned[key]?.lastUsed = .now
            return entry.client
        }
        var configuration = self.configuration
        configuration.dnsOverride = [host: address.description]
        let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        pinned[key] = (client, .now)
        return client
    }

    /// Closes the clients not used for ten minutes (a request in flight keeps its client busy, not idle).
    func closeIdle() async {
        let cutoff = ContinuousClock.now - .seconds(600)
        let idle = pinned.filter { $0.value.lastUsed < cutoff }
        for (key, entry) in idle {
            pinned[key] = nil
            try? await entry.client.shutdown()
        }
    }

    func shutdownAll() async {
        for entry in pinned.values { try? await entry.client.shutdown() }
        pinned = [:]
        try? await shared.shutdown()
    }
}
