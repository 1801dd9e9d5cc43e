import NIOCore
import SMTPCore
import Testing
#if canImport(SMTPServerSession)
import SMTPServerSession
#else
import SMTPServer
#endif

/// Submission clients authenticated by their address (`RELAY_SUBMISSION_TRUSTED_NETWORKS`), as transcripts.
@Suite struct SessionTrustedNetworkTests {
    static let networks = try! TrustedNetworks(parsing: "10.1.0.0/16=tenant-a, 10.1.2.0/24=tenant-b, fd00::/8=tenant-c")

    static func session(from address: String, tls: Bool = false) -> SMTPServerSession {
        var configuration = sessionConfiguration()
        configuration.trustedNetworks = networks
        var session = SMTPServerSession(configuration: configuration, remoteAddress: address, tlsActive: tls)
        _ = session.connected()
        _ = session.line("EHLO app.internal")
        return session
    }

    @Test func trustedClientSendsWithoutAuthOrTLS() {
        var session = Self.session(from: "10.1.9.9")
        #expect(session.principal == "tenant-a")
        #expect(session.line("MAIL FROM:<app@tenant.example>") == .checkSender(principal: "tenant-a", address: "app@tenant.example"))
    }

    @Test func mostSpecificBlockWins() {
        #expect(Self.session(from: "10.1.2.3").principal == "tenant-b")
        #expect(Self.session(from: "fd12::1").principal == "tenant-c")
        #expect(Self.session(from: "::ffff:10.1.2.3").principal == "tenant-b")
    }

    @Test func otherClientsMustStillAuthenticate() {
        for address in ["10.2.0.1", "192.0.2.7", "fe80::1", "unknown"] {
            var session = Self.session(from: address)
            #expect(session.principal == nil)
            expectReply(session.line("MAIL FROM:<app@tenant.example>"), 530, "5.7.0")
        }
    }

    @Test func authReplacesTheTrustedPrincipalUnderTLS() {
        var session = Self.session(from: "10.1.9.9", tls: true)
        #expect(session.line("AUTH PLAIN \(plainCredentials("u", "key"))") == .authenticate(username: "u", password: "key"))
        expectReply(session.authenticationCompleted(.accepted(principal: "tenant-z")), 235, "2.7.0")
        #expect(session.principal == "tenant-z")
        expectReply(session.line("AUTH PLAIN \(plainCredentials("u", "key"))"), 503, "5.5.1")
    }

    @Test func startTLSKeepsTheTrustedPrincipal() {
        var session = Self.session(from: "10.1.9.9")
        if case .replyAndStartTLS = session.line("STARTTLS") {} else { Issue.record("STARTTLS refused") }
        _ = session.tlsEstablished()
        _ = session.line("EHLO app.internal")
        #expect(session.principal == "tenant-a")
    }

    @Test func inboundSessionsIgnoreTrustedNetworks() {
        var configuration = sessionConfiguration()
        configuration.trustedNetworks = Self.networks
        configuration.mode = .inbound(acceptsRecipient: { _ in true })
        let session = SMTPServerSession(configuration: configuration, remoteAddress: "10.1.2.3", tlsActive: false)
        #expect(session.principal == SMTPServerSession.anonymousPrincipal)
    }

    @Test func parsing() throws {
        let parsed = try TrustedNetworks(parsing: " 127.0.0.1=t1 ,192.168.0.0/16=t2,::1=t3, 0.0.0.0/0=t4")
        #expect(parsed.principal(for: "127.0.0.1") == "t1")
        #expect(parsed.principal(for: "127.0.0.2") == "t4")
        #expect(parsed.principal(for: "192.168.44.1") == "t2")
        #expect(parsed.principal(for: "::1") == "t3")
        #expect(parsed.principal(for: "::2") == nil)
        #expect(try TrustedNetworks(parsing: "").isEmpty)
        for bad in ["10.0.0.0/8", "10.0.0.0/33=t", "10.0.0.1/8=t", "example.com/8=t", "10.0.0.0/x=t", "=t", "fd00::/129=t"] {
            #expect(throws: TrustedNetworksError.self, "\(bad)") { try TrustedNetworks(parsing: bad) }
        }
        #expect(throws: TrustedNetworksError.self) { try TrustedNetworks(parsing: "10.0.0.0/8=t") { $0 == "ok" } }
        let hostBits = #expect(throws: TrustedNetworksError.self) { try TrustedNetworks(parsing: "10.0.0.1/8=t") }
        #expect(hostBits?.description.contains("10.0.0.0/8") == true)
    }
}
