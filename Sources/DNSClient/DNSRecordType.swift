// Numeric code points of the DNS protocol: record types, classes and response codes (RFC 1035 §3.2, §4.1.1).

/// A resource record type (RFC 1035 §3.2.2), open to any 16-bit value so unknown types survive a round trip.
public struct DNSRecordType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The type's 16-bit code on the wire.
    public var rawValue: UInt16

    /// Wraps a type code; every value is accepted.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// An IPv4 host address (RFC 1035 §3.4.1).
    public static let a = DNSRecordType(rawValue: 1)
    /// An authoritative name server (RFC 1035 §3.3.11).
    public static let ns = DNSRecordType(rawValue: 2)
    /// The canonical name for an alias (RFC 1035 §3.3.1).
    public static let cname = DNSRecordType(rawValue: 5)
    /// The start of a zone of authority (RFC 1035 §3.3.13).
    public static let soa = DNSRecordType(rawValue: 6)
    /// A mail exchanger (RFC 1035 §3.3.9).
    public static let mx = DNSRecordType(rawValue: 15)
    /// Text strings (RFC 1035 §3.3.14).
    public static let txt = DNSRecordType(rawValue: 16)
    /// An IPv6 host address (RFC 3596).
    public static let aaaa = DNSRecordType(rawValue: 28)
    /// The EDNS(0) pseudo-record (RFC 6891 §6.1).
    public static let opt = DNSRecordType(rawValue: 41)

    /// The mnemonic ("MX"), or "TYPE<n>" for types without one (RFC 3597 §5).
    public var description: String {
        switch self {
        case .a: "A"
        case .ns: "NS"
        case .cname: "CNAME"
        case .soa: "SOA"
        case .mx: "MX"
        case .txt: "TXT"
        case .aaaa: "AAAA"
        case .opt: "OPT"
        default: "TYPE\(rawValue)"
        }
    }
}

/// A resource record class (RFC 1035 §3.2.4); in OPT records this field carries the UDP payload size instead.
public struct DNSClass: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The class's 16-bit code on the wire.
    public var rawValue: UInt16

    /// Wraps a class code; every value is accepted.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The Internet class, the only one Relay uses.
    public static let `in` = DNSClass(rawValue: 1)

    /// "IN", or "CLASS<n>" (RFC 3597 §5).
    public var description: String { self == .in ? "IN" : "CLASS\(rawValue)" }
}

/// The RCODE of a response (RFC 1035 §4.1.1, extended to 12 bits by EDNS, RFC 6891 §6.1.3).
public struct DNSResponseCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    /// The code's value.
    public var rawValue: UInt16

    /// Wraps a response code; every value is accepted.
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// No error condition.
    public static let noError = DNSResponseCode(rawValue: 0)
    /// The server could not interpret the query.
    public static let formErr = DNSResponseCode(rawValue: 1)
    /// The server failed to process the query; a temporary condition.
    public static let servFail = DNSResponseCode(rawValue: 2)
    /// The name does not exist (authoritative answer).
    public static let nxDomain = DNSResponseCode(rawValue: 3)
    /// The server does not support this kind of query.
    public static let notImp = DNSResponseCode(rawValue: 4)
    /// The server refused to answer, usually by policy.
    public static let refused = DNSResponseCode(rawValue: 5)

    /// The mnemonic ("NXDOMAIN"), or "RCODE<n>".
    public var description: String {
        switch self {
        case .noError: "NOERROR"
        case .formErr: "FORMERR"
        case .servFail: "SERVFAIL"
        case .nxDomain: "NXDOMAIN"
        case .notImp: "NOTIMP"
        case .refused: "REFUSED"
        default: "RCODE\(rawValue)"
        }
    }
}
