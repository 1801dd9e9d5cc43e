import Foundation
import NIOSSL
import Testing
import SMTPServer

/// Attacks and protocol rules through a raw socket: bytes exactly as written, replies as they come.
@Suite("Submission listener security", .serialized)
struct SecurityTests {
    static let plainCredentials = Data("\0any\0good-key".utf8).base64EncodedString()
    static let wrongCredentials = Data("\0any\0bad-key".utf8).base64EncodedString()

    /// EHLO and AUTH over an implicit TLS connection.
    private func authenticatedClient(_ server: RunningServer) async throws -> RawClient {
        let client = try await RawClient.connect(port: server.port, tls: true)
        #expect(try await client.readReply().replyCode == 220)
        #expect(try await client.command("EHLO client.test\r\n").replyCode == 250)
        #expect(try await client.command("AUTH PLAIN \(Self.plainCredentials)\r\n").replyCode == 235)
        return client
    }

    @Test func plaintextPipelinedAfterSTARTTLSIsDiscarded() async throws {
        try await withServer(security: .startTLS) { server in
            let client = try await RawClient.connect(port: server.port)
            #expect(try await client.readReply().replyCode == 220)
            let ehlo = try await client.command("EHLO client.test\r\n")
            #expect(ehlo.contains("STARTTLS"))
            // The injection: a command after STARTTLS in the same packet (CVE-2011-0411).
            try await client.send("STARTTLS\r\nNOOP\r\n")
            #expect(try await client.readReply().replyCode == 220)
            try await client.startTLS()
            // Nothing may come for the NOOP, in plaintext or under TLS.
            try await Task.sleep(for: .seconds(1))
            #expect(client.pending.isEmpty, "unexpected: \(client.pending)")
            let afterTLS = try await client.command("EHLO client.test\r\n")
            #expect(afterTLS.hasPrefix("250-"), "the first reply under TLS must answer EHLO: \(afterTLS)")
            #expect(!afterTLS.contains("STARTTLS"))
            #expect(afterTLS.contains("AUTH"))
            #expect(try await client.command("NOOP\r\n").replyCode == 250)
            await client.close()
        }
    }

    @Test func plaintextSentAfterThe220BreaksTheHandshake() async throws {
        try await withServer(security: .startTLS) { server in
            let client = try await RawClient.connect(port: server.port)
            #expect(try await client.readReply().replyCode == 220)
            #expect(try await client.command("EHLO client.test\r\n").replyCode == 250)
            #expect(try await client.command("STARTTLS\r\n").replyCode == 220)
            try await client.send("NOOP\r\n")  // plaintext where a ClientHello must come
            #expect(await client.waitUntilClosed(), "the server must close instead of answering: \(client.pending)")
            // At most a TLS alert record (content type 21) comes back, never an SMTP reply.
            let pending = Array(client.pending.utf8)
            #expect(pending.isEmpty || pending.first == 0x15, "unexpected: \(client.pending)")
            #expect(!client.pending.contains("250"))
        }
    }

    @Test func authBeforeTLSIsRefusedWith538() async throws {
        try await withServer(security: .startTLS) { server in
            let client = try await RawClient.connect(port: server.port)
            #expect(try await client.readReply().replyCode == 220)
            let ehlo = try await client.command("EHLO client.test\r\n")
            #expect(!ehlo.contains("AUTH"), "AUTH must not be offered before TLS: \(ehlo)")
            #expect(try await client.command("AUTH PLAIN \(Self.plainCredentials)\r\n").replyCode == 538)
            #expect(try await client.command("QUIT\r\n").replyCode == 221)
            #expect(await client.waitUntilClosed())
        }
    }

    @Test func mailAndRcptBeforeAuthAreRefusedWith530() async throws {
        try await withServer(security: .implicitTLS) { server in
            let client = try await RawClient.connect(port: server.port, tls: true)
            #expect(try await client.readReply().replyCode == 220)
            #expect(try await client.command("EHLO client.test\r\n").replyCode == 250)
            let mail = try await client.command("MAIL FROM:<a@example.com>\r\n")
            #expect(mail.hasPrefix("530"), "\(mail)")
            let rcpt = try await client.command("RCPT TO:<b@ok.test>\r\n")
            #expect(rcpt.replyCode == 530 || rcpt.replyCode == 503, "\(rcpt)")
            #expect(server.backend.messages.isEmpty)
            await client.close()
        }
    }

    @Test func unregisteredSenderDomainIsRefused() async throws {
        try await withServer(security: .implicitTLS) { server in
            let client = try await authenticatedClient(server)
            let mail = try await client.command("MAIL FROM:<a@not-mine.test>\r\n")
            #expect(mail.hasPrefix("550 5.7.1"), "\(mail)")
            #expect(try await client.command("MAIL FROM:<a@example.com>\r\n").replyCode == 250)
            await client.close()
        }
    }

    @Test func smugglingPayloadOverTLSCommitsNoSecondMessage() async throws {
        try await withServer(security: .implicitTLS) { server in
            let client = try await authenticatedClient(server)
            #expect(try await client.command("MAIL FROM:<a@example.com>\r\n").replyCode == 250)
            #expect(try await client.command("RCPT TO:<b@ok.test>\r\n").replyCode == 250)
            #expect(try await client.command("DATA\r\n").replyCode == 354)
            // A "\n.\n" end that a lax server would honour, followed by a smuggled second transaction.
            try await client.send("Subject: first\r\n\r\nhello\n.\nMAIL FROM:<a@example.com>\r\nRCPT TO:<victim@ok.test>\r\n"
                + "DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n")
            let reply = try await client.readReply()
            #expect(reply.hasPrefix("550 5.6."), "bare LF in the data must reject the message: \(reply)")
            try await Task.sleep(for: .milliseconds(300))
            #expect(client.pending.isEmpty, "no replies for smuggled commands: \(client.pending)")
            #expect(server.backend.messages.isEmpty)
            // The session goes on normally afterwards.
            #expect(try await client.command("NOOP\r\n").replyCode == 250)
            await client.close()
        }
    }

    @Test func overLongCommandLineGets500AndTheSessionContinues() async throws {
        try await withServer(security: .startTLS) { server in
            let client = try await RawClient.connect(port: server.port)
            #expect(try await client.readReply().replyCode == 220)
            try await client.send("NOOP " + String(repeating: "x", count: 600))
            try await client.send(String(repeating: "y", count: 5000) + "\r\nNOOP\r\n")
            let tooLong = try await client.readReply()
            #expect(tooLong.replyCode == 500, "\(tooLong)")
            #expect(try await client.readReply().replyCode == 250)
            // Exactly 512 octets with CRLF is allowed.
            let fits = "NOOP " + String(repeating: "z", count: 505) + "\r\n"
            #expect(fits.utf8.count == 512)
            #expect(try await client.command(fits).replyCode == 250)
            await client.close()
        }
    }

    @Test func bareLFInACommandLineIsNotALineEnd() async throws {
        try await withServer(security: .startTLS) { server in
            let client = try await RawClient.connect(port: server.port)
            #expect(try await client.readReply().replyCode == 220)
            let reply = try await client.command("NOOP\nQUIT\r\n")
            #expect(reply.replyCode == 501 || reply.replyCode == 500, "\(reply)")
            #expect(try await client.command("NOOP\r\n").replyCode == 250)
            await client.close()
        }
    }

    @Test func repeatedAuthenticationFailuresLockTheClientOut() async throws {
        try await withServer(security: .implicitTLS, backend: TestBackend(lockoutAfter: 3)) { server in
            let client = try await RawClient.connect(port: server.port, tls: true)
            #expect(try await client.readReply().replyCode == 220)
            #expect(try await client.command("EHLO client.test\r\n").replyCode == 250)
            #expect(try await client.command("AUTH PLAIN \(Self.wrongCredentials)\r\n").replyCode == 535)
            #expect(try await client.command("AUTH PLAIN \(Self.wrongCredentials)\r\n").replyCode == 535)
            let locked = try await client.command("AUTH PLAIN \(Self.wrongCredentials)\r\n")
            #expect(locked.hasPrefix("421 4.7.0"), "\(locked)")
            #expect(await client.waitUntilClosed())
        }
    }

    @Test func tlsBelow12IsRefused() async throws {
        try await withServer(security: .implicitTLS) { server in
            let client = try await RawClient.connect(port: server.port, tls: true, maximumTLSVersion: .tlsv11)
            #expect(await client.waitUntilClosed(), "a TLS 1.1 handshake must fail")
            #expect(!client.pending.contains("220"))
            let modern = try await RawClient.connect(port: server.port, tls: true, maximumTLSVersion: .tlsv12)
            #expect(try await modern.readReply().replyCode == 220)
            await modern.close()
        }
    }
}
