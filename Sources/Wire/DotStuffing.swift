import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// Dot-stuffing of a stored message for the wire: POP3's multi-line responses (RFC 1939 section
/// 3, POP-3) and SMTP's DATA (RFC 5321 4.5.2) follow the same rule.
///
/// One pass over the stored bytes: runs between line-initial dots are copied as whole slices, so a
/// message costs no per-line allocation.
public enum DotStuffing {
    private static let dot = UInt8(ascii: ".")
    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    /// Appends `message` dot-stuffed, CRLF-terminated, followed by the terminating `.CRLF`.
    ///
    /// - Parameter maxBodyLines: `nil` for RETR; for `TOP n l` the line count `l`: the header, the
    ///   blank line and at most `l` lines of the body are sent (RFC 1939 section 7, TOP).
    ///
    /// A line starts at the beginning of the message and after every LF. Stored messages use CRLF
    /// lines, so this is RFC 1939's rule; for a stray bare LF it is the safe reading too, since a
    /// client that splits on LF would otherwise take a lone "." there as the end of the response.
    public static func writeMultiline(
        _ message: ByteBuffer, maxBodyLines: Int? = nil, into out: inout ByteBuffer
    ) {
        message.withUnsafeReadableBytes { bytes in
            let end = maxBodyLines.map { topEnd(of: bytes, bodyLines: $0) } ?? bytes.count
            // One reservation: the message, a little room for stuffed dots, CRLF and ".CRLF".
            out.reserveCapacity(minimumWritableBytes: end + end / 256 + 8)

            var chunkStart = 0
            var lineStart = 0
            while lineStart < end {
                if bytes[lineStart] == dot {
                    // RFC 1939 section 3, RFC 5321 4.5.2: a line beginning with "." gets one more "." in front.
                    out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[chunkStart..<lineStart]))
                    out.writeInteger(dot)
                    chunkStart = lineStart
                }
                guard let lineFeed = nextLineFeed(in: bytes, from: lineStart, to: end) else { break }
                lineStart = lineFeed + 1
            }
            out.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[chunkStart..<end]))

            // RFC 1939 section 3: the terminator is CRLF.CRLF, so the last line must end in CRLF.
            let endsInCRLF = end >= 2 && bytes[end - 2] == cr && bytes[end - 1] == lf
            if end > 0 && !endsInCRLF {
                out.writeStaticString("\r\n")
            }
            out.writeStaticString(".\r\n")
        }
    }

    /// The index of the next LF in `start..<end`, found with memchr: no per-byte work in Swift, and
    /// no allocation in any build configuration.
    static func nextLineFeed(in bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Int? {
        guard start < end, let base = bytes.baseAddress else { return nil }
        guard let found = memchr(base + start, Int32(lf), end - start) else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    /// The offset just past what `TOP n l` sends: the header up to and including the blank line
    /// that ends it, then at most `bodyLines` lines. Without a blank line the whole message is
    /// header.
    static func topEnd(of bytes: UnsafeRawBufferPointer, bodyLines: Int) -> Int {
        var lineStart = 0
        var headerEnd: Int? = nil
        while lineStart < bytes.count {
            guard let lineFeed = nextLineFeed(in: bytes, from: lineStart, to: bytes.count) else { break }
            let length = lineFeed - lineStart  // without the LF
            if length == 0 || (length == 1 && bytes[lineStart] == cr) {
                headerEnd = lineFeed + 1
                break
            }
            lineStart = lineFeed + 1
        }
        guard var position = headerEnd else { return bytes.count }
        var remaining = max(0, bodyLines)
        while remaining > 0 && position < bytes.count {
            guard let lineFeed = nextLineFeed(in: bytes, from: position, to: bytes.count) else {
                return bytes.count  // the last line has no line break: it counts as one line
            }
            position = lineFeed + 1
            remaining -= 1
        }
        return position
    }
}
