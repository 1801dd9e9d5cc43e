import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import SMTPCore
import Synchronization

/// One SMTP submission listener (RFC 6409): port 587 style with a plaintext greeting and STARTTLS, or port 465
/// style with TLS from the first byte (RFC 8314 §3.3).
///
/// Tunables and their defaults:
/// - `maximumSessions` (1000): concurrent sessions on this listener; one more is answered
///   `421 4.7.0 Too many connections, try later` and closed.
/// - `commandTimeout` (5 minutes, RFC 5321 §4.5.3.2.7): idle time allowed between commands (and between
///   chunks of DATA, and for a TLS handshake); then the session's `timedOut()` reply and close.
/// - `shutdownGracePeriod` (60 seconds): on graceful shutdown the listener stops accepting, every session is told
///   (`shutdownRequested()`: idle sessions get 421 4.3.2, a DATA in progress may finish), and sessions still open
///   after this period are closed.
///
/// Command lines are at most 512 octets with CRLF (RFC 5321 §4.5.3.1.4); only CRLF ends a line.
public final class SMTPSubmissionServer: Service, Sendable {
    /// How TLS starts on this listener.
    public enum Security: Sendable {
        /// Plaintext greeting, TLS after STARTTLS (RFC 3207), as on port 587.
        case startTLS
        /// TLS from the first byte (RFC 8314 §3.3), as on port 465.
        case implicitTLS
    }

    private let host: String
    private let port: Int
    private let security: Security
    private let configuration: SMTPServerConfiguration
    private let tls: TLSMaterial
    private let backend: any SubmissionBackend
    private let maximumSessions: Int
    private let commandTimeout: Duration
    private let shutdownGracePeriod: Duration
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let onBound: @Sendable (Int) -> Void
    private let sessions = SessionRegistry()
    private let proxyProtocol: Bool

    /// Creates a listener on host:port (port 0 picks one; `onBound` is told the port once listening). With
    /// `proxyProtocol` every connection must start with a PROXY v1/v2 header (`RELAY_PROXY_PROTOCOL`), whose
    /// client address the session uses for AUTH lockouts and the Received header.
    /// `configuration.offersSTARTTLS` is set from `security`: true for ``Security/startTLS`` only.
    public init(host: String, port: Int, security: Security, configuration: SMTPServerConfiguration, tls: TLSMaterial,
                backend: any SubmissionBackend, maximumSessions: Int = 1000, commandTimeout: Duration = .seconds(300),
                shutdownGracePeriod: Duration = .seconds(60), proxyProtocol: Bool = false,
                eventLoopGroup: any EventLoopGroup, logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.proxyProtocol = proxyProtocol
        self.host = host
        self.port = port
        self.security = security
        var configuration = configuration
        configuration.offersSTARTTLS = security == .startTLS
        self.configuration = configuration
        self.tls = tls
        self.backend = backend
        self.maximumSessions = max(1, maximumSessions)
        self.commandTimeout = commandTimeout
        self.shutdownGracePeriod = shutdownGracePeriod
        self.eventLoopGroup = eventLoopGroup
        var logger = logger
        logger[metadataKey: "smtp.listener"] = "\(host):\(port)"
        self.logger = logger
        self.onBound = onBound
    }

    /// The number of sessions open right now.
    public var sessionCount: Int { sessions.count }

    /// Listens until graceful shutdown (or cancellation), then drains: stops accepting, asks every session to
    /// finish (421 4.3.2 to further commands, a DATA in progress completes), and returns once all sessions have
    /// ended or the grace period has passed and the rest were closed. Cancellation closes everything at once.
    public func run() async throws {
        let serverChannel: any Channel
        do {
            serverChannel = try await makeBootstrap().bind(host: host, port: port).get()
        } catch {
            throw SMTPSubmissionServerError("cannot listen for SMTP on \(host):\(port): \(error)")
        }
        let boundPort = serverChannel.localAddress?.port ?? port
        logger.info("SMTP submission listening", metadata: [
            "smtp.port": "\(boundPort)", "smtp.security": "\(security == .startTLS ? "STARTTLS" : "implicit TLS")",
        ])
        onBound(boundPort)

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await serverChannel.closeFuture.get()
            } onGracefulShutdown: {
                serverChannel.close(promise: nil)
            }
        } onCancel: {
            serverChannel.close(promise: nil)
        }
        await drain()
    }

    private func drain() async {
        let open = sessions.beginShutdown()
        if !open.isEmpty {
            logger.info("SMTP listener stopped; waiting for sessions", metadata: ["smtp.sessions": "\(open.count)"])
        }
        for channel in open {
            channel.eventLoop.execute {
                channel.pipeline.syncOperations.fireUserInboundEventTriggered(SMTPServerShutdownEvent())
            }
        }
        let clock = ContinuousClock()
        let deadline = clock.now + (Task.isCancelled ? .zero : shutdownGracePeriod)
        while sessions.count > 0, clock.now < deadline, !Task.isCancelled {
            try? await clock.sleep(for: .milliseconds(20))
        }
        let remaining = sessions.all()
        if !remaining.isEmpty {
            logger.notice("closing SMTP sessions still open after the grace period", metadata: ["smtp.sessions": "\(remaining.count)"])
            for channel in remaining { channel.close(promise: nil) }
            let closeDeadline = clock.now + .seconds(5)
            while sessions.count > 0, clock.now < closeDeadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        logger.info("SMTP listener stopped")
    }

    private func makeBootstrap() -> ServerBootstrap {
        let sessions = self.sessions
        let maximumSessions = self.maximumSessions
        let security = self.security
        let tls = self.tls
        let configuration = self.configuration
        let backend = self.backend
        let timeout = TimeAmount.nanoseconds(Int64(commandTimeout.components.seconds) * 1_000_000_000
            + commandTimeout.components.attoseconds / 1_000_000_000)
        let logger = self.logger
        let proxyProtocol = self.proxyProtocol
        return ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    let peerAddress = channel.remoteAddress?.ipAddress ?? "unknown"
                    /// The session's handlers for a client at `remoteAddress` (the peer, or the PROXY header's source).
                    let install = { (pipeline: ChannelPipeline.SynchronousOperations, remoteAddress: String) throws in
                        if security == .implicitTLS {
                            try pipeline.addHandler(NIOSSLServerHandler(context: tls.serverContext))
                        }
                        switch sessions.admit(channel, maximum: maximumSessions) {
                        case .admitted:
                            channel.closeFuture.whenComplete { _ in sessions.remove(channel) }
                            try pipeline.addHandler(SMTPServerChannelHandler(
                                configuration: configuration, implicitTLS: security == .implicitTLS, remoteAddress: remoteAddress,
                                backend: backend, tls: tls, commandTimeout: timeout, logger: logger
                            ))
                        case .full:
                            logger.notice("SMTP connection refused: too many sessions", metadata: [
                                "smtp.remote": "\(remoteAddress)", "smtp.maximum_sessions": "\(maximumSessions)",
                            ])
                            try pipeline.addHandler(SMTPRejectingHandler(reply: SMTPReply(
                                code: 421, enhancedCode: EnhancedStatusCode("4.7.0"), text: "Too many connections, try later"
                            )))
                        case .shuttingDown:
                            try pipeline.addHandler(SMTPRejectingHandler(reply: SMTPReply(
                                code: 421, enhancedCode: EnhancedStatusCode("4.3.2"), text: "Service shutting down, try later"
                            )))
                        }
                    }
                    if proxyProtocol {
                        try pipeline.addHandler(ProxyProtocolHandler(peerAddress: peerAddress, timeout: .seconds(10), logger: logger,
                                                                     install: install))
                    } else {
                        try install(pipeline, peerAddress)
                    }
                }
            }
    }
}

/// A listener that could not start; the message names the address.
public struct SMTPSubmissionServerError: Error, Sendable, CustomStringConvertible {
    /// What failed, for the operator.
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// The open sessions of one listener: counted against the maximum, and told to shut down.
final class SessionRegistry: Sendable {
    enum Admission {
        case admitted, full, shuttingDown
    }

    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
    }

    private let state = Mutex(State())

    func admit(_ channel: any Channel, maximum: Int) -> Admission {
        state.withLock { state in
            if state.shuttingDown { return .shuttingDown }
            if state.channels.count >= maximum { return .full }
            state.channels[ObjectIdentifier(channel)] = channel
            return .admitted
        }
    }

    func remove(_ channel: any Channel) {
        _ = state.withLock { $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Refuses new sessions from now on and returns the open ones.
    func beginShutdown() -> [any Channel] {
        state.withLock { state in
            state.shuttingDown = true
            return Array(state.channels.values)
        }
    }

    var count: Int { state.withLock { $0.channels.count } }

    func all() -> [any Channel] { state.withLock { Array($0.channels.values) } }
}
