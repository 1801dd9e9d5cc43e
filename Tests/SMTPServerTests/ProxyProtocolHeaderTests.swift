import SMTPServer
import Testing

/// PROXY protocol v1 and v2 headers (haproxy.org proxy-protocol.txt) as the SMTP listeners read them.
struct ProxyProtocolHeaderTests {
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    @Test func versionOneLines() {
        let tcp4 = Array("PROXY TCP4 203.0.113.7 192.0.2.1 56324 587\r\nEHLO x\r\n".utf8)
        #expect(ProxyProtocolHeader.parse(tcp4) == .header(source: "203.0.113.7", length: 44))
        let tcp6 = Array("PROXY TCP6 2001:db8::7 2001:db8::1 56324 25\r\n".utf8)
        #expect(ProxyProtocolHeader.parse(tcp6) == .header(source: "2001:db8::7", length: tcp6.count))
        #expect(ProxyProtocolHeader.parse(Array("PROXY UNKNOWN\r\n".utf8)) == .header(source: nil, length: 15))
        // Byte by byte, the header is incomplete until its CRLF.
        for end in 1..<44 { #expect(ProxyProtocolHeader.parse(tcp4[0..<end]) == .incomplete, "\(end) bytes") }
    }

    @Test(arguments: [
        "EHLO client.test\r\n", "PROXY TCP4 203.0.113.7 192.0.2.1 56324\r\n", "PROXY TCP4 203.0.113.300 192.0.2.1 1 2\r\n",
        "PROXY TCP4 203.0.113.7 192.0.2.1 1 99999\r\n", "PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n",
        "PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n", "PROXY TCP4 a b 1 2\r\n",
        // Found by the fuzzer: Int() accepts signs, so these once passed as addresses and ports.
        "PROXY TCP4 203.0.-13.7 192.0.2.1 56324 587\r\n", "PROXY TCP4 203.0.+13.7 192.0.2.1 1 2\r\n",
        "PROXY TCP4 203.0.113.7 192.0.2.1 +1 2\r\n", "PROXY TCP4 203.0.113.7 192.0.2.1 1 -0\r\n",
        "PROXY TCP6 2001:db8::\u{FF21} 2001:db8::1 1 2\r\n",
        "PROXY TCP4 00203.0.113.7 192.0.2.1 1 2\r\n", "PROXY TCP4 203.0.113.7 192.0.2.1 000001 2\r\n",
    ])
    func invalidVersionOneLines(text: String) {
        guard case .invalid = ProxyProtocolHeader.parse(Array(text.utf8)) else {
            Issue.record("accepted \(text.debugDescription)")
            return
        }
    }

    @Test func aVersionOneLineWithoutItsEndIsRefusedAfter107Bytes() {
        let long = Array(("PROXY TCP6 " + String(repeating: "f", count: 100)).utf8)
        guard case .invalid = ProxyProtocolHeader.parse(long) else {
            Issue.record("accepted an endless line")
            return
        }
    }

    @Test func versionTwoHeaders() {
        // PROXY command, TCP over IPv4: 203.0.113.7:56324 → 192.0.2.1:587.
        let v4 = Self.v2Signature + [0x21, 0x11, 0x00, 0x0C, 203, 0, 113, 7, 192, 0, 2, 1, 0xDC, 0x04, 0x02, 0x4B]
        #expect(ProxyProtocolHeader.parse(v4 + [0x16, 0x03]) == .header(source: "203.0.113.7", length: 28))
        for end in 1..<28 { #expect(ProxyProtocolHeader.parse(v4[0..<end]) == .incomplete, "\(end) bytes") }
        // IPv6 with a TLV after the addresses (the length covers it).
        var v6 = Self.v2Signature + [0x21, 0x21, 0x00, 0x28]
        v6 += [0x20, 0x01, 0x0D, 0xB8] + Array(repeating: 0, count: 11) + [0x07]
        v6 += Array(repeating: 0, count: 16) + [0, 1, 0, 2] + [0x04, 0x00, 0x01, 0x00]
        #expect(ProxyProtocolHeader.parse(v6) == .header(source: "2001:db8:0:0:0:0:0:7", length: 56))
        // LOCAL (the proxy's own health check): no client address.
        let local = Self.v2Signature + [0x20, 0x00, 0x00, 0x00]
        #expect(ProxyProtocolHeader.parse(local) == .header(source: nil, length: 16))
        // Version 3, an unknown command, a truncated IPv4 block.
        guard case .invalid = ProxyProtocolHeader.parse(Self.v2Signature + [0x31, 0x11, 0x00, 0x00]),
              case .invalid = ProxyProtocolHeader.parse(Self.v2Signature + [0x22, 0x11, 0x00, 0x00]),
              case .invalid = ProxyProtocolHeader.parse(Self.v2Signature + [0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]),
              case .invalid = ProxyProtocolHeader.parse([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0B])
        else {
            Issue.record("a malformed v2 header was accepted")
            return
        }
    }
}
