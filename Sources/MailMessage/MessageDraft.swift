import Foundation

/// A file carried by a message: a regular attachment, or an inline part (an image referenced from the
/// HTML as `cid:…`) when ``contentID`` is set.
public struct Attachment: Sendable, Hashable {
    /// The file name shown to the recipient; any Unicode is allowed (RFC 2231 encodes it).
    public var filename: String
    /// The media type, such as `application/pdf` or `image/png`. An invalid type is sent as
    /// `application/octet-stream`.
    public var contentType: String
    /// The file's bytes.
    public var data: [UInt8]
    /// The Content-ID without angle brackets (`logo@example.com`), making the part inline.
    public var contentID: String?

    /// Creates an attachment; pass `contentID` to make it inline.
    public init(filename: String, contentType: String, data: [UInt8], contentID: String? = nil) {
        self.filename = filename
        self.contentType = contentType
        self.data = data
        self.contentID = contentID
    }

    /// Whether this part is shown inline (it has a Content-ID).
    public var isInline: Bool { contentID != nil }
}

/// Everything needed to compose one message. Addresses and custom headers are expected to have been
/// validated already (``EmailAddress``, ``HeaderRules``); the composer still never writes CR or LF
/// from a field's value, and skips custom headers with invalid or structural names.
public struct MessageDraft: Sendable {
    /// The author (From).
    public var from: Mailbox
    /// Primary recipients shown in To (may be empty).
    public var to: [Mailbox]
    /// Carbon-copy recipients shown in Cc.
    public var cc: [Mailbox]
    /// Where replies should go (Reply-To).
    public var replyTo: [Mailbox]
    /// The subject; nil omits the field.
    public var subject: String?
    /// The plain-text body.
    public var text: String?
    /// The HTML body.
    public var html: String?
    /// Custom header fields, written in order after MIME-Version.
    public var extraHeaders: [(name: String, value: String)]
    /// Attachments and inline parts.
    public var attachments: [Attachment]
    /// The Message-ID without angle brackets, such as `0190f6c2-…@relay.example`.
    public var messageID: String
    /// The origination date (Date field).
    public var date: Date

    /// Creates a draft; only the author and the message ID are required.
    public init(
        from: Mailbox,
        to: [Mailbox] = [],
        cc: [Mailbox] = [],
        replyTo: [Mailbox] = [],
        subject: String? = nil,
        text: String? = nil,
        html: String? = nil,
        extraHeaders: [(name: String, value: String)] = [],
        attachments: [Attachment] = [],
        messageID: String,
        date: Date = Date()
    ) {
        self.from = from
        self.to = to
        self.cc = cc
        self.replyTo = replyTo
        self.subject = subject
        self.text = text
        self.html = html
        self.extraHeaders = extraHeaders
        self.attachments = attachments
        self.messageID = messageID
        self.date = date
    }

    /// Whether any address written in the headers needs SMTPUTF8 (RFC 6531/6532): such a message can
    /// only be relayed to servers that offer the extension.
    public var requiresSMTPUTF8: Bool {
        if from.address.requiresSMTPUTF8 { return true }
        return (to + cc + replyTo).contains { $0.address.requiresSMTPUTF8 }
    }
}
