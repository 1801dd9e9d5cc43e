// Text forms of IP addresses: dotted quad for IPv4 and RFC 5952 for IPv6, without relying on the C library.

enum IPAddressText {
    /// The four octets of a dotted-quad IPv4 address, or nil ("1.2.3.4"; no leading zeros, each part 0...255).
    static func parseIPv4(_ text: some StringProtocol) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  part.count == 1 || part.first != "0",
                  let value = UInt8(part) else { return nil }
            octets.append(value)
        }
        return octets
    }

    /// The sixteen octets of an IPv6 address in any RFC 4291 §2.2 text form, or nil.
    static func parseIPv6(_ text: some StringProtocol) -> [UInt8]? {
        var text = Substring(text)
        var tail: [UInt8] = []
        // An embedded IPv4 address in the last 32 bits (RFC 4291 §2.2 form 3).
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let v4 = parseIPv4(text[text.index(after: lastColon)...]) else { return nil }
            tail = v4
            text = text[...lastColon]
            if text.hasSuffix("::") == false { text = text.dropLast() }
        }
        let gaps = text.ranges(of: "::")
        guard gaps.count <= 1 else { return nil }
        let halves = gaps.first.map { [text[..<$0.lowerBound], text[$0.upperBound...]] } ?? [text]
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), group.allSatisfy(\.isHexDigit),
                      let value = UInt16(group, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        let groupsNeeded = tail.isEmpty ? 8 : 6
        guard let head = groups(halves[0]) else { return nil }
        var all: [UInt16]
        if halves.count == 2 {
            guard let back = groups(halves[1]), head.count + back.count < groupsNeeded else { return nil }
            all = head + Array(repeating: 0, count: groupsNeeded - head.count - back.count) + back
        } else {
            guard head.count == groupsNeeded else { return nil }
            all = head
        }
        var octets: [UInt8] = []
        for group in all { octets += [UInt8(group >> 8), UInt8(group & 0xFF)] }
        return octets + tail
    }

    /// "a.b.c.d" for four octets.
    static func formatIPv4(_ octets: some Collection<UInt8>) -> String {
        octets.map(String.init).joined(separator: ".")
    }

    /// The RFC 5952 §4 form of sixteen octets: lowercase hex, no leading zeros, the longest run (first on a tie)
    /// of two or more zero groups as "::", and IPv4-mapped addresses as ::ffff:a.b.c.d (§5).
    static func formatIPv6(_ octets: [UInt8]) -> String {
        precondition(octets.count == 16, "an IPv6 address has 16 octets")
        let groups = stride(from: 0, to: 16, by: 2).map { UInt16(octets[$0]) << 8 | UInt16(octets[$0 + 1]) }
        if groups[0..<5].allSatisfy({ $0 == 0 }) && groups[5] == 0xFFFF {
            return "::ffff:" + formatIPv4(octets[12...])
        }
        var bestStart = -1, bestLength = 0, runStart = -1
        for index in 0...8 {
            if index < 8 && groups[index] == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength { bestStart = runStart; bestLength = index - runStart }
                runStart = -1
            }
        }
        let hex = groups.map { String($0, radix: 16) }
        guard bestLength >= 2 else { return hex.joined(separator: ":") }
        return hex[..<bestStart].joined(separator: ":") + "::" + hex[(bestStart + bestLength)...].joined(separator: ":")
    }

    /// Whether text is an IPv4 or IPv6 address literal.
    static func isAddress(_ text: String) -> Bool {
        parseIPv4(text) != nil || parseIPv6(text) != nil
    }
}
