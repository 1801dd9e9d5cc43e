import Foundation
import RelayCore
import RelayDomains
import RelayStore
import Testing

/// The record-matching rules and the expected records, without DNS.
struct DomainVerifierTests {
    @Test func dkimMatchesOnThePublicKeyIgnoringSpacesAndTagOrder() {
        let expected = "v=DKIM1; k=rsa; p=ABCD"
        #expect(DomainVerifier.dkim(published: [], expected: expected).0 == .notFound)
        #expect(DomainVerifier.dkim(published: ["p=AB CD; v=DKIM1"], expected: expected).0 == .verified)
        #expect(DomainVerifier.dkim(published: ["v=DKIM1;k=rsa;p=ABCD"], expected: expected).0 == .verified)
        let wrong = DomainVerifier.dkim(published: ["v=DKIM1; k=rsa; p=XYZ"], expected: expected)
        #expect(wrong.0 == .mismatch && wrong.1 == "v=DKIM1; k=rsa; p=XYZ")
        #expect(DomainVerifier.dkim(published: ["v=DKIM1; k=ed25519; p=ABCD"], expected: expected).0 == .mismatch,
                "the same bytes as another key type are not our key")
    }

    @Test func spfNeedsExactlyOneRecordWithTheMechanism() {
        #expect(DomainVerifier.spf(published: [], mechanism: "a:relay.test").0 == .notFound)
        #expect(DomainVerifier.spf(published: ["google-site-verification=x"], mechanism: "a:relay.test").0 == .notFound)
        #expect(DomainVerifier.spf(published: ["v=spf1 mx +a:Relay.Test ~all"], mechanism: "a:relay.test").0 == .verified)
        #expect(DomainVerifier.spf(published: ["v=spf1 mx ~all"], mechanism: "a:relay.test").0 == .mismatch)
        #expect(DomainVerifier.spf(published: ["v=spf1 a:relay.test ~all", "v=spf1 mx -all"], mechanism: "a:relay.test").0 == .mismatch,
                "two SPF records are a permanent error for receivers (RFC 7208 §4.5)")
        #expect(DomainVerifier.spf(published: ["v=spf10 a:relay.test"], mechanism: "a:relay.test").0 == .notFound)
    }

    @Test func returnPathAndDMARC() {
        #expect(DomainVerifier.mx(published: ["Relay.Test."], host: "relay.test").0 == .verified)
        #expect(DomainVerifier.mx(published: ["mx.other.test"], host: "relay.test") == (.mismatch, "mx.other.test"))
        #expect(DomainVerifier.mx(published: [], host: "relay.test").0 == .notFound)
        #expect(DomainVerifier.dmarc(published: ["v=DMARC1; p=reject"]).0 == .verified)
        #expect(DomainVerifier.dmarc(published: ["something else"]).0 == .mismatch)
        #expect(DomainVerifier.dmarc(published: []).0 == .notFound)
    }

    @Test func theReturnPathRecordsFollowTheBounceDomainSetting() {
        let key = StoredDKIMKey(selector: "relay202611r", algorithm: "rsa-sha256", sealedPrivateKey: [], sealedWith: "database",
                                publicRecord: "v=DKIM1; k=rsa; p=X", state: .active)
        let own = DomainRecords.expected(domain: "example.com", keys: [key], settings: DomainSettings(hostname: "mx.relay.net"))
        #expect(own.map(\.purpose) == ["dkim", "spf", "return_path", "dmarc"])
        #expect(own[0].name == "relay202611r._domainkey.example.com")
        #expect(own[1].name == "bounces.example.com" && own[1].value == "v=spf1 a:mx.relay.net ~all")
        #expect(own[2].type == "MX" && own[2].value == "mx.relay.net" && own[2].priority == 10)
        let shared = DomainRecords.expected(domain: "example.com", keys: [key],
                                            settings: DomainSettings(hostname: "mx.relay.net", bounceDomain: "bounces.relay.net",
                                                                     spfInclude: "_spf.relay.net"))
        #expect(shared.map(\.purpose) == ["dkim", "spf", "dmarc"])
        #expect(shared[1].name == "example.com" && shared[1].value == "v=spf1 include:_spf.relay.net ~all")
    }

    @Test func keysAreSealedPerDomainAndSelectorAndNamedByMonth() throws {
        let keyring = try DKIMKeyring(secretKeyBase64: Data(repeating: 7, count: 32).base64EncodedString(),
                                      databaseKey: Array(repeating: 1, count: 32))
        let date = Date(timeIntervalSince1970: 1_796_000_000)  // 2026-11
        let keys = try keyring.newKeys(domain: "example.com", date: date, taken: [], state: .active)
        #expect(keys.map(\.selector) == ["relay202611r", "relay202611e"])
        #expect(keys.map(\.algorithm) == ["rsa-sha256", "ed25519-sha256"])
        #expect(keys.allSatisfy { $0.sealedWith.hasPrefix("env:") })
        let again = try keyring.newKeys(domain: "example.com", date: date, taken: Set(keys.map(\.selector)), state: .pending)
        #expect(again.map(\.selector) == ["relay202611r2", "relay202611e2"])
        let opened = try keyring.open(keys[0], domain: "example.com")
        #expect(opened.privateKey.dnsRecord == keys[0].publicRecord)
        #expect(throws: (any Error).self) { try keyring.open(keys[0], domain: "other.com") }
        // Without RELAY_SECRET_KEY the database key seals; a later RELAY_SECRET_KEY still opens those keys.
        let plain = try DKIMKeyring(secretKeyBase64: nil, databaseKey: Array(repeating: 1, count: 32))
        let sealedInDatabase = try plain.newKeys(domain: "example.com", date: date, taken: [], state: .active)
        #expect(sealedInDatabase[1].sealedWith == "database")
        #expect(try keyring.open(sealedInDatabase[1], domain: "example.com").privateKey.dnsRecord == sealedInDatabase[1].publicRecord)
        let otherKey = try DKIMKeyring(secretKeyBase64: Data(repeating: 9, count: 32).base64EncodedString(),
                                       databaseKey: Array(repeating: 1, count: 32))
        #expect(throws: (any Error).self) { try otherKey.open(keys[0], domain: "example.com") }
    }

    @Test func unsubscribeTokensVerifyAndCannotBeForged() {
        let link = UnsubscribeLink(key: Array(repeating: 3, count: 32), baseURL: "https://relay.example.com/")
        let url = link.url(recipientID: 42)
        #expect(url.hasPrefix("https://relay.example.com/unsubscribe/42-"))
        let token = String(url.split(separator: "/").last!)
        #expect(link.recipientID(of: token) == 42)
        #expect(link.recipientID(of: token.uppercased()) == 42)
        #expect(link.recipientID(of: "43-" + token.split(separator: "-")[1]) == nil)
        #expect(link.recipientID(of: String(token.dropLast()) + (token.last == "a" ? "b" : "a")) == nil)
        #expect(UnsubscribeLink(key: Array(repeating: 4, count: 32), baseURL: "").recipientID(of: token) == nil)
        #expect(link.headerFields(recipientID: 42).hasSuffix("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"))
    }
}
