import Foundation
import Testing
import SMTPServer

/// Real clients against the listeners on loopback: swaks and Python's smtplib.
@Suite("Submission interop with real clients", .serialized)
struct InteropTests {
    private func expectSwaksSucceeded(_ outcome: Peers.Outcome, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(outcome.status == 0, "swaks exited \(outcome.status):\n\(outcome.output)", sourceLocation: sourceLocation)
    }

    private func expectCommitted(_ server: RunningServer, tls: Bool = true, subject: String,
                                 sourceLocation: SourceLocation = #_sourceLocation) throws {
        let messages = server.backend.messages
        try #require(messages.count == 1, "committed: \(messages.count)", sourceLocation: sourceLocation)
        let message = messages[0]
        #expect(message.principal == "t1", sourceLocation: sourceLocation)
        #expect(message.mailFrom == "a@example.com", sourceLocation: sourceLocation)
        #expect(message.recipients == ["b@ok.test"], sourceLocation: sourceLocation)
        #expect(message.tlsActive == tls, sourceLocation: sourceLocation)
        #expect(message.remoteAddress == "127.0.0.1", sourceLocation: sourceLocation)
        let text = String(decoding: message.data, as: UTF8.self)
        #expect(text.contains("Subject: \(subject)\r\n"), "\(text)", sourceLocation: sourceLocation)
        #expect(text.hasSuffix("\r\n"), sourceLocation: sourceLocation)
        #expect(!text.hasSuffix("\r\n.\r\n"), "the end-of-data dot is not content", sourceLocation: sourceLocation)
    }

    private func swaksArguments(auth: String, subject: String) -> [String] {
        ["--auth", auth, "--auth-user", "any", "--auth-password", "good-key", "--from", "a@example.com", "--to", "b@ok.test",
         "--header", "Subject: \(subject)", "--body", "Hello from swaks\n.leading dot line\nbye"]
    }

    @Test func swaksSTARTTLSWithAuthPlain() async throws {
        try await withServer(security: .startTLS) { server in
            let outcome = try await Peers.swaks(port: server.port, ["--tls"] + swaksArguments(auth: "PLAIN", subject: "plain"))
            expectSwaksSucceeded(outcome)
            try expectCommitted(server, subject: "plain")
            let text = String(decoding: server.backend.messages[0].data, as: UTF8.self)
            #expect(text.contains("\r\n.leading dot line\r\n"), "dot-stuffing undone: \(text)")
        }
    }

    @Test func swaksSTARTTLSWithAuthLogin() async throws {
        try await withServer(security: .startTLS) { server in
            let outcome = try await Peers.swaks(port: server.port, ["--tls"] + swaksArguments(auth: "LOGIN", subject: "login"))
            expectSwaksSucceeded(outcome)
            try expectCommitted(server, subject: "login")
        }
    }

    @Test func swaksTLSOnConnectAgainstTheImplicitTLSListener() async throws {
        try await withServer(security: .implicitTLS) { server in
            let outcome = try await Peers.swaks(port: server.port,
                                                ["--tls-on-connect"] + swaksArguments(auth: "PLAIN", subject: "implicit"))
            expectSwaksSucceeded(outcome)
            try expectCommitted(server, subject: "implicit")
        }
    }

    @Test func swaksPipelining() async throws {
        try await withServer(security: .startTLS, backend: TestBackend(senderDelay: .milliseconds(100))) { server in
            let outcome = try await Peers.swaks(port: server.port,
                                                ["--tls", "--pipeline"] + swaksArguments(auth: "PLAIN", subject: "pipelined"))
            expectSwaksSucceeded(outcome)
            try expectCommitted(server, subject: "pipelined")
        }
    }

    @Test func swaksWithAWrongPasswordFailsAndCommitsNothing() async throws {
        try await withServer(security: .startTLS) { server in
            let outcome = try await Peers.swaks(port: server.port, [
                "--tls", "--auth", "PLAIN", "--auth-user", "any", "--auth-password", "bad-key",
                "--from", "a@example.com", "--to", "b@ok.test",
            ])
            #expect(outcome.status != 0)
            #expect(outcome.output.contains("535"), "\(outcome.output)")
            #expect(server.backend.messages.isEmpty)
        }
    }

    /// Sends a message with an attachment, a UTF-8 subject and body, a non-ASCII recipient (so smtplib uses
    /// SMTPUTF8) and a line starting with a dot; prints what smtplib handed to DATA, base64-encoded.
    static let smtplibScript = #"""
    import base64, smtplib, ssl, sys
    from email.message import EmailMessage

    mode, port = sys.argv[1], int(sys.argv[2])
    sent = []

    def capture(cls):
        class Capturing(cls):
            def data(self, msg):
                sent.append(msg)
                return super().data(msg)
        return Capturing

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["To"] = "jörg@ok.test"
    msg["Subject"] = "Grüße aus Zürich ✉"
    msg.set_content("Hallo Jörg,\n.a line that starts with a dot\n..and two\nbye\n")
    msg.add_attachment(bytes(range(256)) * 8, maintype="application", subtype="octet-stream", filename="blob.bin")

    if mode == "starttls":
        client = capture(smtplib.SMTP)("127.0.0.1", port, timeout=30)
        client.ehlo()
        client.starttls(context=context)
        client.ehlo()
    else:
        client = capture(smtplib.SMTP_SSL)("127.0.0.1", port, timeout=30, context=context)
    client.login("any", "good-key")
    refused = client.send_message(msg, from_addr="a@example.com", to_addrs=["jörg@ok.test"])
    client.quit()
    assert not refused, refused
    data = sent[0]
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    print("SENT " + base64.b64encode(data).decode())
    """#

    private func runSmtplib(mode: String, security: SMTPSubmissionServer.Security) async throws {
        try await withServer(security: security) { server in
            let outcome = try await Peers.python(Self.smtplibScript, [mode, "\(server.port)"])
            try #require(outcome.status == 0, "smtplib failed:\n\(outcome.output)")
            let line = try #require(outcome.output.split(separator: "\n").first { $0.hasPrefix("SENT ") })
            let sent = try #require(Data(base64Encoded: String(line.dropFirst(5))))
            let messages = server.backend.messages
            try #require(messages.count == 1)
            let message = messages[0]
            #expect(message.principal == "t1")
            #expect(message.recipients == ["jörg@ok.test"])
            #expect(message.requiresSMTPUTF8)
            #expect(message.tlsActive)
            #expect(message.data == Array(sent), "committed data differs from what smtplib sent")
            #expect(String(decoding: message.data, as: UTF8.self).contains("\r\n.a line that starts with a dot\r\n..and two\r\n"))
        }
    }

    @Test func smtplibSTARTTLSLoginSendMessageWithAttachmentAndUTF8() async throws {
        try await runSmtplib(mode: "starttls", security: .startTLS)
    }

    @Test func smtplibSMTPSSL() async throws {
        try await runSmtplib(mode: "ssl", security: .implicitTLS)
    }
}
