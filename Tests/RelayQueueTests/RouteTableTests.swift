import Foundation
import Logging
import RelayCore
import SMTPClient
import Synchronization
import Testing

@testable import RelayQueue

/// Smarthost route matching and the per-node route cache: which route a recipient domain gets, and when the
/// database copy is read again. No database: the table is given a loader.
@Suite struct RouteTableTests {
    static func route(_ pattern: String, host: String? = nil) -> SMTPRoute {
        SMTPRoute(id: pattern, pattern: RouteDomainPattern(pattern)!, host: host ?? "smtp.\(pattern.replacingOccurrences(of: "*", with: "any"))",
                  port: 587)
    }

    static let env = SMTPRoute(id: "env", pattern: .any, host: "env.smarthost.test", port: 2525)
    static let routes = ["*", "*.example.org", "*.eu.example.org", "example.org", "mail.eu.example.org"].map { route($0) }

    // MARK: Patterns

    @Test(arguments: [
        ("example.org", "example.org"), ("Example.ORG", "example.org"), ("*.example.org", "*.example.org"),
        ("*", "*"), ("*.org", "*.org"), ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ])
    func validPatterns(text: String, normalized: String) {
        #expect(RouteDomainPattern(text)?.description == normalized)
    }

    @Test(arguments: ["", "org", "**", "*.", "*.*.example.org", "ex ample.org", "example..org", "-a.example.org",
                      "a*.example.org", "example.org.", "user@example.org", "[127.0.0.1]", "*example.org"])
    func invalidPatterns(text: String) {
        #expect(RouteDomainPattern(text) == nil)
    }

    @Test func wildcardMatchesSubdomainsOnlyNotTheApex() {
        let pattern = RouteDomainPattern("*.example.org")!
        #expect(pattern.matches("a.example.org"))
        #expect(pattern.matches("deep.a.example.org"))
        #expect(pattern.matches("A.Example.Org."))
        #expect(!pattern.matches("example.org"))
        #expect(!pattern.matches("badexample.org"))
        #expect(!pattern.matches("example.org.evil.test"))
    }

    // MARK: Precedence

    @Test(arguments: [
        ("example.org", "example.org"),                    // exact beats every wildcard
        ("mail.eu.example.org", "mail.eu.example.org"),    // exact beats the longer wildcard
        ("smtp.eu.example.org", "*.eu.example.org"),       // the longest suffix wins
        ("a.b.eu.example.org", "*.eu.example.org"),
        ("eu.example.org", "*.example.org"),               // *.eu… does not cover its own apex
        ("www.example.org", "*.example.org"),
        ("example.com", "*"),                              // * is the last resort
        ("[127.0.0.1]", "*"),
    ])
    func mostSpecificRouteWins(domain: String, expected: String) {
        #expect(SMTPRoute.select(for: domain, among: Self.routes, fallback: Self.env)?.id == expected)
        #expect(SMTPRoute.select(for: domain, among: Self.routes.reversed())?.id == expected, "order does not matter")
    }

    @Test func relaySmarthostOnlyWhenNoDatabaseRouteMatches() {
        let some = [Self.route("*.example.org"), Self.route("example.net")]
        #expect(SMTPRoute.select(for: "a.example.org", among: some, fallback: Self.env)?.id == "*.example.org")
        #expect(SMTPRoute.select(for: "example.com", among: some, fallback: Self.env)?.id == "env")
        #expect(SMTPRoute.select(for: "example.com", among: some) == nil, "no route: MX delivery")
        #expect(SMTPRoute.select(for: "example.com", among: []) == nil)
    }

    // MARK: Hosts and credentials

    @Test(arguments: [("Smtp.Example.COM", "smtp.example.com"), ("postfix", "postfix"), ("192.0.2.1", "192.0.2.1"),
                      ("[2001:db8::1]", "2001:db8::1"), ("::1", "::1"), ("mail.example.com.", "mail.example.com")])
    func hostsNormalise(text: String, host: String) {
        #expect(SMTPRoute.normalizedHost(text) == host)
    }

    @Test(arguments: ["", "a b", "host:25", "256.1.1.1", "01.2.3.4", "1234", "smtp_example.com", "[nope]", "-x.example.com"])
    func badHostsAreRefused(text: String) {
        #expect(SMTPRoute.normalizedHost(text) == nil)
    }

    @Test func credentialsComeTogetherAndOnlyWithTLS() {
        #expect(SMTPRoute.credentialProblem(username: "u", password: nil, tls: .startTLS)?.field == "password")
        #expect(SMTPRoute.credentialProblem(username: nil, password: "p", tls: .implicit)?.field == "username")
        #expect(SMTPRoute.credentialProblem(username: "u", password: "p", tls: RouteTLS.none)?.field == "tls")
        #expect(SMTPRoute.credentialProblem(username: "u", password: "p", tls: .implicit) == nil)
        #expect(SMTPRoute.credentialProblem(username: nil, password: nil, tls: RouteTLS.none) == nil)
    }

    @Test func clientSettingsFollowTheRoute() {
        var base = SMTPClientConfiguration(heloName: "relay.test")
        base.plaintextFallbackOnTLSFailure = true
        let route = SMTPRoute(id: "r", pattern: .any, host: "h.test", port: 465, username: "u", password: "p",
                              tls: .implicit, verifyCertificate: false)
        let smtp = route.clientConfiguration(base: base, trustRootsFile: "/ca.pem")
        #expect(smtp.tlsMode == .implicit)
        #expect(smtp.credentials == SMTPCredentials(username: "u", password: "p"))
        #expect(!smtp.verifyCertificates)
        #expect(!smtp.plaintextFallbackOnTLSFailure)
        #expect(smtp.additionalTrustRootsFile == "/ca.pem")
        #expect(smtp.heloName == "relay.test")
        let destination = DeliveryDestination.smarthost(route, configuration: WorkerConfiguration(nodeID: UUID(), smtp: base))
        #expect(destination.port == 465)
        #expect(destination.route == "r")
        #expect(DeliveryDestination.mx(WorkerConfiguration(nodeID: UUID(), smtp: base)).route == "")
    }

    // MARK: The cache

    final class Loader: Sendable {
        let entries = Mutex<[RouteTable.Entry]>([])
        let loads = Atomic<Int>(0)
        let failing = Atomic<Bool>(false)

        func load() throws -> [RouteTable.Entry] {
            loads.add(1, ordering: .relaxed)
            if failing.load(ordering: .relaxed) { throw CancellationError() }
            return entries.withLock { $0 }
        }
    }

    @Test func databaseRoutesAreCachedForTheCacheTime() async throws {
        let loader = Loader()
        loader.entries.withLock { $0 = [.init(route: Self.route("*.example.org"))] }
        let table = RouteTable(fallback: Self.env, cacheTime: .seconds(3600), logger: Logger(label: "test")) { try loader.load() }
        #expect(await table.lookup("a.example.org") == .route(Self.route("*.example.org")))
        #expect(await table.lookup("example.com") == .route(Self.env))
        loader.entries.withLock { $0 = [] }
        #expect(await table.lookup("a.example.org") == .route(Self.route("*.example.org")), "still the cached copy")
        #expect(loader.loads.load(ordering: .relaxed) == 1)
    }

    @Test func aChangeIsSeenAfterTheCacheTime() async throws {
        let loader = Loader()
        loader.entries.withLock { $0 = [.init(route: Self.route("example.org"))] }
        let table = RouteTable(fallback: nil, cacheTime: .zero, logger: Logger(label: "test")) { try loader.load() }
        #expect(await table.lookup("example.org") == .route(Self.route("example.org")))
        loader.entries.withLock { $0 = [] }
        #expect(await table.lookup("example.org") == .mx)
    }

    @Test func aFailedReadKeepsTheLastCopyAndWithoutOneDefers() async throws {
        let loader = Loader()
        loader.failing.store(true, ordering: .relaxed)
        let table = RouteTable(fallback: nil, cacheTime: .zero, logger: Logger(label: "test")) { try loader.load() }
        guard case .unavailable(let detail) = await table.lookup("example.org") else {
            Issue.record("with no copy the delivery must wait, not go to the MX")
            return
        }
        #expect(detail.hasPrefix("the smarthost routes could not be read"))
        loader.failing.store(false, ordering: .relaxed)
        loader.entries.withLock { $0 = [.init(route: Self.route("example.org"))] }
        #expect(await table.lookup("example.org") == .route(Self.route("example.org")))
        loader.failing.store(true, ordering: .relaxed)
        #expect(await table.lookup("example.org") == .route(Self.route("example.org")), "the last good copy")
    }

    @Test func aRouteWhosePasswordDoesNotOpenDefers() async throws {
        let table = RouteTable(fallback: Self.env, cacheTime: .seconds(60), logger: Logger(label: "test")) {
            [.init(route: Self.route("example.org"), problem: "the route for example.org cannot be used: sealed with another key")]
        }
        #expect(await table.lookup("example.org") == .unavailable("the route for example.org cannot be used: sealed with another key"))
        #expect(await table.lookup("example.com") == .route(Self.env))
    }

    @Test func withoutDatabaseRoutesOnlyTheEnvironmentRoute() async {
        let table = RouteTable(fallback: Self.env, logger: Logger(label: "test"))
        #expect(await table.lookup("anything.test") == .route(Self.env))
        #expect(await RouteTable(fallback: nil, logger: Logger(label: "test")).lookup("anything.test") == .mx)
    }
}
