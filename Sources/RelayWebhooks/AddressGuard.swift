#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as bytes.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

    /// Parses a URL host that is an address: IPv6 with or without brackets, and IPv4 in every spelling the C
    /// library's `inet_aton` accepts (`127.0.0.1`, `127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`), because some
    /// HTTP stacks resolve those spellings, so the guard must see through them. Nil for a host name.
    public init?(_ host: String) {
        var text = Substring(host)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if text.contains(":") {
            // A zone index (fe80::1%eth0) does not change the address's range.
            let address = text.split(separator: "%", maxSplits: 1).first.map(String.init) ?? ""
            var storage = in6_addr()
            guard inet_pton(AF_INET6, address, &storage) == 1 else { return nil }
            self = .v6(withUnsafeBytes(of: &storage) { Array($0) })
            return
        }
        // inet_aton stops at the first space and accepts what came before; allow only address characters.
        guard !text.isEmpty, text.allSatisfy({ $0.isHexDigit || $0 == "." || $0 == "x" || $0 == "X" }),
              text.first?.isNumber == true else { return nil }
        var storage = in_addr()
        guard inet_aton(String(text), &storage) == 1 else { return nil }
        self = .v4(withUnsafeBytes(of: &storage) { Array($0) })
    }

    /// Dotted quad, or RFC 5952 text for IPv6 (as `inet_ntop` writes it).
    public var description: String {
        switch self {
        case .v4(let bytes):
            return bytes.map(String.init).joined(separator: ".")
        case .v6(let bytes):
            var storage = in6_addr()
            withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: bytes) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &storage, &buffer, socklen_t(buffer.count)) != nil else { return "::" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

/// The server-side request forgery guard: which addresses a webhook may never be sent to. Pure; the
/// dispatcher and the API both ask it, the dispatcher about every address a name resolves to.
public enum AddressGuard {
    /// The name of the non-public range `address` is in (e.g. "loopback"), or nil for a public address.
    public static func restrictedRange(_ address: IPAddress) -> String? {
        switch address {
        case .v4(let b):
            return ipv4Range(b)
        case .v6(let b):
            if b.allSatisfy({ $0 == 0 }) { return "unspecified" }
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return "loopback" }
            // Forms that carry an IPv4 address: mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::a.b.c.d
            // (RFC 6052) and 6to4 2002:AABB:CCDD:: (RFC 3056) reach that IPv4 address.
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return ipv4Range(Array(b[12..<16])) }
            if b[0..<12].allSatisfy({ $0 == 0 }) { return ipv4Range(Array(b[12..<16])) ?? "IPv4-compatible" }
            if b[0..<12] == [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] { return ipv4Range(Array(b[12..<16])) }
            if b[0] == 0x20 && b[1] == 0x02 { return ipv4Range(Array(b[2..<6])) }
            if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "link-local" }
            if b[0] == 0xFE && b[1] & 0xC0 == 0xC0 { return "site-local" }
            if b[0] & 0xFE == 0xFC { return "unique-local" }
            if b[0] == 0xFF { return "multicast" }
            return nil
        }
    }

    private static func ipv4Range(_ b: [UInt8]) -> String? {
        switch (b[0], b[1]) {
        case (0, _): return "this-network"
        case (10, _): return "private"
        case (100, 64...127): return "shared (CGNAT)"
        case (127, _): return "loopback"
        case (169, 254): return "link-local"
        case (172, 16...31): return "private"
        case (192, 168): return "private"
        case (224...239, _): return "multicast"
        case (240...255, _): return "reserved"
        default: return nil
        }
    }

    /// Host names that mean this machine without asking DNS (RFC 6761 §6.3).
    public static func isLocalName(_ host: String) -> Bool {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        return name == "localhost" || name.hasSuffix(".localhost")
    }
}
