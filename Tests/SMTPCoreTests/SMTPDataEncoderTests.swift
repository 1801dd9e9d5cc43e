import NIOCore
import SMTPCore
import Testing

/// Message bytes in, DATA bytes out.
struct EncoderFixture: Sendable, CustomTestStringConvertible {
    let name: String
    let input: [UInt8]
    let output: [UInt8]
    init(_ name: String, _ input: String, _ output: String) {
        self.name = name
        self.input = Array(input.utf8)
        self.output = Array(output.utf8)
    }
    init(_ name: String, bytes input: [UInt8], _ output: [UInt8]) {
        self.name = name
        self.input = input
        self.output = output
    }
    var testDescription: String { name }
}

@Suite struct SMTPDataEncoderTests {
    static let fixtures: [EncoderFixture] = [
        EncoderFixture("empty message", "", ".\r\n"),
        EncoderFixture("one line with CRLF", "Subject: x\r\n\r\nbody\r\n", "Subject: x\r\n\r\nbody\r\n.\r\n"),
        EncoderFixture("missing final CRLF", "body", "body\r\n.\r\n"),
        EncoderFixture("lone dot line", "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n"),
        EncoderFixture("dot-dot-x line", "a\r\n..x\r\n", "a\r\n...x\r\n.\r\n"),
        EncoderFixture("dot at message start", ".start\r\n", "..start\r\n.\r\n"),
        EncoderFixture("dot only message", ".", "..\r\n.\r\n"),
        EncoderFixture("dot not at line start", "a.b\r\n x.\r\n", "a.b\r\n x.\r\n.\r\n"),
        EncoderFixture("bare LF", "a\nb\n", "a\r\nb\r\n.\r\n"),
        EncoderFixture("bare CR", "a\rb\r", "a\r\nb\r\n.\r\n"),
        EncoderFixture("CR CR LF", "a\r\r\nb", "a\r\n\r\nb\r\n.\r\n"),
        EncoderFixture("LF CR", "a\n\rb", "a\r\n\r\nb\r\n.\r\n"),
        EncoderFixture("dot after bare LF", "a\n.b", "a\r\n..b\r\n.\r\n"),
        EncoderFixture("dot after bare CR", "a\r.\r", "a\r\n..\r\n.\r\n"),
        EncoderFixture("smuggling attempt", "a\n.\nMAIL FROM:<x@y>\n", "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n"),
        EncoderFixture("only CRLF", "\r\n", "\r\n.\r\n"),
        EncoderFixture("only LF", "\n", "\r\n.\r\n"),
        EncoderFixture("trailing CR", "a\r", "a\r\n.\r\n"),
        EncoderFixture("8-bit bytes pass through", bytes: [0x61, 0xC3, 0xA9, 0x0A], [0x61, 0xC3, 0xA9, 0x0D, 0x0A, 0x2E, 0x0D, 0x0A]),
    ]

    @Test(arguments: fixtures)
    func encodesByteBuffer(fixture: EncoderFixture) {
        let encoded = SMTPDataEncoder.encode(ByteBuffer(bytes: fixture.input))
        #expect(Array(encoded.readableBytesView) == fixture.output)
    }

    @Test(arguments: fixtures)
    func encodesArray(fixture: EncoderFixture) {
        let encoded = SMTPDataEncoder.encode(fixture.input)
        #expect(Array(encoded.readableBytesView) == fixture.output)
        #expect(SMTPDataEncoder.contentSize(ofEncoded: encoded) == fixture.output.count - 3)
    }

    @Test func neverLeavesBareLineEnds() {
        // Every sequence of the interesting bytes (CR, LF, ".", "a") up to length 6.
        let alphabet: [UInt8] = [0x0D, 0x0A, 0x2E, 0x61]
        var inputs: [[UInt8]] = [[]]
        var frontier: [[UInt8]] = [[]]
        for _ in 0..<6 {
            frontier = frontier.flatMap { prefix in alphabet.map { prefix + [$0] } }
            inputs += frontier
        }
        for input in inputs {
            let output = Array(SMTPDataEncoder.encode(input).readableBytesView)
            var wellFormed = output.suffix(3) == [0x2E, 0x0D, 0x0A]
            for (index, byte) in output.enumerated() {
                if byte == 0x0D, !(index + 1 < output.count && output[index + 1] == 0x0A) { wellFormed = false }
                if byte == 0x0A, !(index > 0 && output[index - 1] == 0x0D) { wellFormed = false }
            }
            // No content line is a lone ".", so the terminator is the only one; removing the stuffing gives the
            // input back with normalised line ends.
            let content = output.dropLast(3)
            let lines = content.split(separator: 0x0A, omittingEmptySubsequences: false)
            if lines.contains(where: { $0.elementsEqual([0x2E, 0x0D]) }) { wellFormed = false }
            #expect(wellFormed, "input \(input) encoded as \(output)")
        }
        #expect(inputs.count == 5461)
    }

    /// The rules spelled out byte by byte, as the reference for the fast encoder.
    static func referenceEncode(_ input: [UInt8]) -> [UInt8] {
        var lines: [[UInt8]] = []
        var current: [UInt8] = []
        var index = 0
        var endedWithLineBreak = false
        while index < input.count {
            let byte = input[index]
            if byte == 0x0D || byte == 0x0A {
                lines.append(current)
                current = []
                index += (byte == 0x0D && index + 1 < input.count && input[index + 1] == 0x0A) ? 2 : 1
                endedWithLineBreak = true
            } else {
                current.append(byte)
                index += 1
                endedWithLineBreak = false
            }
        }
        if !endedWithLineBreak, !input.isEmpty { lines.append(current) }
        var output: [UInt8] = []
        for line in lines {
            if line.first == 0x2E { output.append(0x2E) }
            output += line + [0x0D, 0x0A]
        }
        return output + [0x2E, 0x0D, 0x0A]
    }

    @Test func matchesTheReferenceOnRandomInput() {
        // A fixed-seed generator, so that a failure can be reproduced.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let alphabet: [UInt8] = [0x0D, 0x0A, 0x2E, 0x61, 0x62, 0xC3, 0x20]
        var mismatches = 0
        for _ in 0..<3000 {
            let length = Int(next() % 160)
            // Mostly ordinary bytes, so that the eight-byte skip is exercised.
            let input = (0..<length).map { _ in next() % 4 == 0 ? alphabet[Int(next() % 3)] : alphabet[3 + Int(next() % 4)] }
            let fast = Array(SMTPDataEncoder.encode(input).readableBytesView)
            if fast != Self.referenceEncode(input) {
                mismatches += 1
                if mismatches < 5 { Issue.record("mismatch for \(input)") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test func largeMessageIsEncodedInOnePass() {
        var message = ByteBuffer()
        let line = Array("The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqrstuvwxyz\r\n".utf8)
        let dotLine = Array(".leading dot\n".utf8)
        for index in 0..<100_000 { message.writeBytes(index % 100 == 0 ? dotLine : line) }
        let encoded = SMTPDataEncoder.encode(message)
        // 1000 dot lines gain a dot and a CR each.
        #expect(encoded.readableBytes == message.readableBytes + 2 * 1000 + 3)
    }

    @Test(arguments: [
        ([UInt8](), false),
        (Array("plain ascii text, long enough for the 8-byte loop".utf8), false),
        ([0x61, 0x62, 0xC3, 0xA9], true),
        (Array(repeating: 0x61, count: 17) + [0x80], true),
        ([0xFF] + Array(repeating: 0x61, count: 17), true),
    ])
    func detectsEightBitData(bytes: [UInt8], expected: Bool) {
        #expect(SMTPDataEncoder.containsEightBitData(bytes) == expected)
        #expect(SMTPDataEncoder.containsEightBitData(ByteBuffer(bytes: bytes)) == expected)
    }
}
