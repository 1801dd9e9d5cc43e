import DNSClient
import DNSTestServer
import RelayTestSupport
import Testing

/// Runs `body` with a fresh test server and a resolver that asks only it. The default timeout is generous: these
/// tests count queries, and a loaded machine (the whole suite starting at once on two cores) answered late enough
/// for a 2 s timeout to send retries that the counts then included.
private func withServer<Result>(
    timeout: Duration = .seconds(15), attempts: Int = 2,
    _ body: (DNSTestServer, DNSResolver) async throws -> Result
) async throws -> Result {
    let server = try await DNSTestServer.start()
    let resolver = DNSResolver(servers: [server.address], timeout: timeout, attempts: attempts)
    do {
        let result = try await body(server, resolver)
        try await server.stop()
        return result
    } catch {
        try await server.stop()
        throw error
    }
}

@Suite("DNSResolver against DNSTestServer")
struct DNSResolverTests {
    @Test func mxRecordsAreSortedByPreference() async throws {
        try await withServer { server, resolver in
            server.set("example.test", [
                .mx(preference: 20, exchange: "mx2.example.test"),
                .mx(preference: 10, exchange: "MX1a.example.test."),
                .mx(preference: 30, exchange: "mx3.example.test"),
                .mx(preference: 10, exchange: "mx1b.example.test"),
            ])
            guard case .exchangers(let hosts) = try await resolver.mailExchangers(for: "Example.Test.") else {
                Issue.record("expected exchangers")
                return
            }
            #expect(hosts.map(\.preference) == [10, 10, 20, 30])
            #expect(Set(hosts.prefix(2).map(\.host)) == ["mx1a.example.test", "mx1b.example.test"])
            #expect(hosts.suffix(2).map(\.host) == ["mx2.example.test", "mx3.example.test"])
        }
    }

    @Test func equalPreferencesAreShuffled() async throws {
        try await withServer { server, resolver in
            let names = (0..<6).map { "mx\($0).shuffle.test" }
            server.set("shuffle.test", names.map { .mx(preference: 5, exchange: $0) }, ttl: 300)
            var orders: Set<[String]> = []
            for _ in 0..<20 {
                if case .exchangers(let hosts) = try await resolver.mailExchangers(for: "shuffle.test") {
                    orders.insert(hosts.map(\.host))
                }
            }
            // 20 draws from 720 orders all equal has probability 720^-19.
            #expect(orders.count > 1)
        }
    }

    @Test(arguments: [
        ("implicit.test", [DNSRecordData.a("127.0.0.5")], MailExchangers.implicit("implicit.test")),
        ("implicit6.test", [.aaaa("::1")], .implicit("implicit6.test")),
        ("null.test", [.mx(preference: 0, exchange: ".")], .nullMX),
        ("textonly.test", [.txt(["hello"])], .noSuchDomain),
        ("missing.test", [], .noSuchDomain),
    ])
    func mailExchangerOutcomes(_ domain: String, _ records: [DNSRecordData], _ expected: MailExchangers) async throws {
        try await withServer { server, resolver in
            if !records.isEmpty { server.set(domain, records) }
            let outcome = try await resolver.mailExchangers(for: domain)
            #expect(outcome == expected)
        }
    }

    @Test func nxdomainIsAResultAndCachedBySOAMinimum() async throws {
        try await withServer { server, resolver in
            let result = try await resolver.query("nowhere.test", type: .a)
            #expect(result.isNXDomain)
            #expect(result.records.isEmpty)
            #expect(result.ttl == 60)
            #expect(try await resolver.addresses(of: "nowhere.test").isEmpty)
            #expect(try await resolver.txt("nowhere.test").isEmpty)
            #expect(server.queryCount == 3)
            _ = try await resolver.query("NOWHERE.test.", type: .a)
            #expect(server.queryCount == 3)
        }
    }

    @Test func nodataForPresentNameWithoutTheType() async throws {
        try await withServer { server, resolver in
            server.set("v4only.test", [.a("127.0.0.9")])
            let result = try await resolver.query("v4only.test", type: .aaaa)
            #expect(result.rcode == .noError)
            #expect(result.records.isEmpty)
            #expect(try await resolver.addresses(of: "v4only.test") == ["127.0.0.9"])
        }
    }

    @Test func servFailIsATemporaryError() async throws {
        try await withServer { server, resolver in
            server.failWithServFail("broken.test")
            let error = await #expect(throws: DNSError.self) { try await resolver.mailExchangers(for: "broken.test") }
            #expect(error?.code == .serverFailure)
            #expect(error?.isTemporary == true)
            #expect(error?.name == "broken.test")
            #expect(error?.type == .mx)
            #expect(server.queryCount == 2, "one query per attempt")
        }
    }

    @Test func droppedQueryTimesOut() async throws {
        try await withServer(timeout: .milliseconds(200), attempts: 2) { server, resolver in
            server.dropQueries(for: "silent.test")
            let start = ContinuousClock.now
            let error = await #expect(throws: DNSError.self) { try await resolver.addresses(of: "silent.test") }
            #expect(error?.code == .timeout)
            #expect(error?.isTemporary == true)
            // A generous bound: it must give up (per-attempt timeouts), not hang; exact timing is for benchmarks.
            #expect(ContinuousClock.now - start < .seconds(15))
            // The server reads on its own event loop: on a loaded machine the second attempts may still be in its
            // socket buffer when the resolver gives up, so wait for them before counting.
            try await waitUntil("the server has read both attempts", timeout: .seconds(10)) { server.queryCount >= 4 }
            #expect(server.queryCount == 4, "A and AAAA, two attempts each")
        }
    }

    @Test func truncatedUDPAnswerIsRetriedOverTCP() async throws {
        try await withServer { server, resolver in
            server.set("big.test", [.a("127.0.0.1"), .aaaa("::2")])
            server.truncateUDP(for: "big.test")
            let addresses = try await resolver.addresses(of: "big.test")
            #expect(Set(addresses) == ["127.0.0.1", "::2"])
            #expect(server.tcpQueryCount == 2)
        }
    }

    @Test func answerLargerThanTheEDNSSizeComesOverTCP() async throws {
        try await withServer { server, resolver in
            let addresses = (1...120).map { "10.0.\($0 / 256).\($0 % 256)" }
            server.set("many.test", addresses.map { .a($0) })
            let result = try await resolver.query("many.test", type: .a)
            #expect(result.records.count == 120)
            #expect(server.tcpQueryCount == 1)
        }
    }

    @Test func answersComeFromTheCacheUntilTheyExpire() async throws {
        try await withServer { server, resolver in
            server.set("cached.test", [.mx(preference: 1, exchange: "mx.cached.test")], ttl: 300)
            server.set("mx.cached.test", [.a("127.0.0.7")], ttl: 300)
            server.set("volatile.test", [.a("127.0.0.8")], ttl: 0)
            _ = try await resolver.mailExchangers(for: "cached.test")
            _ = try await resolver.addresses(of: "mx.cached.test")
            let count = server.queryCount
            for _ in 0..<5 {
                _ = try await resolver.mailExchangers(for: "CACHED.test.")
                #expect(try await resolver.addresses(of: "mx.cached.test") == ["127.0.0.7"])
            }
            #expect(server.queryCount == count)
            let cached = try await resolver.query("cached.test", type: .mx)
            #expect(cached.ttl <= 300 && cached.ttl >= 200, "the remaining TTL counts down from 300")

            _ = try await resolver.query("volatile.test", type: .a)
            _ = try await resolver.query("volatile.test", type: .a)
            #expect(server.queryCount == count + 2, "TTL 0 is not cached")

            resolver.clearCache()
            _ = try await resolver.query("cached.test", type: .mx)
            #expect(server.queryCount == count + 3)
        }
    }

    @Test func cnameChainsAreFollowed() async throws {
        try await withServer { server, resolver in
            server.set("www.alias.test", [.cname("edge.alias.test")], ttl: 120)
            server.set("edge.alias.test", [.cname("origin.alias.test")], ttl: 30)
            server.set("origin.alias.test", [.a("127.0.0.11"), .mx(preference: 5, exchange: "mx.alias.test")])
            server.set("dangling.alias.test", [.cname("gone.alias.test")])
            let result = try await resolver.query("www.alias.test", type: .a)
            #expect(result.records.map(\.data) == [.a("127.0.0.11")])
            #expect(result.canonicalName == "origin.alias.test")
            #expect(result.ttl == 30)
            #expect(try await resolver.mailExchangers(for: "www.alias.test")
                        == .exchangers([MXRecord(preference: 5, host: "mx.alias.test")]))
            let cname = try await resolver.query("www.alias.test", type: .cname)
            #expect(cname.records.map(\.data) == [.cname("edge.alias.test")])
            #expect(try await resolver.query("dangling.alias.test", type: .a).isNXDomain)
        }
    }

    @Test func txtStringsOfARecordAreJoined() async throws {
        try await withServer { server, resolver in
            server.set("spf.test", [.txt(["v=spf1 ", "ip4:127.0.0.1 ", "-all"]), .txt(["other"])])
            let texts = try await resolver.txt("spf.test")
            #expect(Set(texts) == ["v=spf1 ip4:127.0.0.1 -all", "other"])
        }
    }

    @Test func addressLiteralsAreNotLookedUp() async throws {
        try await withServer { server, resolver in
            let v4 = try await resolver.addresses(of: "127.0.0.1")
            let v6 = try await resolver.addresses(of: "2001:DB8:0::1")
            #expect(v4 == ["127.0.0.1"])
            #expect(v6 == ["2001:db8::1"])
            #expect(server.queryCount == 0)
        }
    }

    @Test func invalidNamesFailPermanently() async throws {
        try await withServer { server, resolver in
            let error = await #expect(throws: DNSError.self) { try await resolver.query("a..test", type: .a) }
            #expect(error?.code == .invalidName)
            #expect(error?.isTemporary == false)
            #expect(server.queryCount == 0)
        }
    }

    @Test func silentServerIsSkippedForTheNextOne() async throws {
        let silent = try await DNSTestServer.start()
        let good = try await DNSTestServer.start()
        silent.dropQueries(for: "rotate.test")
        silent.dropQueries(for: "second.test")
        good.set("rotate.test", [.a("127.0.0.3")])
        good.set("second.test", [.a("127.0.0.4")])
        // 3 s per server: 1 s was not always enough for the answering server on a loaded 2-core machine.
        let resolver = DNSResolver(servers: [silent.address, good.address],
                                   timeout: .seconds(3), attempts: 1)
        #expect(try await resolver.query("rotate.test", type: .a).records.map(\.data) == [.a("127.0.0.3")])
        #expect(silent.queryCount == 1)
        // After a timeout the next server is asked first.
        #expect(try await resolver.query("second.test", type: .a).records.map(\.data) == [.a("127.0.0.4")])
        #expect(silent.queryCount == 1)
        try await silent.stop()
        try await good.stop()
    }

    @Test func concurrentIdenticalLookupsShareOneQuery() async throws {
        try await withServer { server, resolver in
            server.set("popular.test", [.a("127.0.0.12")])
            server.truncateUDP(for: "popular.test")  // slower path, so the lookups overlap
            let results = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<8 { group.addTask { try await resolver.addresses(of: "popular.test") } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0 == ["127.0.0.12"] })
            // 8 callers × (A, AAAA) × (UDP, TCP) would be 32 queries; merged, each lookup runs once.
            #expect(server.queryCount == 4)
        }
    }

    @Test func stoppedServerGivesATemporaryError() async throws {
        let server = try await DNSTestServer.start()
        try await server.stop()
        try await server.stop()
        let resolver = DNSResolver(servers: [server.address],
                                   timeout: .milliseconds(200), attempts: 1)
        let error = await #expect(throws: DNSError.self) { try await resolver.query("any.test", type: .a) }
        #expect(error?.isTemporary == true)
    }

    @Test func worksOverIPv6Loopback() async throws {
        let server = try await DNSTestServer.start(host: "::1")
        server.set("six.test", [.aaaa("2001:DB8:0:0::5"), .mx(preference: 1, exchange: "six.test")])
        server.truncateUDP(for: "tcp.six.test")
        server.set("tcp.six.test", [.a("127.0.0.6")])
        let address = try DNSServerAddress(parsing: "[::1]:\(server.address.port)")
        #expect(address == server.address)
        let resolver = DNSResolver(servers: [address], timeout: .seconds(15))
        let six = try await resolver.addresses(of: "six.test")
        #expect(six == ["2001:db8::5"])
        let overTCP = try await resolver.addresses(of: "tcp.six.test")
        #expect(overTCP == ["127.0.0.6"])
        #expect(server.tcpQueryCount == 2)
        try await server.stop()
    }
}
