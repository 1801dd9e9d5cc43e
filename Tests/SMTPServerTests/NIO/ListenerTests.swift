import Foundation
import Testing
import SMTPServer

/// Pipelining order, session limit, timeouts and graceful shutdown of one listener.
@Suite("Submission listener lifecycle", .serialized)
struct ListenerTests {
    private func authenticatedClient(_ server: RunningServer) async throws -> RawClient {
        let client = try await RawClient.connect(port: server.port, tls: true)
        #expect(try await client.readReply().replyCode == 220)
        #expect(try await client.command("EHLO client.test\r\n").replyCode == 250)
        #expect(try await client.command("AUTH PLAIN \(SecurityTests.plainCredentials)\r\n").replyCode == 235)
        return client
    }

    @Test func pipelinedCommandsWaitForTheBackendAndAreAnsweredInOrder() async throws {
        try await withServer(security: .implicitTLS, backend: TestBackend(senderDelay: .milliseconds(300))) { server in
            let client = try await authenticatedClient(server)
            try await client.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@ok.test>\r\nRCPT TO:<c@ok.test>\r\nDATA\r\n")
            #expect(try await client.readReply().hasPrefix("250"))
            #expect(try await client.readReply().hasPrefix("250"))
            #expect(try await client.readReply().hasPrefix("250"))
            #expect(try await client.readReply().replyCode == 354)
            // The end of data and the next commands in one write: the bytes after the dot are commands again.
            try await client.send("Subject: one\r\n\r\nbody\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<d@ok.test>\r\nDATA\r\n")
            #expect(try await client.readReply().replyCode == 250)
            #expect(try await client.readReply().replyCode == 250)
            #expect(try await client.readReply().replyCode == 250)
            #expect(try await client.readReply().replyCode == 354)
            try await client.send("Subject: two\r\n\r\nbody two\r\n.\r\nQUIT\r\n")
            #expect(try await client.readReply().replyCode == 250)
            #expect(try await client.readReply().replyCode == 221)
            #expect(await client.waitUntilClosed())
            let messages = server.backend.messages
            try #require(messages.count == 2)
            #expect(messages[0].recipients == ["b@ok.test", "c@ok.test"])
            #expect(messages[0].data == Array("Subject: one\r\n\r\nbody\r\n".utf8))
            #expect(messages[1].recipients == ["d@ok.test"])
            #expect(messages[1].data == Array("Subject: two\r\n\r\nbody two\r\n".utf8))
        }
    }

    @Test func connectionBeyondTheSessionLimitGets421() async throws {
        try await withServer(security: .startTLS, maximumSessions: 2) { server in
            let first = try await RawClient.connect(port: server.port)
            let second = try await RawClient.connect(port: server.port)
            #expect(try await first.readReply().replyCode == 220)
            #expect(try await second.readReply().replyCode == 220)
            let third = try await RawClient.connect(port: server.port)
            let refused = try await third.readReply()
            #expect(refused == "421 4.7.0 Too many connections, try later")
            #expect(await third.waitUntilClosed())
            // A place frees up when a session ends.
            #expect(try await first.command("QUIT\r\n").replyCode == 221)
            #expect(await first.waitUntilClosed())
            // The place is released when the server notices the close; poll (bounded) instead of guessing a delay.
            var admitted = false
            let deadline = ContinuousClock.now + .seconds(10)
            while !admitted && ContinuousClock.now < deadline {
                let fourth = try await RawClient.connect(port: server.port)
                admitted = try await fourth.readReply().replyCode == 220
                await fourth.close()
                if !admitted { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(admitted, "a new session is admitted once one has ended")
            await second.close()
        }
    }

    @Test func sessionLimitOnTheImplicitTLSListenerAnswersUnderTLS() async throws {
        try await withServer(security: .implicitTLS, maximumSessions: 1) { server in
            let first = try await RawClient.connect(port: server.port, tls: true)
            #expect(try await first.readReply().replyCode == 220)
            let second = try await RawClient.connect(port: server.port, tls: true)
            #expect(try await second.readReply() == "421 4.7.0 Too many connections, try later")
            await first.close()
            await second.close()
        }
    }

    @Test func idleSessionTimesOut() async throws {
        try await withServer(security: .startTLS, commandTimeout: .seconds(1)) { server in
            let client = try await RawClient.connect(port: server.port)
            #expect(try await client.readReply().replyCode == 220)
            #expect(try await client.command("EHLO client.test\r\n").replyCode == 250)
            let start = ContinuousClock.now
            let reply = try await client.readReply(timeout: .seconds(10))
            #expect(reply.hasPrefix("421"), "\(reply)")
            // The server's timer starts when it sends the EHLO reply, before the client has read it; under load the
            // client may take a few hundred milliseconds to get there, so the lower bound leaves room for that.
            #expect(ContinuousClock.now - start >= .milliseconds(500))
            // The close follows the 421 at once. In 2 of about 15 full runs the client saw it only after 15 s: a test
            // peer spawned at that moment had inherited the server's socket (NIO's sockets are not close-on-exec) and
            // held the connection open until it exited; peers now inherit nothing (ChildProcessTests). The minute
            // stays as a bound that only a server that never closes reaches.
            let waitStart = ContinuousClock.now
            #expect(await client.waitUntilClosed(timeout: .seconds(60)),
                    "the server did not close within a minute of its 421 (waited \(ContinuousClock.now - waitStart))")
        }
    }

    @Test func dataTransferCountsAsActivity() async throws {
        // The transfer (4 × 1 s) outlasts the 3 s command timeout; each gap leaves 2 s of slack for a loaded machine.
        try await withServer(security: .implicitTLS, commandTimeout: .seconds(3)) { server in
            let client = try await authenticatedClient(server)
            #expect(try await client.command("MAIL FROM:<a@example.com>\r\n").replyCode == 250)
            #expect(try await client.command("RCPT TO:<b@ok.test>\r\n").replyCode == 250)
            #expect(try await client.command("DATA\r\n").replyCode == 354)
            for index in 0..<4 {
                try await client.send("line \(index)\r\n")
                try await Task.sleep(for: .seconds(1))
            }
            try await client.send(".\r\n")
            #expect(try await client.readReply().replyCode == 250)
            #expect(server.backend.messages.count == 1)
            await client.close()
        }
    }

    @Test func gracefulShutdownFinishesDataInProgressAndAnswers421ToIdleSessions() async throws {
        let server = try await ServerHarness.start(security: .implicitTLS)
        do {
            let sending = try await authenticatedClient(server)
            #expect(try await sending.command("MAIL FROM:<a@example.com>\r\n").replyCode == 250)
            #expect(try await sending.command("RCPT TO:<b@ok.test>\r\n").replyCode == 250)
            #expect(try await sending.command("DATA\r\n").replyCode == 354)
            try await sending.send("Subject: during shutdown\r\n\r\nfirst half\r\n")

            let idle = try await RawClient.connect(port: server.port, tls: true)
            #expect(try await idle.readReply().replyCode == 220)
            #expect(try await idle.command("EHLO idle.test\r\n").replyCode == 250)

            await server.triggerShutdown()
            // The idle session is told at once (or at its next command) and closed.
            let idleReply: String
            if let early = try? await idle.readReply(timeout: .seconds(2)) {
                idleReply = early
            } else {
                idleReply = try await idle.command("NOOP\r\n")
            }
            #expect(idleReply.hasPrefix("421 4.3.2"), "\(idleReply)")
            #expect(await idle.waitUntilClosed())

            // New connections are no longer accepted.
            let late = try? await RawClient.connect(port: server.port, tls: true)
            if let late {
                let reply = try? await late.readReply(timeout: .seconds(2))
                #expect(reply == nil || reply!.hasPrefix("421"), "\(reply ?? "")")
                await late.close()
            }
            #expect(!server.hasStopped, "the listener waits for the session in DATA")

            try await sending.send("second half\r\n.\r\n")
            let committed = try await sending.readReply()
            #expect(committed.replyCode == 250, "\(committed)")
            let next = try? await sending.command("NOOP\r\n")
            #expect(next == nil || next!.hasPrefix("421 4.3.2"), "\(next ?? "")")
            #expect(await sending.waitUntilClosed())
            try await server.waitUntilStopped(timeout: .seconds(10))
            let messages = server.backend.messages
            try #require(messages.count == 1)
            #expect(messages[0].data == Array("Subject: during shutdown\r\n\r\nfirst half\r\nsecond half\r\n".utf8))
        } catch {
            try? await server.shutdown()
            throw error
        }
    }

    @Test func sessionsStillOpenAfterTheGracePeriodAreClosed() async throws {
        let server = try await ServerHarness.start(security: .implicitTLS, shutdownGracePeriod: .milliseconds(500))
        let sending = try await authenticatedClient(server)
        #expect(try await sending.command("MAIL FROM:<a@example.com>\r\n").replyCode == 250)
        #expect(try await sending.command("RCPT TO:<b@ok.test>\r\n").replyCode == 250)
        #expect(try await sending.command("DATA\r\n").replyCode == 354)
        try await server.shutdown(timeout: .seconds(10))
        #expect(await sending.waitUntilClosed())
        #expect(server.backend.messages.isEmpty)
    }
}
