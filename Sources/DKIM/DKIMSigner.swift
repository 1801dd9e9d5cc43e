import Crypto
import Foundation

/// What signs for a domain: the d= domain, the s= selector under which the public key is published
/// (`<selector>._domainkey.<domain>`), and the private key.
public struct DKIMSigningKey: Sendable {
    /// The signing domain, d=.
    public var domain: String
    /// The selector, s=.
    public var selector: String
    /// The key that signs.
    public var privateKey: DKIMPrivateKey

    /// A key for `domain` published under `selector`.
    public init(domain: String, selector: String, privateKey: DKIMPrivateKey) {
        self.domain = domain
        self.selector = selector
        self.privateKey = privateKey
    }
}

/// Signs messages with DKIM (RFC 6376), relaxed/relaxed, one DKIM-Signature field per key.
///
/// Each signature covers the body (no l=, so nothing can be appended) and every instance of the fields in
/// `signedHeaderNames`, plus one more From than the message has, so that no From can be added afterwards.
public enum DKIMSigner {
    /// The header fields every signature covers when present.
    public static let signedHeaderNames: [String] = ["From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post"]

    /// The DKIM-Signature header fields for `message` (an RFC 5322 message with CRLF line ends), one per key in key order,
    /// each a complete folded field ending in CRLF, ready to prepend.
    public static func signatureFields(for message: [UInt8], keys: [DKIMSigningKey], time: Date) throws -> [UInt8] {
        let parts = MessageParts(message)
        let headerNames = defaultHeaderNames(for: parts)
        let timestamp = Int64(time.timeIntervalSince1970.rounded(.down))
        let bodyHash = bodyHash(parts)
        var fields: [UInt8] = []
        for key in keys {
            try validate(key)
            let tags: [Tag] = [
                Tag("v", "1"),
                Tag("a", key.privateKey.algorithm.rawValue),
                Tag("c", "relaxed/relaxed"),
                Tag("d", key.domain),
                Tag("s", key.selector),
                Tag("t", String(timestamp)),
                Tag("h", headerNames.joined(separator: ":"), breaks: .atColons),
            ]
            fields += try signatureField(parts: parts, bodyHash: bodyHash, key: key, tags: tags, headerNames: headerNames)
            fields += [0x0D, 0x0A]
        }
        return fields
    }

    /// `message` with those fields prepended.
    public static func sign(_ message: [UInt8], keys: [DKIMSigningKey], time: Date) throws -> [UInt8] {
        try signatureFields(for: message, keys: keys, time: time) + message
    }

    /// The h= list: each signed name as often as the message has it, lower-cased, then "from" once more.
    ///
    /// Verifiers take instances of a repeated name from the bottom up (RFC 6376 §5.4.2), and a name listed more
    /// often than it occurs signs the absence of further instances (§5.4): the extra "from" forbids a second From.
    /// It is listed even for a message without From, where it forbids adding one.
    static func defaultHeaderNames(for parts: MessageParts) -> [String] {
        var counts: [String: Int] = [:]
        for field in parts.fields { counts[field.lowercasedName, default: 0] += 1 }
        var names: [String] = []
        for name in signedHeaderNames.map({ $0.lowercased() }) {
            names += repeatElement(name, count: counts[name] ?? 0)
        }
        names.append("from")
        return names
    }

    /// bh=: base64 of SHA-256 over the relaxed body, whole (RFC 6376 §3.7, no l=).
    static func bodyHash(_ parts: MessageParts) -> String {
        Data(SHA256.hash(data: DKIMCanonicalization.relaxedBody(parts.body))).base64EncodedString()
    }

    /// Refuses a d= or s= that is not a plain DNS name, since either would otherwise inject text into the field.
    static func validate(_ key: DKIMSigningKey) throws {
        func isDNSName(_ text: String) -> Bool {
            !text.isEmpty && text.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
            }
        }
        guard isDNSName(key.domain) else {
            throw DKIMError(.invalidSigningIdentity, "DKIM domain \"\(key.domain)\" is not a DNS name (letters, digits, '-', '.', '_'; IDNs as A-labels)")
        }
        guard isDNSName(key.selector) else {
            throw DKIMError(.invalidSigningIdentity, "DKIM selector \"\(key.selector)\" is not a DNS label (letters, digits, '-', '.', '_')")
        }
    }
}

// MARK: - The field itself

extension DKIMSigner {
    /// One tag=value of the field, with where FWS may break it.
    package struct Tag: Sendable {
        /// Where the folder may break the value.
        package enum Breaks: Sendable {
            /// Never: the whole tag stays on one line.
            case never
            /// After each colon (h=, RFC 6376 §3.5: FWS may surround the colons).
            case atColons
            /// Anywhere (base64 values, which may contain FWS: RFC 6376 §2.4 base64string).
            case anywhere
        }

        /// The tag name, e.g. "h".
        package var name: String
        /// The value exactly as written (the h= spacing matters to the hash: relaxed keeps single spaces).
        package var value: String
        /// Where folding may break it.
        package var breaks: Breaks

        /// A tag `name`=`value`.
        package init(_ name: String, _ value: String, breaks: Breaks = .never) {
            self.name = name
            self.value = value
            self.breaks = breaks
        }

        /// The tag as foldable atoms, with its terminating ";".
        var atoms: [String] {
            var atoms: [String]
            switch breaks {
            case .never:
                atoms = ["\(name)=\(value)"]
            case .atColons:
                atoms = value.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                for index in atoms.indices.dropLast() { atoms[index] += ":" }
                atoms[0] = "\(name)=" + atoms[0]
            case .anywhere:
                atoms = ["\(name)="] + value.map(String.init)
            }
            atoms[atoms.count - 1] += ";"
            return atoms
        }
    }

    /// One signature for `message` with exactly `tags` (in order) before bh= and b=, covering `headerNames`.
    /// For known-answer tests that must reproduce another signer's tag list; Relay itself uses `signatureFields`.
    package static func signatureField(for message: [UInt8], key: DKIMSigningKey, tags: [Tag], headerNames: [String]) throws -> [UInt8] {
        let parts = MessageParts(message)
        return try signatureField(parts: parts, bodyHash: bodyHash(parts), key: key, tags: tags, headerNames: headerNames)
    }

    /// The folded DKIM-Signature field, without its final CRLF.
    static func signatureField(parts: MessageParts, bodyHash: String, key: DKIMSigningKey, tags: [Tag],
                               headerNames: [String]) throws -> [UInt8] {
        var folder = FieldFolder(name: "DKIM-Signature")
        for tag in tags { folder.appendTag(tag.atoms) }
        folder.appendTag(Tag("bh", bodyHash, breaks: .anywhere).atoms)
        folder.appendTag(["b="])

        // The header hash input (RFC 6376 §3.7): the signed fields in h= order, each relaxed with its CRLF, then
        // this field as it will be sent but with b= empty, relaxed, without a final CRLF. b= comes last so that its
        // value can follow without changing anything before it.
        var input: [UInt8] = []
        appendSignedFields(parts, headerNames: headerNames, to: &input)
        let unsignedField = folder.text
        let colon = unsignedField.firstIndex(of: UInt8(ascii: ":"))!
        DKIMCanonicalization.appendRelaxedHeader(name: unsignedField[..<colon], value: unsignedField[(colon + 1)...], to: &input)

        let signature = try key.privateKey.sign(headerHash: SHA256.hash(data: input))
        folder.continueTag(Data(signature).base64EncodedString().map(String.init))
        return folder.text
    }

    /// Appends the relaxed form of each field named in `headerNames`, taking instances of a repeated name from the
    /// bottom up; a name with no instance left adds nothing, not even a CRLF (RFC 6376 §5.4.2).
    static func appendSignedFields(_ parts: MessageParts, headerNames: [String], to input: inout [UInt8]) {
        var unused: [String: [Int]] = [:]
        for (index, field) in parts.fields.enumerated() { unused[field.lowercasedName, default: []].append(index) }
        for name in headerNames {
            guard let index = unused[name.lowercased()]?.popLast() else { continue }
            let field = parts.fields[index]
            DKIMCanonicalization.appendRelaxedHeader(name: field.name, value: field.value, to: &input)
            input += [0x0D, 0x0A]
        }
    }
}
