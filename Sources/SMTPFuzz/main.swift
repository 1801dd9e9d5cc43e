// SMTPFuzz: a dependency-free fuzz driver for the code that reads network input on the SMTP server side:
// `SMTPCommand.parse`, `SMTPDataDecoder` and `SMTPServerSession`.
//
//     SMTPFuzz --seconds N [--seed S]
//
// It generates and mutates command lines and DATA streams (random bytes, the SMTP smuggling end-of-data
// variants, CR/LF/NUL/dot runs, long lines) and checks invariants rather than only "does not crash":
// - parse: a parsed command encodes to one CRLF-terminated line that parses back to the same command;
// - data decoder: the end of data is exactly the first <CRLF>.<CRLF> (the DATA line's CRLF counting as the
//   first CRLF), whatever the chunking; a message that is not rejected holds no bare CR, bare LF or NUL, no
//   over-long line and nothing over the size limit; output is never longer than input; decode(encode(m)) == m;
// - proxy: a PROXY v1/v2 header parse never traps; a header is self-delimiting (its own bytes parse to the same
//   result), fits in the input, and names an address made of address characters only; a prefix found invalid
//   stays invalid however the input goes on;
// - session: random events never trap; replies are well-formed (no CR/LF inside a line, code 200...599);
//   nothing happens after close; commits only follow a 354, carry the authenticated principal and clean data.
//
// Exits 0 printing "fuzz: N inputs, 0 failures", or 1 printing the failing input as hex. A Swift trap (an
// overflow, an index out of range) is caught by a signal handler that prints the input being run.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import SMTPCore
#if canImport(SMTPServerSession)
import SMTPServerSession  // the isolated helper package
#else
import SMTPServer
#endif

// MARK: - Random numbers

/// SplitMix64: small, fast and reproducible from a seed.
struct FuzzRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(1, bound))) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }
}

// MARK: - Crash reporting

/// The input being run, kept in a fixed buffer so that the signal handler can print it without allocating.
let crashBufferCapacity = 1 << 20
nonisolated(unsafe) let crashBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1 << 20)
nonisolated(unsafe) var crashLength = 0

func recordInput(_ bytes: [UInt8]) {
    let count = min(bytes.count, crashBufferCapacity)
    bytes.withUnsafeBufferPointer { crashBuffer.update(from: $0.baseAddress!, count: count) }
    crashLength = count
}

func onCrash(_ signal: Int32) {
    let prefix = Array("\nfuzz: trapped (signal \(signal)) on input (hex):\n".utf8)
    _ = prefix.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count) }
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var chunk = [UInt8](repeating: 0, count: 128)
    var index = 0
    while index < crashLength {
        var used = 0
        while used < 128, index < crashLength {
            chunk[used] = digits[Int(crashBuffer[index] >> 4)]
            chunk[used + 1] = digits[Int(crashBuffer[index] & 0xF)]
            used += 2
            index += 1
        }
        _ = chunk.withUnsafeBufferPointer { write(2, $0.baseAddress, used) }
    }
    _ = write(2, "\nfuzz: 1 failures\n", 18)
    _exit(2)
}

signal(SIGILL) { onCrash($0) }
signal(SIGTRAP) { onCrash($0) }
signal(SIGSEGV) { onCrash($0) }
signal(SIGBUS) { onCrash($0) }

// MARK: - Inputs

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var result = ""
    result.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        result.append(digits[Int(byte >> 4)])
        result.append(digits[Int(byte & 0xF)])
    }
    return result
}

let commandCorpus: [[UInt8]] = [
    "EHLO client.example", "HELO client.example", "EHLO [192.0.2.1]", "EHLO [IPv6:2001:db8::1]",
    "MAIL FROM:<a@b.example>", "MAIL FROM:<>", "MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8",
    "MAIL FROM:<\"quoted \\\" local\"@b.example> AUTH=<>", "MAIL FROM:<@r1,@r2:a@b.example>", "mail from: a@b.example",
    "RCPT TO:<c@d.example>", "RCPT TO:<jörg@bücher.example>", "RCPT TO:<c@[192.0.2.1]> NOTIFY=NEVER",
    "DATA", "RSET", "NOOP", "NOOP x", "QUIT", "STARTTLS", "VRFY postmaster", "HELP", "EXPN list",
    "AUTH PLAIN", "AUTH LOGIN", "AUTH PLAIN AGFueQBya19zZWNyZXQ=", "AUTH LOGIN YW55", "AUTH PLAIN =", "AUTH CRAM-MD5",
    "BDAT 100 LAST", "BDAT 0", "*", "YW55", "cmtfc2VjcmV0", "AGFueQBya19zZWNyZXQ=", ".", "",
].map { Array($0.utf8) }

let interestingBytes: [UInt8] = [0x00, 0x0D, 0x0A, 0x2E, 0x20, 0x09, 0x3A, 0x3C, 0x3E, 0x3D, 0x40, 0x22, 0x5C, 0x7F, 0xFF,
                                 0xC3, 0x80, 0x2A, 0x5B, 0x5D, 0x2C, 0x30, 0x39, 0x41]

/// The end-of-data look-alikes of the SMTP smuggling research, and their building blocks.
let smugglingTokens: [[UInt8]] = [
    "\n.\n", "\n.\r\n", "\r.\r\n", "\r\n.\r", "\r\n.\n", "\r.\r", "\r.\n", "\n.\r", "\r\n\u{0}.\r\n", "\r\n.\u{0}\r\n",
    "\r\n .\r\n", "\r\n. \r\n", "\r\r\n.\r\r\n", "\n\n.\n\n",
].map { Array($0.utf8) }

let dataTokens: [[UInt8]] = [
    "\r\n", "\r\n", "\r\n", "\r", "\n", ".", "..", "\u{0}", "A", "text ", "Subject: x\r\n", "\r\n.", ".\r", "\u{e9}",
    "MAIL FROM:<evil@x.example>\r\n", "RCPT TO:<v@y.example>\r\n", "DATA\r\n", "QUIT\r\n",
].map { Array($0.utf8) }

func mutate(_ input: [UInt8], _ random: inout FuzzRandom, corpus: [[UInt8]]) -> [UInt8] {
    var bytes = input
    for _ in 0..<(1 + random.below(4)) {
        switch random.below(9) {
        case 0 where !bytes.isEmpty:
            bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
        case 1:
            bytes.insert(random.pick(interestingBytes), at: random.below(bytes.count + 1))
        case 2 where !bytes.isEmpty:
            let start = random.below(bytes.count)
            bytes.removeSubrange(start..<min(bytes.count, start + 1 + random.below(8)))
        case 3 where !bytes.isEmpty:
            let start = random.below(bytes.count)
            let piece = bytes[start..<min(bytes.count, start + 1 + random.below(16))]
            bytes.insert(contentsOf: piece, at: random.below(bytes.count + 1))
        case 4:
            let other = random.pick(corpus)
            let cut = random.below(bytes.count + 1)
            bytes = Array(bytes[..<cut]) + Array(other[random.below(other.count + 1)...])
        case 5:
            bytes.insert(contentsOf: [UInt8](repeating: random.pick(interestingBytes + [0x61]), count: 1 + random.below(600)),
                         at: random.below(bytes.count + 1))
        case 6:
            bytes = bytes.map { $0 >= 0x61 && $0 <= 0x7A && random.chance(30) ? $0 - 32 : $0 }
        case 7 where !bytes.isEmpty:
            bytes.removeLast(random.below(bytes.count + 1))
        default:
            bytes.insert(contentsOf: random.pick(smugglingTokens), at: random.below(bytes.count + 1))
        }
    }
    return bytes
}

func randomBytes(_ random: inout FuzzRandom, count: Int) -> [UInt8] {
    (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
}

// MARK: - Targets

struct Failure: Error {
    var target: String
    var message: String
    var input: [UInt8]
}

let proxyCorpus: [[UInt8]] = [
    Array("PROXY TCP4 203.0.113.7 192.0.2.1 56324 587\r\n".utf8), Array("PROXY TCP6 2001:db8::7 2001:db8::1 1 25\r\n".utf8),
    Array("PROXY UNKNOWN\r\n".utf8),
    [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C,
     203, 0, 113, 7, 192, 0, 2, 1, 0xDC, 0x04, 0x02, 0x4B],
    [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00],
]

/// ProxyProtocolHeader.parse: self-delimiting headers, bounded lengths, sane addresses, invalid stays invalid.
func fuzzProxy(_ random: inout FuzzRandom) throws(Failure) {
    var input = mutate(random.pick(proxyCorpus), &random, corpus: proxyCorpus)
    if random.chance(30) { input += Array("EHLO client.test\r\n".utf8) }
    let result = ProxyProtocolHeader.parse(input)
    switch result {
    case .header(let source, let length):
        guard length >= 1, length <= input.count else {
            throw Failure(target: "proxy", message: "header length \(length) outside the input", input: input)
        }
        guard ProxyProtocolHeader.parse(input[0..<length]) == result else {
            throw Failure(target: "proxy", message: "the header's own bytes parse differently", input: input)
        }
        if let source, source.isEmpty || !source.allSatisfy({ $0.isASCII && ($0.isHexDigit || $0 == "." || $0 == ":") }) {
            throw Failure(target: "proxy", message: "source \(source.debugDescription) is not an address", input: input)
        }
    case .invalid:
        let more = input + randomBytes(&random, count: random.below(40))
        guard case .invalid = ProxyProtocolHeader.parse(more) else {
            throw Failure(target: "proxy", message: "an invalid start became valid", input: more)
        }
    case .incomplete:
        guard input.count < 16 + 65_535 else {
            throw Failure(target: "proxy", message: "incomplete after \(input.count) bytes", input: input)
        }
    }
}

/// SMTPCommand.parse: a parsed command re-encodes to a single line that parses back to the same command.
func fuzzParse(_ random: inout FuzzRandom) throws(Failure) {
    let line: [UInt8] = random.chance(15)
        ? randomBytes(&random, count: random.below(80))
        : mutate(random.pick(commandCorpus), &random, corpus: commandCorpus)
    recordInput(line)
    guard let command = try? SMTPCommand.parse(line) else { return }
    let encoded = Array(command.encode().utf8)
    let body = encoded.dropLast(2)
    guard encoded.suffix(2) == [0x0D, 0x0A], !body.contains(0x0D), !body.contains(0x0A) else {
        throw Failure(target: "parse", message: "encode() of \(command) is not one CRLF line", input: line)
    }
    guard let again = try? SMTPCommand.parse(encoded), again == command else {
        throw Failure(target: "parse", message: "\(command) does not survive encode/parse", input: line)
    }
}

nonisolated(unsafe) var sessionCommits = 0
nonisolated(unsafe) var sessionDataRejections = 0

extension SMTPCommand {
    /// The path of MAIL or RCPT.
    var path: String? {
        switch self {
        case .mailFrom(let path, _), .rcptTo(let path, _): path
        default: nil
        }
    }
}

/// What a decoder said about a whole stream.
struct DecodeOutcome: Equatable {
    var message: [UInt8]
    var rejection: SMTPDataDecoder.Rejection?
    var consumed: Int
}

func decodeStream(_ input: [UInt8], cuts: [Int], maximumLineLength: Int, maximumSize: Int) -> DecodeOutcome? {
    var decoder = SMTPDataDecoder(maximumLineLength: maximumLineLength, maximumSize: maximumSize)
    let bounds = Array(Set([0, input.count] + cuts.filter { $0 > 0 && $0 < input.count })).sorted()
    for (start, end) in zip(bounds, bounds.dropFirst()) {
        let chunk = ByteBuffer(bytes: input[start..<end])
        if case .complete(let message, let rejection, let remaining) = decoder.append(chunk) {
            return DecodeOutcome(message: message, rejection: rejection, consumed: end - remaining.readableBytes)
        }
    }
    return nil
}

func dataStream(_ random: inout FuzzRandom) -> [UInt8] {
    var stream: [UInt8] = []
    let tokens = random.below(60)
    for _ in 0..<tokens {
        switch random.below(20) {
        case 0: stream += random.pick(smugglingTokens)
        case 1: stream += [UInt8](repeating: 0x78, count: 990 + random.below(20))
        case 2: stream += randomBytes(&random, count: random.below(16))
        case 3 where random.chance(30): stream += bytes("\r\n.\r\n")
        default: stream += random.pick(dataTokens)
        }
    }
    if random.chance(70) { stream += bytes("\r\n.\r\n") }
    if random.chance(50) { stream += random.pick(dataTokens) }
    return stream
}

/// SMTPDataDecoder against a reference reading of RFC 5321 §4.1.1.4 and §4.5.2.
func fuzzDecoder(_ random: inout FuzzRandom) throws(Failure) {
    let input = random.chance(10) ? randomBytes(&random, count: random.below(200)) : dataStream(&random)
    recordInput(input)
    let maximumLineLength = random.pick([1, 5, 78, 998])
    let maximumSize = random.pick([0, 10, 100, 1 << 20])
    func fail(_ message: String) -> Failure {
        Failure(target: "decoder", message: message + " (maximumLineLength \(maximumLineLength), maximumSize \(maximumSize))", input: input)
    }

    let whole = decodeStream(input, cuts: [], maximumLineLength: maximumLineLength, maximumSize: maximumSize)
    for _ in 0..<3 {
        let cuts = random.chance(20) ? Array(0...input.count) : (0..<(1 + random.below(6))).map { _ in random.below(input.count + 1) }
        guard decodeStream(input, cuts: cuts, maximumLineLength: maximumLineLength, maximumSize: maximumSize) == whole else {
            throw fail("chunking \(cuts) changes the result")
        }
    }

    // Reference: the end of data is the first CRLF "." CRLF in CRLF + input.
    let framed = [0x0D, 0x0A] + input
    var referenceEnd: Int?
    if framed.count >= 5 {
        for index in 0...(framed.count - 5) where framed[index] == 0x0D && framed[index + 1] == 0x0A && framed[index + 2] == 0x2E
            && framed[index + 3] == 0x0D && framed[index + 4] == 0x0A {
            referenceEnd = index + 5 - 2
            break
        }
    }
    guard let outcome = whole else {
        if referenceEnd != nil { throw fail("missed the end of data at \(referenceEnd!)") }
        return
    }
    guard outcome.consumed == referenceEnd else {
        throw fail("ended at \(outcome.consumed), reference \(String(describing: referenceEnd))")
    }
    guard outcome.message.count <= outcome.consumed, outcome.message.count <= maximumSize else {
        throw fail("message longer than its input or the limit")
    }
    // The content on the wire, without the terminating ".\r\n".
    let content = Array(framed[2..<(outcome.consumed + 2 - 3)])
    var hasBare = false
    for (index, byte) in content.enumerated() {
        if byte == 0x0D, index + 1 >= content.count || content[index + 1] != 0x0A { hasBare = true }
        if byte == 0x0A, index == 0 || content[index - 1] != 0x0D { hasBare = true }
        if byte == 0 { hasBare = true }
    }
    if hasBare, outcome.rejection == nil { throw fail("bare CR/LF or NUL accepted") }
    if outcome.rejection == nil {
        // Lines within the limit; the message is the unstuffed content.
        var lines: [[UInt8]] = []
        var current: [UInt8] = []
        var index = 0
        while index < content.count {
            if content[index] == 0x0D, index + 1 < content.count, content[index + 1] == 0x0A {
                lines.append(current)
                current = []
                index += 2
            } else {
                current.append(content[index])
                index += 1
            }
        }
        if !current.isEmpty { throw fail("content does not end with CRLF") }
        if lines.contains(where: { $0.count > maximumLineLength }) { throw fail("over-long line accepted") }
        let unstuffed = lines.flatMap { ($0.first == 0x2E ? Array($0.dropFirst()) : $0) + [0x0D, 0x0A] }
        if unstuffed != outcome.message { throw fail("message differs from the unstuffed content") }
        // The delivery encoder and this decoder are inverses.
        let encoded = Array(SMTPDataEncoder.encode(outcome.message).readableBytesView)
        if !outcome.message.isEmpty,
           decodeStream(encoded, cuts: [], maximumLineLength: Int.max, maximumSize: Int.max)?.message != outcome.message {
            throw fail("decode(encode(message)) != message")
        }
    } else if outcome.rejection != .tooLarge, !hasBare {
        // Not bare CR/LF/NUL and not size: must be a line over the limit.
        let tooLong = content.split(separator: 0x0A, omittingEmptySubsequences: false).contains { $0.count - 1 > maximumLineLength }
        if outcome.rejection != .lineTooLong || !tooLong {
            throw fail("rejected as \(String(describing: outcome.rejection)) without cause")
        }
    }
}

/// A random conversation with SMTPServerSession, played like the NIO layer plays it.
func fuzzSession(_ random: inout FuzzRandom) throws(Failure) {
    var configuration = SMTPServerConfiguration(hostname: "mx.fuzz.test", maximumMessageSize: random.pick([10, 1000, 1 << 20]),
                                                maximumRecipients: random.pick([1, 100, 1000]), offersSTARTTLS: random.chance(50))
    configuration.maximumErrors = random.pick([0, 3, 10])
    configuration.requiresTLSForAuth = random.chance(80)
    // A quarter of the sessions run in inbound (MX) mode, where only bounce+ recipients may ever be committed.
    let inbound = random.chance(25)
    if inbound { configuration.mode = .inbound(acceptsRecipient: { $0.hasPrefix("bounce+") }) }
    var session = SMTPServerSession(configuration: configuration, remoteAddress: "192.0.2.1", tlsActive: random.chance(50))
    var transcript: [UInt8] = []
    var closed = false
    var sawDataReply = false
    var principal: String? = inbound ? SMTPServerSession.anonymousPrincipal : nil
    var pending: SMTPServerSession.Action?
    let sessionCorpus = commandCorpus + [bytes("AUTH PLAIN \(encodePlain("any", "key"))"),
                                         bytes("RCPT TO:<bounce+1-abc@bounces.example>"), bytes("MAIL FROM:<>")]

    func fail(_ message: String) -> Failure { Failure(target: "session", message: message, input: transcript) }

    func check(_ action: SMTPServerSession.Action) throws(Failure) {
        if closed, action != .none { throw fail("action \(action) after close") }
        switch action {
        case .none: break
        case .reply(let reply), .replyAndClose(let reply), .replyAndStartTLS(let reply):
            guard (200...599).contains(reply.code),
                  !reply.lines.contains(where: { $0.utf8.contains(0x0D) || $0.utf8.contains(0x0A) })
            else { throw fail("malformed reply \(reply)") }
            if reply.code == 354 { sawDataReply = true }
            if sawDataReply, reply.code == 550 || reply.code == 552 {
                sessionDataRejections += 1
                sawDataReply = false
            }
            if reply.code == 235 { principal = session.principal }
            if case .replyAndClose = action { closed = true }
        case .authenticate, .checkSender:
            if inbound { throw fail("inbound session asked the backend about \(action)") }
            pending = action
        case .commit(let message):
            guard sawDataReply else { throw fail("commit without 354") }
            guard message.principal == principal, message.principal == session.principal else { throw fail("commit with wrong principal") }
            guard message.data.count <= configuration.maximumMessageSize else { throw fail("commit over the size limit") }
            if inbound, !message.recipients.allSatisfy({ $0.hasPrefix("bounce+") }) { throw fail("inbound session relayed") }
            var previous: UInt8 = 0x0A
            for (index, byte) in message.data.enumerated() {
                if byte == 0x0D, index + 1 >= message.data.count || message.data[index + 1] != 0x0A { throw fail("bare CR committed") }
                if byte == 0x0A, previous != 0x0D { throw fail("bare LF committed") }
                if byte == 0 { throw fail("NUL committed") }
                previous = byte
            }
            sawDataReply = false
            sessionCommits += 1
            pending = action
        case .close:
            closed = true
        }
        if session.expectsRawData, session.isBusy { throw fail("busy while expecting raw data") }
    }

    // The happy path; an empty step stands for the TLS handshake completing.
    let script: [[UInt8]] = [
        bytes("EHLO client.example"), bytes("STARTTLS"), [], bytes("EHLO client.example"),
        bytes("AUTH PLAIN \(encodePlain("any", "key"))"), bytes("MAIL FROM:<app@tenant.example> BODY=8BITMIME SIZE=100"),
        bytes("RCPT TO:<a@example.net>"), bytes("RCPT TO:<b@example.net>"), bytes("DATA"),
    ]
    let mailStep = 5
    var scriptIndex = 0
    try check(session.connected())
    for _ in 0..<(10 + random.below(60)) {
        if closed { break }
        if let waiting = pending {
            pending = nil
            transcript += bytes("<backend>\n")
            switch waiting {
            case .authenticate:
                let principalIndex = random.below(3)
                let result = random.pick([AuthenticationResult.accepted(principal: "p\(principalIndex)"), .rejected, .lockedOut, .temporaryFailure])
                try check(session.authenticationCompleted(random.chance(70) ? .accepted(principal: "p\(principalIndex)") : result))
            case .checkSender:
                let accept = random.chance(80)
                try check(session.senderChecked(accept ? .accepted
                    : .rejected(SMTPReply(code: 550, enhancedCode: EnhancedStatusCode("5.7.1"), text: "no"))))
            default:
                let code = random.pick([250, 451, 550])
                try check(session.messageCommitted(SMTPReply(code: code, text: "done")))
            }
            continue
        }
        if session.expectsRawData {
            let chunk = dataStream(&random)
            transcript += bytes("<data>") + chunk + bytes("\n")
            recordInput(transcript)
            try check(session.dataReceived(ByteBuffer(bytes: chunk)))
            if let rest = session.takeRemainingAfterData() {
                // Pipelined lines after the data: fed as lines.
                let lines = Array(rest.readableBytesView).split(separator: 0x0A).map { Array($0.last == 0x0D ? $0.dropLast() : $0) }
                for line in lines.prefix(5) where !closed && !session.isBusy && !session.expectsRawData {
                    try check(session.commandLineReceived(line))
                }
            }
            continue
        }
        // Mostly follow a valid conversation (so that AUTH, the transaction and DATA are reached), with random
        // lines, mutations and events mixed in.
        if random.chance(65) {
            let step = script[scriptIndex % script.count]
            scriptIndex += 1
            if step.isEmpty {
                transcript += bytes("<tls>\n")
                try check(session.tlsEstablished())
            } else {
                transcript += step + bytes("\n")
                recordInput(transcript)
                try check(session.commandLineReceived(step))
                if step == bytes("DATA") { scriptIndex = mailStep }
            }
            continue
        }
        switch random.below(40) {
        case 0:
            transcript += bytes("<tls>\n")
            try check(session.tlsEstablished())
        case 1:
            transcript += bytes("<timeout>\n")
            try check(session.timedOut())
        case 2:
            transcript += bytes("<shutdown>\n")
            try check(session.shutdownRequested())
        case 3:
            transcript += bytes("<too long>\n")
            try check(session.commandLineTooLong())
        default:
            let line = random.chance(40) ? random.pick(sessionCorpus) : mutate(random.pick(sessionCorpus), &random, corpus: sessionCorpus)
            transcript += line + bytes("\n")
            recordInput(transcript)
            try check(session.commandLineReceived(line))
        }
    }
}

func encodePlain(_ user: String, _ password: String) -> String {
    let raw = [0] + Array(user.utf8) + [0] + Array(password.utf8)
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    var result = ""
    var index = 0
    while index < raw.count {
        let chunk = Array(raw[index..<min(index + 3, raw.count)])
        let value = (UInt32(chunk[0]) << 16) | (chunk.count > 1 ? UInt32(chunk[1]) << 8 : 0) | (chunk.count > 2 ? UInt32(chunk[2]) : 0)
        for position in 0..<4 {
            result.append(position <= chunk.count ? alphabet[Int((value >> UInt32(18 - 6 * position)) & 0x3F)] : "=")
        }
        index += 3
    }
    return result
}

// MARK: - Main

var seconds = 10.0
var seed = UInt64(UInt32(truncatingIfNeeded: time(nil)))
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--seconds":
        guard let value = arguments.popFirst().flatMap(Double.init), value >= 0 else {
            print("usage: SMTPFuzz --seconds N [--seed S]")
            exit(64)
        }
        seconds = value
    case "--seed":
        guard let value = arguments.popFirst().flatMap({ UInt64($0) }) else {
            print("usage: SMTPFuzz --seconds N [--seed S]")
            exit(64)
        }
        seed = value
    default:
        print("usage: SMTPFuzz --seconds N [--seed S]")
        exit(64)
    }
}

print("fuzz: seed \(seed), \(seconds) s")
var random = FuzzRandom(state: seed)
var counts: [String: Int] = ["parse": 0, "decoder": 0, "session": 0, "proxy": 0]
var inputs = 0
let clock = ContinuousClock()
let deadline = clock.now.advanced(by: .milliseconds(Int64(seconds * 1000)))
do {
    repeat {
        for _ in 0..<64 {
            switch random.below(11) {
            case 10:
                try fuzzProxy(&random)
                counts["proxy", default: 0] += 1
            case 0...3:
                try fuzzParse(&random)
                counts["parse", default: 0] += 1
            case 4...7:
                try fuzzDecoder(&random)
                counts["decoder", default: 0] += 1
            default:
                try fuzzSession(&random)
                counts["session", default: 0] += 1
            }
            inputs += 1
        }
    } while clock.now < deadline
} catch {
    print("fuzz: FAILURE in \(error.target): \(error.message)")
    print("fuzz: input (hex): \(hex(error.input))")
    print("fuzz: input (text): \(String(decoding: error.input, as: UTF8.self).debugDescription)")
    print("fuzz: reproduce with --seed \(seed)")
    print("fuzz: \(inputs) inputs, 1 failures")
    exit(1)
}
print("fuzz: parse \(counts["parse"]!), decoder \(counts["decoder"]!), session \(counts["session"]!), proxy \(counts["proxy"]!) (\(sessionCommits) commits, \(sessionDataRejections) DATA rejections)")
print("fuzz: \(inputs) inputs, 0 failures")
