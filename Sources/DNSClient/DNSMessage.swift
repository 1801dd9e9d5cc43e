// A whole DNS message: header, question and the three record sections (RFC 1035 §4.1).

/// The fixed 12-octet header's flags and codes (RFC 1035 §4.1.1); the section counts are derived on encode.
public struct DNSHeader: Sendable, Hashable {
    /// Matches a response to its query.
    public var id: UInt16
    /// True in responses.
    public var qr: Bool
    /// The kind of query; 0 is a standard query.
    public var opcode: UInt8
    /// Authoritative answer.
    public var aa: Bool
    /// Truncated: the answer did not fit the UDP payload and should be asked again over TCP.
    public var tc: Bool
    /// Recursion desired.
    public var rd: Bool
    /// Recursion available.
    public var ra: Bool
    /// The 4-bit response code of the header (see `DNSMessage.responseCode` for the EDNS-extended one).
    public var rcode: DNSResponseCode

    /// Creates a header; the defaults describe a recursive standard query.
    public init(id: UInt16, qr: Bool = false, opcode: UInt8 = 0, aa: Bool = false, tc: Bool = false, rd: Bool = true,
                ra: Bool = false, rcode: DNSResponseCode = .noError) {
        self.id = id
        self.qr = qr
        self.opcode = opcode
        self.aa = aa
        self.tc = tc
        self.rd = rd
        self.ra = ra
        self.rcode = rcode
    }
}

/// One entry of the question section (RFC 1035 §4.1.2).
public struct DNSQuestion: Sendable, Hashable {
    /// The name asked about.
    public var name: String
    /// The type asked for.
    public var type: DNSRecordType
    /// The class asked in, normally IN.
    public var `class`: DNSClass

    /// Creates a question.
    public init(name: String, type: DNSRecordType, class: DNSClass = .in) {
        self.name = name
        self.type = type
        self.class = `class`
    }
}

/// A DNS query or response, encodable to and decodable from the wire format of RFC 1035 §4.
public struct DNSMessage: Sendable, Hashable {
    /// The UDP payload size Relay advertises in EDNS(0): the value DNS Flag Day 2020 agreed on to avoid
    /// IP fragmentation.
    public static let ednsUDPPayloadSize: UInt16 = 1232

    /// Flags, codes and the id.
    public var header: DNSHeader
    /// The question section; queries carry exactly one question.
    public var questions: [DNSQuestion]
    /// The answer section.
    public var answers: [DNSResourceRecord]
    /// The authority section (an SOA here makes a negative answer cacheable, RFC 2308 §5).
    public var authorities: [DNSResourceRecord]
    /// The additional section, where the EDNS OPT pseudo-record lives.
    public var additionals: [DNSResourceRecord]

    /// Creates a message from its parts.
    public init(header: DNSHeader, questions: [DNSQuestion] = [], answers: [DNSResourceRecord] = [],
                authorities: [DNSResourceRecord] = [], additionals: [DNSResourceRecord] = []) {
        self.header = header
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
    }

    /// A recursive query for one name and type, with an EDNS(0) OPT record advertising `ednsPayloadSize`
    /// (RFC 6891 §6.1.2; nil sends a plain RFC 1035 query limited to 512 octets).
    public static func query(id: UInt16, name: String, type: DNSRecordType,
                             ednsPayloadSize: UInt16? = DNSMessage.ednsUDPPayloadSize) -> DNSMessage {
        var message = DNSMessage(header: DNSHeader(id: id), questions: [DNSQuestion(name: name, type: type)])
        if let ednsPayloadSize {
            message.additionals.append(DNSResourceRecord(
                name: ".", type: .opt, class: DNSClass(rawValue: ednsPayloadSize), ttl: 0,
                data: .other(type: DNSRecordType.opt.rawValue, [])))
        }
        return message
    }

    /// The OPT pseudo-record, if the message carries EDNS (RFC 6891 §6.1.1).
    public var opt: DNSResourceRecord? {
        additionals.first { $0.type == .opt }
    }

    /// The full response code: the header's 4 bits, extended by the OPT record's upper 8 bits (RFC 6891 §6.1.3).
    public var responseCode: DNSResponseCode {
        let extended = UInt16((opt?.ttl ?? 0) >> 24)
        return DNSResponseCode(rawValue: extended << 4 | (header.rcode.rawValue & 0xF))
    }

    /// The wire form. Names in question, owner names and the RDATA of NS, CNAME, SOA and MX are compressed
    /// unless `compressNames` is false. Invalid text (a malformed address or name) is encoded leniently.
    public func encode(compressNames: Bool = true) -> [UInt8] {
        var writer = DNSWriter(compress: compressNames)
        writer.u16(header.id)
        var flags: UInt16 = 0
        if header.qr { flags |= 0x8000 }
        flags |= UInt16(header.opcode & 0xF) << 11
        if header.aa { flags |= 0x0400 }
        if header.tc { flags |= 0x0200 }
        if header.rd { flags |= 0x0100 }
        if header.ra { flags |= 0x0080 }
        flags |= header.rcode.rawValue & 0xF
        writer.u16(flags)
        for count in [questions.count, answers.count, authorities.count, additionals.count] {
            writer.u16(UInt16(clamping: count))
        }
        for question in questions {
            writer.name(question.name)
            writer.u16(question.type.rawValue)
            writer.u16(question.class.rawValue)
        }
        for record in answers + authorities + additionals {
            writer.name(record.name)
            writer.u16(record.type.rawValue)
            writer.u16(record.class.rawValue)
            writer.u32(record.ttl)
            let lengthAt = writer.bytes.count
            writer.u16(0)
            record.data.encode(into: &writer)
            writer.set(UInt16(clamping: writer.bytes.count - lengthAt - 2), at: lengthAt)
        }
        return writer.bytes
    }

    /// Decodes a message, rejecting anything that does not follow RFC 1035 §4: truncated sections, RDATA that
    /// does not match its length, pointer loops, over-long labels or names. Octets after the last record are
    /// ignored. Throws `DNSError` with code `.malformedResponse`.
    public init(decoding bytes: some Collection<UInt8>) throws {
        var reader = DNSReader(Array(bytes))
        guard reader.bytes.count >= 12 else {
            throw DNSReader.malformed("message of \(reader.bytes.count) octets is shorter than a header")
        }
        let id = try reader.u16()
        let flags = try reader.u16()
        header = DNSHeader(id: id, qr: flags & 0x8000 != 0, opcode: UInt8((flags >> 11) & 0xF),
                           aa: flags & 0x0400 != 0, tc: flags & 0x0200 != 0, rd: flags & 0x0100 != 0,
                           ra: flags & 0x0080 != 0, rcode: DNSResponseCode(rawValue: flags & 0xF))
        let questionCount = Int(try reader.u16())
        let answerCount = Int(try reader.u16())
        let authorityCount = Int(try reader.u16())
        let additionalCount = Int(try reader.u16())
        questions = []
        for _ in 0..<questionCount {
            let name = DNSName.text(try reader.name())
            questions.append(DNSQuestion(name: name, type: DNSRecordType(rawValue: try reader.u16()),
                                         class: DNSClass(rawValue: try reader.u16())))
        }
        func records(_ count: Int) throws(DNSError) -> [DNSResourceRecord] {
            var records: [DNSResourceRecord] = []
            for _ in 0..<count {
                let name = DNSName.text(try reader.name())
                let type = DNSRecordType(rawValue: try reader.u16())
                let recordClass = DNSClass(rawValue: try reader.u16())
                let ttl = try reader.u32()
                let length = Int(try reader.u16())
                let data = try DNSRecordData.decode(type: type, length: length, from: &reader)
                records.append(DNSResourceRecord(name: name, type: type, class: recordClass, ttl: ttl, data: data))
            }
            return records
        }
        answers = try records(answerCount)
        authorities = try records(authorityCount)
        additionals = try records(additionalCount)
    }
}
