import NIOCore
import Testing
@testable import SMTPServer

@Suite("Command line framing")
struct SMTPCommandLineFramerTests {
    private func lines(_ chunks: [String], maximum: Int = 512) -> [SMTPCommandLineFramer.Event] {
        var framer = SMTPCommandLineFramer(maximumLineLength: maximum)
        var events: [SMTPCommandLineFramer.Event] = []
        for chunk in chunks {
            framer.append(ByteBuffer(string: chunk))
            while let event = framer.next() { events.append(event) }
        }
        return events
    }

    private func line(_ text: String) -> SMTPCommandLineFramer.Event { .line(Array(text.utf8)) }

    @Test func splitsOnCRLFAcrossChunks() {
        #expect(lines(["EHLO a\r\nNO", "OP\r", "\nQUIT\r\n"]) == [line("EHLO a"), line("NOOP"), line("QUIT")])
        #expect(lines(["\r\n"]) == [line("")])
        #expect(lines(["NOOP"]) == [])
    }

    @Test func bareLFAndBareCRDoNotEndALine() {
        #expect(lines(["NOOP\nMAIL FROM:<a@b>\r\n"]) == [line("NOOP\nMAIL FROM:<a@b>")])
        #expect(lines(["NOOP\rQUIT\r\n"]) == [line("NOOP\rQUIT")])
    }

    @Test func lineOf512OctetsWithCRLFIsAcceptedAndOneMoreIsTooLong() {
        let fits = String(repeating: "a", count: 510)
        #expect(lines([fits + "\r\n"]) == [line(fits)])
        #expect(lines([fits + "b\r\nNOOP\r\n"]) == [.lineTooLong, line("NOOP")])
        // A CR as the 511th octet may still be followed by its LF.
        #expect(lines([fits + "\r", "\n"]) == [line(fits)])
    }

    @Test func overLongLineIsReportedOnceAndSkippedToItsCRLF() {
        let long = String(repeating: "x", count: 2000)
        #expect(lines([long, long, "\r", "\nNOOP\r\n"]) == [.lineTooLong, line("NOOP")])
        #expect(lines([String(repeating: "y", count: 600) + "\nstill the same line\r\nQUIT\r\n"]) == [.lineTooLong, line("QUIT")])
    }

    @Test func rawBytesAndPrependKeepOrder() {
        var framer = SMTPCommandLineFramer()
        framer.append(ByteBuffer(string: "Subject: x\r\n"))
        #expect(framer.takeAll() == ByteBuffer(string: "Subject: x\r\n"))
        #expect(framer.takeAll() == nil)
        framer.append(ByteBuffer(string: "QUIT\r\n"))
        framer.prepend(ByteBuffer(string: "RSET\r\nNO"))
        framer.prepend(ByteBuffer())
        #expect(framer.next() == line("RSET"))
        #expect(framer.next() == line("NOQUIT"))
        #expect(framer.next() == nil)
    }

    @Test func discardAllDropsEverythingHeld() {
        var framer = SMTPCommandLineFramer()
        framer.append(ByteBuffer(string: "NOOP\r\nRSET"))
        framer.discardAll()
        #expect(framer.bufferedBytes == 0)
        framer.append(ByteBuffer(string: "EHLO a\r\n"))
        #expect(framer.next() == line("EHLO a"))
    }
}
