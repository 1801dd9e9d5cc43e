// Record data (RDATA) of the types Relay reads, and the resource record that carries it (RFC 1035 §3.2.1, §3.3).

/// The typed content of a resource record; types Relay does not interpret stay as raw octets.
public enum DNSRecordData: Sendable, Hashable {
    /// An IPv4 address as a dotted quad ("192.0.2.1").
    case a(String)
    /// An IPv6 address in RFC 5952 text form ("2001:db8::1").
    case aaaa(String)
    /// A mail exchanger: lower preference is tried first (RFC 1035 §3.3.9, RFC 5321 §5.1).
    case mx(preference: UInt16, exchange: String)
    /// The character-strings of one TXT record, in order (RFC 1035 §3.3.14); each is at most 255 octets on the
    /// wire, longer strings are split when encoded.
    case txt([String])
    /// The canonical name an alias points to.
    case cname(String)
    /// A name server for the zone.
    case ns(String)
    /// The zone's start of authority, whose `minimum` bounds negative caching (RFC 2308 §4).
    case soa(SOA)
    /// Any other type, with its raw RDATA (RFC 3597).
    case other(type: UInt16, [UInt8])

    /// The record type this data belongs to.
    public var type: DNSRecordType {
        switch self {
        case .a: .a
        case .aaaa: .aaaa
        case .mx: .mx
        case .txt: .txt
        case .cname: .cname
        case .ns: .ns
        case .soa: .soa
        case .other(let type, _): DNSRecordType(rawValue: type)
        }
    }
}

/// The fields of an SOA record (RFC 1035 §3.3.13).
public struct SOA: Sendable, Hashable {
    /// The primary name server of the zone.
    public var mname: String
    /// The mailbox of the person responsible, encoded as a name.
    public var rname: String
    /// The zone's version number.
    public var serial: UInt32
    /// Seconds between secondary refreshes.
    public var refresh: UInt32
    /// Seconds before a failed refresh is retried.
    public var retry: UInt32
    /// Seconds after which a secondary stops answering for the zone.
    public var expire: UInt32
    /// The TTL of negative answers from this zone (RFC 2308 §4).
    public var minimum: UInt32

    /// Creates an SOA record's data.
    public init(mname: String, rname: String, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32,
                minimum: UInt32) {
        self.mname = mname
        self.rname = rname
        self.serial = serial
        self.refresh = refresh
        self.retry = retry
        self.expire = expire
        self.minimum = minimum
    }
}

/// One resource record of an answer, authority or additional section (RFC 1035 §4.1.3).
public struct DNSResourceRecord: Sendable, Hashable {
    /// The owner name.
    public var name: String
    /// The record type; matches `data.type` except for records built by hand to test odd cases.
    public var type: DNSRecordType
    /// The class (IN), or for OPT the requester's UDP payload size.
    public var `class`: DNSClass
    /// Seconds the record may be cached (RFC 2181 §8: values above 2^31-1 are read as 0 by the resolver).
    public var ttl: UInt32
    /// The typed record data.
    public var data: DNSRecordData

    /// Creates a record whose type is taken from its data.
    public init(name: String, class: DNSClass = .in, ttl: UInt32, data: DNSRecordData) {
        self.init(name: name, type: data.type, class: `class`, ttl: ttl, data: data)
    }

    /// Creates a record with every field given.
    public init(name: String, type: DNSRecordType, class: DNSClass, ttl: UInt32, data: DNSRecordData) {
        self.name = name
        self.type = type
        self.class = `class`
        self.ttl = ttl
        self.data = data
    }
}

extension DNSRecordData {
    /// Decodes RDATA of the given type at the reader's position, which must consume exactly `length` octets.
    static func decode(type: DNSRecordType, length: Int, from reader: inout DNSReader) throws(DNSError) -> DNSRecordData {
        let end = reader.offset + length
        guard end <= reader.bytes.count else { throw DNSReader.malformed("RDATA runs past the end of the message") }
        let data: DNSRecordData
        switch type {
        case .a:
            guard length == 4 else { throw DNSReader.malformed("A record of \(length) octets") }
            data = .a(IPAddressText.formatIPv4(try reader.bytes(4)))
        case .aaaa:
            guard length == 16 else { throw DNSReader.malformed("AAAA record of \(length) octets") }
            data = .aaaa(IPAddressText.formatIPv6(try reader.bytes(16)))
        case .mx:
            let preference = try reader.u16()
            data = .mx(preference: preference, exchange: DNSName.text(try reader.name()))
        case .cname:
            data = .cname(DNSName.text(try reader.name()))
        case .ns:
            data = .ns(DNSName.text(try reader.name()))
        case .soa:
            let mname = DNSName.text(try reader.name())
            let rname = DNSName.text(try reader.name())
            data = .soa(SOA(mname: mname, rname: rname, serial: try reader.u32(), refresh: try reader.u32(),
                            retry: try reader.u32(), expire: try reader.u32(), minimum: try reader.u32()))
        case .txt:
            var strings: [String] = []
            while reader.offset < end {
                let count = Int(try reader.u8())
                guard reader.offset + count <= end else { throw DNSReader.malformed("TXT string runs past RDATA") }
                strings.append(String(decoding: try reader.bytes(count), as: UTF8.self))
            }
            data = .txt(strings)
        default:
            data = .other(type: type.rawValue, try reader.bytes(length))
        }
        // A name inside RDATA may not overrun the declared RDLENGTH (RFC 1035 §3.2.1).
        guard reader.offset == end else {
            throw DNSReader.malformed("\(type) RDATA is \(length) octets but its fields take \(reader.offset - end + length)")
        }
        return data
    }

    /// Appends the RDATA; names in the RFC 1035 types may be compressed (RFC 3597 §4 forbids it for others).
    func encode(into writer: inout DNSWriter) {
        switch self {
        case .a(let text):
            writer.append(IPAddressText.parseIPv4(text) ?? [0, 0, 0, 0])
        case .aaaa(let text):
            writer.append(IPAddressText.parseIPv6(text) ?? Array(repeating: 0, count: 16))
        case .mx(let preference, let exchange):
            writer.u16(preference)
            writer.name(exchange)
        case .txt(let strings):
            for string in strings {
                var octets = Array(string.utf8)[...]
                repeat {
                    let chunk = octets.prefix(255)
                    writer.u8(UInt8(chunk.count))
                    writer.append(chunk)
                    octets = octets.dropFirst(chunk.count)
                } while !octets.isEmpty
            }
        case .cname(let name), .ns(let name):
            writer.name(name)
        case .soa(let soa):
            writer.name(soa.mname)
            writer.name(soa.rname)
            for value in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] { writer.u32(value) }
        case .other(_, let octets):
            writer.append(octets)
        }
    }
}
