import NIOCore
import SMTPCore
import Testing

/// What a decoder returns once the end of data is found, in a comparable form.
private struct Decoded: Equatable, CustomStringConvertible {
    var message: [UInt8]
    var rejection: SMTPDataDecoder.Rejection?
    var remaining: [UInt8]

    var description: String {
        "message \(String(decoding: message, as: UTF8.self).debugDescription), rejection \(String(describing: rejection)), "
            + "remaining \(String(decoding: remaining, as: UTF8.self).debugDescription)"
    }
}

/// Feeds `input` split at `cuts` (offsets, ascending); returns nil if the end of data was not found. Bytes in
/// chunks after the one that completed are appended to `remaining`, as the session would hand them on.
private func decode(_ input: [UInt8], cuts: [Int] = [], maximumLineLength: Int = 998, maximumSize: Int = 1 << 20) -> Decoded? {
    var decoder = SMTPDataDecoder(maximumLineLength: maximumLineLength, maximumSize: maximumSize)
    var bounds = [0] + cuts.filter { $0 > 0 && $0 < input.count } + [input.count]
    bounds = Array(Set(bounds)).sorted()
    for (start, end) in zip(bounds, bounds.dropFirst()) {
        let result = decoder.append(ByteBuffer(bytes: input[start..<end]))
        if case .complete(let message, let rejection, let remaining) = result {
            return Decoded(message: message, rejection: rejection,
                           remaining: Array(remaining.readableBytesView) + Array(input[end...]))
        }
    }
    return nil
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A deterministic generator (SplitMix64) for the random chunkings.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// DATA bytes in, message out.
struct DataFixture: Sendable, CustomTestStringConvertible {
    let name: String
    let input: [UInt8]
    let message: [UInt8]
    let rejection: SMTPDataDecoder.Rejection?
    let remaining: [UInt8]
    let maximumLineLength: Int
    let maximumSize: Int

    init(_ name: String, _ input: String, message: String, rejection: SMTPDataDecoder.Rejection? = nil,
         remaining: String = "", maximumLineLength: Int = 998, maximumSize: Int = 1 << 20) {
        self.init(name, Array(input.utf8), message: Array(message.utf8), rejection: rejection, remaining: Array(remaining.utf8),
                  maximumLineLength: maximumLineLength, maximumSize: maximumSize)
    }

    init(_ name: String, _ input: [UInt8], message: [UInt8], rejection: SMTPDataDecoder.Rejection? = nil, remaining: [UInt8] = [],
         maximumLineLength: Int = 998, maximumSize: Int = 1 << 20) {
        self.name = name
        self.input = input
        self.message = message
        self.rejection = rejection
        self.remaining = remaining
        self.maximumLineLength = maximumLineLength
        self.maximumSize = maximumSize
    }

    var testDescription: String { name }
}

/// An end-of-data look-alike used to smuggle a second message (SEC Consult's SMTP smuggling research,
/// CVE-2023-51764/-51765/-51766), and how the decoder must refuse the message that carries it.
struct SmugglingVariant: Sendable, CustomTestStringConvertible {
    let sequence: String
    /// nil: the sequence is legitimate content (it still must not end the data).
    let rejection: SMTPDataDecoder.Rejection?
    init(_ sequence: String, _ rejection: SMTPDataDecoder.Rejection?) {
        self.sequence = sequence
        self.rejection = rejection
    }
    var testDescription: String { sequence.debugDescription }
}

@Suite struct SMTPDataDecoderTests {
    static let fixtures: [DataFixture] = {
        let line998 = String(repeating: "x", count: 998)
        let line999 = String(repeating: "x", count: 999)
        return [
            DataFixture("empty message", ".\r\n", message: ""),
            DataFixture("one line", "Hello\r\n.\r\n", message: "Hello\r\n"),
            DataFixture("headers and body", "Subject: hi\r\n\r\nbody\r\n.\r\n", message: "Subject: hi\r\n\r\nbody\r\n"),
            DataFixture("stuffed dot line", "a\r\n..\r\n.\r\n", message: "a\r\n.\r\n"),
            DataFixture("stuffed leading dots", "..dot\r\n...two\r\n.\r\n", message: ".dot\r\n..two\r\n"),
            DataFixture("unstuffed leading dot is dropped", ".x\r\n.\r\n", message: "x\r\n"),
            DataFixture("dot inside a line", "a.b\r\n a .\r\n.\r\n", message: "a.b\r\n a .\r\n"),
            DataFixture("empty lines", "\r\n\r\n.\r\n", message: "\r\n\r\n"),
            DataFixture("pipelined commands after", "Hi\r\n.\r\nMAIL FROM:<a@b>\r\nQUIT\r\n", message: "Hi\r\n",
                        remaining: "MAIL FROM:<a@b>\r\nQUIT\r\n"),
            DataFixture("partial pipelined command after", ".\r\nQU", message: "", remaining: "QU"),
            DataFixture("8-bit content", "Grüße\r\n.\r\n", message: "Grüße\r\n"),
            DataFixture("line of 998 octets", line998 + "\r\n.\r\n", message: line998 + "\r\n"),
            DataFixture("line of 999 octets", line999 + "\r\n.\r\n", message: line999 + "\r\n", rejection: .lineTooLong),
            DataFixture("stuffed line of 999 octets on the wire", "." + line998 + "\r\n.\r\n", message: line998 + "\r\n",
                        rejection: .lineTooLong),
            DataFixture("custom line limit", "12345\r\n123456\r\n.\r\n", message: "12345\r\n123456\r\n",
                        rejection: .lineTooLong, maximumLineLength: 5),
            DataFixture("size exactly at the limit", "12345678\r\n.\r\n", message: "12345678\r\n", maximumSize: 10),
            DataFixture("size over the limit", "123456789\r\nmore\r\n.\r\nNOOP\r\n", message: "123456789\r",
                        rejection: .tooLarge, remaining: "NOOP\r\n", maximumSize: 10),
            DataFixture("bare LF", "a\nb\r\n.\r\n", message: "a\nb\r\n", rejection: .bareLineFeed),
            DataFixture("bare CR", "a\rb\r\n.\r\n", message: "a\rb\r\n", rejection: .bareCarriageReturn),
            DataFixture("bare CR at end of line", "a\r\r\n.\r\n", message: "a\r\r\n", rejection: .bareCarriageReturn),
            DataFixture("first reason wins", "a\nb\rc\r\n.\r\n", message: "a\nb\rc\r\n", rejection: .bareLineFeed),
            DataFixture("bare LF right after DATA", "\n.\r\n.\r\n", message: "\n.\r\n", rejection: .bareLineFeed),
            DataFixture("lone LF line then end", "\n\r\n.\r\n", message: "\n\r\n", rejection: .bareLineFeed),
            DataFixture("NUL", bytes("a") + [0] + bytes("b\r\n.\r\n"), message: bytes("a") + [0] + bytes("b\r\n"),
                        rejection: .nulCharacter),
            DataFixture(".CR then CRLF", ".\r\r\n.\r\n", message: "\r\r\n", rejection: .bareCarriageReturn),
            DataFixture("dot-space is not the end", ". \r\n.\r\n", message: " \r\n"),
        ]
    }()

    @Test(arguments: fixtures)
    func decodes(_ fixture: DataFixture) throws {
        let decoded = try #require(decode(fixture.input, maximumLineLength: fixture.maximumLineLength, maximumSize: fixture.maximumSize))
        #expect(decoded == Decoded(message: fixture.message, rejection: fixture.rejection, remaining: fixture.remaining))
    }

    @Test(arguments: fixtures)
    func chunkBoundariesDoNotMatter(_ fixture: DataFixture) throws {
        let whole = try #require(decode(fixture.input, maximumLineLength: fixture.maximumLineLength, maximumSize: fixture.maximumSize))
        let everyByte = Array(0...fixture.input.count)
        #expect(decode(fixture.input, cuts: everyByte, maximumLineLength: fixture.maximumLineLength, maximumSize: fixture.maximumSize) == whole)
        var generator = SeededGenerator(state: UInt64(fixture.input.count))
        for _ in 0..<50 {
            let cuts = (0..<Int.random(in: 1...4, using: &generator)).map { _ in Int.random(in: 0...fixture.input.count, using: &generator) }
            #expect(decode(fixture.input, cuts: cuts, maximumLineLength: fixture.maximumLineLength, maximumSize: fixture.maximumSize) == whole,
                    "cuts \(cuts)")
        }
    }

    @Test func needsMoreDataUntilTheTerminator() {
        var decoder = SMTPDataDecoder(maximumSize: 100)
        for part in ["Hello\r", "\n", ".", "\r"] {
            guard case .needMoreData = decoder.append(ByteBuffer(string: part)) else {
                Issue.record("completed early at \(part.debugDescription)")
                return
            }
        }
        guard case .complete(let message, nil, let remaining) = decoder.append(ByteBuffer(string: "\nRSET\r\n")) else {
            Issue.record("did not complete")
            return
        }
        #expect(message == bytes("Hello\r\n"))
        #expect(String(buffer: remaining) == "RSET\r\n")
    }

    @Test func incompleteDataNeverCompletes() {
        for input in ["", "Hello", "Hello\r\n", "Hello\r\n.", "Hello\r\n.\r", "a\n.\n", "\r.\r"] {
            #expect(decode(bytes(input)) == nil, "\(input.debugDescription)")
        }
    }

    @Test func finishedDecoderReturnsEverythingAsRemaining() {
        var decoder = SMTPDataDecoder(maximumSize: 100)
        _ = decoder.append(ByteBuffer(string: "a\r\n.\r\n"))
        guard case .complete(let message, nil, let remaining) = decoder.append(ByteBuffer(string: "NOOP\r\n")) else {
            Issue.record("expected complete")
            return
        }
        #expect(message == bytes("a\r\n"))
        #expect(String(buffer: remaining) == "NOOP\r\n")
    }

    @Test func tooLargeMessageUsesBoundedMemory() throws {
        var decoder = SMTPDataDecoder(maximumSize: 1000)
        let line = ByteBuffer(string: String(repeating: "y", count: 78) + "\r\n")
        for _ in 0..<10_000 {
            guard case .needMoreData = decoder.append(line) else {
                Issue.record("completed early")
                return
            }
        }
        guard case .complete(let message, let rejection, _) = decoder.append(ByteBuffer(string: ".\r\n")) else {
            Issue.record("expected complete")
            return
        }
        #expect(message.count == 1000)
        #expect(rejection == .tooLarge)
    }

    @Test func largeMessageInNetworkSizedChunks() throws {
        var input: [UInt8] = []
        let line = bytes(String(repeating: "z", count: 76) + "\r\n")
        for index in 0..<40_000 {
            if index % 100 == 0 { input += bytes(".") }  // some stuffed lines
            input += line
        }
        let cuts = Array(stride(from: 0, to: input.count, by: 65_536))
        let decoded = try #require(decode(input + bytes(".\r\n"), cuts: cuts, maximumSize: 10 << 20))
        #expect(decoded.rejection == nil)
        #expect(decoded.message.count == 40_000 * line.count)
    }

    // MARK: - SMTP smuggling

    /// The end-of-data look-alikes from the SMTP smuggling research (SEC Consult, December 2023) and variants.
    static let smugglingVariants: [SmugglingVariant] = [
        SmugglingVariant("\n.\n", .bareLineFeed),
        SmugglingVariant("\n.\r\n", .bareLineFeed),
        SmugglingVariant("\r.\r\n", .bareCarriageReturn),
        SmugglingVariant("\r\n.\r", .bareCarriageReturn),
        SmugglingVariant("\r\n.\n", .bareLineFeed),
        SmugglingVariant("\r.\r", .bareCarriageReturn),
        SmugglingVariant("\r.\n", .bareCarriageReturn),
        SmugglingVariant("\n.\r", .bareLineFeed),
        SmugglingVariant("\r\n\u{0}.\r\n", .nulCharacter),
        SmugglingVariant("\r\n.\u{0}\r\n", .nulCharacter),
        SmugglingVariant("\n\n.\n\n", .bareLineFeed),
        SmugglingVariant("\r\r\n.\r\r\n", .bareCarriageReturn),
        SmugglingVariant("\r\n.\r\r\n", .bareCarriageReturn),
        SmugglingVariant("\r\n\r.\r\n", .bareCarriageReturn),
        SmugglingVariant("\r\n\n.\r\n", .bareLineFeed),
        // Whitespace around the dot is legitimate content (a line " ." or ". "): kept, never an end of data.
        SmugglingVariant("\r\n .\r\n", nil),
        SmugglingVariant("\r\n. \r\n", nil),
        SmugglingVariant("\r\n.\t\r\n", nil),
    ]

    static let smuggledTail = "MAIL FROM:<admin@victim.example>\r\nRCPT TO:<target@example.net>\r\nDATA\r\nFrom: admin@victim.example\r\n\r\nsmuggled\r\n"

    @Test(arguments: smugglingVariants)
    func smugglingSequenceDoesNotEndTheData(_ variant: SmugglingVariant) throws {
        let input = bytes("From: attacker@example.com\r\n\r\nhello") + bytes(variant.sequence) + bytes(Self.smuggledTail)
            + bytes("\r\n.\r\nNOOP\r\n")
        let decoded = try #require(decode(input), "the real end of data was not found")
        // The data ends only at the real terminator: the smuggled commands are inside the message…
        #expect(decoded.remaining == bytes("NOOP\r\n"))
        #expect(decoded.message.count >= input.count - bytes("\r\n.\r\nNOOP\r\n").count)
        #expect(String(decoding: decoded.message, as: UTF8.self).contains("MAIL FROM:<admin@victim.example>"))
        // …and the message is refused, so nothing that another server might split is ever queued.
        #expect(decoded.rejection == variant.rejection)
        // Same answer however the bytes arrive.
        #expect(decode(input, cuts: Array(0...input.count)) == decoded)
        var generator = SeededGenerator(state: 0x5EED)
        for _ in 0..<100 {
            let cuts = (0..<3).map { _ in Int.random(in: 0...input.count, using: &generator) }
            #expect(decode(input, cuts: cuts) == decoded, "cuts \(cuts)")
        }
    }

    @Test(arguments: smugglingVariants)
    func smugglingSequenceRightAfterDataCommand(_ variant: SmugglingVariant) throws {
        // The CRLF of the DATA line counts as the first CRLF: a variant at the very start must not end it either.
        var sequence = variant.sequence
        if sequence.hasPrefix("\r\n") { sequence.removeFirst() }  // "\r\n" is one Character
        let input = bytes(sequence) + bytes(Self.smuggledTail) + bytes("\r\n.\r\n")
        let decoded = try #require(decode(input))
        #expect(decoded.remaining.isEmpty)
        #expect(String(decoding: decoded.message, as: UTF8.self).contains("smuggled"))
        #expect(decoded.rejection == variant.rejection)
    }

    @Test func messageWithoutRejectionHasOnlyCRLFLineEnds() throws {
        var generator = SeededGenerator(state: 42)
        let alphabet: [UInt8] = [0x0D, 0x0A, 0x2E, 0x41, 0x20, 0x00, 0xC3]
        for _ in 0..<2000 {
            let body = (0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            let input = body + bytes("\r\n.\r\n")
            let decoded = try #require(decode(input))
            #expect(decoded.message.count <= input.count)
            if decoded.rejection == nil {
                for (index, byte) in decoded.message.enumerated() {
                    if byte == 0x0D { #expect(index + 1 < decoded.message.count && decoded.message[index + 1] == 0x0A) }
                    if byte == 0x0A { #expect(index > 0 && decoded.message[index - 1] == 0x0D) }
                    #expect(byte != 0)
                }
                #expect(decoded.message.isEmpty || decoded.message.suffix(2) == [0x0D, 0x0A])
                // The encoder used for delivery and this decoder are inverses.
                let encoded = Array(SMTPDataEncoder.encode(decoded.message).readableBytesView)
                #expect(decode(encoded) == Decoded(message: decoded.message, rejection: nil, remaining: []))
            }
        }
    }
}
