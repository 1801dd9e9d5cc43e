/// Turns a ``MessageDraft`` into the bytes of an RFC 5322 message with MIME structure (RFC 2045–2049).
///
/// The output has CRLF line ends only, no line longer than 998 octets, and always ends with CRLF, so
/// the SMTP layer only has to dot-stuff it and append `.` CRLF. Structure:
///
/// - text only → `text/plain`; HTML only → `text/html`; both → `multipart/alternative` (text first);
/// - inline attachments (with a Content-ID) → `multipart/related; type="text/html"` around the HTML,
///   inside the alternative (RFC 2387), so text-only readers do not see the images; without HTML
///   they are sent in `multipart/mixed` with `Content-Disposition: inline`;
/// - other attachments → `multipart/mixed` outermost.
public enum MessageComposer {
    /// Composes the message with random MIME boundaries.
    public static func compose(_ draft: MessageDraft) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return compose(draft, using: &generator)
    }

    /// Composes the message drawing MIME boundaries from `generator` (tests pass a seeded one).
    public static func compose(_ draft: MessageDraft, using generator: inout some RandomNumberGenerator) -> [UInt8] {
        var composer = Composer(draft: draft)
        return composer.run(using: &generator)
    }
}

/// One node of the MIME tree being written.
private indirect enum Part {
    case text(body: [UInt8], subtype: String, sevenBit: Bool)
    case attachment(Attachment)
    case multipart(subtype: String, relatedType: String?, children: [Part])
}

private struct Composer {
    let draft: MessageDraft
    var writer: HeaderWriter
    /// Text that is written unencoded inside the body; a boundary must not occur in any of it.
    var haystacks: [[UInt8]] = []
    var boundaries: [[UInt8]] = []

    init(draft: MessageDraft) {
        self.draft = draft
        var capacity = 2048 + (draft.text?.utf8.count ?? 0) * 3 / 2 + (draft.html?.utf8.count ?? 0) * 3 / 2
        for attachment in draft.attachments { capacity += attachment.data.count * 137 / 100 + 512 }
        writer = HeaderWriter(capacity: capacity)
    }

    mutating func run(using generator: inout some RandomNumberGenerator) -> [UInt8] {
        let root = buildTree()
        writeMessageHeaders()
        writeEntity(root, using: &generator)
        if writer.out.count < 2 || writer.out[writer.out.count - 2] != ASCII.cr || writer.out[writer.out.count - 1] != ASCII.lf {
            writer.out.append(ASCII.cr)
            writer.out.append(ASCII.lf)
        }
        return writer.out
    }

    // MARK: Structure

    private mutating func buildTree() -> Part {
        let text = draft.text.map { textPart($0, subtype: "plain") }
        var html = draft.html.map { htmlBody in textPart(htmlBody, subtype: "html") }
        var others: [Part] = []
        var inline: [Part] = []
        for attachment in draft.attachments {
            haystacks.append(Array(attachment.filename.utf8))
            haystacks.append(Array(attachment.contentType.utf8))
            if let id = attachment.contentID { haystacks.append(Array(id.utf8)) }
            if attachment.contentID != nil && html != nil {
                inline.append(.attachment(attachment))
            } else {
                others.append(.attachment(attachment))
            }
        }
        if let htmlPart = html, !inline.isEmpty {
            html = .multipart(subtype: "related", relatedType: "text/html", children: [htmlPart] + inline)
        }
        var body: Part?
        switch (text, html) {
        case let (text?, html?): body = .multipart(subtype: "alternative", relatedType: nil, children: [text, html])
        case let (text?, nil): body = text
        case let (nil, html?): body = html
        case (nil, nil): body = nil
        }
        if !others.isEmpty {
            body = .multipart(subtype: "mixed", relatedType: nil, children: (body.map { [$0] } ?? []) + others)
        }
        return body ?? .text(body: [], subtype: "plain", sevenBit: true)
    }

    /// RFC 2045 §2.7: 7bit data is ASCII without NUL in lines of at most 998 octets; anything else
    /// is sent quoted-printable.
    private mutating func textPart(_ string: String, subtype: String) -> Part {
        let bytes = Array(string.utf8)
        var sevenBit = true
        var lineLength = 0
        for b in bytes {
            if b == ASCII.cr || b == ASCII.lf {
                lineLength = 0
                continue
            }
            if b >= 0x80 || b == 0 {
                sevenBit = false
                break
            }
            lineLength += 1
            if lineLength > 998 {
                sevenBit = false
                break
            }
        }
        if sevenBit { haystacks.append(bytes) }
        return .text(body: bytes, subtype: subtype, sevenBit: sevenBit)
    }

    // MARK: Headers

    private mutating func writeMessageHeaders() {
        writer.field("Date", tokens: RFC5322Date.format(draft.date).split(separator: " ").map(String.init))
        writer.begin("From")
        writer.mailboxList([draft.from])
        writer.end()
        for (name, list) in [("To", draft.to), ("Cc", draft.cc), ("Reply-To", draft.replyTo)] where !list.isEmpty {
            writer.begin(name)
            writer.mailboxList(list)
            writer.end()
        }
        if let subject = draft.subject {
            writer.begin("Subject")
            writer.unstructured(subject)
            writer.end()
        }
        writer.field("Message-ID", tokens: ["<" + Composer.sanitizedIdentifier(draft.messageID) + ">"])
        writer.field("MIME-Version", tokens: ["1.0"])
        for header in draft.extraHeaders where HeaderRules.isValidName(header.name) && !HeaderRules.isStructural(header.name) {
            writer.begin(header.name)
            writer.unstructured(header.value)
            writer.end()
        }
    }

    /// msg-id content (RFC 5322 §3.6.4): printable ASCII without spaces or angle brackets, cut to
    /// `maxIdentifierLength` because an identifier cannot be folded and no line may exceed 998 octets.
    static func sanitizedIdentifier(_ id: String) -> String {
        var bytes = Array(id.utf8)
        bytes.removeAll { $0 <= 0x20 || $0 >= 0x7F || $0 == ASCII.lessThan || $0 == ASCII.greaterThan }
        return String(decoding: bytes.prefix(maxIdentifierLength), as: UTF8.self)
    }

    static let maxIdentifierLength = 900

    // MARK: Entities

    private mutating func writeEntity(_ part: Part, using generator: inout some RandomNumberGenerator) {
        switch part {
        case let .text(body, subtype, sevenBit):
            writer.field("Content-Type", tokens: ["text/\(subtype);", "charset=utf-8"])
            writer.field("Content-Transfer-Encoding", tokens: [sevenBit ? "7bit" : "quoted-printable"])
            writer.out += ASCII.crlf
            if sevenBit {
                Composer.appendNormalizingLineEnds(body, to: &writer.out)
            } else {
                QuotedPrintable.append(body, to: &writer.out)
            }

        case let .attachment(attachment):
            writeAttachmentHeaders(attachment)
            writer.out += ASCII.crlf
            Base64.append(attachment.data, to: &writer.out)

        case let .multipart(subtype, relatedType, children):
            let boundary = makeBoundary(using: &generator)
            let quotedBoundary = "boundary=\"" + String(decoding: boundary, as: UTF8.self) + "\""
            var tokens = ["multipart/\(subtype);"]
            if let relatedType { tokens.append("type=\"\(relatedType)\";") }
            tokens.append(quotedBoundary)
            writer.field("Content-Type", tokens: tokens)
            writer.out += ASCII.crlf
            for child in children {
                writer.out += [ASCII.hyphen, ASCII.hyphen]
                writer.out += boundary
                writer.out += ASCII.crlf
                writeEntity(child, using: &generator)
                writer.out += ASCII.crlf
            }
            writer.out += [ASCII.hyphen, ASCII.hyphen]
            writer.out += boundary
            writer.out += [ASCII.hyphen, ASCII.hyphen]
        }
    }

    /// Writes 7bit text with every CR, LF or CRLF turned into CRLF.
    static func appendNormalizingLineEnds(_ bytes: [UInt8], to out: inout [UInt8]) {
        var i = 0
        let n = bytes.count
        var runStart = 0
        while i < n {
            let b = bytes[i]
            if b == ASCII.cr || b == ASCII.lf {
                out.append(contentsOf: bytes[runStart..<i])
                out.append(ASCII.cr)
                out.append(ASCII.lf)
                i += (b == ASCII.cr && i + 1 < n && bytes[i + 1] == ASCII.lf) ? 2 : 1
                runStart = i
            } else {
                i += 1
            }
        }
        out.append(contentsOf: bytes[runStart..<n])
    }

    // MARK: Attachments

    private mutating func writeAttachmentHeaders(_ attachment: Attachment) {
        let filename = Composer.sanitizedFilename(attachment.filename)
        var contentType = Composer.sanitizedContentType(attachment.contentType)
        if !filename.isEmpty {
            contentType += "; " + Composer.nameParameter(filename)
        }
        writer.begin("Content-Type")
        writer.spaceSeparated(Array(contentType.utf8))
        writer.end()
        writer.field("Content-Transfer-Encoding", tokens: ["base64"])
        var disposition = attachment.contentID != nil ? "inline" : "attachment"
        if !filename.isEmpty {
            disposition += "; " + Composer.filenameParameter(filename)
        }
        writer.begin("Content-Disposition")
        writer.spaceSeparated(Array(disposition.utf8))
        writer.end()
        if let id = attachment.contentID {
            var cid = id
            if cid.hasPrefix("<") && cid.hasSuffix(">") && cid.count >= 2 { cid = String(cid.dropFirst().dropLast()) }
            let clean = Composer.sanitizedIdentifier(cid)
            if !clean.isEmpty { writer.field("Content-ID", tokens: ["<" + clean + ">"]) }
        }
    }

    /// Control characters in a file name become `_`.
    static func sanitizedFilename(_ name: String) -> String {
        var scalars = String.UnicodeScalarView()
        for s in name.unicodeScalars {
            scalars.append(s.value < 0x20 || s.value == 0x7F || (s.value >= 0x80 && s.value < 0xA0) ? "_" : s)
        }
        return String(scalars)
    }

    /// `type/subtype` (RFC 2045 §5.1 tokens) with any printable parameters the caller gave, lower-cased
    /// type; anything else becomes `application/octet-stream`.
    static func sanitizedContentType(_ value: String) -> String {
        let fallback = "application/octet-stream"
        let bytes = Array(value.utf8)
        let semicolon = bytes.firstIndex(of: ASCII.semicolon) ?? bytes.count
        let main = bytes[0..<semicolon].filter { !ASCII.isWhitespace($0) }
        let parts = main.split(separator: ASCII.slash, omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(ASCII.isTokenChar) }) else { return fallback }
        let type = String(decoding: main.map(ASCII.lower), as: UTF8.self)
        guard semicolon < bytes.count else { return type }
        var rest = bytes[(semicolon + 1)...]
        while let f = rest.first, ASCII.isWhitespace(f) { rest.removeFirst() }
        while let l = rest.last, ASCII.isWhitespace(l) || l == ASCII.semicolon { rest.removeLast() }
        // Parameters are kept only when printable and short enough to stay well under 998 octets.
        guard !rest.isEmpty, rest.count <= 200, rest.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return type }
        return type + "; " + String(decoding: rest, as: UTF8.self)
    }

    /// Short printable-ASCII names are quoted as they are.
    static func isSimpleASCII(_ name: String) -> Bool {
        let bytes = name.utf8
        return bytes.count <= 60 && bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7F }
            && !EncodedWords.containsEncodedWordOpener(bytes)
    }

    /// The Content-Type `name` parameter: quoted, with RFC 2047 encoded words for anything but short
    /// ASCII — not sanctioned by RFC 2047 §5 inside quotes, but what mail readers look for.
    static func nameParameter(_ name: String) -> String {
        if isSimpleASCII(name) {
            return "name=" + String(decoding: PhraseText.quoted(Array(name.utf8)), as: UTF8.self)
        }
        var encoder = HeaderWriter(lineLimit: Int.max)
        // Room for ` name="` before the first word and `";` after the last on a 78-character line.
        encoder.maxEncodedWordLength = 68
        // The phrase alphabet never produces `"` or `\`, so the words are safe inside quotes.
        encoder.encodedWords(Array(name.utf8)[...], phrase: true)
        return "name=\"" + String(decoding: encoder.out, as: UTF8.self) + "\""
    }

    /// The Content-Disposition `filename` parameter: quoted for short ASCII, otherwise RFC 2231 §4
    /// `filename*=utf-8''…` percent-encoding, split into §3 continuations (`filename*0*=`, `filename*1*=`)
    /// so that long names still fold into short lines.
    static func filenameParameter(_ name: String) -> String {
        if isSimpleASCII(name) {
            return "filename=" + String(decoding: PhraseText.quoted(Array(name.utf8)), as: UTF8.self)
        }
        var encoded: [UInt8] = []
        for b in name.utf8 {
            if ASCII.isTokenChar(b) && b != ASCII.star && b != ASCII.apostrophe && b != ASCII.percent {
                encoded.append(b)
            } else {
                encoded.append(ASCII.percent)
                encoded.append(ASCII.hexDigits[Int(b >> 4)])
                encoded.append(ASCII.hexDigits[Int(b & 0x0F)])
            }
        }
        let segmentLength = 54
        if encoded.count <= segmentLength {
            return "filename*=utf-8''" + String(decoding: encoded, as: UTF8.self)
        }
        var segments: [String] = []
        var start = 0
        while start < encoded.count {
            var end = min(start + segmentLength, encoded.count)
            // Never split a %XX triplet.
            if end < encoded.count {
                if encoded[end - 1] == ASCII.percent { end -= 1 } else if end >= 2 && encoded[end - 2] == ASCII.percent { end -= 2 }
            }
            let prefix = segments.isEmpty ? "utf-8''" : ""
            segments.append("filename*\(segments.count)*=" + prefix + String(decoding: encoded[start..<end], as: UTF8.self))
            start = end
        }
        return segments.joined(separator: "; ")
    }

    // MARK: Boundaries

    /// RFC 2046 §5.1.1 boundary: "=_relay_" + 24 random alphanumerics. "=_" cannot occur in
    /// quoted-printable or base64 output, every boundary has the same length (so none is a prefix of
    /// another) and each is checked against all text written unencoded, so a delimiter can never
    /// appear inside the content.
    private mutating func makeBoundary(using generator: inout some RandomNumberGenerator) -> [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        while true {
            var candidate = Array("=_relay_".utf8)
            for _ in 0..<24 { candidate.append(alphabet[Int(generator.next(upperBound: UInt8(alphabet.count)))]) }
            if boundaries.contains(candidate) { continue }
            if haystacks.contains(where: { ByteSearch.contains($0, candidate) }) { continue }
            boundaries.append(candidate)
            return candidate
        }
    }
}
