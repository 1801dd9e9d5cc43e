/// The PROXY protocol header a load balancer (HAProxy `send-proxy` / `send-proxy-v2`) sends before any SMTP
/// byte, carrying the real client's address (haproxy.org/download/2.9/doc/proxy-protocol.txt). Pure parsing.
public enum ProxyProtocolHeader {
    /// What the first bytes of a connection say.
    public enum Parsed: Equatable, Sendable {
        /// Not enough bytes yet to decide.
        case incomplete
        /// A complete header of `length` bytes; `source` is the client's address, or nil for a header that carries
        /// none (v1 `UNKNOWN`, v2 `LOCAL` such as a health check, or an address family other than IPv4/IPv6):
        /// then the connection's own peer address stands.
        case header(source: String?, length: Int)
        /// Not a PROXY header, or a malformed one: the connection must be closed.
        case invalid(String)
    }

    /// The 12-byte signature that starts a version 2 header (§2.2).
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// A v1 line is at most 107 bytes including CRLF (§2.1).
    static let v1MaximumLength = 107

    /// Parses the start of a connection.
    public static func parse(_ bytes: some Collection<UInt8>) -> Parsed {
        let bytes = Array(bytes)
        if bytes.isEmpty { return .incomplete }
        if bytes[0] == 0x0D {
            let prefix = min(bytes.count, v2Signature.count)
            guard Array(bytes[0..<prefix]) == Array(v2Signature[0..<prefix]) else { return .invalid("not a PROXY protocol header") }
            return parseV2(bytes)
        }
        let v1Prefix = Array("PROXY ".utf8)
        let prefix = min(bytes.count, v1Prefix.count)
        guard Array(bytes[0..<prefix]) == Array(v1Prefix[0..<prefix]) else { return .invalid("not a PROXY protocol header") }
        return parseV1(bytes)
    }

    /// `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`, `PROXY TCP6 …`, or `PROXY UNKNOWN …\r\n`.
    static func parseV1(_ bytes: [UInt8]) -> Parsed {
        guard let cr = bytes.firstIndex(where: { $0 == 0x0D || $0 == 0x0A }) else {
            return bytes.count >= v1MaximumLength ? .invalid("PROXY v1 line longer than 107 bytes") : .incomplete
        }
        guard bytes[cr] == 0x0D else { return .invalid("PROXY v1 line ends with a bare LF") }
        guard cr + 1 < bytes.count else { return .incomplete }
        guard bytes[cr + 1] == 0x0A, cr + 2 <= v1MaximumLength else { return .invalid("malformed PROXY v1 line") }
        let line = String(decoding: bytes[0..<cr], as: UTF8.self)
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count >= 2 else { return .invalid("malformed PROXY v1 line") }
        switch parts[1] {
        case "UNKNOWN":
            return .header(source: nil, length: cr + 2)
        case "TCP4", "TCP6":
            guard parts.count == 6, isPort(parts[4]), isPort(parts[5]),
                  isAddress(parts[2], v6: parts[1] == "TCP6"), isAddress(parts[3], v6: parts[1] == "TCP6")
            else { return .invalid("malformed PROXY v1 line") }
            return .header(source: String(parts[2]), length: cr + 2)
        default:
            return .invalid("PROXY v1 protocol \(parts[1]) is not TCP4, TCP6 or UNKNOWN")
        }
    }

    /// Binary: signature, version/command, family/transport, length (big endian), addresses (§2.2).
    static func parseV2(_ bytes: [UInt8]) -> Parsed {
        guard bytes.count >= 16 else { return .incomplete }
        let versionCommand = bytes[12]
        guard versionCommand >> 4 == 2 else { return .invalid("PROXY v2 header with version \(versionCommand >> 4)") }
        let command = versionCommand & 0x0F
        guard command <= 1 else { return .invalid("PROXY v2 header with command \(command)") }
        let family = bytes[13]
        let length = Int(bytes[14]) << 8 | Int(bytes[15])
        let total = 16 + length
        guard bytes.count >= total else { return .incomplete }
        // LOCAL (a health check by the proxy itself): no client address.
        if command == 0 { return .header(source: nil, length: total) }
        switch family {
        case 0x11, 0x12:  // TCP or UDP over IPv4: 4 + 4 address bytes, 2 + 2 port bytes.
            guard length >= 12 else { return .invalid("PROXY v2 IPv4 address block too short") }
            return .header(source: bytes[16..<20].map(String.init).joined(separator: "."), length: total)
        case 0x21, 0x22:  // IPv6: 16 + 16 address bytes, 2 + 2 port bytes.
            guard length >= 36 else { return .invalid("PROXY v2 IPv6 address block too short") }
            let groups = stride(from: 16, to: 32, by: 2).map { String(Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]), radix: 16) }
            return .header(source: groups.joined(separator: ":"), length: total)
        default:  // UNSPEC or UNIX sockets: no IP address to report.
            return .header(source: nil, length: total)
        }
    }

    private static func isAddress(_ text: Substring, v6: Bool) -> Bool {
        // ASCII only: Character.isHexDigit also holds for the fullwidth forms of 0-9, A-F.
        if v6 { return !text.isEmpty && text.count <= 45 && text.allSatisfy { $0.isASCII && ($0.isHexDigit || $0 == ":" || $0 == ".") } }
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { isDecimal($0, digits: 3, atMost: 255) }
    }

    /// Ports and IPv4 octets are plain decimal digits: `Int("-13")` and `Int("+80")` parse, and the fuzzer found
    /// `203.0.-13.7` accepted as a client address.
    private static func isPort(_ text: Substring) -> Bool { isDecimal(text, digits: 5, atMost: 65535) }

    private static func isDecimal(_ text: Substring, digits: Int, atMost maximum: Int) -> Bool {
        !text.isEmpty && text.utf8.count <= digits && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
            && Int(text).map { $0 <= maximum } == true
    }
}
