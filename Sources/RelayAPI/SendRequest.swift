import Foundation
import MailMessage

/// A validated `POST /v1/messages` body.
struct SendRequest: Sendable {
    var from: Mailbox
    var to: [Mailbox]
    var cc: [Mailbox]
    var bcc: [Mailbox]
    var replyTo: [Mailbox]
    var subject: String?
    var text: String?
    var html: String?
    var headers: [(name: String, value: String)]
    var attachments: [Attachment]
    var tags: [String]
    var metadata: [String: String]
    /// A stored template to render into subject, text and html (see `TemplateReference`).
    var template: TemplateReference?

    /// Scheduled send: not attempted before this time; nil sends at once (also for a time not in the future).
    var sendAt: Date?

    var unsubscribe: Unsubscribe?

    /// List-Unsubscribe for the message: the sender's own https link, or a Relay-hosted one-click link per
    /// recipient (RFC 8058) that puts the address on the suppression list.
    enum Unsubscribe: Sendable, Equatable {
        case url(String, oneClick: Bool)
        case hosted
    }

    static let knownFields: Set<String> = [
        "from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers", "attachments", "tags", "metadata",
        "unsubscribe", "send_at", "template",
    ]
    static let maxRecipients = 1000
    static let maxTags = 10
    static let maxMetadata = 20
    /// How far ahead `send_at` may be.
    static let maxScheduleAhead: TimeInterval = 30 * 24 * 3600

    /// Envelope recipients: to, cc and bcc, each address once (local part exact, domain case-insensitive).
    var envelopeRecipients: [EmailAddress] {
        var seen = Set<String>()
        var result: [EmailAddress] = []
        for mailbox in to + cc + bcc {
            let key = "\(mailbox.address.localPart)@\(mailbox.address.normalizedDomain)"
            if seen.insert(key).inserted { result.append(mailbox.address) }
        }
        return result
    }

    /// Validates a decoded JSON body; every failure is a 422 naming the field.
    init(json: JSONValue) throws {
        let body = try JSONObjectReader(json)
        try body.rejectUnknown(Self.knownFields)

        guard let fromText = try body.string("from", required: true) else { throw APIError.invalid("from", "from is required") }
        from = try Self.mailbox(fromText, field: "from")
        to = try Self.mailboxes(body.stringOrArray("to"), field: "to")
        cc = try Self.mailboxes(body.stringOrArray("cc"), field: "cc")
        bcc = try Self.mailboxes(body.stringOrArray("bcc"), field: "bcc")
        replyTo = try Self.mailboxes(body.stringOrArray("reply_to"), field: "reply_to")
        let total = to.count + cc.count + bcc.count
        if total == 0 { throw APIError.invalid("to", "at least one recipient is required in to, cc or bcc") }
        if total > Self.maxRecipients {
            throw APIError.invalid("to", "at most \(Self.maxRecipients) recipients are allowed in total, got \(total)")
        }

        template = try body.fields["template"].flatMap { $0 == .null ? nil : try TemplateReference(json: $0) }
        if template != nil, let given = ["subject", "text", "html"].first(where: { (body.fields[$0] ?? .null) != .null }) {
            throw APIError.invalid("template", "give either template or subject/text/html, not both (\(given) was given)")
        }

        subject = try body.string("subject")
        if let subject, !HeaderRules.isValidValue(subject) {
            throw APIError.invalid("subject", "subject must not contain CR, LF or NUL characters")
        }
        text = try body.string("text")
        html = try body.string("html")
        if template == nil && (text ?? "").isEmpty && (html ?? "").isEmpty {
            throw APIError.invalid("text", "a message needs a text or an html body")
        }

        headers = try Self.headers(body.fields["headers"])
        attachments = try Self.attachments(body.fields["attachments"])
        tags = try Self.tags(body.fields["tags"])
        metadata = try Self.metadata(body.fields["metadata"])
        sendAt = try Self.sendAt(body.string("send_at"), now: Date())
        unsubscribe = try Self.unsubscribe(body.fields["unsubscribe"])
        if unsubscribe != nil, let given = headers.first(where: { ["list-unsubscribe", "list-unsubscribe-post"].contains($0.name.lowercased()) }) {
            throw APIError.invalid("headers.\(given.name)", "give List-Unsubscribe either with unsubscribe or in headers, not both")
        }
    }

    /// The List-Unsubscribe header fields for a sender-hosted link (hosted links are added per recipient at
    /// delivery).
    var unsubscribeHeaders: [(name: String, value: String)] {
        guard case .url(let url, let oneClick) = unsubscribe else { return [] }
        return [("List-Unsubscribe", "<\(url)>")] + (oneClick ? [("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")] : [])
    }

    /// `true` or `{"hosted": true}` → Relay hosts the link; `{"url": "https://…", "one_click": true}` → the sender's
    /// link (one_click, default true, adds List-Unsubscribe-Post: the URL must then accept the RFC 8058 POST).
    private static func unsubscribe(_ value: JSONValue?) throws -> Unsubscribe? {
        switch value {
        case nil, .null?, .bool(false)?: return nil
        case .bool(true)?: return .hosted
        case .object?:
            let reader = try JSONObjectReader(value!, path: "unsubscribe")
            try reader.rejectUnknown(["url", "one_click", "hosted"])
            let hosted: Bool
            switch reader.fields["hosted"] {
            case nil, .null?: hosted = false
            case .bool(let flag)?: hosted = flag
            default: throw APIError.invalid("unsubscribe.hosted", "unsubscribe.hosted must be true or false")
            }
            let oneClick: Bool
            switch reader.fields["one_click"] {
            case nil, .null?: oneClick = true
            case .bool(let flag)?: oneClick = flag
            default: throw APIError.invalid("unsubscribe.one_click", "unsubscribe.one_click must be true or false")
            }
            let url = try reader.string("url")
            if hosted {
                if url != nil { throw APIError.invalid("unsubscribe", "unsubscribe takes either url or hosted, not both") }
                return .hosted
            }
            guard let url else { throw APIError.invalid("unsubscribe.url", "unsubscribe needs a url, or hosted: true") }
            // RFC 8058 §3.1: the one-click URI must be https; no character may end the <…> early or fold the header.
            guard url.lowercased().hasPrefix("https://"), url.count > 8, url.utf8.count <= 2048, URL(string: url) != nil,
                  !url.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" || $0 == "," || $0 == "\0" })
            else { throw APIError.invalid("unsubscribe.url", "unsubscribe.url must be an https URL without spaces, commas or angle brackets") }
            return .url(url, oneClick: oneClick)
        default:
            throw APIError.invalid("unsubscribe", "unsubscribe must be true, {\"hosted\": true} or {\"url\": \"https://…\"}")
        }
    }

    /// `send_at`: RFC 3339 with an offset, at most 30 days ahead; a time not after `now` means "at once" (nil).
    static func sendAt(_ text: String?, now: Date) throws -> Date? {
        guard let text else { return nil }
        guard let date = RFC3339.parse(text) else {
            throw APIError.invalid("send_at", "send_at must be an RFC 3339 timestamp with an offset, such as 2026-11-29T10:00:00Z")
        }
        if date.timeIntervalSince(now) > maxScheduleAhead {
            throw APIError.invalid("send_at", "send_at may be at most 30 days ahead")
        }
        return date > now ? date : nil
    }

    private static func mailbox(_ text: String, field: String) throws -> Mailbox {
        if text.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) {
            throw APIError.invalid(field, "\(field) must not contain CR, LF or NUL characters")
        }
        do {
            return try Mailbox(parsing: text)
        } catch let error as AddressError {
            throw APIError.invalid(field, "\(field): invalid address \"\(text)\": \(error.message)")
        } catch {
            throw APIError.invalid(field, "\(field): invalid address \"\(text)\"")
        }
    }

    private static func mailboxes(_ texts: [String], field: String) throws -> [Mailbox] {
        try texts.enumerated().map { index, text in
            try mailbox(text, field: texts.count == 1 ? field : "\(field)[\(index)]")
        }
    }

    private static func headers(_ value: JSONValue?) throws -> [(name: String, value: String)] {
        guard let value, value != .null else { return [] }
        guard case .object(let fields) = value else {
            throw APIError.invalid("headers", "headers must be an object of header names to string values")
        }
        return try fields.keys.sorted().map { name in
            let path = "headers.\(name)"
            guard case .string(let headerValue)? = fields[name] else {
                throw APIError.invalid(path, "the value of header \(name) must be a string")
            }
            guard HeaderRules.isValidName(name) else {
                throw APIError.invalid(path, "\"\(name)\" is not a valid header name")
            }
            if HeaderRules.isStructural(name) {
                throw APIError.invalid(path, "header \(name) is set by Relay or by its own field and cannot be given in headers")
            }
            guard HeaderRules.isValidValue(headerValue) else {
                throw APIError.invalid(path, "the value of header \(name) must not contain CR, LF or NUL characters")
            }
            return (name, headerValue)
        }
    }

    private static func attachments(_ value: JSONValue?) throws -> [Attachment] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value else { throw APIError.invalid("attachments", "attachments must be an array") }
        return try items.enumerated().map { index, item in
            let path = "attachments[\(index)]"
            let reader = try JSONObjectReader(item, path: path)
            try reader.rejectUnknown(["filename", "content", "content_type", "content_id"])
            guard let filename = try reader.string("filename", required: true), !filename.isEmpty else {
                throw APIError.invalid("\(path).filename", "\(path).filename must not be empty")
            }
            guard HeaderRules.isValidValue(filename) else {
                throw APIError.invalid("\(path).filename", "\(path).filename must not contain CR, LF or NUL characters")
            }
            guard let content = try reader.string("content", required: true),
                  let data = Data(base64Encoded: content, options: .ignoreUnknownCharacters) else {
                throw APIError.invalid("\(path).content", "\(path).content must be base64")
            }
            let contentType = try reader.string("content_type") ?? "application/octet-stream"
            guard Self.isValidMediaType(contentType) else {
                throw APIError.invalid("\(path).content_type", "\(path).content_type must look like type/subtype")
            }
            let contentID = try reader.string("content_id")
            if let contentID, contentID.isEmpty || !HeaderRules.isValidValue(contentID) || contentID.contains(where: { $0 == "<" || $0 == ">" || $0 == " " }) {
                throw APIError.invalid("\(path).content_id", "\(path).content_id must be a non-empty token without spaces or angle brackets")
            }
            return Attachment(filename: filename, contentType: contentType, data: Array(data), contentID: contentID)
        }
    }

    private static func isValidMediaType(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        let token: (Substring) -> Bool = { part in
            !part.isEmpty && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "!#$&^_.+-".contains($0)) }
        }
        return parts.count == 2 && token(parts[0]) && token(parts[1])
    }

    private static func tags(_ value: JSONValue?) throws -> [String] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value else { throw APIError.invalid("tags", "tags must be an array of strings") }
        if items.count > maxTags { throw APIError.invalid("tags", "at most \(maxTags) tags are allowed") }
        return try items.enumerated().map { index, item in
            guard case .string(let tag) = item, !tag.isEmpty, tag.count <= 128, HeaderRules.isValidValue(tag) else {
                throw APIError.invalid("tags[\(index)]", "tags[\(index)] must be a non-empty string of at most 128 characters")
            }
            return tag
        }
    }

    private static func metadata(_ value: JSONValue?) throws -> [String: String] {
        guard let value, value != .null else { return [:] }
        guard case .object(let fields) = value else {
            throw APIError.invalid("metadata", "metadata must be an object of string keys to string values")
        }
        if fields.count > maxMetadata { throw APIError.invalid("metadata", "at most \(maxMetadata) metadata entries are allowed") }
        var result: [String: String] = [:]
        for key in fields.keys.sorted() {
            guard case .string(let item)? = fields[key] else {
                throw APIError.invalid("metadata.\(key)", "metadata values must be strings")
            }
            guard !key.isEmpty, key.count <= 128, item.count <= 1024 else {
                throw APIError.invalid("metadata.\(key)", "metadata keys are 1–128 characters and values at most 1024")
            }
            // PostgreSQL's jsonb cannot hold U+0000, and no sender needs it.
            guard !key.contains("\0"), !item.contains("\0") else {
                throw APIError.invalid("metadata.\(key)", "metadata keys and values must not contain NUL characters")
            }
            result[key] = item
        }
        return result
    }
}
