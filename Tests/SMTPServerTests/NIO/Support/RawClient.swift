import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A raw SMTP client for the security tests: sends exactly the bytes given (in one write each) and reads
/// replies, over plaintext, implicit TLS, or TLS started later with ``startTLS()`` — no SMTP logic of its own.
final class RawClient: Sendable {
    private let channel: any Channel
    private let received: Locked<Received>

    struct Received: Sendable {
        var bytes: [UInt8] = []
        var closed = false
    }

    private init(channel: any Channel, received: Locked<Received>) {
        self.channel = channel
        self.received = received
    }

    static func connect(port: Int, tls: Bool = false, maximumTLSVersion: TLSVersion? = nil) async throws -> RawClient {
        let received = Locked(Received())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if tls { try channel.pipeline.syncOperations.addHandler(try Self.tlsHandler(maximumVersion: maximumTLSVersion)) }
                    try channel.pipeline.syncOperations.addHandler(Collector(received: received))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawClient(channel: channel, received: received)
    }

    private static func tlsHandler(maximumVersion: TLSVersion? = nil) throws -> NIOSSLClientHandler {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        if let maximumVersion {
            configuration.minimumTLSVersion = .tlsv1
            configuration.maximumTLSVersion = maximumVersion
        }
        return try NIOSSLClientHandler(context: NIOSSLContext(configuration: configuration), serverHostname: nil)
    }

    /// Puts a TLS client handler in front of the pipeline (after the server's 220 to STARTTLS).
    func startTLS() async throws {
        let channel = self.channel
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(try Self.tlsHandler(), position: .first)
        }.get()
    }

    func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// The next complete reply (all its lines, CRLF-separated, without the final CRLF); throws on timeout or close.
    func readReply(timeout: Duration = .seconds(15)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (reply, closed) = received.withLock { state -> (String?, Bool) in
                guard let (reply, length) = Self.completeReply(in: state.bytes) else { return (nil, state.closed) }
                state.bytes.removeFirst(length)
                return (reply, false)
            }
            if let reply { return reply }
            if closed { throw HarnessError("connection closed while waiting for a reply; unread: \(pending)") }
            if ContinuousClock.now >= deadline { throw HarnessError("no complete reply within \(timeout); unread: \(pending)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Sends `text` and returns the reply.
    func command(_ text: String) async throws -> String {
        try await send(text)
        return try await readReply()
    }

    /// What has been received and not read as a reply yet.
    var pending: String { received.withLock { String(decoding: $0.bytes, as: UTF8.self) } }

    var isClosed: Bool { received.withLock { $0.closed } }

    /// Waits until the server closes the connection; false after `timeout`.
    func waitUntilClosed(timeout: Duration = .seconds(15)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if isClosed { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return isClosed
    }

    func close() async {
        try? await channel.close()
    }

    private static func completeReply(in bytes: [UInt8]) -> (String, Int)? {
        var start = 0
        var lines: [String] = []
        while let lf = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var end = lf
            if end > start, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            let line = String(decoding: bytes[start..<end], as: UTF8.self)
            lines.append(line)
            start = lf + 1
            let utf8 = Array(line.utf8)
            if utf8.count < 4 || utf8[3] != UInt8(ascii: "-") {
                return (lines.joined(separator: "\r\n"), start)
            }
        }
        return nil
    }

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received: Locked<Received>

        init(received: Locked<Received>) {
            self.received = received
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLock { $0.bytes += buffer.readableBytesView }
        }

        func channelInactive(context: ChannelHandlerContext) {
            received.withLock { $0.closed = true }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

extension String {
    /// The reply code at the start of a reply.
    var replyCode: Int? { Int(prefix(3)) }
}
