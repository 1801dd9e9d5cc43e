import NIOCore

/// Splits the bytes a client sends in command mode into command lines (RFC 5321 §2.3.8, §4.5.3.1.4).
///
/// - Only CRLF ends a line. A bare LF does not: it stays inside the line, which the command parser then rejects
///   for its control character (501), so `NOOP\nMAIL FROM:<x>` can never be read as two commands.
/// - A line may hold at most ``maximumLineLength`` octets including its CRLF (512, RFC 5321 §4.5.3.1.4).
///   A longer one is reported once as ``Event/lineTooLong`` and everything up to its CRLF is dropped.
///
/// In DATA (or BDAT) mode the handler takes the raw bytes with ``takeAll()`` instead; bytes the session hands back
/// after the end of the data are put in front again with ``prepend(_:)``. No channels here: this type is tested
/// on its own.
struct SMTPCommandLineFramer {
    /// What ``next()`` found.
    enum Event: Equatable {
        /// One command line without its CRLF.
        case line([UInt8])
        /// A line longer than ``maximumLineLength``; its rest up to the next CRLF is being dropped.
        case lineTooLong
    }

    /// The longest command line accepted, CRLF included.
    let maximumLineLength: Int
    private var buffer: ByteBuffer
    /// True while dropping the rest of an over-long line.
    private var skipping = false
    /// How far the current line has been searched for CRLF already (so a slow client costs no rescans).
    private var scanned = 0

    init(maximumLineLength: Int = 512) {
        self.maximumLineLength = maximumLineLength
        self.buffer = ByteBuffer()
    }

    /// The number of bytes held and not yet framed.
    var bufferedBytes: Int { buffer.readableBytes }

    /// Adds bytes read from the client.
    mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        buffer.writeBuffer(&bytes)
    }

    /// Puts bytes in front of those held (bytes the session returned after the end of the data, which came
    /// before anything read since).
    mutating func prepend(_ bytes: ByteBuffer) {
        guard bytes.readableBytes > 0 else { return }
        var combined = bytes
        combined.writeBuffer(&buffer)
        buffer = combined
        scanned = 0
    }

    /// Removes and returns everything held (for raw DATA bytes), or nil when nothing is held.
    mutating func takeAll() -> ByteBuffer? {
        guard buffer.readableBytes > 0 else { return nil }
        defer {
            buffer = ByteBuffer()
            scanned = 0
        }
        return buffer
    }

    /// Drops everything held: the plaintext a client sent after STARTTLS (RFC 3207 §6, CVE-2011-0411).
    mutating func discardAll() {
        buffer = ByteBuffer()
        scanned = 0
        skipping = false
    }

    /// The next complete line, a too-long report, or nil when more bytes are needed.
    mutating func next() -> Event? {
        while true {
            let view = buffer.readableBytesView
            guard let crlf = findCRLF(in: view) else {
                if skipping {
                    // Keep only a trailing CR, which may pair with an LF still to come.
                    let keep = view.last == UInt8(ascii: "\r") ? 1 : 0
                    buffer.moveReaderIndex(forwardBy: view.count - keep)
                    buffer.discardReadBytes()
                    scanned = 0
                    return nil
                }
                scanned = max(0, view.count - 1)
                // The shortest line these bytes can still become: a CR at the end needs only its LF.
                let shortestLine = view.count + (view.last == UInt8(ascii: "\r") ? 1 : 2)
                if shortestLine > maximumLineLength {
                    // Even a CRLF arriving now would make the line too long.
                    skipping = true
                    let keep = view.last == UInt8(ascii: "\r") ? 1 : 0
                    buffer.moveReaderIndex(forwardBy: view.count - keep)
                    buffer.discardReadBytes()
                    scanned = 0
                    return .lineTooLong
                }
                return nil
            }
            let lineLength = crlf - view.startIndex  // without CRLF
            let line = Array(view[view.startIndex..<crlf])
            buffer.moveReaderIndex(forwardBy: lineLength + 2)
            scanned = 0
            if buffer.readerIndex > 4096 { buffer.discardReadBytes() }
            if skipping {
                skipping = false
                continue
            }
            if lineLength + 2 > maximumLineLength { return .lineTooLong }
            return .line(line)
        }
    }

    /// The index of the CR of the first CRLF in `view`, starting the search where the last one stopped.
    private func findCRLF(in view: ByteBufferView) -> ByteBufferView.Index? {
        var index = view.startIndex + scanned
        while index + 1 < view.endIndex {
            if view[index] == UInt8(ascii: "\r"), view[index + 1] == UInt8(ascii: "\n") { return index }
            index += 1
        }
        return nil
    }
}
