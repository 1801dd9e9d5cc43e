import Foundation
import Logging
import NIOCore
import NIOPosix
import RelayTestSupport
import SMTPClient
import SMTPCore
import Testing

/// AUTH, required STARTTLS and implicit TLS against a real smarthost: the recording aiosmtpd sink of
/// Tests/Peers/smtp_sink.py requiring AUTH, with a self-signed certificate made for the test.
@Suite(.timeLimit(.minutes(2)))
struct SMTPAuthConnectionTests {
    let logger = Logger(label: "relay.smtp.test")
    static let serverName = "smarthost.peer.test"
    static let user = RecordingSMTPSink.Authentication(username: "relay-user", password: "s3cret pass")
    static let message = ByteBuffer(string: "From: s@relay.test\r\nTo: a@example.com\r\nSubject: auth\r\n\r\nhello\r\n")

    /// Runs `body` with a sink (stopped afterwards) that has its own certificate.
    func withSink(tls: Bool = true, implicitTLS: Bool = false, authentication: RecordingSMTPSink.Authentication? = user,
                  _ body: (RecordingSMTPSink, String) async throws -> Void) async throws {
        let certificate = try await makeSelfSignedCertificate(hostname: Self.serverName)
        let sink = try await RecordingSMTPSink.start(tls: tls ? certificate : nil, implicitTLS: implicitTLS,
                                                     authentication: authentication)
        do {
            try await body(sink, certificate.certificate)
        } catch {
            await sink.stop()
            throw error
        }
        await sink.stop()
    }

    func connect(_ sink: RecordingSMTPSink, _ adjust: (inout SMTPClientConfiguration) -> Void) async throws -> SMTPConnection {
        var configuration = SMTPClientConfiguration(heloName: "relay.test")
        configuration.timeouts.banner = .seconds(30)
        adjust(&configuration)
        return try await SMTPConnection.connect(
            to: try SocketAddress(ipAddress: sink.host, port: sink.port), serverName: Self.serverName,
            configuration: configuration, eventLoopGroup: MultiThreadedEventLoopGroup.singleton, logger: logger)
    }

    func send(_ connection: SMTPConnection) async throws -> SMTPTransactionResult {
        try await connection.send(SMTPEnvelope(mailFrom: "s@relay.test", recipients: ["a@example.com"]), message: Self.message)
    }

    /// No transcript line holds the password, its base64, or the PLAIN response.
    func expectRedacted(_ transcript: [SMTPTranscriptEntry]) {
        let secrets = ["s3cret pass", Data("s3cret pass".utf8).base64EncodedString(),
                       Data("relay-user".utf8).base64EncodedString(),
                       Data("\u{0}relay-user\u{0}s3cret pass".utf8).base64EncodedString()]
        for entry in transcript {
            for secret in secrets { #expect(!entry.text.contains(secret), "transcript line \(entry.text) holds a credential") }
        }
    }

    @Test func plainOverRequiredSTARTTLS() async throws {
        try await withSink { sink, _ in
            let connection = try await connect(sink) {
                $0.tlsMode = .startTLS
                $0.credentials = SMTPCredentials(username: "relay-user", password: "s3cret pass")
            }
            #expect(connection.tlsVersion != nil)
            #expect(try await send(connection).data?.code == 250)
            await connection.close()
            let received = try sink.received()
            #expect(received.count == 1)
            #expect(received.first?.authUser == "relay-user")
            #expect(received.first?.tls == true)
            #expect(try sink.authAttempts() == [.init(mechanism: "PLAIN", tls: true)])
            let transcript = connection.takeTranscript()
            #expect(transcript.contains { $0.direction == .client && $0.text == "AUTH PLAIN ***" })
            #expect(transcript.contains { $0.direction == .server && $0.text.hasPrefix("235") })
            expectRedacted(transcript)
        }
    }

    @Test func loginWhenPlainIsNotOffered() async throws {
        let loginOnly = RecordingSMTPSink.Authentication(username: "relay-user", password: "s3cret pass", mechanisms: ["LOGIN"])
        try await withSink(authentication: loginOnly) { sink, _ in
            let connection = try await connect(sink) {
                $0.tlsMode = .startTLS
                $0.credentials = SMTPCredentials(username: "relay-user", password: "s3cret pass")
            }
            #expect(connection.capabilities.authMechanisms == ["LOGIN"])
            #expect(try await send(connection).data?.code == 250)
            await connection.close()
            #expect(try sink.received().first?.authUser == "relay-user")
            #expect(try sink.authAttempts() == [.init(mechanism: "LOGIN", tls: true)])
            let clientLines = connection.takeTranscript().filter { $0.direction == .client }.map(\.text)
            let auth = try #require(clientLines.firstIndex(of: "AUTH LOGIN"))
            #expect(Array(clientLines[auth...].prefix(3)) == ["AUTH LOGIN", "***", "***"])
        }
    }

    @Test func wrongPasswordIsAnAuthenticationFailure() async throws {
        try await withSink { sink, _ in
            do {
                _ = try await connect(sink) {
                    $0.tlsMode = .startTLS
                    $0.credentials = SMTPCredentials(username: "relay-user", password: "wrong")
                }
                Issue.record("AUTH should have failed")
            } catch let error as SMTPClientError {
                #expect(error.code == .authenticationFailed)
                #expect(error.phase == .auth)
                #expect(error.reply?.code == 535)
                #expect(error.description.hasPrefix("authentication failed (credentials rejected) with 127.0.0.1:\(sink.port): 535"))
                #expect(error.transcript.contains { $0.text == "AUTH PLAIN ***" })
            }
            #expect(try sink.received().isEmpty)
        }
    }

    @Test func implicitTLSWithAuth() async throws {
        try await withSink(implicitTLS: true) { sink, _ in
            let connection = try await connect(sink) {
                $0.tlsMode = .implicit
                $0.credentials = SMTPCredentials(username: "relay-user", password: "s3cret pass")
            }
            #expect(connection.tlsVersion != nil)
            #expect(!connection.capabilities.startTLS)
            #expect(try await send(connection).data?.code == 250)
            await connection.close()
            #expect(try sink.received().first?.authUser == "relay-user")
            #expect(try sink.received().first?.tls == true)
            let transcript = connection.takeTranscript().map(\.text)
            let tls = try #require(transcript.firstIndex { $0.hasPrefix("TLS established") })
            let banner = try #require(transcript.firstIndex { $0.hasPrefix("220") })
            #expect(tls < banner, "the handshake comes before the greeting")
        }
    }

    @Test func implicitTLSAgainstAPlaintextServerFailsTheHandshake() async throws {
        try await withSink(tls: false, authentication: nil) { sink, _ in
            await #expect {
                _ = try await connect(sink) { $0.tlsMode = .implicit }
            } throws: { error in
                (error as? SMTPClientError)?.code == .tlsFailed && (error as? SMTPClientError)?.phase == .tlsHandshake
            }
        }
    }

    @Test(arguments: [SMTPClientTLSMode.none, .opportunistic])
    func credentialsAreNeverSentWithoutTLS(mode: SMTPClientTLSMode) async throws {
        // A server that would take them in plaintext: AUTH offered, no STARTTLS.
        let plaintext = RecordingSMTPSink.Authentication(username: "relay-user", password: "s3cret pass", plaintext: true)
        try await withSink(tls: false, authentication: plaintext) { sink, _ in
            do {
                _ = try await connect(sink) {
                    $0.tlsMode = mode
                    $0.credentials = SMTPCredentials(username: "relay-user", password: "s3cret pass")
                }
                Issue.record("connect should have failed")
            } catch let error as SMTPClientError {
                #expect(error.code == .authenticationUnavailable)
                #expect(error.phase == .auth)
                #expect(error.transcript.contains { $0.direction == .server && $0.text.contains("AUTH") },
                        "the server did offer AUTH")
                expectRedacted(error.transcript)
            }
            #expect(try sink.authAttempts().isEmpty, "no AUTH command reached the server")
        }
    }

    @Test func requiredSTARTTLSWithoutIt() async throws {
        try await withSink(tls: false, authentication: nil) { sink, _ in
            await #expect {
                _ = try await connect(sink) { $0.tlsMode = .startTLS }
            } throws: { error in
                (error as? SMTPClientError)?.code == .tlsUnavailable
            }
        }
    }

    @Test func requiredSTARTTLSNeverFallsBackToPlaintext() async throws {
        try await withSink(authentication: nil) { sink, _ in
            await #expect {
                _ = try await connect(sink) {
                    $0.tlsMode = .startTLS
                    $0.verifyCertificates = true
                    $0.plaintextFallbackOnTLSFailure = true
                }
            } throws: { error in
                (error as? SMTPClientError)?.code == .tlsFailed
            }
            let received = try sink.received()
            #expect(received.isEmpty)
        }
    }

    @Test func verificationWithAnExtraTrustRoot() async throws {
        try await withSink { sink, certificate in
            let connection = try await connect(sink) {
                $0.tlsMode = .startTLS
                $0.verifyCertificates = true
                $0.additionalTrustRootsFile = certificate
                $0.credentials = SMTPCredentials(username: "relay-user", password: "s3cret pass")
            }
            #expect(try await send(connection).data?.code == 250)
            await connection.close()
        }
    }
}
