import MailMessage
import Testing

@Suite("MIMEEntity")
struct MIMEEntityTests {
    /// An RFC 3464 delivery status notification, with LF-only line ends as bounces often arrive.
    static let bounce = """
        Return-Path: <>
        Received: from mx.example.net by relay.example; Sun, 29 Nov 2026 01:52:00 +0000
        From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
        To: bounces+0190f6c2@relay.example
        Subject: Undelivered Mail Returned to Sender
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status;
        \tboundary="9B0F1C2D3E.1795917120/mx.example.net"

        This is a MIME-encapsulated message.

        --9B0F1C2D3E.1795917120/mx.example.net
        Content-Description: Notification
        Content-Type: text/plain; charset=us-ascii

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients.

        --9B0F1C2D3E.1795917120/mx.example.net
        Content-Description: Delivery report
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.example.net
        X-Postfix-Queue-ID: 9B0F1C2D3E
        Arrival-Date: Sun, 29 Nov 2026 01:51:40 +0000

        Final-Recipient: rfc822; nobody@example.net
        Original-Recipient: rfc822;nobody@example.net
        Action: failed
        Status: 5.1.1
        Remote-MTA: dns; mx.example.net
        Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address
            rejected: User unknown in local recipient table

        --9B0F1C2D3E.1795917120/mx.example.net
        Content-Description: Undelivered Message
        Content-Type: message/rfc822

        From: sender@relay.example
        To: nobody@example.net
        Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=
        Message-ID: <0190f6c2@relay.example>
        Content-Type: text/plain; charset=utf-8
        Content-Transfer-Encoding: quoted-printable

        Gr=C3=BC=C3=9Fe

        --9B0F1C2D3E.1795917120/mx.example.net--

        """

    @Test func parsesLFOnlyDeliveryStatusNotification() throws {
        let entity = try MIMEEntity(parsing: Array(Self.bounce.utf8))
        #expect(entity.contentType == "multipart/report")
        #expect(entity.parameters["report-type"] == "delivery-status")
        #expect(entity.header("subject") == "Undelivered Mail Returned to Sender")
        #expect(entity.headerValues("Received").count == 1)
        #expect(entity.header("Return-Path") == "<>")
        #expect(entity.parts.map(\.contentType) == ["text/plain", "message/delivery-status", "message/rfc822"])
        #expect(entity.parts[0].decodedText.hasPrefix("I'm sorry"))

        let groups = entity.parts[1].fieldGroups
        #expect(groups.count == 2)
        #expect(groups[0].first?.name == "Reporting-MTA")
        let recipient = Dictionary(groups[1].map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        #expect(recipient["status"] == "5.1.1")
        #expect(recipient["action"] == "failed")
        #expect(recipient["diagnostic-code"] == "smtp; 550 5.1.1 <nobody@example.net>: Recipient address    rejected: User unknown in local recipient table")

        let returned = try #require(entity.parts[2].encapsulatedMessage)
        #expect(returned.header("Message-ID") == "<0190f6c2@relay.example>")
        #expect(returned.header("Subject") == "Grüße")
        #expect(returned.decodedText == "Grüße\n")
    }

    @Test func readsPreambleEpilogueAndPadding() throws {
        let message = "Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b  \r\n\r\nfirst\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--b--\t\r\nepilogue\r\n--b\r\nnot a part\r\n"
        let entity = try MIMEEntity(parsing: Array(message.utf8))
        #expect(entity.parts.count == 2)
        #expect(entity.parts[0].contentType == "text/plain")
        #expect(entity.parts[0].decodedText == "first")
        #expect(entity.parts[1].decodedText == "<p>second</p>")
    }

    @Test func toleratesMissingCloseDelimiter() throws {
        let message = "Content-Type: multipart/alternative; boundary=\"x y\"\n\n--x y\n\none\n--x y\n\ntwo\n"
        let entity = try MIMEEntity(parsing: Array(message.utf8))
        #expect(entity.parts.map(\.decodedText) == ["one", "two\n"])
    }

    @Test func boundaryMustMatchTheWholeLine() throws {
        let message = "Content-Type: multipart/mixed; boundary=ab\r\n\r\n--ab\r\n\r\n--abc is content\r\n--ab--\r\n"
        let entity = try MIMEEntity(parsing: Array(message.utf8))
        #expect(entity.parts.map(\.decodedText) == ["--abc is content"])
    }

    @Test func digestPartsDefaultToMessage() throws {
        let message = "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: inner\r\n\r\nbody\r\n--d--\r\n"
        let entity = try MIMEEntity(parsing: Array(message.utf8))
        #expect(entity.parts.first?.contentType == "message/rfc822")
        #expect(entity.parts.first?.encapsulatedMessage?.header("Subject") == "inner")
    }

    @Test func unfoldsHeadersAndSkipsMboxLine() throws {
        let message = "From sender@example.com Sun Nov 29 01:51:37 2026\nSubject: one\n  two\nX-Empty:\nX-Spaced : value\n\nbody"
        let entity = try MIMEEntity(parsing: Array(message.utf8))
        #expect(entity.header("Subject") == "one  two")
        #expect(entity.header("X-Empty") == "")
        #expect(entity.header("X-Spaced") == "value")
        #expect(entity.body == Array("body".utf8))
    }

    @Test func latin1HeaderBytesAreKept() throws {
        var bytes = Array("Subject: caf".utf8)
        bytes.append(0xE9)
        bytes += Array("\r\n\r\n".utf8)
        #expect(try MIMEEntity(parsing: bytes).header("Subject") == "café")
    }

    @Test(arguments: [
        ("", "empty input"),
        ("this is not a header\r\n\r\nbody", "input does not start with a header field"),
    ])
    func rejectsNonMessages(_ input: String, _ message: String) {
        #expect(throws: MIMEParseError(message)) { try MIMEEntity(parsing: Array(input.utf8)) }
    }

    @Test func deepNestingStops() throws {
        var message = ""
        for level in 0..<50 { message += "Content-Type: multipart/mixed; boundary=b\(level)\r\n\r\n--b\(level)\r\n" }
        message += "\r\nleaf\r\n"
        var entity = try MIMEEntity(parsing: Array(message.utf8))
        var depth = 0
        while let child = entity.parts.first {
            entity = child
            depth += 1
        }
        #expect(depth == MIMEEntity.maxDepth)
    }

    /// Mutated messages must never crash the parser (it reads untrusted bounces).
    @Test func survivesMutations() throws {
        let seedMessage = MessageComposer.compose(MessageDraft(
            from: try Mailbox(parsing: "Jürgen <j@example.de>"),
            to: [try Mailbox(parsing: "a@example.com")],
            subject: "Grüße", text: "text é", html: "<p>é</p>",
            attachments: [MailMessage.Attachment(filename: "naïve.txt", contentType: "text/plain", data: Array("data".utf8), contentID: "c")],
            messageID: "m@relay.example"))
        var generator = SeededGenerator(state: 7)
        let interesting: [UInt8] = Array("=?-\r\n:;\"\\()<>*'%".utf8) + [0, 0xFF, 0xC3]
        for _ in 0..<300 {
            var bytes = seedMessage
            for _ in 0..<Int(generator.next(upperBound: UInt32(8)) + 1) {
                let position = Int(generator.next(upperBound: UInt32(bytes.count)))
                switch generator.next(upperBound: UInt32(3)) {
                case 0: bytes[position] = interesting[Int(generator.next(upperBound: UInt32(interesting.count)))]
                case 1: bytes.remove(at: position)
                default: bytes.insert(interesting[Int(generator.next(upperBound: UInt32(interesting.count)))], at: position)
                }
            }
            if let entity = try? MIMEEntity(parsing: bytes) {
                var stack = [entity]
                while let next = stack.popLast() {
                    _ = next.decodedText
                    _ = next.filename
                    _ = next.headers.map(\.decodedValue)
                    _ = next.fieldGroups
                    stack += next.parts
                }
            }
        }
    }
}
