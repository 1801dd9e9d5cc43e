import Logging
import NIOCore
import NIOSSL
import NIOTLS
import SMTPCore

/// Asks a session handler to begin a graceful shutdown (sent by ``SMTPSubmissionServer`` on its event loop).
struct SMTPServerShutdownEvent: Sendable {}

/// Drives one ``SMTPServerSession`` over one connection: frames command lines, passes raw DATA bytes, writes the
/// session's replies in order, calls the ``SubmissionBackend`` off the event loop, upgrades to TLS, and enforces
/// the command timeout. All decisions about SMTP belong to the session; this type only carries out its actions.
///
/// Phases (``State``): waiting for a TLS handshake (implicit TLS before the greeting, or after STARTTLS), reading
/// commands or data, waiting for the backend (input is buffered, not fed, so pipelined commands are answered in
/// order), closing.
final class SMTPServerChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Never
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// While waiting for the backend or a handshake, reading from the socket pauses once this much is buffered.
    static let maximumBufferedWhileWaiting = 64 * 1024

    enum State: Equatable {
        /// A TLS handshake is running; `beforeGreeting` for implicit TLS, false after STARTTLS.
        case waitingForTLS(beforeGreeting: Bool)
        /// Reading commands or DATA.
        case ready
        /// A backend call is running; input is buffered.
        case waitingForBackend
        /// The last reply is being written; input is ignored.
        case closing
        /// The connection is closed.
        case closed
    }

    private var session: SMTPServerSession
    private var framer = SMTPCommandLineFramer()
    private var state: State
    private let backend: any SubmissionBackend
    private let tls: TLSMaterial
    private let commandTimeout: TimeAmount
    private var logger: Logger
    private let remoteAddress: String

    private var idleTimer: Scheduled<Void>?
    private var lastWrite: EventLoopFuture<Void>?
    private var readPending = false
    private var shutdownPending = false

    // Facts for the session log line; never credentials or content.
    private var tlsActive: Bool
    private var principal: String?
    private var messagesAccepted = 0
    private var outcome = "closed by the client"

    init(configuration: SMTPServerConfiguration, implicitTLS: Bool, remoteAddress: String, backend: any SubmissionBackend,
         tls: TLSMaterial, commandTimeout: TimeAmount, logger: Logger) {
        self.session = SMTPServerSession(configuration: configuration, remoteAddress: remoteAddress, tlsActive: implicitTLS)
        self.state = implicitTLS ? .waitingForTLS(beforeGreeting: true) : .ready
        self.tlsActive = implicitTLS
        self.backend = backend
        self.tls = tls
        self.commandTimeout = commandTimeout
        self.remoteAddress = remoteAddress
        var logger = logger
        logger[metadataKey: "smtp.remote"] = "\(remoteAddress)"
        if case .submission = configuration.mode, let trusted = session.principal {
            self.principal = trusted
            logger[metadataKey: "smtp.principal"] = "\(trusted)"
            logger[metadataKey: "smtp.trusted_network"] = "true"
        }
        self.logger = logger
    }

    // MARK: - Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private var started = false

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        logger.debug("SMTP session started", metadata: ["smtp.tls": "\(tlsActive)"])
        armTimer(context: context)
        if state == .ready {
            perform(session.connected(), context: context)
            context.flush()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if state != .closed {
            state = .closed
            idleTimer?.cancel()
            idleTimer = nil
            logger.info("SMTP session ended", metadata: [
                "smtp.tls": "\(tlsActive)",
                "smtp.principal": "\(principal ?? "-")",
                "smtp.messages": "\(messagesAccepted)",
                "smtp.outcome": "\(outcome)",
            ])
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch state {
        case .closed:
            return
        case .closing:
            // Typically a client that closes without TLS close_notify after QUIT: nothing is lost.
            context.close(promise: nil)
            return
        case .waitingForTLS:
            outcome = "TLS handshake failed: \(error)"
        case .ready, .waitingForBackend:
            if let tlsError = error as? NIOSSLError, case .uncleanShutdown = tlsError {
                outcome = "closed by the client (without TLS close_notify)"
            } else {
                outcome = "connection error: \(error)"
            }
        }
        logger.debug("SMTP connection error", metadata: ["error": "\(error)"])
        state = .closing
        idleTimer?.cancel()
        idleTimer = nil
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            handshakeCompleted(context: context)
        } else if event is SMTPServerShutdownEvent {
            requestShutdown(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func handshakeCompleted(context: ChannelHandlerContext) {
        guard case .waitingForTLS(let beforeGreeting) = state else { return }
        tlsActive = true
        state = .ready
        logger.debug("TLS established")
        armTimer(context: context)
        perform(beforeGreeting ? session.connected() : session.tlsEstablished(), context: context)
        if shutdownPending, state == .ready {
            shutdownPending = false
            perform(session.shutdownRequested(), context: context)
        }
        processInput(context: context)
    }

    private func requestShutdown(context: ChannelHandlerContext) {
        switch state {
        case .waitingForTLS(beforeGreeting: true):
            outcome = "server shutting down"
            close(context: context)
        case .waitingForTLS(beforeGreeting: false), .waitingForBackend:
            // Answered once the session can take events again, so replies keep their order.
            shutdownPending = true
        case .ready:
            perform(session.shutdownRequested(), context: context)
            processInput(context: context)
        case .closing, .closed:
            break
        }
    }

    // MARK: - Input

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        switch state {
        case .ready, .waitingForBackend:
            framer.append(bytes)
            processInput(context: context)
        case .waitingForTLS, .closing, .closed:
            // Before a handshake completes nothing may be taken from the client (RFC 3207 §6); while closing
            // nothing is read any more.
            break
        }
    }

    func read(context: ChannelHandlerContext) {
        if state == .waitingForBackend, framer.bufferedBytes >= Self.maximumBufferedWhileWaiting {
            readPending = true
        } else {
            context.read()
        }
    }

    private func resumeReading(context: ChannelHandlerContext) {
        if readPending {
            readPending = false
            context.read()
        }
    }

    /// Feeds buffered input to the session until it waits for more bytes, for the backend or for TLS.
    private func processInput(context: ChannelHandlerContext) {
        var consumed = false
        while state == .ready {
            let action: SMTPServerSession.Action
            if session.expectsRawData {
                guard let bytes = framer.takeAll() else { break }
                action = session.dataReceived(bytes)
            } else {
                guard let event = framer.next() else { break }
                switch event {
                case .line(let line): action = session.commandLineReceived(line)
                case .lineTooLong: action = session.commandLineTooLong()
                }
            }
            consumed = true
            perform(action, context: context)
        }
        if consumed, state == .ready { armTimer(context: context) }
        context.flush()
    }

    /// Bytes the client pipelined after the end of the data go back in front of the framer's buffer.
    private func collectBytesAfterData() {
        if !session.expectsRawData, let rest = session.takeRemainingAfterData() {
            framer.prepend(rest)
        }
    }

    // MARK: - Actions

    private func perform(_ action: SMTPServerSession.Action, context: ChannelHandlerContext) {
        collectBytesAfterData()
        switch action {
        case .none:
            break
        case .reply(let reply):
            write(reply, context: context)
        case .replyAndClose(let reply):
            write(reply, context: context)
            if outcome == "closed by the client" { outcome = "closed after \(reply.code)" }
            close(context: context)
        case .replyAndStartTLS(let reply):
            startTLS(reply: reply, context: context)
        case .authenticate(let username, let password):
            let backend = self.backend
            let remoteAddress = self.remoteAddress
            callBackend(context: context, { await backend.authenticate(username: username, password: password, remoteAddress: remoteAddress) }) {
                handler, result in
                switch result {
                case .accepted(let principal):
                    handler.principal = principal
                    handler.logger[metadataKey: "smtp.principal"] = "\(principal)"
                    handler.logger.info("SMTP client authenticated")
                case .rejected:
                    handler.logger.info("SMTP authentication failed")
                case .lockedOut:
                    handler.logger.notice("SMTP authentication locked out")
                    handler.outcome = "locked out"
                case .temporaryFailure:
                    handler.logger.notice("SMTP authentication could not be checked now (454)")
                }
                return handler.session.authenticationCompleted(result)
            }
        case .checkSender(let principal, let address):
            let backend = self.backend
            callBackend(context: context, { await backend.checkSender(principal: principal, address: address) }) { handler, verdict in
                if case .rejected(let reply) = verdict {
                    handler.logger.info("SMTP sender refused", metadata: ["smtp.from": "\(address)", "smtp.reply": "\(reply)"])
                }
                return handler.session.senderChecked(verdict)
            }
        case .commit(let message):
            let backend = self.backend
            let size = message.data.count
            let recipients = message.recipients.count
            let from = message.mailFrom
            callBackend(context: context, { await backend.commit(message) }) { handler, reply in
                if reply.isPositiveCompletion { handler.messagesAccepted += 1 }
                handler.logger.info("SMTP message \(reply.isPositiveCompletion ? "accepted" : "refused")", metadata: [
                    "smtp.from": "\(from)", "smtp.recipients": "\(recipients)", "smtp.size": "\(size)", "smtp.reply": "\(reply)",
                ])
                return handler.session.messageCommitted(reply)
            }
        case .close:
            close(context: context)
        }
    }

    private func write(_ reply: SMTPReply, context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        reply.encode(into: &buffer)
        lastWrite = context.write(wrapOutboundOut(buffer))
    }

    /// Writes what is pending, then closes.
    private func close(context: ChannelHandlerContext) {
        guard state != .closed else { return }
        state = .closing
        idleTimer?.cancel()
        idleTimer = nil
        context.flush()
        if let lastWrite {
            lastWrite.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    /// RFC 3207: the 220 goes out in plaintext, every byte already read after the STARTTLS line is dropped, and
    /// the TLS handler goes first in the pipeline, so anything the client sent in plaintext after STARTTLS can
    /// only ever reach the TLS handshake (and break it), never the session.
    private func startTLS(reply: SMTPReply, context: ChannelHandlerContext) {
        write(reply, context: context)
        context.flush()
        let dropped = framer.bufferedBytes
        framer.discardAll()
        if dropped > 0 {
            logger.notice("discarded plaintext pipelined after STARTTLS", metadata: ["smtp.bytes": "\(dropped)"])
        }
        do {
            try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls.serverContext), position: .first)
            state = .waitingForTLS(beforeGreeting: false)
            armTimer(context: context)
        } catch {
            outcome = "could not start TLS: \(error)"
            close(context: context)
        }
    }

    /// Runs `call` off the event loop, then feeds its result back through `resume` on the loop, unless the
    /// connection went away meanwhile. No input reaches the session until then.
    private func callBackend<Result: Sendable>(
        context: ChannelHandlerContext,
        _ call: @escaping @Sendable () async -> Result,
        resume: @escaping (SMTPServerChannelHandler, Result) -> SMTPServerSession.Action
    ) {
        state = .waitingForBackend
        idleTimer?.cancel()
        idleTimer = nil
        context.flush()
        context.eventLoop.makeFutureWithTask(call).assumeIsolated().whenSuccess { result in
            guard self.state == .waitingForBackend else { return }
            self.state = .ready
            self.armTimer(context: context)
            self.perform(resume(self, result), context: context)
            // A shutdown that arrived during DATA (the session is draining) closes the session now that the
            // message has its final reply.
            if self.shutdownPending || self.session.isDraining, self.state == .ready {
                self.shutdownPending = false
                self.perform(self.session.shutdownRequested(), context: context)
            }
            self.processInput(context: context)
            self.resumeReading(context: context)
        }
    }

    // MARK: - Timeout

    private func armTimer(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: commandTimeout) {
            self.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        idleTimer = nil
        switch state {
        case .waitingForTLS:
            outcome = "timed out in the TLS handshake"
            close(context: context)
        case .ready:
            outcome = "timed out"
            perform(session.timedOut(), context: context)
            context.flush()
            if state == .ready { armTimer(context: context) }
        case .waitingForBackend, .closing, .closed:
            break
        }
    }
}

/// Answers a connection the listener will not serve (too many sessions, or shutting down) with one reply and closes.
final class SMTPRejectingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let reply: SMTPReply
    private var done = false

    init(reply: SMTPReply) {
        self.reply = reply
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { reject(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        reject(context: context)
        context.fireChannelActive()
    }

    private func reject(context: ChannelHandlerContext) {
        guard !done else { return }
        done = true
        var buffer = context.channel.allocator.buffer(capacity: 64)
        reply.encode(into: &buffer)
        // Under implicit TLS the write waits for the handshake; a client that never completes it is cut off.
        let timeout = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(10)) { context.close(promise: nil) }
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            timeout.cancel()
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
