import Testing
@testable import DNSClient

@Suite("Names, IP address text and server addresses")
struct DNSNameAndAddressTests {
    @Test(arguments: [
        ("Example.COM.", "example.com"),
        ("example.com", "example.com"),
        (".", "."),
        ("", "."),
        ("MX1.Example.Test", "mx1.example.test"),
        ("a\\.B.c", "a\\.b.c"),
        ("\\065bc.test", "abc.test"),
    ])
    func canonicalForm(_ text: String, _ expected: String) throws {
        #expect(try DNSName.canonical(text) == expected)
    }

    @Test(arguments: [
        "a..b", ".a", "a\\", "a\\25", "a\\256.b",
        String(repeating: "x", count: 64) + ".test",
        Array(repeating: String(repeating: "x", count: 63), count: 4).joined(separator: "."),
    ])
    func invalidNames(_ text: String) {
        #expect {
            try DNSName.labels(text)
        } throws: { error in
            (error as? DNSError)?.code == .invalidName && (error as? DNSError)?.isTemporary == false
        }
    }

    @Test func namesCompareCaseInsensitively() {
        #expect(DNSName.equal("Example.COM.", "example.com"))
        #expect(!DNSName.equal("example.com", "example.org"))
        #expect(!DNSName.equal("a.example.com", "example.com"))
    }

    /// RFC 5952 §4 and §5 examples.
    @Test(arguments: [
        ("2001:0db8:0000:0000:0000:0000:0002:0001", "2001:db8::2:1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("2001:db8:0:0:1:0:0:0", "2001:db8:0:0:1::"),
        ("2001:DB8::A", "2001:db8::a"),
        ("0:0:0:0:0:0:0:0", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
        ("::ffff:c000:0201", "::ffff:192.0.2.1"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    ])
    func ipv6Text(_ input: String, _ expected: String) throws {
        let octets = try #require(IPAddressText.parseIPv6(input))
        #expect(IPAddressText.formatIPv6(octets) == expected)
    }

    @Test(arguments: ["1:2:3:4:5:6:7:8:9", "::1::", "12345::", "g::1", "1:2:3:4:5:6:7", ":1", "1.2.3.4", "",
                      "::1.2.3", "1:2:3:4:5:6:7::1.2.3.4"])
    func invalidIPv6(_ input: String) {
        #expect(IPAddressText.parseIPv6(input) == nil)
    }

    @Test(arguments: ["1.2.3", "01.2.3.4", "256.1.1.1", "1.2.3.4.5", "a.b.c.d", "1..2.3", " 1.2.3.4"])
    func invalidIPv4(_ input: String) {
        #expect(IPAddressText.parseIPv4(input) == nil)
    }

    @Test(arguments: [
        ("8.8.8.8", "8.8.8.8", 53),
        ("127.0.0.1:5353", "127.0.0.1", 5353),
        ("::1", "::1", 53),
        ("[::1]", "::1", 53),
        ("[2001:db8::1]:5300", "2001:db8::1", 5300),
        (" 10.0.0.1 ", "10.0.0.1", 53),
    ])
    func parsesServerAddress(_ text: String, _ host: String, _ port: Int) throws {
        #expect(try DNSServerAddress(parsing: text) == DNSServerAddress(host: host, port: port))
    }

    @Test(arguments: ["example.com", "1.2.3.4:0", "1.2.3.4:70000", "[::1", "[::1]x", "[::1]:", "", "1.2.3.4:53x",
                      "[1.2.3.4]:53"])
    func rejectsServerAddress(_ text: String) {
        #expect(throws: DNSError.self) { try DNSServerAddress(parsing: text) }
    }

    @Test func serverAddressDescriptionBracketsIPv6() {
        #expect(DNSServerAddress(host: "::1", port: 53).description == "[::1]:53")
        #expect(DNSServerAddress(host: "1.2.3.4", port: 5353).description == "1.2.3.4:5353")
    }

    @Test func readsNameserverLinesOfResolvConf() {
        let conf = """
            # generated
            search example.com
            nameserver 10.0.0.1
            nameserver\t::1
            nameserver fe80::1%eth0
            options attempts:2
            """
        #expect(DNSServerAddress.systemDefault(resolvConf: conf) == [
            DNSServerAddress(host: "10.0.0.1"), DNSServerAddress(host: "::1"),
        ])
        #expect(DNSServerAddress.systemDefault(resolvConf: "search x\n") == [DNSServerAddress(host: "127.0.0.1")])
        #expect(!DNSServerAddress.systemDefault().isEmpty)
    }

    @Test func errorDescriptionNamesTheLookup() {
        let error = DNSError(code: .timeout, name: "example.com", type: .mx, detail: "no answer from 127.0.0.1:53")
        #expect(error.description == "DNS timeout looking up MX example.com: no answer from 127.0.0.1:53")
        #expect(error.isTemporary)
        #expect(!DNSError(code: .nxdomain).isTemporary)
    }
}
