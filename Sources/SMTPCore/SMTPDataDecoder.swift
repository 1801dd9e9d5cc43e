import NIOCore

/// Reads what a client sends after the 354 reply to DATA, up to the end-of-data indication, and undoes
/// dot-stuffing (RFC 5321 §4.1.1.4, §4.5.2). The server side twin of ``SMTPDataEncoder``.
///
/// It is strict against "SMTP smuggling" (CVE-2023-51764 and its siblings), where a sender hides a second
/// message behind an end-of-data sequence that one server honours and another does not:
/// - only `<CRLF>.<CRLF>` ends the data; `<LF>.<LF>`, `<CR>.<CR>`, `<LF>.<CRLF>`, `<CRLF>.<LF>` and every other
///   mix are ordinary content;
/// - a bare CR or bare LF anywhere (RFC 5321 §2.3.8), a NUL (RFC 2045 §2.7, §2.8: not allowed without
///   BINARYMIME, which Relay does not offer) or a line over the limit (RFC 5321 §4.5.3.1.6) rejects the whole
///   message, so that nothing which another server might read as an end of data is ever queued.
///
/// A rejected message is still read to its real end, so that the session stays in step with the client and the
/// bytes after it are read as commands again. Past `maximumSize` the decoder stops storing (bounded memory) but
/// keeps scanning.
///
/// The CRLF that ended the DATA command line counts as the first CRLF of the terminator: data that starts with
/// `.\r\n` is an empty message.
public struct SMTPDataDecoder: Sendable {
    /// Why a message has to be refused.
    public enum Rejection: Sendable, Hashable {
        /// A CR not followed by LF.
        case bareCarriageReturn
        /// An LF not preceded by CR.
        case bareLineFeed
        /// A line longer than the maximum line length (CRLF excluded).
        case lineTooLong
        /// More content than the maximum size.
        case tooLarge
        /// A NUL octet, which neither 7bit nor 8bit content may hold (RFC 2045 §2.7, §2.8) and which some
        /// servers drop, turning `<CRLF><NUL>.<CRLF>` into an end of data.
        case nulCharacter
    }

    /// What one call to ``append(_:)`` found.
    public enum Result: Sendable {
        /// The end of data has not been seen yet; feed more bytes.
        case needMoreData
        /// End of data found. `message` is dot-unstuffed with CRLF line ends; `remaining` are bytes after the
        /// terminating CRLF.CRLF (pipelined commands). `rejection` is set when the message must be refused (the
        /// decoder still consumed everything up to the real end of data so the session stays in sync).
        case complete(message: [UInt8], rejection: Rejection?, remaining: ByteBuffer)
    }

    /// Where the scanner stands in the current line.
    private enum Position: Sendable {
        /// At the start of a line: after the CRLF of the previous line (or of the DATA command).
        case lineStart
        /// A line began with "."; the dot is not content (it is either stuffing or the terminator).
        case leadingDot
        /// A line began with ".\r": LF now ends the data.
        case leadingDotCR
        /// Inside a line.
        case inLine
        /// A CR inside a line (or opening it); LF now ends the line.
        case carriageReturn
        /// The end of data was found.
        case finished
    }

    private static let cr: UInt8 = 0x0D
    private static let lf: UInt8 = 0x0A
    private static let dot: UInt8 = 0x2E

    /// The longest line accepted, in octets, CRLF excluded.
    public let maximumLineLength: Int
    /// The largest message accepted, in octets of decoded content (after dot-unstuffing, CRLF line ends).
    public let maximumSize: Int

    private var position: Position = .lineStart
    private var lineLength = 0
    private var message: [UInt8] = []
    private var rejection: Rejection?

    /// Creates a decoder for one message.
    /// - Parameters:
    ///   - maximumLineLength: octets per line, CRLF excluded; 998 is the limit of RFC 5322 §2.1.1.
    ///   - maximumSize: octets of decoded content; more rejects the message with ``Rejection/tooLarge``.
    public init(maximumLineLength: Int = 998, maximumSize: Int) {
        self.maximumLineLength = max(0, maximumLineLength)
        self.maximumSize = max(0, maximumSize)
    }

    /// Feeds the next bytes received; call repeatedly until it returns ``Result/complete(message:rejection:remaining:)``.
    /// After that, make a new decoder for the next message (a finished decoder answers `complete` again with
    /// the same message and all of `bytes` as `remaining`).
    public mutating func append(_ bytes: ByteBuffer) -> Result {
        if position == .finished {
            return .complete(message: message, rejection: rejection, remaining: bytes)
        }
        let consumed = bytes.withUnsafeReadableBytes { scan($0) }
        guard position == .finished else { return .needMoreData }
        let remaining = bytes.getSlice(at: bytes.readerIndex + consumed, length: bytes.readableBytes - consumed)
            ?? ByteBuffer()
        return .complete(message: message, rejection: rejection, remaining: remaining)
    }

    /// Scans `bytes` until the end of data; returns how many bytes it used.
    private mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Int {
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            index += 1
            if consume(byte) { return index }
        }
        return count
    }

    /// Takes one byte; returns true when it completed the terminator.
    private mutating func consume(_ byte: UInt8) -> Bool {
        switch position {
        case .lineStart:
            if byte == Self.dot {
                countLineOctet()
                position = .leadingDot
            } else {
                content(byte)
            }
        case .leadingDot:
            if byte == Self.cr {
                position = .leadingDotCR
            } else {
                // Dot-stuffing: the leading dot of any other line is dropped (RFC 5321 §4.5.2).
                content(byte)
            }
        case .leadingDotCR:
            if byte == Self.lf {
                position = .finished
                return true
            }
            // ".\r" followed by anything else: the line held "." (stuffing removed) and a bare CR.
            reject(.bareCarriageReturn)
            countLineOctet()
            store(Self.cr)
            position = .inLine
            content(byte)
        case .inLine:
            content(byte)
        case .carriageReturn:
            if byte == Self.lf {
                store(Self.cr)
                store(Self.lf)
                lineLength = 0
                position = .lineStart
            } else {
                reject(.bareCarriageReturn)
                countLineOctet()
                store(Self.cr)
                position = .inLine
                content(byte)
            }
        case .finished:
            return true
        }
        return false
    }

    /// A content byte inside a line (or starting one that does not begin with a dot).
    private mutating func content(_ byte: UInt8) {
        switch byte {
        case Self.cr:
            // Not stored until the next byte tells whether it is a line end or a bare CR.
            position = .carriageReturn
        case Self.lf:
            // A bare LF does not end the line: only CRLF does.
            reject(.bareLineFeed)
            countLineOctet()
            store(byte)
            position = .inLine
        case 0:
            reject(.nulCharacter)
            countLineOctet()
            store(byte)
            position = .inLine
        default:
            countLineOctet()
            store(byte)
            position = .inLine
        }
    }

    private mutating func countLineOctet() {
        lineLength += 1
        if lineLength > maximumLineLength { reject(.lineTooLong) }
    }

    private mutating func store(_ byte: UInt8) {
        guard message.count < maximumSize else {
            reject(.tooLarge)
            return
        }
        message.append(byte)
    }

    /// Keeps the first reason found.
    private mutating func reject(_ reason: Rejection) {
        if rejection == nil { rejection = reason }
    }
}
