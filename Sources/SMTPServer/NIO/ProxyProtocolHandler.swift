import Logging
import NIOCore

/// First handler of a connection on a listener behind a load balancer that speaks the PROXY protocol: waits for
/// the header (`ProxyProtocolHeader`), then installs the session's handlers with the client address it carries,
/// passes on any bytes that came with the header (an implicit-TLS ClientHello may), and removes itself. A
/// connection that sends no valid header within `timeout` is closed: with the setting on, every connection must
/// come through the proxy, or any client could claim any address.
final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let peerAddress: String
    private let timeout: TimeAmount
    private let logger: Logger
    private let install: (ChannelPipeline.SynchronousOperations, String) throws -> Void
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var finished = false

    /// `install` adds the session's handlers for the client at the given address.
    init(peerAddress: String, timeout: TimeAmount, logger: Logger,
         install: @escaping (ChannelPipeline.SynchronousOperations, String) throws -> Void) {
        self.peerAddress = peerAddress
        self.timeout = timeout
        self.logger = logger
        self.install = install
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armTimer(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        armTimer(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    private func armTimer(context: ChannelHandlerContext) {
        guard timer == nil else { return }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let logger = self.logger
        let peer = peerAddress
        timer = context.eventLoop.scheduleTask(in: timeout) {
            logger.notice("SMTP connection closed: no PROXY protocol header", metadata: ["smtp.peer": "\(peer)"])
            loopBound.value.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else {
            context.fireChannelRead(data)
            return
        }
        var incoming = unwrapInboundIn(data)
        if buffered == nil {
            buffered = incoming
        } else {
            buffered!.writeBuffer(&incoming)
        }
        switch ProxyProtocolHeader.parse(buffered!.readableBytesView) {
        case .incomplete:
            return
        case .invalid(let reason):
            finished = true
            logger.notice("SMTP connection closed: invalid PROXY protocol header", metadata: [
                "smtp.peer": "\(peerAddress)", "smtp.error": "\(reason)"])
            context.close(promise: nil)
        case .header(let source, let length):
            finished = true
            timer?.cancel()
            var rest = buffered!
            buffered = nil
            rest.moveReaderIndex(forwardBy: length)
            do {
                try install(context.pipeline.syncOperations, source ?? peerAddress)
            } catch {
                context.close(promise: nil)
                return
            }
            if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}
