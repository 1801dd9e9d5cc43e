import Foundation
import PostgresNIO
import RelayStore
import RelayTestSupport
import Testing

/// The DKIM key life cycle in SQL: a verified pending key activates and retires the key it replaces, a DNS
/// failure keeps the last status, retired keys go after their grace, and the re-check is shared by nodes.
struct DomainStoreTests {
    static func key(_ selector: String, _ algorithm: String, _ state: DKIMKeyState) -> StoredDKIMKey {
        StoredDKIMKey(selector: selector, algorithm: algorithm, sealedPrivateKey: [1, 2, 3], sealedWith: "database",
                      publicRecord: "v=DKIM1; p=\(selector)", state: state)
    }

    static func states(_ database: RelayDatabase, _ tenant: UUID) async throws -> [String: (DKIMKeyState, DNSRecordStatus)] {
        let domain = try #require(try await database.domain(tenantID: tenant, name: "example.com"))
        return Dictionary(uniqueKeysWithValues: domain.keys.map { ($0.selector, ($0.state, $0.dnsStatus)) })
    }

    @Test func aVerifiedRotationActivatesAndRetiresTheKeyItReplaces() async throws {
        try await withMigratedStore { database, tenant in
            _ = try await database.addDomain(tenantID: tenant, name: "example.com",
                                             keys: [Self.key("old-r", "rsa-sha256", .active), Self.key("old-e", "ed25519-sha256", .active)])
            func check(_ statuses: [(String, DNSRecordStatus)]) async throws {
                try await database.recordDomainCheck(tenantID: tenant, domain: "example.com", DomainCheckResult(
                    keys: statuses.map { ($0.0, $0.1, nil) }, checksJSON: "{}", rotationGrace: .seconds(3600)))
            }
            try await check([("old-r", .verified), ("old-e", .notFound)])
            #expect(try await database.domainStanding(tenantID: tenant, name: "example.com") == (true, true))

            try await database.addDKIMKeys(tenantID: tenant, domain: "example.com",
                                           keys: [Self.key("new-r", "rsa-sha256", .pending), Self.key("new-e", "ed25519-sha256", .pending)])
            await #expect(throws: StoreError.self) {
                try await database.addDKIMKeys(tenantID: tenant, domain: "example.com", keys: [Self.key("x", "rsa-sha256", .pending)])
            }
            // Only the RSA record is published: the new RSA key takes over, the Ed25519 rotation keeps waiting.
            try await check([("old-r", .verified), ("old-e", .notFound), ("new-r", .verified), ("new-e", .notFound)])
            var states = try await Self.states(database, tenant)
            #expect(states["new-r"]?.0 == .active && states["old-r"]?.0 == .retiring)
            #expect(states["new-e"]?.0 == .pending && states["old-e"]?.0 == .active)
            let signing = try await database.signingKeys(tenantID: tenant, domain: "news.example.com")
            #expect(signing.domain == "example.com", "a subdomain signs with its registered parent's keys")
            #expect(Set(signing.keys.map(\.selector)) == ["new-r", "old-e"])

            // A DNS failure says nothing: statuses stay, the domain stays verified.
            try await check([("new-r", .error), ("old-e", .error), ("new-e", .error), ("old-r", .error)])
            states = try await Self.states(database, tenant)
            #expect(states["new-r"]?.1 == .verified)
            #expect(try await database.domainStanding(tenantID: tenant, name: "example.com").verified)

            // The record vanishing is a real answer: not verified any more.
            try await check([("new-r", .notFound), ("old-e", .notFound), ("new-e", .notFound), ("old-r", .notFound)])
            #expect(try await database.domainStanding(tenantID: tenant, name: "example.com").verified == false)

            // Retired keys go once their grace is over, not before.
            #expect(try await database.pruneRetiredDKIMKeys() == 0)
            try await database.client.query("UPDATE dkim_keys SET retire_at = now() - interval '1 second' WHERE state = 'retiring'",
                                             logger: .init(label: "test"))
            #expect(try await database.pruneRetiredDKIMKeys() == 1)
            #expect(try await Self.states(database, tenant)["old-r"] == nil)
        }
    }

    @Test func theRecheckClaimsEachDueDomainOnceAcrossConcurrentCallers() async throws {
        try await withMigratedStore { database, tenant in
            for index in 0..<30 {
                _ = try await database.addDomain(tenantID: tenant, name: "d\(index).example.com", keys: [])
            }
            let claimed = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<3 {
                    group.addTask { try await database.claimDomainsForRecheck(olderThan: .seconds(3600), limit: 20).map(\.name) }
                }
                return try await group.reduce(into: [String]()) { $0 += $1 }
            }
            #expect(claimed.count == 30 && Set(claimed).count == 30, "every domain once: \(claimed.count)")
            #expect(try await database.claimDomainsForRecheck(olderThan: .seconds(3600), limit: 20).isEmpty,
                    "checked just now: not due again within the interval")
        }
    }
}
