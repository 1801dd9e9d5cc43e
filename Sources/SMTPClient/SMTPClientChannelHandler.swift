#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NIOSSL
import NIOTLS  // TLSUserEvent; a module of swift-nio that NIOSSL depends on
import SMTPCore
import Synchronization

/// A request from ``SMTPConnection`` to its channel handler, written into the channel so that it is handled on
/// the event loop.
enum SMTPClientRequest: Sendable {
    case transaction(SMTPEnvelope, encodedMessage: ByteBuffer, containsEightBitData: Bool, EventLoopPromise<SMTPTransactionResult>)
    case reset(EventLoopPromise<Void>)
    case quit(EventLoopPromise<Void>)
}

/// What a successful connect hands back.
struct SMTPSessionInfo: Sendable {
    var capabilities: SMTPCapabilities
    var tlsVersion: String?
}

/// State read from any thread: whether the connection is usable and the transcript.
final class SMTPConnectionShared: Sendable {
    private struct Contents {
        var isUsable = false
        var transcript: [SMTPTranscriptEntry] = []
    }

    /// Transcripts are taken after every transaction; this bound only protects against a caller that never does.
    private static let maximumTranscriptEntries = 10_000
    private let contents = Mutex(Contents())

    var isUsable: Bool {
        get { contents.withLock { $0.isUsable } }
        set { contents.withLock { $0.isUsable = newValue } }
    }

    func record(_ direction: SMTPTranscriptEntry.Direction, _ text: String) {
        let entry = SMTPTranscriptEntry(direction: direction, text: text)
        contents.withLock {
            if $0.transcript.count >= Self.maximumTranscriptEntries { $0.transcript.removeFirst($0.transcript.count / 2) }
            $0.transcript.append(entry)
        }
    }

    func takeTranscript() -> [SMTPTranscriptEntry] {
        contents.withLock {
            let transcript = $0.transcript
            $0.transcript = []
            return transcript
        }
    }
}

/// Carries out the actions of ``SMTPClientStateMachine`` on a channel: reads replies, writes commands and
/// message data, adds TLS, and runs the per-phase timer. It makes no protocol decisions of its own.
final class SMTPClientChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = SMTPClientRequest
    typealias OutboundOut = ByteBuffer

    private enum Pending {
        case connect(EventLoopPromise<SMTPSessionInfo>)
        case transaction(EventLoopPromise<SMTPTransactionResult>)
        case reset(EventLoopPromise<Void>)
    }

    /// Message data is written in blocks of this size; each accepted block restarts the data-block timer
    /// (RFC 5321 §4.5.3.2.5).
    static let messageBlockSize = 64 * 1024

    private var machine: SMTPClientStateMachine
    private var parser = SMTPReplyParser()
    private var pending: Pending?
    private var closePromises: [EventLoopPromise<Void>] = []
    private var message: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var timerGeneration = 0
    private let timeouts: SMTPClientTimeouts
    private let tlsContext: NIOSSLContext?
    private let tlsServerHostname: String?
    private let remoteAddress: String
    private let shared: SMTPConnectionShared
    private let logger: Logger

    init(
        configuration: SMTPClientConfiguration,
        tlsMode: SMTPClientTLSMode,
        tlsContext: NIOSSLContext?,
        tlsServerHostname: String?,
        remoteAddress: String,
        shared: SMTPConnectionShared,
        connectPromise: EventLoopPromise<SMTPSessionInfo>,
        logger: Logger
    ) {
        self.machine = SMTPClientStateMachine(
            heloName: configuration.heloName, tlsMode: tlsContext == nil ? .none : tlsMode, credentials: configuration.credentials)
        self.timeouts = configuration.timeouts
        self.tlsContext = tlsContext
        self.tlsServerHostname = tlsServerHostname
        self.remoteAddress = remoteAddress
        self.shared = shared
        self.pending = .connect(connectPromise)
        self.logger = logger
    }

    // MARK: Inbound

    func channelActive(context: ChannelHandlerContext) {
        shared.record(.info, "connected to \(remoteAddress)")
        run(machine.connected(), context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        parser.append(unwrapInboundIn(data))
        do {
            while !machine.isClosed, let reply = try parser.nextReply() {
                let text = reply.encode().split(separator: "\r\n").joined(separator: "\n")
                shared.record(.server, text)
                logger.trace("smtp reply", metadata: ["smtp.reply": "\(reply)"])
                run(machine.replyReceived(reply), context: context)
            }
        } catch {
            shared.record(.info, "malformed reply: \(error)")
            run(machine.protocolViolation(error.description), context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tlsEvent = event as? TLSUserEvent, case .handshakeCompleted = tlsEvent {
            shared.record(.info, "TLS established (\(Self.tlsVersion(context: context) ?? "unknown version"))")
            run(machine.tlsHandshakeSucceeded(), context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        shared.record(.info, "error: \(error)")
        run(machine.errorCaught(String(describing: error)), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        run(machine.connectionClosed(), context: context)
        cancelTimer()
        failPending(SMTPClientError(code: .connectionClosed, phase: machine.currentPhase ?? .quit, remoteAddress: remoteAddress))
        shared.isUsable = false
        completeClosePromises()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        failPending(SMTPClientError(code: .connectionClosed, phase: machine.currentPhase ?? .connect, remoteAddress: remoteAddress))
        shared.isUsable = false
        completeClosePromises()
    }

    // MARK: Outbound requests

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The write itself is done once the handler has the request; the request's own promise carries the outcome.
        promise?.succeed(())
        switch unwrapOutboundIn(data) {
        case .transaction(let envelope, let encodedMessage, let containsEightBitData, let transactionPromise):
            let action = machine.sendTransaction(
                envelope,
                messageSize: SMTPDataEncoder.contentSize(ofEncoded: encodedMessage),
                containsEightBitData: containsEightBitData
            )
            if case .failOperation(let error) = action {
                transactionPromise.fail(withAddress(error))
                return
            }
            pending = .transaction(transactionPromise)
            message = encodedMessage
            run(action, context: context)
        case .reset(let resetPromise):
            let action = machine.reset()
            if case .failOperation(let error) = action {
                resetPromise.fail(withAddress(error))
                return
            }
            pending = .reset(resetPromise)
            run(action, context: context)
        case .quit(let quitPromise):
            closePromises.append(quitPromise)
            run(machine.quit(), context: context)
        }
    }

    // MARK: Carrying out actions

    private func run(_ action: SMTPClientStateMachine.Action, context: ChannelHandlerContext) {
        // Before any promise completes, so that a caller resuming on another thread sees the new state.
        shared.isUsable = machine.isUsable
        switch action {
        case .wait:
            break

        case .send(let commands):
            var buffer = context.channel.allocator.buffer(capacity: 64 * commands.count)
            for command in commands {
                buffer.writeString(command.encode())
                shared.record(.client, command.redactedDescription)
                logger.trace("smtp command", metadata: ["smtp.command": "\(command.redactedDescription)"])
            }
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)

        case .sendAuthenticationResponse(let line):
            // A base64 user name or password: never in the transcript or a log line.
            shared.record(.client, "***")
            logger.trace("smtp auth response", metadata: ["smtp.command": "***"])
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: line + "\r\n")), promise: nil)

        case .startTLSHandshake:
            startTLS(context: context)

        case .sendMessageData:
            guard var message else {
                run(machine.protocolViolation("no message to send"), context: context)
                return
            }
            self.message = nil
            let size = message.readableBytes
            while message.readableBytes > 0 {
                guard let block = message.readSlice(length: min(Self.messageBlockSize, message.readableBytes)) else { break }
                let isLast = message.readableBytes == 0
                let promise = context.eventLoop.makePromise(of: Void.self)
                promise.futureResult.assumeIsolated().whenSuccess {
                    if isLast {
                        self.shared.record(.info, "message content sent (\(size) bytes)")
                        self.run(self.machine.messageDataWritten(), context: context)
                    } else {
                        self.armTimer(context: context)
                    }
                }
                context.write(wrapOutboundOut(block), promise: promise)
            }
            context.flush()

        case .sendEmptyMessageData:
            message = nil
            shared.record(.client, ".")
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(staticString: ".\r\n")), promise: nil)

        case .connectSucceeded(let capabilities):
            let info = SMTPSessionInfo(capabilities: capabilities, tlsVersion: machine.isTLSActive ? Self.tlsVersion(context: context) : nil)
            if case .connect(let promise) = pending {
                pending = nil
                promise.succeed(info)
            }

        case .transactionSucceeded(let result, let closeConnection):
            message = nil
            if case .transaction(let promise) = pending {
                pending = nil
                promise.succeed(result)
            }
            if closeConnection {
                shared.record(.info, "closing the connection")
                context.close(promise: nil)
            }

        case .resetSucceeded:
            if case .reset(let promise) = pending {
                pending = nil
                promise.succeed(())
            }

        case .failOperation(let error):
            // Only produced for requests, which handle it before calling run; fail whatever waits, to be safe.
            failPending(error)

        case .failAndClose(let error, let sendQuit):
            shared.record(.info, "\(withAddress(error))")
            logger.debug("smtp session failed", metadata: ["smtp.error": "\(withAddress(error))"])
            failPending(error)
            message = nil
            cancelTimer()
            if sendQuit, context.channel.isActive {
                shared.record(.client, "QUIT")
                let promise = context.eventLoop.makePromise(of: Void.self)
                promise.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(staticString: "QUIT\r\n")), promise: promise)
            } else {
                context.close(promise: nil)
            }

        case .close:
            cancelTimer()
            context.close(promise: nil)
        }
        shared.isUsable = machine.isUsable
        switch machine.currentPhase {
        case nil:
            cancelTimer()
        case .message:
            // While the content is written, each accepted block restarts the data-block timer.
            if case .sendMessageData = action { armTimer(context: context) }
        case .some:
            // Every reply restarts the timer: RFC 5321 §4.5.3.2 times each reply, not the whole group.
            armTimer(context: context)
        }
    }

    private func startTLS(context: ChannelHandlerContext) {
        // RFC 3207 §4.2 / CVE-2011-0411: bytes that arrived with or after the 220 were not protected by TLS and
        // could be injected by an attacker; a well-behaved server sends nothing before the handshake.
        if parser.hasBufferedBytes {
            run(machine.protocolViolation("data received after the reply to STARTTLS, before the TLS handshake"), context: context)
            return
        }
        guard let tlsContext else {
            run(machine.tlsHandshakeFailed("TLS is not configured"), context: context)
            return
        }
        do {
            let tlsHandler = try NIOSSLClientHandler(context: tlsContext, serverHostname: tlsServerHostname)
            try context.pipeline.syncOperations.addHandler(tlsHandler, position: .first)
        } catch {
            run(machine.tlsHandshakeFailed(String(describing: error)), context: context)
        }
    }

    private static func tlsVersion(context: ChannelHandlerContext) -> String? {
        guard let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self),
              let version = handler.tlsVersion
        else { return nil }
        switch version {
        case .tlsv1: return "TLSv1"
        case .tlsv11: return "TLSv1.1"
        case .tlsv12: return "TLSv1.2"
        case .tlsv13: return "TLSv1.3"
        }
    }

    // MARK: Timer

    /// (Re)starts the timer for the machine's current phase.
    private func armTimer(context: ChannelHandlerContext) {
        cancelTimer()
        guard let phase = machine.currentPhase else { return }
        timerGeneration &+= 1
        let generation = timerGeneration
        let delay = TimeAmount(timeouts.timeout(for: phase))
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            guard generation == self.timerGeneration else { return }
            self.timer = nil
            self.run(self.machine.timeout(), context: context)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerGeneration &+= 1
    }

    // MARK: Helpers

    private func withAddress(_ error: SMTPClientError) -> SMTPClientError {
        var error = error
        if error.remoteAddress == nil { error.remoteAddress = remoteAddress }
        return error
    }

    private func failPending(_ error: SMTPClientError) {
        let error = withAddress(error)
        switch pending {
        case .connect(let promise): promise.fail(error)
        case .transaction(let promise): promise.fail(error)
        case .reset(let promise): promise.fail(error)
        case nil: break
        }
        pending = nil
    }

    /// Completes `close()` callers once the channel is gone.
    private func completeClosePromises() {
        let promises = closePromises
        closePromises = []
        for promise in promises { promise.succeed(()) }
    }
}
