import Testing
@testable import DNSClient

/// A message and the exact octets it encodes to (with compression) and decodes from.
struct MessageFixture: Sendable, CustomTestStringConvertible {
    var label: String
    var bytes: [UInt8]
    var message: DNSMessage
    var testDescription: String { label }
}

private func record(_ name: String, _ ttl: UInt32, _ data: DNSRecordData) -> DNSResourceRecord {
    DNSResourceRecord(name: name, ttl: ttl, data: data)
}

private let response = DNSHeader(id: 0xBEEF, qr: true, rd: true, ra: true)

let messageFixtures: [MessageFixture] = [
    MessageFixture(
        label: "MX query without EDNS",
        bytes: wire("BEEF 0100 0001 0000 0000 0000  07'example'03'com'00 000F 0001"),
        message: DNSMessage.query(id: 0xBEEF, name: "example.com", type: .mx, ednsPayloadSize: nil)),
    MessageFixture(
        label: "A query with EDNS(0) OPT advertising 1232 octets",
        bytes: wire("1234 0100 0001 0000 0000 0001  04'mail'04'test'00 0001 0001  00 0029 04D0 00000000 0000"),
        message: DNSMessage.query(id: 0x1234, name: "mail.test", type: .a)),
    MessageFixture(
        label: "MX response with compressed owner and exchange names",
        bytes: wire("""
            BEEF 8180 0001 0002 0000 0000
            07'example'03'com'00 000F 0001
            C00C 000F 0001 00000E10 0008 000A 03'mx1' C00C
            C00C 000F 0001 00000E10 0008 0014 03'mx2' C00C
            """),
        message: DNSMessage(
            header: response, questions: [DNSQuestion(name: "example.com", type: .mx)],
            answers: [record("example.com", 3600, .mx(preference: 10, exchange: "mx1.example.com")),
                      record("example.com", 3600, .mx(preference: 20, exchange: "mx2.example.com"))])),
    MessageFixture(
        label: "TXT response with several strings in one record",
        bytes: wire("""
            BEEF 8180 0001 0001 0000 0000
            03'txt'04'test'00 0010 0001
            C00C 0010 0001 0000012C 000C 06'v=spf1' 04'-all'
            """),
        message: DNSMessage(
            header: response, questions: [DNSQuestion(name: "txt.test", type: .txt)],
            answers: [record("txt.test", 300, .txt(["v=spf1", "-all"]))])),
    MessageFixture(
        label: "AAAA response in RFC 5952 text",
        bytes: wire("""
            BEEF 8180 0001 0002 0000 0000
            02'v6'04'test'00 001C 0001
            C00C 001C 0001 0000003C 0010 20010DB8 00000000 00000000 00000001
            C00C 001C 0001 0000003C 0010 20010DB8 00000001 00000000 00000001
            """),
        message: DNSMessage(
            header: response, questions: [DNSQuestion(name: "v6.test", type: .aaaa)],
            answers: [record("v6.test", 60, .aaaa("2001:db8::1")), record("v6.test", 60, .aaaa("2001:db8:0:1::1"))])),
    MessageFixture(
        label: "NXDOMAIN with SOA in the authority section",
        bytes: wire("""
            BEEF 8583 0001 0000 0001 0000
            07'missing'07'example'03'com'00 0001 0001
            C014 0006 0001 00000384 0027 03'ns1' C014 0A'hostmaster' C014
                 00000001 00001C20 00000E10 00093A80 0000012C
            """),
        message: DNSMessage(
            header: DNSHeader(id: 0xBEEF, qr: true, aa: true, rd: true, ra: true, rcode: .nxDomain),
            questions: [DNSQuestion(name: "missing.example.com", type: .a)],
            authorities: [record("example.com", 900, .soa(SOA(
                mname: "ns1.example.com", rname: "hostmaster.example.com", serial: 1, refresh: 7200,
                retry: 3600, expire: 604_800, minimum: 300)))])),
    MessageFixture(
        label: "CNAME chain whose target and data point into the question",
        bytes: wire("""
            BEEF 8180 0001 0002 0000 0000
            03'www'07'example'03'com'00 0001 0001
            C00C 0005 0001 0000012C 0002 C010
            C010 0001 0001 0000012C 0004 5DB8D822
            """),
        message: DNSMessage(
            header: response, questions: [DNSQuestion(name: "www.example.com", type: .a)],
            answers: [record("www.example.com", 300, .cname("example.com")),
                      record("example.com", 300, .a("93.184.216.34"))])),
    MessageFixture(
        label: "unknown type kept as raw RDATA, null MX exchange as root",
        bytes: wire("""
            0007 8180 0001 0002 0000 0000
            01'n'00 000F 0001
            C00C 000F 0001 00000000 0003 0000 00
            C00C 0063 0001 00000001 0003 ABCDEF
            """),
        message: DNSMessage(
            header: DNSHeader(id: 7, qr: true, rd: true, ra: true), questions: [DNSQuestion(name: "n", type: .mx)],
            answers: [record("n", 0, .mx(preference: 0, exchange: ".")),
                      record("n", 1, .other(type: 99, [0xAB, 0xCD, 0xEF]))])),
]

@Suite("DNS message wire format")
struct DNSMessageTests {
    @Test(arguments: messageFixtures)
    func decodes(_ fixture: MessageFixture) throws {
        #expect(try DNSMessage(decoding: fixture.bytes) == fixture.message)
    }

    @Test(arguments: messageFixtures)
    func encodes(_ fixture: MessageFixture) {
        #expect(fixture.message.encode() == fixture.bytes)
    }

    @Test(arguments: messageFixtures)
    func roundTripsWithoutCompression(_ fixture: MessageFixture) throws {
        let plain = fixture.message.encode(compressNames: false)
        #expect(try DNSMessage(decoding: plain) == fixture.message)
        #expect(plain.count >= fixture.bytes.count)
    }

    @Test func uncompressedEncodingRepeatsNames() {
        let message = DNSMessage(header: response, questions: [DNSQuestion(name: "a.b", type: .cname)],
                                 answers: [record("a.b", 5, .cname("c.b"))])
        #expect(message.encode(compressNames: false) == wire("""
            BEEF 8180 0001 0001 0000 0000  01'a'01'b'00 0005 0001
            01'a'01'b'00 0005 0001 00000005 0005 01'c'01'b'00
            """))
    }

    @Test func extendedResponseCodeCombinesOPTBits() throws {
        // BADVERS (16): header rcode 0, OPT extended rcode 1 (RFC 6891 §6.1.3).
        let message = try DNSMessage(decoding: wire("0001 8100 0000 0000 0000 0001  00 0029 04D0 01000000 0000"))
        #expect(message.responseCode.rawValue == 16)
    }

    @Test func longTXTStringsAreSplitAt255Octets() throws {
        let long = String(repeating: "x", count: 300)
        let message = DNSMessage(header: response, answers: [record("t", 1, .txt([long]))])
        let decoded = try DNSMessage(decoding: message.encode())
        #expect(decoded.answers.first?.data == .txt([String(repeating: "x", count: 255), String(repeating: "x", count: 45)]))
    }

    @Test func namesWithEscapedOctetsRoundTrip() throws {
        let message = DNSMessage.query(id: 1, name: "a\\.b.c\\032d", type: .txt)
        let bytes = message.encode()
        #expect(Array(bytes[12..<(12 + 9)]) == wire("03'a.b' 03'c d' 00"))
        #expect(try DNSMessage(decoding: bytes).questions.first?.name == "a\\.b.c\\032d")
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        var label: String
        var bytes: [UInt8]
        var testDescription: String { label }
    }

    @Test(arguments: [
        Malformed(label: "empty", bytes: []),
        Malformed(label: "truncated header", bytes: wire("1234 8180 0001")),
        Malformed(label: "question count beyond the data", bytes: wire("1234 8180 0001 0000 0000 0000")),
        Malformed(label: "pointer to itself", bytes: wire("1234 8180 0001 0000 0000 0000 C00C 0001 0001")),
        Malformed(label: "two pointers in a loop",
                  bytes: wire("1234 8180 0001 0000 0000 0000 01'a' C010 C00C 0001 0001")),
        Malformed(label: "forward pointer out of bounds",
                  bytes: wire("1234 8180 0001 0000 0000 0000 C0FF 0001 0001")),
        Malformed(label: "label length 64 (reserved label type 01)",
                  bytes: wire("1234 8180 0001 0000 0000 0000 40") + Array(repeating: 0x61, count: 64) + wire("00 0001 0001")),
        Malformed(label: "label running past the end", bytes: wire("1234 8180 0001 0000 0000 0000 07'exa'")),
        Malformed(label: "name over 255 octets",
                  bytes: wire("1234 8180 0001 0000 0000 0000")
                      + (0..<4).flatMap { _ in [63] + Array(repeating: UInt8(0x61), count: 63) } + wire("00 0001 0001")),
        Malformed(label: "A record with 5 octets of RDATA",
                  bytes: wire("1234 8180 0000 0001 0000 0000 00 0001 0001 00000001 0005 0102030405")),
        Malformed(label: "RDLENGTH past the end",
                  bytes: wire("1234 8180 0000 0001 0000 0000 00 0001 0001 00000001 0004 0102")),
        Malformed(label: "MX exchange overrunning RDLENGTH",
                  bytes: wire("1234 8180 0000 0001 0000 0000 00 000F 0001 00000001 0003 000A 03'mx1' 00")),
        Malformed(label: "TXT string overrunning RDLENGTH",
                  bytes: wire("1234 8180 0000 0001 0000 0000 00 0010 0001 00000001 0003 05'abcde'")),
        Malformed(label: "answer count beyond the data",
                  bytes: wire("1234 8180 0000 0002 0000 0000 00 0001 0001 00000001 0004 01020304")),
    ])
    func rejects(_ input: Malformed) {
        #expect {
            try DNSMessage(decoding: input.bytes)
        } throws: { error in
            (error as? DNSError)?.code == .malformedResponse
        }
    }

    /// A poor man's fuzzer: mutated fixtures must decode or throw, never trap or hang.
    @Test func mutatedMessagesNeverTrap() {
        var generator = SplitMix64(seed: 0x5EED)
        var decoded = 0
        for round in 0..<20_000 {
            var bytes = messageFixtures[round % messageFixtures.count].bytes
            for _ in 0...Int(generator.next() % 4) {
                let position = Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 3 {
                case 0: bytes[position] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes.removeSubrange(position...)
                default: bytes[position] = 0xC0
                }
                if bytes.isEmpty { break }
            }
            if let message = try? DNSMessage(decoding: bytes) {
                decoded += 1
                _ = message.encode()
            }
        }
        #expect(decoded > 0)
    }
}

/// A small deterministic generator so the mutation test is repeatable.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
