// Reading and writing the octets of a DNS message (RFC 1035 §4.1), including name compression (§4.1.4).

/// A cursor over a whole message; names may point anywhere earlier in it.
struct DNSReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func malformed(_ detail: String) -> DNSError {
        DNSError(code: .malformedResponse, detail: detail)
    }

    mutating func u8() throws(DNSError) -> UInt8 {
        guard offset < bytes.count else { throw Self.malformed("message ends at octet \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func u16() throws(DNSError) -> UInt16 {
        UInt16(try u8()) << 8 | UInt16(try u8())
    }

    mutating func u32() throws(DNSError) -> UInt32 {
        UInt32(try u16()) << 16 | UInt32(try u16())
    }

    mutating func bytes(_ count: Int) throws(DNSError) -> [UInt8] {
        guard count >= 0, offset + count <= bytes.count else {
            throw Self.malformed("\(count) octets wanted at \(offset), message has \(bytes.count)")
        }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Reads a possibly compressed name and leaves the cursor after its first pointer or terminating zero.
    ///
    /// Every pointer must point strictly before the previous one (or before the name's start), so pointer loops
    /// cannot occur; lengths are checked against RFC 1035 §2.3.4 limits and the reserved label types 01 and 10
    /// (RFC 6891 §5) are rejected.
    mutating func name() throws(DNSError) -> [[UInt8]] {
        var labels: [[UInt8]] = []
        var position = offset
        var limit = offset
        var wireLength = 1
        var resumeAt: Int?
        while true {
            guard position < bytes.count else { throw Self.malformed("name runs past the end of the message") }
            let length = Int(bytes[position])
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    offset = resumeAt ?? position + 1
                    return labels
                }
                guard position + 1 + length <= bytes.count else {
                    throw Self.malformed("label runs past the end of the message")
                }
                wireLength += 1 + length
                guard wireLength <= DNSName.maxWireLength else { throw Self.malformed("name longer than 255 octets") }
                labels.append(Array(bytes[(position + 1)...(position + length)]))
                position += 1 + length
            case 0xC0:
                guard position + 1 < bytes.count else { throw Self.malformed("compression pointer cut short") }
                let target = (length & 0x3F) << 8 | Int(bytes[position + 1])
                guard target < limit else {
                    throw Self.malformed("compression pointer at \(position) to \(target) does not point backwards")
                }
                if resumeAt == nil { resumeAt = position + 2 }
                limit = target
                position = target
            default:
                throw Self.malformed("reserved label type 0x\(String(length & 0xC0, radix: 16)) at \(position)")
            }
        }
    }
}

/// Builds a message, remembering where each name suffix was written so later names can point to it.
struct DNSWriter {
    private(set) var bytes: [UInt8] = []
    private var suffixes: [[[UInt8]]: Int] = [:]
    let compress: Bool

    init(compress: Bool) { self.compress = compress }

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u16(_ value: UInt16) { bytes += [UInt8(value >> 8), UInt8(value & 0xFF)] }

    mutating func u32(_ value: UInt32) {
        u16(UInt16(value >> 16))
        u16(UInt16(value & 0xFFFF))
    }

    mutating func append(_ octets: some Sequence<UInt8>) { bytes.append(contentsOf: octets) }

    mutating func set(_ value: UInt16, at position: Int) {
        bytes[position] = UInt8(value >> 8)
        bytes[position + 1] = UInt8(value & 0xFF)
    }

    /// Writes a name given as text. Text that is not a valid name is written as well as it can be (empty labels
    /// dropped, long labels cut), since `DNSMessage.encode()` cannot fail.
    mutating func name(_ text: String) {
        let labels: [[UInt8]]
        if let valid = try? DNSName.labels(text) {
            labels = valid
        } else {
            var lenient: [[UInt8]] = []
            var length = 1
            for part in text.utf8.split(separator: UInt8(ascii: ".")) {
                let label = Array(part.prefix(DNSName.maxLabelLength))
                guard length + 1 + label.count <= DNSName.maxWireLength else { break }
                length += 1 + label.count
                lenient.append(label)
            }
            labels = lenient
        }
        for index in labels.indices {
            let suffix = Array(labels[index...])
            if compress, let target = suffixes[suffix] {
                u16(0xC000 | UInt16(target))
                return
            }
            // Pointers have 14 bits (RFC 1035 §4.1.4).
            if compress, bytes.count < 0x4000 { suffixes[suffix] = bytes.count }
            u8(UInt8(labels[index].count))
            append(labels[index])
        }
        u8(0)
    }
}
