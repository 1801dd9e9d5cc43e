import Foundation
import Logging
import NIOCore
import NIOPosix
import SMTPClient
import SMTPCore
import Testing

/// SMTPConnection against real servers on loopback (aiosmtpd, Postfix's smtp-sink). No mocks.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SMTPConnectionTests {
    let logger = Logger(label: "relay.smtp.test")
    let group = MultiThreadedEventLoopGroup.singleton

    func configuration(_ adjust: (inout SMTPClientConfiguration) -> Void = { _ in }) -> SMTPClientConfiguration {
        var configuration = SMTPClientConfiguration(heloName: "relay.test")
        configuration.timeouts.banner = .seconds(30)
        configuration.timeouts.endOfData = .seconds(30)
        adjust(&configuration)
        return configuration
    }

    func connect(_ peer: TestPeers.Peer, _ configuration: SMTPClientConfiguration? = nil) async throws -> SMTPConnection {
        try await SMTPConnection.connect(
            to: peer.address, serverName: "mx.peer.test", configuration: configuration ?? self.configuration(),
            eventLoopGroup: group, logger: logger
        )
    }

    static let message = ByteBuffer(string: [
        "From: sender@relay.test",
        "To: a@example.com",
        "Subject: dots and line ends",
        "",
        ".leading dot",
        "..two dots",
        ".",
        "bare LF follows\nand a bare CR\rthen the end",
    ].joined(separator: "\r\n"))

    /// What a server receives after removing the dot-stuffing: the message with every line end CRLF.
    static let messageAsReceived = [
        "From: sender@relay.test",
        "To: a@example.com",
        "Subject: dots and line ends",
        "",
        ".leading dot",
        "..two dots",
        ".",
        "bare LF follows",
        "and a bare CR",
        "then the end",
        "",
    ].joined(separator: "\r\n")

    // MARK: smtp-sink

    @Test(arguments: [true, false])
    func deliversToSmtpSink(pipelining: Bool) async throws {
        let peer = try await TestPeers.startSmtpSink(pipelining: pipelining)
        defer { peer.stop() }
        let connection = try await connect(peer)
        #expect(connection.capabilities.pipelining == pipelining)
        #expect(connection.capabilities.eightBitMIME)
        #expect(connection.tlsVersion == nil)

        let envelope = SMTPEnvelope(mailFrom: "sender@relay.test", recipients: ["a@example.com", "b@example.com"])
        let result = try await connection.send(envelope, message: Self.message)
        #expect(result.mailFrom.code == 250)
        #expect(result.recipients.map { $0?.code } == [250, 250])
        #expect(result.data?.code == 250)
        #expect(connection.isUsable)

        // A second transaction on the same connection.
        let second = try await connection.send(
            SMTPEnvelope(mailFrom: "", recipients: ["c@example.com"]), message: ByteBuffer(string: "Subject: 2\r\n\r\nx\r\n"))
        #expect(second.data?.code == 250)

        let transcript = connection.takeTranscript()
        let commands = transcript.filter { $0.direction == .client }.map(\.text)
        #expect(commands.contains("MAIL FROM:<sender@relay.test>"))
        #expect(commands.contains("RCPT TO:<b@example.com>"))
        #expect(commands.contains("MAIL FROM:<>"))
        #expect(!transcript.contains { $0.text.contains("leading dot") }, "the transcript must not hold message content")
        await connection.close()
        #expect(!connection.isUsable)

        // smtp-sink dumps each message with LF line ends after its own X- headers.
        let dumps = try FileManager.default.contentsOfDirectory(atPath: peer.directory.path).filter { $0 != "peer.log" }
        #expect(dumps.count == 2)
        let all = try dumps.map { try String(contentsOf: peer.directory.appendingPathComponent($0), encoding: .utf8) }
        #expect(all.contains { $0.contains("\n.leading dot\n..two dots\n.\nbare LF follows\nand a bare CR\nthen the end\n") })
    }

    // MARK: aiosmtpd

    @Test func messageBytesArriveExactly() async throws {
        let peer = try await TestPeers.startAiosmtpd()
        defer { peer.stop() }
        let connection = try await connect(peer)
        #expect(connection.capabilities.size == 10_000_000)
        #expect(connection.capabilities.smtpUTF8)

        var message = Self.message
        message.writeString("\r\ncaf\u{E9}\r\n")  // 8-bit content: BODY=8BITMIME
        let result = try await connection.send(SMTPEnvelope(mailFrom: "s@relay.test", recipients: ["a@example.com"]), message: message)
        #expect(result.data?.code == 250)
        #expect(result.data?.enhancedCode == EnhancedStatusCode("2.0.0"))

        let received = try Data(contentsOf: try #require(try peer.files(withExtension: "eml").first))
        let expected = Self.messageAsReceived + "caf\u{E9}\r\n"
        #expect(String(decoding: received, as: UTF8.self) == expected)

        let envelope = try JSONSerialization.jsonObject(with: Data(contentsOf: try #require(try peer.files(withExtension: "json").first))) as? [String: Any]
        let options = envelope?["mail_options"] as? [String] ?? []
        let encodedSize = SMTPDataEncoder.contentSize(ofEncoded: SMTPDataEncoder.encode(message))
        #expect(options.contains("SIZE=\(encodedSize)"))
        #expect(options.contains("BODY=8BITMIME"))
        #expect(envelope?["tls"] as? Bool == false)
        await connection.close()
    }

    @Test func largeMessageInManyBlocks() async throws {
        let peer = try await TestPeers.startAiosmtpd(pipelining: true)
        defer { peer.stop() }
        let connection = try await connect(peer)
        // About 2 MB, written in 64 KiB blocks; every 50th line starts with a dot, all lines end in bare LF.
        var message = ByteBuffer()
        var expected = ""
        for index in 0..<25_000 {
            let line = (index % 50 == 0 ? "." : "") + "line \(index) " + String(repeating: "x", count: 64)
            message.writeString(line + "\n")
            expected += line + "\r\n"
        }
        let envelope = SMTPEnvelope(mailFrom: "s@relay.test", recipients: ["j\u{F6}rg@example.com"], requiresSMTPUTF8: true)
        let result = try await connection.send(envelope, message: message)
        #expect(result.data?.code == 250)
        let received = try Data(contentsOf: try #require(try peer.files(withExtension: "eml").first))
        #expect(received.count == expected.utf8.count)
        #expect(received == Data(expected.utf8))
        let json = try String(contentsOf: try #require(try peer.files(withExtension: "json").first), encoding: .utf8)
        #expect(json.contains("SMTPUTF8"))
        await connection.close()
    }

    @Test(arguments: [false, true])
    func oneRecipientRefusedAnotherAccepted(pipelining: Bool) async throws {
        let peer = try await TestPeers.startAiosmtpd(pipelining: pipelining)
        defer { peer.stop() }
        let connection = try await connect(peer)
        #expect(connection.capabilities.pipelining == pipelining)
        let envelope = SMTPEnvelope(mailFrom: "s@relay.test", recipients: ["unknown@example.com", "known@example.com"])
        let result = try await connection.send(envelope, message: ByteBuffer(string: "Subject: x\r\n\r\nhello\r\n"))
        #expect(result.recipients[0]?.code == 550)
        #expect(result.recipients[0]?.enhancedCode == EnhancedStatusCode("5.1.1"))
        #expect(result.recipients[0]?.isPermanent == true)
        #expect(result.recipients[1]?.code == 250)
        #expect(result.data?.code == 250)
        let json = try String(contentsOf: try #require(try peer.files(withExtension: "json").first), encoding: .utf8)
        #expect(json.contains("known@example.com") && !json.contains("unknown@example.com"))

        // No recipient accepted: the message is not sent, and the connection stays usable.
        let none = try await connection.send(
            SMTPEnvelope(mailFrom: "s@relay.test", recipients: ["unknown@example.com"]), message: ByteBuffer(string: "x\r\n"))
        #expect(none.recipients.map { $0?.code } == [550])
        #expect(none.data == nil)
        #expect(connection.isUsable)
        #expect(try peer.files(withExtension: "eml").count == 1)
        await connection.close()
    }

    @Test func transientFailureAtMAIL() async throws {
        let peer = try await TestPeers.startAiosmtpd()
        defer { peer.stop() }
        let connection = try await connect(peer)
        let result = try await connection.send(
            SMTPEnvelope(mailFrom: "tempfail@relay.test", recipients: ["a@example.com", "b@example.com"]),
            message: ByteBuffer(string: "x\r\n"))
        #expect(result.mailFrom.code == 451)
        #expect(result.mailFrom.isTransient)
        #expect(result.mailFrom.enhancedCode == EnhancedStatusCode("4.3.0"))
        #expect(result.recipients == [nil, nil])
        #expect(result.data == nil)
        // The connection can be reset and reused.
        try await connection.reset()
        let retry = try await connection.send(SMTPEnvelope(mailFrom: "ok@relay.test", recipients: ["a@example.com"]), message: ByteBuffer(string: "x\r\n"))
        #expect(retry.data?.code == 250)
        await connection.close()
    }

    @Test func permanentFailureAtEndOfData() async throws {
        let peer = try await TestPeers.startAiosmtpd()
        defer { peer.stop() }
        let connection = try await connect(peer)
        let result = try await connection.send(
            SMTPEnvelope(mailFrom: "s@relay.test", recipients: ["a@example.com"]),
            message: ByteBuffer(string: "Subject: spam\r\n\r\nREJECT-ME\r\n"))
        #expect(result.recipients.map { $0?.code } == [250])
        #expect(result.data?.code == 554)
        #expect(result.data?.enhancedCode == EnhancedStatusCode("5.6.0"))
        #expect(result.data?.text == "Content rejected")
        #expect(connection.isUsable)
        await connection.close()
    }

    @Test func startTLS() async throws {
        let peer = try await TestPeers.startAiosmtpd(tls: true)
        defer { peer.stop() }
        let connection = try await connect(peer)
        #expect(connection.tlsVersion == "TLSv1.3")
        #expect(!connection.capabilities.startTLS, "capabilities come from the EHLO after TLS")
        let result = try await connection.send(SMTPEnvelope(mailFrom: "s@relay.test", recipients: ["a@example.com"]), message: Self.message)
        #expect(result.data?.code == 250)
        let json = try String(contentsOf: try #require(try peer.files(withExtension: "json").first), encoding: .utf8)
        #expect(json.contains("\"tls\": true"))
        let transcript = connection.takeTranscript().map(\.text)
        #expect(transcript.contains("STARTTLS"))
        #expect(transcript.contains { $0.hasPrefix("TLS established (TLSv1.3)") })
        await connection.close()
    }

    @Test func startTLSCanBeTurnedOff() async throws {
        let peer = try await TestPeers.startAiosmtpd(tls: true)
        defer { peer.stop() }
        let connection = try await connect(peer, configuration { $0.useSTARTTLS = false })
        #expect(connection.tlsVersion == nil)
        #expect(connection.capabilities.startTLS)
        await connection.close()
    }

    @Test func certificateVerificationFailsForSelfSignedCertificate() async throws {
        let peer = try await TestPeers.startAiosmtpd(tls: true)
        defer { peer.stop() }
        await #expect {
            _ = try await connect(peer, configuration { $0.verifyCertificates = true })
        } throws: { error in
            (error as? SMTPClientError)?.code == .tlsFailed && (error as? SMTPClientError)?.phase == .startTLS
        }
        // With the fallback the same server is used without TLS.
        let connection = try await connect(peer, configuration {
            $0.verifyCertificates = true
            $0.plaintextFallbackOnTLSFailure = true
        })
        #expect(connection.tlsVersion == nil)
        #expect(connection.isUsable)
        await connection.close()
    }

    @Test func bannerTimeoutNamesThePhase() async throws {
        let peer = try await TestPeers.startAiosmtpd(silent: true)
        defer { peer.stop() }
        let start = ContinuousClock.now
        do {
            _ = try await connect(peer, configuration { $0.timeouts.banner = .milliseconds(300) })
            Issue.record("connect should have timed out")
        } catch let error as SMTPClientError {
            #expect(error.code == .timeout)
            #expect(error.phase == .banner)
            #expect(error.description == "timed out waiting for the initial server greeting with 127.0.0.1:\(peer.port)")
        }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func connectionRefused() async throws {
        let port = try await TestPeers.freePort()
        do {
            _ = try await SMTPConnection.connect(
                to: try SocketAddress(ipAddress: "127.0.0.1", port: port), serverName: "mx.example.com",
                configuration: configuration(), eventLoopGroup: group, logger: logger)
            Issue.record("connect should have failed")
        } catch let error as SMTPClientError {
            #expect(error.code == .connectionFailed)
            #expect(error.phase == .connect)
            #expect(error.description == "connection refused while connecting to 127.0.0.1:\(port)")
        }
    }

    @Test func invalidHELONameIsRefusedBeforeConnecting() async throws {
        let port = try await TestPeers.freePort()
        await #expect {
            _ = try await SMTPConnection.connect(
                to: try SocketAddress(ipAddress: "127.0.0.1", port: port), serverName: "mx.example.com",
                configuration: SMTPClientConfiguration(heloName: "relay.test\r\nMAIL FROM:<x@y>"),
                eventLoopGroup: group, logger: logger)
        } throws: { error in
            (error as? SMTPClientError)?.code == .invalidConfiguration
        }
    }

    @Test func closedConnectionRefusesNewWork() async throws {
        let peer = try await TestPeers.startAiosmtpd()
        defer { peer.stop() }
        let connection = try await connect(peer)
        await connection.close()
        await connection.close()  // idempotent
        await #expect {
            _ = try await connection.send(SMTPEnvelope(mailFrom: "s@x", recipients: ["a@b"]), message: ByteBuffer(string: "x"))
        } throws: { error in
            (error as? SMTPClientError)?.code == .connectionNotReady
        }
        let transcript = connection.takeTranscript()
        #expect(transcript.contains { $0.direction == .client && $0.text == "QUIT" })
        #expect(transcript.contains { $0.direction == .server && $0.text.hasPrefix("221") })
    }
}
