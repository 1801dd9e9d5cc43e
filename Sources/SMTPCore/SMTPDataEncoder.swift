import NIOCore

/// Turns message bytes into what is written after a 354 reply to DATA (RFC 5321 §4.1.1.4, §4.5.2).
///
/// In one pass it
/// - rewrites every bare CR and every bare LF as CRLF, so that no bare CR or LF ever leaves Relay
///   (RFC 5321 §2.3.8; bare line ends are what "SMTP smuggling" attacks rely on);
/// - doubles a "." at the start of every line (dot-stuffing, RFC 5321 §4.5.2);
/// - ends the content with CRLF if it does not already, and appends the terminating ".\r\n".
///
/// It does not wrap lines longer than 998 octets (RFC 5321 §4.5.3.1.6): that would change the content, and
/// is the job of whoever composes the message.
public enum SMTPDataEncoder {
    /// The encoded form of `message`, ready to be written after the 354 reply.
    public static func encode(_ message: ByteBuffer) -> ByteBuffer {
        message.withUnsafeReadableBytes { encode(bytes: $0) }
    }

    /// The encoded form of `message`, ready to be written after the 354 reply.
    public static func encode(_ message: [UInt8]) -> ByteBuffer {
        message.withUnsafeBytes { encode(bytes: $0) }
    }

    /// The encoded form of `message` (its UTF-8 bytes), ready to be written after the 354 reply.
    public static func encode(_ message: String) -> ByteBuffer {
        var message = message
        return message.withUTF8 { encode(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The number of content octets in an encoded message, as declared with `SIZE=` (RFC 1870): everything but
    /// the terminating ".\r\n".
    public static func contentSize(ofEncoded encoded: ByteBuffer) -> Int {
        max(0, encoded.readableBytes - 3)
    }

    /// True when `message` holds any byte above 127, so that it should be sent with `BODY=8BITMIME`
    /// (RFC 6152) when the server offers it.
    public static func containsEightBitData(_ message: ByteBuffer) -> Bool {
        message.withUnsafeReadableBytes { containsEightBitData(bytes: $0) }
    }

    /// True when `message` holds any byte above 127.
    public static func containsEightBitData(_ message: [UInt8]) -> Bool {
        message.withUnsafeBytes { containsEightBitData(bytes: $0) }
    }

    /// True when the bytes hold any byte above 127. Checks eight bytes at a time.
    public static func containsEightBitData(bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        var index = 0
        let highBits: UInt64 = 0x8080_8080_8080_8080
        while index + 8 <= count {
            if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & highBits != 0 { return true }
            index += 8
        }
        while index < count {
            if bytes[index] & 0x80 != 0 { return true }
            index += 1
        }
        return false
    }

    /// The encoded form of the bytes. Copies runs of ordinary bytes in bulk and only stops at bare line ends
    /// and at dots that start a line, so well-formed CRLF input is one scan and one copy.
    public static func encode(bytes: UnsafeRawBufferPointer) -> ByteBuffer {
        let count = bytes.count
        // Room for the terminator plus a little growth; ByteBuffer grows if there are many bare LFs or dots.
        var output = ByteBufferAllocator().buffer(capacity: count + count / 64 + 8)
        guard count > 0 else {
            output.writeStaticString(".\r\n")
            return output
        }
        let cr = UInt8(ascii: "\r")
        let lf = UInt8(ascii: "\n")
        let dot = UInt8(ascii: ".")

        var runStart = 0  // first byte not yet copied to output
        var index = 0
        var atLineStart = true
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let crs: UInt64 = 0x0D0D_0D0D_0D0D_0D0D
        let lfs: UInt64 = 0x0A0A_0A0A_0A0A_0A0A
        while index < count {
            // Inside a line, skip eight bytes at a time while none of them is CR or LF (only those end a line,
            // and a dot only matters right after a line end). (v - 0x01…) & ~v & 0x80… is non-zero exactly
            // when some byte of v is zero.
            if !atLineStart {
                while index + 8 <= count {
                    let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    let crMatch = word ^ crs
                    let lfMatch = word ^ lfs
                    let found = ((crMatch &- ones) & ~crMatch | (lfMatch &- ones) & ~lfMatch) & highBits
                    if found != 0 { break }
                    index += 8
                }
                if index >= count { break }
            }
            let byte = bytes[index]
            if byte == cr {
                if index + 1 < count, bytes[index + 1] == lf {
                    // Well-formed CRLF: stays in the run.
                    index += 2
                    atLineStart = true
                    continue
                }
                // Bare CR: copy the run, then write CRLF in its place.
                output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
                output.writeStaticString("\r\n")
                index += 1
                runStart = index
                atLineStart = true
                continue
            }
            if byte == lf {
                // Bare LF (a CR before it would have been consumed above).
                output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<index]))
                output.writeStaticString("\r\n")
                index += 1
                runStart = index
                atLineStart = true
                continue
            }
            if atLineStart, byte == dot {
                // Copy up to and including this dot, then let the dot start the next run: it is written twice.
                output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart...index]))
                runStart = index
            }
            atLineStart = false
            index += 1
        }
        output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<count]))
        if !atLineStart {
            output.writeStaticString("\r\n")
        }
        output.writeStaticString(".\r\n")
        return output
    }
}
