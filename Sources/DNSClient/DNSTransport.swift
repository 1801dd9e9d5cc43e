// One query/response exchange with one server: UDP first, TCP when the UDP answer is truncated.
import NIOCore
import NIOPosix

/// Sends one query to one server and waits for the matching response within a deadline.
///
/// UDP (RFC 1035 §4.2.1) goes out from a fresh socket bound to port 0, so each query has a kernel-chosen random
/// source port besides its random id (RFC 5452 §9.2). Datagrams from another address, with another id or another
/// question are ignored, not treated as errors, so a stray or spoofed packet cannot end the exchange. A response
/// with TC set is asked again over TCP with the 2-octet length prefix of RFC 1035 §4.2.2 (RFC 7766 §5).
struct DNSTransport: Sendable {
    let eventLoopGroup: any EventLoopGroup

    /// The response to `query` from `server`; throws `DNSError` (.timeout, .ioError) or `CancellationError`.
    func exchange(_ query: DNSMessage, with server: DNSServerAddress, timeout: Duration) async throws -> DNSMessage {
        let remote: SocketAddress
        do {
            remote = try SocketAddress(ipAddress: server.host, port: server.port)
        } catch {
            throw DNSError(code: .ioError, detail: "\(server) is not an IP address and port")
        }
        let response = try await exchangeUDP(query, remote: remote, server: server, timeout: timeout)
        guard response.header.tc else { return response }
        return try await exchangeTCP(query, remote: remote, server: server, timeout: timeout)
    }

    private func exchangeUDP(_ query: DNSMessage, remote: SocketAddress, server: DNSServerAddress,
                             timeout: Duration) async throws -> DNSMessage {
        let eventLoop = eventLoopGroup.next()
        let promise = eventLoop.makePromise(of: DNSMessage.self)
        let payload = query.encode()
        let channel = DatagramBootstrap(group: eventLoop)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        UDPResponseHandler(query: query, server: remote, promise: promise))
                }
            }
            .bind(host: remote.protocol == .inet6 ? "::" : "0.0.0.0", port: 0)
        channel.flatMap { channel in
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: payload)))
        }.whenFailure { promise.fail($0) }
        promise.futureResult.whenComplete { _ in
            channel.whenSuccess { $0.close(promise: nil) }
        }
        return try await wait(for: promise, on: eventLoop, server: server, over: "UDP", timeout: timeout)
    }

    private func exchangeTCP(_ query: DNSMessage, remote: SocketAddress, server: DNSServerAddress,
                             timeout: Duration) async throws -> DNSMessage {
        let eventLoop = eventLoopGroup.next()
        let promise = eventLoop.makePromise(of: DNSMessage.self)
        let payload = query.encode()
        var frame = ByteBuffer()
        frame.writeInteger(UInt16(clamping: payload.count))
        frame.writeBytes(payload)
        let channel = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TCPResponseHandler(query: query, promise: promise))
                }
            }
            .connect(to: remote)
        channel.flatMap { [frame] channel in
            channel.writeAndFlush(frame)
        }.whenFailure { promise.fail($0) }
        promise.futureResult.whenComplete { _ in
            channel.whenSuccess { $0.close(promise: nil) }
        }
        return try await wait(for: promise, on: eventLoop, server: server, over: "TCP", timeout: timeout)
    }

    private func wait(for promise: EventLoopPromise<DNSMessage>, on eventLoop: any EventLoop,
                      server: DNSServerAddress, over transport: String, timeout: Duration) async throws -> DNSMessage {
        let deadline = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            promise.fail(DNSError(code: .timeout, detail: "no answer from \(server) over \(transport) within \(timeout)"))
        }
        defer { deadline.cancel() }
        do {
            return try await withTaskCancellationHandler {
                try await promise.futureResult.get()
            } onCancel: {
                promise.fail(CancellationError())
            }
        } catch let error as DNSError {
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            throw DNSError(code: .ioError, detail: "\(transport) exchange with \(server) failed: \(error)")
        }
    }
}

extension DNSMessage {
    /// Whether this is the response to `query`: same id, QR set, same question (RFC 5452 §4.1; names compared
    /// case-insensitively). Error responses may omit the question, as some servers do for FORMERR or REFUSED.
    func isResponse(to query: DNSMessage) -> Bool {
        guard header.id == query.header.id, header.qr, let asked = query.questions.first else { return false }
        guard let echoed = questions.first else { return questions.isEmpty && header.rcode != .noError }
        return questions.count == 1 && echoed.type == asked.type && echoed.class == asked.class
            && DNSName.equal(echoed.name, asked.name)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow
            ? .max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Completes the promise with the first datagram that is the response to the query from the queried server.
private final class UDPResponseHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let query: DNSMessage
    private let server: SocketAddress
    private let promise: EventLoopPromise<DNSMessage>

    init(query: DNSMessage, server: SocketAddress, promise: EventLoopPromise<DNSMessage>) {
        self.query = query
        self.server = server
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        guard envelope.remoteAddress == server,
              let response = try? DNSMessage(decoding: envelope.data.readableBytesView),
              response.isResponse(to: query) else { return }
        promise.succeed(response)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
    }
}

/// Reassembles length-prefixed messages from the stream and completes the promise with the matching response.
private final class TCPResponseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let query: DNSMessage
    private let promise: EventLoopPromise<DNSMessage>
    private var buffer = ByteBuffer()

    init(query: DNSMessage, promise: EventLoopPromise<DNSMessage>) {
        self.query = query
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = Self.unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        while let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
              buffer.readableBytes >= 2 + Int(length) {
            buffer.moveReaderIndex(forwardBy: 2)
            guard let bytes = buffer.readBytes(length: Int(length)) else { return }
            do {
                let response = try DNSMessage(decoding: bytes)
                if response.isResponse(to: query) { promise.succeed(response) }
            } catch {
                // A stream cannot resynchronise after garbage of a declared length we trust, but the length
                // itself was honoured, so the next frame is still well delimited; keep reading.
                continue
            }
        }
        buffer.discardReadBytes()
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(DNSError(code: .ioError, detail: "TCP connection closed before the answer arrived"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}
