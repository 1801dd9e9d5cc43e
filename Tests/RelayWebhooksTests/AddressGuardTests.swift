import RelayWebhooks
import Testing

@Suite struct AddressGuardTests {
    /// Every non-public range, in the spellings an attacker would try.
    @Test(arguments: [
        ("127.0.0.1", "loopback"), ("127.255.1.2", "loopback"), ("::1", "loopback"), ("[::1]", "loopback"),
        ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"), ("169.254.0.1", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
        ("febf::1", "link-local"), ("100.64.0.1", "shared (CGNAT)"), ("100.127.255.254", "shared (CGNAT)"),
        ("0.0.0.0", "this-network"), ("0.1.2.3", "this-network"), ("::", "unspecified"),
        ("fc00::1", "unique-local"), ("fd12:3456::1", "unique-local"), ("224.0.0.1", "multicast"), ("239.1.1.1", "multicast"),
        ("ff02::1", "multicast"), ("255.255.255.255", "reserved"), ("240.0.0.1", "reserved"),
        // IPv4-mapped, -compatible, NAT64 and 6to4 forms reach the IPv4 address inside.
        ("::ffff:127.0.0.1", "loopback"), ("::ffff:7f00:1", "loopback"), ("[::ffff:169.254.169.254]", "link-local"),
        ("::ffff:10.0.0.1", "private"), ("::127.0.0.1", "loopback"), ("64:ff9b::10.0.0.1", "private"),
        ("2002:c0a8:0101::1", "private"),
        // Decimal, hex, octal and short IPv4 spellings.
        ("2130706433", "loopback"), ("0x7f000001", "loopback"), ("0x7f.0.0.1", "loopback"), ("0177.0.0.1", "loopback"),
        ("127.1", "loopback"), ("017700000001", "loopback"), ("0xa9.0xfe.0xa9.0xfe", "link-local"), ("3232235777", "private"),
    ])
    func refusesNonPublicAddresses(host: String, range: String) throws {
        let address = try #require(IPAddress(host), "\(host) parses as an address")
        #expect(AddressGuard.restrictedRange(address) == range, "\(host)")
    }

    @Test(arguments: ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.15.255.255", "172.32.0.1", "100.63.255.255", "100.128.0.1",
                      "169.253.1.1", "2606:4700:4700::1111", "2001:db8::1", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "192.169.0.1"])
    func allowsPublicAddresses(host: String) throws {
        let address = try #require(IPAddress(host))
        #expect(AddressGuard.restrictedRange(address) == nil, "\(host)")
    }

    @Test(arguments: ["example.com", "hooks.example.org", "deadbeef", "1.cafe", "1e100.net", "", "127.0.0.1 x", "[bad]"])
    func namesAreNotAddresses(host: String) {
        #expect(IPAddress(host) == nil, "\(host)")
    }

    @Test func localhostNamesAreLocal() {
        #expect(AddressGuard.isLocalName("localhost"))
        #expect(AddressGuard.isLocalName("LOCALHOST."))
        #expect(AddressGuard.isLocalName("api.localhost"))
        #expect(!AddressGuard.isLocalName("localhost.example.com"))
    }

    @Test func theTargetCheckRefusesPrivateLiteralsAndLocalhostUnlessAllowed() async throws {
        let guarded = WebhookTargetCheck(allowPrivate: false)
        for url in ["http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]/",
                    "http://2130706433/", "http://localhost/", "https://0x7f.1/"] {
            guard case .refused(let reason) = await guarded.check(try WebhookURL(url)) else {
                Issue.record("\(url) was allowed")
                continue
            }
            #expect(reason.contains("private address"), "\(url): \(reason)")
        }
        #expect(await guarded.check(try WebhookURL("https://93.184.216.34/hook")) == .allowed(pinned: IPAddress("93.184.216.34")))
        #expect(await WebhookTargetCheck(allowPrivate: true).check(try WebhookURL("http://127.0.0.1/")) == .allowed(pinned: nil))
    }

    @Test func urlSyntax() throws {
        let url = try WebhookURL("https://hooks.example.com/relay?x=1")
        #expect(url.host == "hooks.example.com")
        #expect(url.port == 443)
        #expect(try WebhookURL("http://[2001:db8::1]:8080/").host == "2001:db8::1")
        for bad in ["ftp://example.com/", "example.com/hook", "http:///path", "http://user:pass@example.com/",
                    "http://user@example.com/", "https://exa mple.com/", "", "javascript:alert(1)"] {
            #expect(throws: WebhookURL.Problem.self, "\(bad)") { try WebhookURL(bad) }
        }
    }
}
