import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One outbound SMTP session with one server, ready for mail transactions.
///
/// ``connect(to:serverName:configuration:eventLoopGroup:logger:)`` returns once the greeting, EHLO (or HELO)
/// and, when offered and enabled, STARTTLS are done. Then ``send(_:message:)`` any number of transactions
/// (the connection may be reused while ``isUsable``), and ``close()``. One operation at a time: a second
/// concurrent call fails with ``SMTPClientError/Code/connectionNotReady``.
///
/// Cancelling the calling task closes the connection, and the pending call throws.
public final class SMTPConnection: Sendable {
    /// The extensions the server announced (after TLS, the second EHLO's).
    public let capabilities: SMTPCapabilities
    /// The TLS version in use, for example "TLSv1.3"; nil when the session is not encrypted.
    public let tlsVersion: String?
    /// The address connected to.
    public let remoteAddress: SocketAddress
    /// The server's host name (the MX name), used for SNI and in logs.
    public let serverName: String

    private let channel: any Channel
    private let shared: SMTPConnectionShared
    private let logger: Logger

    private init(
        channel: any Channel, info: SMTPSessionInfo, remoteAddress: SocketAddress, serverName: String,
        shared: SMTPConnectionShared, logger: Logger
    ) {
        self.channel = channel
        self.capabilities = info.capabilities
        self.tlsVersion = info.tlsVersion
        self.remoteAddress = remoteAddress
        self.serverName = serverName
        self.shared = shared
        self.logger = logger
    }

    /// Connects (with implicit TLS, handshakes first), reads the banner, says EHLO (HELO when EHLO is refused),
    /// upgrades with STARTTLS when offered and enabled, says EHLO again, and authenticates when
    /// ``SMTPClientConfiguration/credentials`` are set. A non-2xx banner throws
    /// ``SMTPClientError/Code/greetingRejected`` with the reply. When the TLS handshake fails in the opportunistic
    /// mode without credentials and ``SMTPClientConfiguration/plaintextFallbackOnTLSFailure`` is set, connects
    /// again to the same address without TLS.
    public static func connect(
        to address: SocketAddress,
        serverName: String,
        configuration: SMTPClientConfiguration,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) async throws -> SMTPConnection {
        // The name goes into EHLO/HELO as is: it must be one token of printable ASCII (RFC 5321 §4.1.1.1), which
        // also keeps the command within the 512-octet line limit of §4.5.3.1.4.
        let helo = configuration.heloName.utf8
        guard !helo.isEmpty, helo.count <= 255, helo.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw SMTPClientError(
                code: .invalidConfiguration, phase: .connect,
                detail: "HELO name must be 1 to 255 printable ASCII characters without spaces"
            )
        }
        var logger = logger
        logger[metadataKey: "smtp.server"] = "\(serverName)"
        logger[metadataKey: "smtp.address"] = "\(formatAddress(address))"
        do {
            return try await connectOnce(
                to: address, serverName: serverName, configuration: configuration,
                tlsMode: configuration.tlsMode, eventLoopGroup: eventLoopGroup, logger: logger
            )
        } catch let error as SMTPClientError where error.code == .tlsFailed && configuration.plaintextFallbackOnTLSFailure
            && configuration.tlsMode == .opportunistic && configuration.credentials == nil {
            logger.notice("STARTTLS handshake failed; retrying without TLS", metadata: ["smtp.error": "\(error)"])
            let connection = try await connectOnce(
                to: address, serverName: serverName, configuration: configuration,
                tlsMode: .none, eventLoopGroup: eventLoopGroup, logger: logger
            )
            connection.shared.record(.info, "retried without TLS after: \(error)")
            return connection
        }
    }

    private static func connectOnce(
        to address: SocketAddress,
        serverName: String,
        configuration: SMTPClientConfiguration,
        tlsMode: SMTPClientTLSMode,
        eventLoopGroup: any EventLoopGroup,
        logger: Logger
    ) async throws -> SMTPConnection {
        let addressText = formatAddress(address)
        let eventLoop = eventLoopGroup.next()
        let shared = SMTPConnectionShared()
        let sessionPromise = eventLoop.makePromise(of: SMTPSessionInfo.self)

        let tlsContext: NIOSSLContext?
        let sniHostname = tlsServerHostname(for: serverName)
        if tlsMode != .none {
            do {
                tlsContext = try makeTLSContext(configuration: configuration, verifyHostname: sniHostname != nil)
            } catch {
                sessionPromise.fail(error)
                throw SMTPClientError(code: .tlsFailed, phase: tlsMode == .implicit ? .tlsHandshake : .startTLS,
                                      detail: "\(error)", remoteAddress: addressText)
            }
        } else {
            tlsContext = nil
        }

        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(configuration.timeouts.connect))
            .channelOption(ChannelOptions.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if tlsMode == .implicit, let tlsContext {
                        // RFC 8314 §3: TLS from the first byte; the greeting arrives over it.
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tlsContext, serverHostname: sniHostname))
                    }
                    let handler = SMTPClientChannelHandler(
                        configuration: configuration,
                        tlsMode: tlsMode,
                        tlsContext: tlsContext,
                        tlsServerHostname: sniHostname,
                        remoteAddress: addressText,
                        shared: shared,
                        connectPromise: sessionPromise,
                        logger: logger
                    )
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }

        let channel: any Channel
        do {
            channel = try await bootstrap.connect(to: address).get()
        } catch {
            sessionPromise.fail(error)
            throw connectError(error, address: addressText, timeout: configuration.timeouts.connect)
        }

        do {
            let info = try await withTaskCancellationHandler {
                try await sessionPromise.futureResult.get()
            } onCancel: {
                channel.close(promise: nil)
            }
            logger.debug("smtp session ready", metadata: [
                "smtp.tls": "\(info.tlsVersion ?? "none")",
                "smtp.extensions": "\(info.capabilities.keywords.joined(separator: " "))",
            ])
            return SMTPConnection(
                channel: channel, info: info, remoteAddress: address, serverName: serverName,
                shared: shared, logger: logger
            )
        } catch let error as SMTPClientError {
            channel.close(promise: nil)
            var error = error
            error.transcript = shared.takeTranscript()
            throw error
        } catch {
            channel.close(promise: nil)
            var failure = SMTPClientError(code: .connectionClosed, phase: .banner, detail: "\(error)", remoteAddress: addressText)
            failure.transcript = shared.takeTranscript()
            throw failure
        }
    }

    /// Whether a new transaction can be started: the session is idle and the connection open.
    public var isUsable: Bool { shared.isUsable }

    /// Runs one mail transaction: MAIL FROM, RCPT TO for each recipient, DATA and the message.
    ///
    /// The message is encoded here with ``SMTPDataEncoder`` (CRLF normalisation and dot-stuffing). `SIZE=` is
    /// sent when the server announces SIZE; `BODY=8BITMIME` when the message has 8-bit bytes and the server
    /// offers 8BITMIME; `SMTPUTF8` when the envelope asks for it (or an address is not ASCII) and the server
    /// offers it. With PIPELINING the commands go out in one write.
    ///
    /// SMTP rejections (4xx, 5xx) come back in the result. Throws ``SMTPClientError`` on a network failure,
    /// timeout or protocol violation, after which the connection is closed; and, leaving the connection usable,
    /// for ``SMTPClientError/Code/messageTooLarge``, ``SMTPClientError/Code/invalidEnvelope`` and
    /// ``SMTPClientError/Code/smtpUTF8NotSupported``, before anything is sent.
    public func send(_ envelope: SMTPEnvelope, message: ByteBuffer) async throws -> SMTPTransactionResult {
        let encoded = SMTPDataEncoder.encode(message)
        let eightBit = SMTPDataEncoder.containsEightBitData(message)
        let promise = channel.eventLoop.makePromise(of: SMTPTransactionResult.self)
        submit(.transaction(envelope, encodedMessage: encoded, containsEightBitData: eightBit, promise), phase: .mailFrom) {
            promise.fail($0)
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: { [channel] in
            channel.close(promise: nil)
        }
    }

    /// Sends RSET, to abandon whatever state the server holds before reusing the connection. A refusal throws
    /// ``SMTPClientError/Code/commandRejected`` and closes the connection.
    public func reset() async throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        submit(.reset(promise), phase: .rset) { promise.fail($0) }
        try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: { [channel] in
            channel.close(promise: nil)
        }
    }

    /// Sends QUIT (when idle), waits for its reply up to the QUIT timeout, and closes. Never throws.
    public func close() async {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        submit(.quit(promise), phase: .quit) { _ in promise.succeed(()) }
        try? await promise.futureResult.get()
        try? await channel.close()
    }

    /// Returns the transcript since the last call (commands, replies and notes; never message content, AUTH
    /// redacted) and starts a new one.
    public func takeTranscript() -> [SMTPTranscriptEntry] {
        shared.takeTranscript()
    }

    /// Hands a request to the channel handler on the event loop. If the channel is already gone the request
    /// never reaches the handler, and `onFailure` completes it.
    private func submit(_ request: SMTPClientRequest, phase: SMTPPhase, onFailure: @escaping @Sendable (SMTPClientError) -> Void) {
        let error = SMTPClientError(
            code: .connectionNotReady, phase: phase, detail: "the connection is closed",
            remoteAddress: Self.formatAddress(remoteAddress)
        )
        channel.writeAndFlush(request).whenFailure { _ in onFailure(error) }
    }

    // MARK: - Helpers

    /// "127.0.0.1:25" or "[::1]:25".
    static func formatAddress(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress else { return "\(address)" }
        let port = address.port.map { ":\($0)" } ?? ""
        if case .v6 = address { return "[\(ip)]\(port)" }
        return ip + port
    }

    /// The SNI name: the server name without a trailing dot, unless it is empty or an IP literal (RFC 6066 §3
    /// forbids literal addresses in SNI).
    static func tlsServerHostname(for serverName: String) -> String? {
        var name = serverName
        if name.hasSuffix(".") { name.removeLast() }
        guard !name.isEmpty else { return nil }
        let literal = name.hasPrefix("[") && name.hasSuffix("]") ? String(name.dropFirst().dropLast()) : name
        if (try? SocketAddress(ipAddress: literal, port: 0)) != nil { return nil }
        return name
    }

    private static func makeTLSContext(configuration: SMTPClientConfiguration, verifyHostname: Bool) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let file = configuration.additionalTrustRootsFile {
            tls.additionalTrustRoots = [.file(file)]
        }
        if configuration.verifyCertificates {
            tls.certificateVerification = verifyHostname ? .fullVerification : .noHostnameVerification
        } else {
            tls.certificateVerification = .none
        }
        return try NIOSSLContext(configuration: tls)
    }

    private static func connectError(_ error: any Error, address: String, timeout: Duration) -> SMTPClientError {
        if let channelError = error as? ChannelError, case .connectTimeout = channelError {
            return SMTPClientError(code: .timeout, phase: .connect, remoteAddress: address)
        }
        if let ioError = error as? IOError {
            let reason: String
            switch ioError.errnoCode {
            case ECONNREFUSED: reason = "connection refused"
            case ENETUNREACH: reason = "network unreachable"
            case EHOSTUNREACH: reason = "host unreachable"
            case ETIMEDOUT: return SMTPClientError(code: .timeout, phase: .connect, remoteAddress: address)
            case ECONNRESET: reason = "connection reset"
            default: reason = ioError.description
            }
            return SMTPClientError(code: .connectionFailed, phase: .connect, detail: reason, remoteAddress: address)
        }
        return SMTPClientError(code: .connectionFailed, phase: .connect, detail: "\(error)", remoteAddress: address)
    }
}
