// Integration with a real recursive-server implementation: dnsmasq (Debian package dnsmasq-base), started on
// loopback by the test itself.
import DNSClient
import DNSTestServer
import Foundation
import RelayTestSupport
import Testing

/// A dnsmasq process serving a few local records on 127.0.0.1 and a free port.
private final class Dnsmasq {
    let process = Process()
    let address: DNSServerAddress
    private let stderr = Pipe()

    static let searchPaths = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq", "/usr/local/sbin/dnsmasq"]

    init(port: Int, records: [String]) throws {
        guard let binary = Self.searchPaths.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw DnsmasqMissing()
        }
        address = DNSServerAddress(host: "127.0.0.1", port: port)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--pid-file=\(FileManager.default.temporaryDirectory.path)/relay-dnsmasq-\(port).pid",
            "--user=\(NSUserName())", "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces",
            "--log-facility=-", "--local-ttl=60",
            // Names under .test are answered from these records only: NXDOMAIN rather than REFUSED otherwise.
            "--local=/test/",
        ] + records
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr
        try process.run()
    }

    /// What dnsmasq printed, once it has exited.
    var log: String {
        String(decoding: stderr.fileHandleForReading.availableData, as: UTF8.self)
    }

    /// Kills dnsmasq with SIGKILL: it inherits the test runner thread's signal mask, in which SIGTERM may be
    /// blocked, so `Process.terminate()` can leave it running forever.
    /// Never waits for the exit: a wait here would block a Swift concurrency thread (there are only as many as
    /// cores), and Foundation was seen to miss exits, stalling every other test.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
    }
}

private struct DnsmasqMissing: Error, CustomStringConvertible {
    var description: String {
        "dnsmasq not found in \(Dnsmasq.searchPaths.joined(separator: ", ")): install the Debian package "
            + "dnsmasq-base (apt-get install dnsmasq-base) to run the DNS integration tests"
    }
}

/// A port free for UDP and TCP, outside the ephemeral range (see RelayTestSupport.freePort).
private func freePort() async throws -> Int {
    try RelayTestSupport.freePort()
}

@Suite("DNSResolver against dnsmasq")
struct DnsmasqTests {
    @Test func resolvesMailRecordsThroughDnsmasq() async throws {
        let port = try await freePort()
        let dnsmasq = try Dnsmasq(port: port, records: [
            "--mx-host=example.test,mx2.example.test,20",
            "--mx-host=example.test,mx1.example.test,10",
            "--host-record=mx1.example.test,127.0.0.2",
            "--host-record=mx2.example.test,127.0.0.3,::3",
            "--host-record=bare.test,127.0.0.4",
            "--txt-record=example.test,v=spf1 ip4:127.0.0.0/8,-all",
            "--cname=www.example.test,mx1.example.test",
        ])
        defer { dnsmasq.stop() }

        // Poll until dnsmasq answers (it needs a moment to bind); no cache, so each poll really asks.
        let probe = DNSResolver(servers: [dnsmasq.address], timeout: .milliseconds(100),
                                attempts: 1, cacheCapacity: 0)
        var ready = false
        for _ in 0..<100 where !ready {
            try #require(dnsmasq.process.isRunning, "dnsmasq exited: \(dnsmasq.log)")
            ready = (try? await probe.query("mx1.example.test", type: .a)) != nil
        }
        try #require(ready, "dnsmasq on \(dnsmasq.address) did not answer within 10 seconds")

        let resolver = DNSResolver(servers: [dnsmasq.address], timeout: .seconds(2))
        let exchangers = try await resolver.mailExchangers(for: "Example.Test")
        #expect(exchangers == .exchangers([MXRecord(preference: 10, host: "mx1.example.test"),
                                           MXRecord(preference: 20, host: "mx2.example.test")]))
        let mx1 = try await resolver.addresses(of: "mx1.example.test")
        #expect(mx1 == ["127.0.0.2"])
        let mx2 = try await resolver.addresses(of: "mx2.example.test.")
        #expect(mx2 == ["127.0.0.3", "::3"])
        let www = try await resolver.query("www.example.test", type: .a)
        #expect(www.records.map(\.data) == [.a("127.0.0.2")])
        #expect(www.canonicalName == "mx1.example.test")
        let spf = try await resolver.txt("example.test")
        #expect(spf == ["v=spf1 ip4:127.0.0.0/8-all"])
        let implicit = try await resolver.mailExchangers(for: "bare.test")
        #expect(implicit == .implicit("bare.test"))
        let missing = try await resolver.mailExchangers(for: "nonexistent.test")
        #expect(missing == .noSuchDomain)
    }
}
