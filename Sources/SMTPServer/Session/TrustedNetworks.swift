import NIOCore

/// Client networks whose submission sessions are authenticated by their address instead of AUTH, each bound to
/// one principal (Postfix's `mynetworks`, but per account): for applications on a private network that cannot
/// do SMTP AUTH. The sender policy still applies to them.
///
/// Parsed from `CIDR=principal` entries separated by commas, e.g. `10.1.0.0/16=<tenant>,fd00::/8=<tenant>`. The
/// most specific matching block wins; an IPv4-mapped IPv6 client (`::ffff:10.1.2.3`) matches IPv4 blocks.
public struct TrustedNetworks: Sendable, Equatable {
    /// One address block and the principal its clients act as.
    public struct Entry: Sendable, Equatable {
        /// The network address, 4 or 16 octets, with the host bits cleared.
        public var network: [UInt8]
        /// The prefix length in bits.
        public var prefixLength: Int
        /// Who the block's clients are.
        public var principal: String
    }

    /// The entries, most specific (longest prefix) first.
    public private(set) var entries: [Entry]

    /// No trusted networks.
    public init() { entries = [] }

    /// Parses `CIDR=principal[,CIDR=principal…]`; `validatePrincipal` may refuse a principal (e.g. not a UUID).
    /// A malformed entry throws a ``TrustedNetworksError`` naming it.
    public init(parsing text: String, validatePrincipal: (String) -> Bool = { !$0.isEmpty }) throws {
        var parsed: [Entry] = []
        for rawItem in text.split(separator: ",") {
            let item = String(rawItem.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
            if item.isEmpty { continue }
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, validatePrincipal(parts[1]) else {
                throw TrustedNetworksError(entry: item, reason: "expected CIDR=account, e.g. 10.0.0.0/8=<tenant id>")
            }
            let blockParts = parts[0].split(separator: "/", maxSplits: 1).map(String.init)
            guard let octets = Self.octets(of: blockParts[0]) else {
                throw TrustedNetworksError(entry: item, reason: "\(blockParts[0]) is not an IP address")
            }
            let bits = octets.count * 8
            let prefixLength = blockParts.count == 2 ? Int(blockParts[1]) : bits
            guard let prefixLength, (0...bits).contains(prefixLength) else {
                throw TrustedNetworksError(entry: item, reason: "the prefix length must be 0…\(bits)")
            }
            guard Self.masked(octets, prefixLength) == octets else {
                throw TrustedNetworksError(entry: item, reason: "host bits are set (did you mean \(Self.text(of: Self.masked(octets, prefixLength)))/\(prefixLength)?)")
            }
            parsed.append(Entry(network: octets, prefixLength: prefixLength, principal: parts[1]))
        }
        entries = parsed.sorted { $0.prefixLength > $1.prefixLength }
    }

    /// Whether there are no entries.
    public var isEmpty: Bool { entries.isEmpty }

    /// The principal of the most specific block containing `address` (IP address text), or nil.
    public func principal(for address: String) -> String? {
        guard !entries.isEmpty, var octets = Self.octets(of: address) else { return nil }
        if octets.count == 16, octets[0..<12] == Self.ipv4MappedPrefix[...] { octets = Array(octets[12...]) }
        return entries.first { $0.network.count == octets.count && Self.masked(octets, $0.prefixLength) == $0.network }?.principal
    }

    /// `::ffff:0:0/96` (RFC 4291 §2.5.5.2).
    static let ipv4MappedPrefix: [UInt8] = Array(repeating: 0, count: 10) + [0xff, 0xff]

    static func octets(of address: String) -> [UInt8]? {
        guard let socketAddress = try? SocketAddress(ipAddress: address, port: 0) else { return nil }
        switch socketAddress {
        case .v4(let v4): return withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6): return withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        case .unixDomainSocket: return nil
        }
    }

    static func masked(_ octets: [UInt8], _ prefixLength: Int) -> [UInt8] {
        octets.enumerated().map { index, octet in
            let keep = min(8, max(0, prefixLength - index * 8))
            return keep == 0 ? 0 : octet & UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
    }

    static func text(of octets: [UInt8]) -> String {
        if octets.count == 4 { return octets.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(octets[$0]) << 8 | UInt16(octets[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}

/// A malformed trusted-network entry.
public struct TrustedNetworksError: Error, CustomStringConvertible {
    /// The entry as written.
    public var entry: String
    /// What is wrong with it.
    public var reason: String
    public var description: String { "\(entry): \(reason)" }
}
