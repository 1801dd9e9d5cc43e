/// The header section of a message as raw fields, for edits that must leave everything else byte-for-byte
/// intact (SMTP submission adds Received/Message-ID/Date and removes Bcc and Relay's control headers).
/// RFC 5322 §2.2: a field is a name, a colon and a value, continued on lines that start with WSP (folding);
/// the header section ends at the first empty line.
public struct HeaderSection: Sendable {
    /// One header field exactly as it appeared.
    public struct Field: Sendable, Hashable {
        /// The field name as written.
        public var name: String
        /// The whole field: name, colon, value and any folded continuation lines, each ending in CRLF.
        public var raw: [UInt8]

        /// The value with folding removed and surrounding white space trimmed (not RFC 2047-decoded).
        public var value: String {
            guard let colon = raw.firstIndex(of: UInt8(ascii: ":")) else { return "" }
            let unfolded = raw[(colon + 1)...].filter { $0 != 0x0D && $0 != 0x0A }
            return String(decoding: unfolded, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        }

        /// Builds a field `Name: value` CRLF (the value must not contain CR or LF).
        public init(name: String, value: String) {
            self.name = name
            self.raw = Array("\(name): \(value)\r\n".utf8)
        }

        init(name: String, raw: [UInt8]) {
            self.name = name
            self.raw = raw
        }
    }

    /// The fields in order.
    public var fields: [Field]
    /// Everything after the empty line that ends the header section.
    public var body: ArraySlice<UInt8>

    /// Splits a CRLF message into header fields and body. A message without an empty line is all header
    /// section; lines that are neither fields nor continuations end the header section (they start the body).
    public init(parsing message: [UInt8]) {
        var fields: [Field] = []
        var index = message.startIndex
        var bodyStart = message.endIndex
        while index < message.endIndex {
            let lineEnd = Self.endOfLine(in: message, from: index)
            let line = message[index..<lineEnd]
            if line.isEmpty || line == [0x0D, 0x0A] || line == [0x0A] {
                bodyStart = lineEnd
                break
            }
            if (line.first == 0x20 || line.first == 0x09), !fields.isEmpty {
                fields[fields.count - 1].raw += line
            } else if let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                      line[line.startIndex..<colon].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                fields.append(Field(name: String(decoding: line[line.startIndex..<colon], as: UTF8.self), raw: Array(line)))
            } else {
                bodyStart = index
                break
            }
            index = lineEnd
        }
        self.fields = fields
        self.body = message[bodyStart...]
    }

    private static func endOfLine(in bytes: [UInt8], from start: Int) -> Int {
        var index = start
        while index < bytes.endIndex {
            if bytes[index] == 0x0A { return index + 1 }
            index += 1
        }
        return bytes.endIndex
    }

    /// The values of every field with this name (case-insensitive).
    public func values(_ name: String) -> [String] {
        fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    /// Whether a field with this name exists.
    public func contains(_ name: String) -> Bool {
        fields.contains { $0.name.lowercased() == name.lowercased() }
    }

    /// Removes every field whose name satisfies `predicate` (given the lowercased name).
    public mutating func removeAll(where predicate: (String) -> Bool) {
        fields.removeAll { predicate($0.name.lowercased()) }
    }

    /// The message again: fields, the empty line, the body.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(fields.reduce(0) { $0 + $1.raw.count } + body.count + 2)
        for field in fields { out += field.raw }
        out += [0x0D, 0x0A]
        out += body
        return out
    }
}

import Foundation
