import Foundation
import MailMessage
import Testing

/// Swift Testing also declares `Attachment`; the tests mean the mail one.
typealias Attachment = MailMessage.Attachment

/// A deterministic generator (SplitMix64) so that boundary collisions can be forced.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func mailbox(_ text: String) -> Mailbox {
    // Fixtures are known to be valid.
    try! Mailbox(parsing: text)
}

/// CR, LF and CRLF all become CRLF, as the composer does for bodies.
func crlf(_ text: String) -> String {
    text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        .replacingOccurrences(of: "\n", with: "\r\n")
}

struct WireCheck {
    var headerLines: [String] = []
    var longestLine = 0
    var longestHeaderLine = 0
}

/// Checks the whole output for bare CR/LF and over-long lines, and returns the header lines.
func checkWire(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> WireCheck {
    var check = WireCheck()
    var lineStart = 0
    var inHeaders = true
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        if b == 0x0D {
            #expect(i + 1 < bytes.count && bytes[i + 1] == 0x0A, "bare CR at \(i)", sourceLocation: sourceLocation)
            let length = i - lineStart
            check.longestLine = max(check.longestLine, length)
            if inHeaders {
                if length == 0 { inHeaders = false } else {
                    check.headerLines.append(String(decoding: bytes[lineStart..<i], as: UTF8.self))
                    check.longestHeaderLine = max(check.longestHeaderLine, length)
                }
            }
            i += 2
            lineStart = i
            continue
        }
        #expect(b != 0x0A, "bare LF at \(i)", sourceLocation: sourceLocation)
        i += 1
    }
    #expect(lineStart == bytes.count, "output does not end with CRLF", sourceLocation: sourceLocation)
    #expect(check.longestLine <= 998, sourceLocation: sourceLocation)
    return check
}

@Suite("MessageComposer")
struct ComposerTests {
    static let date = Date(timeIntervalSince1970: 1_795_917_097)

    static func draft(
        subject: String? = "Hello",
        text: String? = nil,
        html: String? = nil,
        attachments: [Attachment] = [],
        extraHeaders: [(name: String, value: String)] = []
    ) -> MessageDraft {
        MessageDraft(
            from: mailbox("Relay Test <sender@example.com>"),
            to: [mailbox("Alice <alice@example.com>")],
            subject: subject, text: text, html: html,
            extraHeaders: extraHeaders, attachments: attachments,
            messageID: "0190f6c2-7d3e-7a1b-9c4d-1234567890ab@relay.example", date: date
        )
    }

    static func compose(_ draft: MessageDraft) throws -> (MIMEEntity, WireCheck, [UInt8]) {
        let bytes = MessageComposer.compose(draft)
        let check = checkWire(bytes)
        return (try MIMEEntity(parsing: bytes), check, bytes)
    }

    // MARK: Headers

    @Test func writesHeadersInOrder() throws {
        var draft = Self.draft(text: "Hi", extraHeaders: [
            (name: "X-Campaign", value: "spring"),
            (name: "List-Unsubscribe", value: "<mailto:unsub@example.com>"),
            (name: "Bcc", value: "hidden@example.com"),
            (name: "Content-Type", value: "text/evil"),
            (name: "Bad Name", value: "x"),
            (name: "X-Injected", value: "a\r\nBcc: victim@example.com"),
        ])
        draft.cc = [mailbox("carol@example.com")]
        draft.replyTo = [mailbox("Support <support@example.com>")]
        let (entity, check, _) = try Self.compose(draft)
        #expect(entity.headers.map(\.name) == [
            "Date", "From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "MIME-Version",
            "X-Campaign", "List-Unsubscribe", "X-Injected", "Content-Type", "Content-Transfer-Encoding",
        ])
        #expect(entity.header("Date") == "Sun, 29 Nov 2026 01:51:37 +0000")
        #expect(entity.header("From") == "Relay Test <sender@example.com>")
        #expect(entity.header("To") == "Alice <alice@example.com>")
        #expect(entity.header("Cc") == "carol@example.com")
        #expect(entity.header("Reply-To") == "Support <support@example.com>")
        #expect(entity.header("Message-ID") == "<0190f6c2-7d3e-7a1b-9c4d-1234567890ab@relay.example>")
        #expect(entity.header("MIME-Version") == "1.0")
        #expect(entity.header("X-Injected") == "a  Bcc: victim@example.com")
        #expect(entity.header("Bcc") == nil)
        #expect(check.longestHeaderLine <= 78)
    }

    @Test func omitsEmptyOptionalHeaders() throws {
        var draft = Self.draft(subject: nil, text: "x")
        draft.to = []
        let (entity, _, _) = try Self.compose(draft)
        #expect(entity.header("To") == nil)
        #expect(entity.header("Subject") == nil)
        #expect(entity.header("Cc") == nil)
    }

    static let subjects: [String] = [
        "Hello",
        "Grüße aus Köln",
        "日本語の件名です",
        "Your order #12345 — shipped ✓",
        String(repeating: "A long ASCII subject that needs folding ", count: 8) + "end",
        String(repeating: "Ein sehr langer Betreff mit Umlauten äöü und ß ", count: 6),
        String(repeating: "長い日本語の件名", count: 20),
        "Looks like =?UTF-8?Q?an_encoded_word?= but is not",
        "tabs\tand  double  spaces kept",
        "emoji 👩‍👩‍👧‍👦 and more emoji 🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉🎉",
        "https://example.com/" + String(repeating: "x", count: 120) + " long token",
        String(repeating: "y", count: 1500),
    ]

    @Test(arguments: subjects)
    func subjectRoundTrips(_ subject: String) throws {
        let (entity, check, _) = try Self.compose(Self.draft(subject: subject, text: "x"))
        // Leading and trailing whitespace of an unstructured value is not kept (RFC 5322 §3.2.5).
        #expect(entity.header("Subject") == subject.trimmingCharacters(in: .whitespaces))
        let subjectLines = check.headerLines.drop { !$0.hasPrefix("Subject:") }.prefix { $0.hasPrefix("Subject:") || $0.hasPrefix(" ") || $0.hasPrefix("\t") }
        for line in subjectLines {
            // Only an unbreakable ASCII word may go past 78 characters.
            if !line.contains("xxxxxxxxxx") { #expect(line.utf8.count <= 78, "\(line)") }
            #expect(!line.allSatisfy { $0 == " " || $0 == "\t" })
            for word in line.split(separator: " ") where word.hasPrefix("=?") && word.hasSuffix("?=") {
                #expect(word.count <= 75)
            }
        }
        #expect(subject.unicodeScalars.allSatisfy(\.isASCII) || entity.headers.first { $0.name == "Subject" }!.value.unicodeScalars.allSatisfy(\.isASCII))
    }

    @Test func foldsAddressListsBetweenAddresses() throws {
        var draft = Self.draft(text: "x")
        draft.to = (1...25).map { mailbox("Recipient Number \($0) <recipient\($0)@example.com>") }
            + [mailbox("Jürgen Müller-Lüdenscheidt <j@example.de>"), mailbox("\"Smith, A.\" <a@example.com>"), mailbox("用户@例子.广告")]
        let (entity, check, _) = try Self.compose(draft)
        #expect(check.longestHeaderLine <= 78)
        let raw = try #require(entity.headers.first { $0.name == "To" }).value
        #expect(try Mailbox.parseList(raw) == draft.to)
        #expect(draft.requiresSMTPUTF8)
        // Folds fall between addresses: every continuation line starts a new mailbox.
        let toLines = check.headerLines.drop { !$0.hasPrefix("To:") }.dropFirst().prefix { $0.hasPrefix(" ") }
        #expect(toLines.count > 5)
        for line in toLines {
            #expect(line.hasPrefix(" Recipient") || line.hasPrefix(" =?") || line.hasPrefix(" <j@") || line.hasPrefix(" \"Smith") || line.hasPrefix(" 用户"), "\(line)")
        }
    }

    @Test func nonASCIIDisplayNamesRoundTrip() throws {
        var draft = Self.draft(text: "x")
        draft.from = Mailbox(displayName: "Société Générale — Service Client", address: try EmailAddress(parsing: "noreply@example.fr"))
        draft.to = [Mailbox(displayName: String(repeating: "Ωμέγα ", count: 15), address: try EmailAddress(parsing: "o@example.gr"))]
        let (entity, check, _) = try Self.compose(draft)
        #expect(try Mailbox(parsing: try #require(entity.headers.first { $0.name == "From" }).value) == draft.from)
        let to = try Mailbox.parseList(try #require(entity.headers.first { $0.name == "To" }).value)
        #expect(to.first?.displayName == String(repeating: "Ωμέγα ", count: 15))
        #expect(check.longestHeaderLine <= 78)
        #expect(check.headerLines.allSatisfy { $0.unicodeScalars.allSatisfy(\.isASCII) })
    }

    // MARK: Structure

    @Test func textOnly() throws {
        let text = "Hello Alice,\n\nYour code is 1234.\n"
        let (entity, _, _) = try Self.compose(Self.draft(text: text))
        #expect(entity.contentType == "text/plain")
        #expect(entity.parameters["charset"] == "utf-8")
        #expect(entity.contentTransferEncoding == "7bit")
        #expect(entity.decodedText == crlf(text))
        #expect(entity.parts.isEmpty)
    }

    @Test func textWithoutFinalNewlineGetsCRLF() throws {
        let (entity, _, bytes) = try Self.compose(Self.draft(text: "no newline"))
        #expect(entity.decodedText == "no newline\r\n")
        #expect(bytes.suffix(2) == [0x0D, 0x0A])
    }

    @Test func htmlOnly() throws {
        let html = "<html><body><p>Hi</p></body></html>"
        let (entity, _, _) = try Self.compose(Self.draft(html: html))
        #expect(entity.contentType == "text/html")
        #expect(entity.parameters["charset"] == "utf-8")
        #expect(entity.decodedText == html + "\r\n")
    }

    @Test func neitherTextNorHTMLIsAnEmptyTextPart() throws {
        let (entity, _, _) = try Self.compose(Self.draft())
        #expect(entity.contentType == "text/plain")
        #expect(entity.decodedBody.isEmpty || entity.decodedBody == [0x0D, 0x0A])
    }

    @Test func textAndHTMLMakeAlternative() throws {
        let text = "Plain version\r\n"
        let html = "<p>HTML version</p>"
        let (entity, _, _) = try Self.compose(Self.draft(text: text, html: html))
        #expect(entity.contentType == "multipart/alternative")
        #expect(entity.header("Content-Transfer-Encoding") == nil)
        #expect(entity.parts.map(\.contentType) == ["text/plain", "text/html"])
        #expect(entity.parts[0].decodedText == text)
        #expect(entity.parts[1].decodedText == html)
    }

    @Test func attachmentsMakeMixed() throws {
        let pdf = Attachment(filename: "invoice 2026-11.pdf", contentType: "application/pdf", data: (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        let csv = Attachment(filename: "data.csv", contentType: "text/csv; charset=utf-8", data: Array("a,b\n1,2\n".utf8))
        let (entity, check, _) = try Self.compose(Self.draft(text: "See attached.", html: "<p>See attached.</p>", attachments: [pdf, csv]))
        #expect(entity.contentType == "multipart/mixed")
        #expect(entity.parts.map(\.contentType) == ["multipart/alternative", "application/pdf", "text/csv"])
        #expect(entity.parts[0].parts.map(\.contentType) == ["text/plain", "text/html"])
        let pdfPart = entity.parts[1]
        #expect(pdfPart.contentTransferEncoding == "base64")
        #expect(pdfPart.disposition == "attachment")
        #expect(pdfPart.filename == "invoice 2026-11.pdf")
        #expect(pdfPart.parameters["name"] == "invoice 2026-11.pdf")
        #expect(pdfPart.decodedBody == pdf.data)
        #expect(pdfPart.contentID == nil)
        #expect(entity.parts[2].parameters["charset"] == "utf-8")
        #expect(entity.parts[2].decodedBody == csv.data)
        #expect(check.longestLine <= 78)
    }

    @Test func inlineImagesMakeRelatedInsideAlternative() throws {
        let logo = Attachment(filename: "logo.png", contentType: "image/png", data: [0x89, 0x50, 0x4E, 0x47, 0, 1, 2, 3], contentID: "logo@relay.example")
        let banner = Attachment(filename: "banner.jpg", contentType: "image/jpeg", data: Array(repeating: 0xFF, count: 300), contentID: "<banner@relay.example>")
        let report = Attachment(filename: "report.txt", contentType: "text/plain", data: Array("report".utf8))
        let html = "<img src=\"cid:logo@relay.example\"><img src=\"cid:banner@relay.example\">"
        let (entity, _, _) = try Self.compose(Self.draft(text: "text", html: html, attachments: [logo, report, banner]))
        #expect(entity.contentType == "multipart/mixed")
        #expect(entity.parts.map(\.contentType) == ["multipart/alternative", "text/plain"])
        let alternative = entity.parts[0]
        #expect(alternative.parts.map(\.contentType) == ["text/plain", "multipart/related"])
        let related = alternative.parts[1]
        #expect(related.parameters["type"] == "text/html")
        #expect(related.parts.map(\.contentType) == ["text/html", "image/png", "image/jpeg"])
        #expect(related.parts[0].decodedText == html)
        #expect(related.parts[1].contentID == "logo@relay.example")
        #expect(related.parts[1].disposition == "inline")
        #expect(related.parts[1].decodedBody == logo.data)
        #expect(related.parts[2].contentID == "banner@relay.example")
        #expect(related.parts[2].decodedBody == banner.data)
        #expect(entity.parts[1].disposition == "attachment")
        #expect(entity.parts[1].decodedBody == report.data)
    }

    @Test func inlineImagesWithHTMLOnly() throws {
        let logo = Attachment(filename: "logo.png", contentType: "image/png", data: [1, 2, 3], contentID: "logo")
        let (entity, _, _) = try Self.compose(Self.draft(html: "<img src=\"cid:logo\">", attachments: [logo]))
        #expect(entity.contentType == "multipart/related")
        #expect(entity.parts.map(\.contentType) == ["text/html", "image/png"])
    }

    @Test func inlineAttachmentWithoutHTMLGoesToMixed() throws {
        let logo = Attachment(filename: "logo.png", contentType: "image/png", data: [1, 2, 3], contentID: "logo")
        let (entity, _, _) = try Self.compose(Self.draft(text: "no html", attachments: [logo]))
        #expect(entity.contentType == "multipart/mixed")
        #expect(entity.parts.map(\.contentType) == ["text/plain", "image/png"])
        #expect(entity.parts[1].disposition == "inline")
        #expect(entity.parts[1].contentID == "logo")
    }

    @Test func attachmentOnly() throws {
        let file = Attachment(filename: "a.bin", contentType: "not a type", data: [])
        let (entity, _, _) = try Self.compose(Self.draft(attachments: [file]))
        #expect(entity.contentType == "multipart/mixed")
        #expect(entity.parts.map(\.contentType) == ["application/octet-stream"])
        #expect(entity.parts[0].decodedBody.isEmpty)
    }

    static let filenames: [String] = [
        "Rechnung März 2026 – Übersicht.pdf",
        "报告.docx",
        "quote\"and\\backslash.txt",
        String(repeating: "très-long-nom-de-fichier-", count: 8) + ".pdf",
        String(repeating: "plain-long-ascii-name-", count: 6) + ".zip",
        "semi;colon=equals (paren).txt",
        "=?UTF-8?B?not-encoded?=.txt",
        "tab\there.txt",
    ]

    @Test(arguments: filenames)
    func filenamesRoundTrip(_ name: String) throws {
        let file = Attachment(filename: name, contentType: "application/octet-stream", data: [42])
        let (entity, check, _) = try Self.compose(Self.draft(text: "x", attachments: [file]))
        let part = entity.parts[1]
        let expected = name.replacingOccurrences(of: "\t", with: "_")
        #expect(part.dispositionParameters["filename"] == expected)
        #expect(part.parameters["name"] == expected)
        #expect(check.longestLine <= 78)
    }

    // MARK: Bodies

    static let bodies: [String] = [
        "Grüße aus Köln!\nZweite Zeile.\n",
        "日本語の本文です。\r\n改行も含みます。",
        "trailing spaces   \nand tabs\t\t\nend",
        "equals = signs and =3D lookalikes\n",
        ".leading dot\n..two dots\n.\nend with dot line\n.",
        "From the beginning\nFrom here\n",
        String(repeating: "x", count: 5000) + "\n" + String(repeating: "é", count: 3000),
        "mixed\rline\r\nends\nhere",
        "\u{0}nul byte",
    ]

    @Test(arguments: bodies)
    func bodiesRoundTrip(_ body: String) throws {
        let (entity, check, _) = try Self.compose(Self.draft(text: body, html: "<pre>\(body)</pre>"))
        #expect(entity.parts[0].decodedText == crlf(body))
        #expect(entity.parts[1].decodedText == crlf("<pre>\(body)</pre>"))
        let needsQP = body.unicodeScalars.contains { !$0.isASCII || $0 == "\u{0}" } || body.contains(String(repeating: "x", count: 999))
        #expect(entity.parts[0].contentTransferEncoding == (needsQP ? "quoted-printable" : "7bit"))
        if needsQP {
            // RFC 2045 §6.7: quoted-printable lines are at most 76 characters.
            for line in String(decoding: entity.parts[0].body, as: UTF8.self).components(separatedBy: "\r\n") {
                #expect(line.utf8.count <= 76)
                #expect(!line.hasSuffix(" ") && !line.hasSuffix("\t"))
            }
            #expect(check.longestLine <= 78)
        }
    }

    @Test func longLineForcesQuotedPrintable() throws {
        let line = String(repeating: "0123456789", count: 500)
        let (entity, check, bytes) = try Self.compose(Self.draft(text: ".first\n" + line + "\n.last"))
        #expect(entity.contentTransferEncoding == "quoted-printable")
        #expect(entity.decodedText == ".first\r\n" + line + "\r\n.last\r\n")
        #expect(check.longestLine <= 76)
        #expect(bytes.count > 5000)
    }

    @Test func boundaryNeverOccursInContent() throws {
        // Predict the first boundary the seeded generator will produce and put it in the text.
        var probe = SeededGenerator(state: 42)
        let first = MessageComposer.compose(Self.draft(text: "a", html: "b"), using: &probe)
        let firstEntity = try MIMEEntity(parsing: first)
        let boundary = try #require(firstEntity.parameters["boundary"])
        let text = "Look: --\(boundary)\r\n--\(boundary)--\r\nend"
        var generator = SeededGenerator(state: 42)
        let bytes = MessageComposer.compose(Self.draft(text: text, html: "<p>x</p>"), using: &generator)
        let entity = try MIMEEntity(parsing: bytes)
        #expect(entity.parameters["boundary"] != boundary)
        #expect(entity.parts.count == 2)
        #expect(entity.parts[0].decodedText == text)
    }

    @Test func boundariesAreDistinctAndRandom() throws {
        let file = Attachment(filename: "f", contentType: "image/png", data: [1], contentID: "c")
        let draft = Self.draft(text: "t", html: "h", attachments: [file, Attachment(filename: "g", contentType: "text/plain", data: [2])])
        let a = try MIMEEntity(parsing: MessageComposer.compose(draft))
        let b = try MIMEEntity(parsing: MessageComposer.compose(draft))
        let boundariesA = [a.parameters["boundary"], a.parts[0].parameters["boundary"], a.parts[0].parts[1].parameters["boundary"]].compactMap { $0 }
        #expect(Set(boundariesA).count == 3)
        #expect(a.parameters["boundary"] != b.parameters["boundary"])
    }

    @Test func extraHeadersAreEncoded() throws {
        let (entity, check, _) = try Self.compose(Self.draft(text: "x", extraHeaders: [
            (name: "X-Note", value: "Grüße — " + String(repeating: "ü", count: 100)),
            (name: "X-Long", value: String(repeating: "word ", count: 60)),
        ]))
        #expect(entity.header("X-Note") == "Grüße — " + String(repeating: "ü", count: 100))
        #expect(entity.header("X-Long") == String(repeating: "word ", count: 59) + "word")
        #expect(check.longestHeaderLine <= 78)
    }

    @Test func composesLargeMessagesQuickly() throws {
        let big = Attachment(filename: "big.bin", contentType: "application/octet-stream", data: (0..<8_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let text = String(repeating: "Ünïcödé text line with some words in it.\n", count: 20_000)
        let draft = Self.draft(text: text, html: "<p>" + text + "</p>", attachments: [big])
        let clock = ContinuousClock()
        var bytes: [UInt8] = []
        let elapsed = clock.measure { bytes = MessageComposer.compose(draft) }
        #expect(bytes.count > 10_000_000)
        // Generous bound for a debug build on a shared machine; release is far faster.
        #expect(elapsed < .seconds(20))
        let entity = try MIMEEntity(parsing: bytes)
        #expect(entity.parts[1].decodedBody == big.data)
    }
}

@Suite("MessageComposer limits")
struct ComposerLimitTests {
    /// Whatever the API lets through, no line may exceed 998 octets (RFC 5322 §2.1.1).
    @Test func pathologicalInputsStayUnder998() throws {
        let long = String(repeating: "x", count: 1500)
        var draft = ComposerTests.draft(subject: long, text: long + "\n" + long, html: long)
        draft.from = Mailbox(displayName: long, address: try EmailAddress(parsing: "a@example.com"))
        draft.to = [Mailbox(displayName: "\"" + long + "\"", address: try EmailAddress(parsing: "b@example.com"))]
        draft.messageID = long + "@example.com"
        draft.extraHeaders = [(name: "X-Long", value: long)]
        draft.attachments = [
            Attachment(filename: long, contentType: "text/plain; x-param=" + long, data: Array(long.utf8), contentID: long),
            Attachment(filename: String(repeating: "ü", count: 800), contentType: "application/pdf", data: [1]),
        ]
        let bytes = MessageComposer.compose(draft)
        let check = checkWire(bytes)
        #expect(check.longestLine <= 998)
        let entity = try MIMEEntity(parsing: bytes)
        #expect(entity.header("Subject") == long)
        #expect(try Mailbox(parsing: try #require(entity.headers.first { $0.name == "From" }).value).displayName == long)
        #expect(entity.header("X-Long") == long)
        var leaves: [MIMEEntity] = []
        var stack = [entity]
        while let next = stack.popLast() {
            if next.parts.isEmpty { leaves.append(next) } else { stack += next.parts.reversed() }
        }
        #expect(leaves.map(\.contentType) == ["text/plain", "text/html", "text/plain", "application/pdf"])
        #expect(leaves[2].filename == long)
        #expect(leaves[2].decodedBody == Array(long.utf8))
        #expect(leaves[2].contentID?.utf8.count == 900)
        #expect(leaves[3].filename == String(repeating: "ü", count: 800))
    }
}
