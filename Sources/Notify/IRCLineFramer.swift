/// Cuts the bytes an IRC server sends into lines. RFC 2812 2.3 ends a message with CRLF, but
/// servers and bouncers in the wild send a bare LF, so LF ends a line and one CR before it is
/// dropped. A line longer than `maxLineLength` (counted with its line ending) is reported once as
/// `.tooLong` and skipped up to its LF without being buffered: a hostile server can make the
/// framer hold at most `maxLineLength` bytes plus one read.
public struct IRCLineFramer: Sendable {
    public enum Frame: Equatable, Sendable {
        /// A line without its LF or CRLF.
        case line([UInt8])
        case tooLong
    }

    public let maxLineLength: Int
    private var buffer: [UInt8] = []
    private var start = 0
    /// True while the rest of an overlong line is thrown away.
    private var discarding = false

    public init(maxLineLength: Int = IRCMessage.maxLineOctets) {
        self.maxLineLength = max(2, maxLineLength)
    }

    /// Bytes held, for tests of the bound.
    public var bufferedByteCount: Int { buffer.count - start }

    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    /// The next frame, or `nil` when more bytes are needed.
    public mutating func next() -> Frame? {
        while true {
            if discarding {
                if let lf = buffer[start...].firstIndex(of: IRCMessage.lf) {
                    start = lf + 1
                    discarding = false
                    continue
                }
                buffer.removeAll(keepingCapacity: true)
                start = 0
                return nil
            }
            if let lf = buffer[start...].firstIndex(of: IRCMessage.lf) {
                let lineStart = start
                start = lf + 1
                defer { compact() }
                // Counted as if the line ended in CRLF, as RFC 2812 2.3 counts it.
                let lengthWithCRLF = (lf > lineStart && buffer[lf - 1] == IRCMessage.cr) ? lf + 1 - lineStart : lf + 2 - lineStart
                if lengthWithCRLF > maxLineLength { return .tooLong }
                let end = (lf > lineStart && buffer[lf - 1] == IRCMessage.cr) ? lf - 1 : lf
                return .line(Array(buffer[lineStart..<end]))
            }
            if buffer.count - start >= maxLineLength {
                // No line ending within the limit: drop what is held and skip to the next LF.
                discarding = true
                buffer.removeAll(keepingCapacity: true)
                start = 0
                return .tooLong
            }
            compact()
            return nil
        }
    }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 4 * maxLineLength)
            start = 0
        } else if start > 4096 {
            buffer.removeSubrange(..<start)
            start = 0
        }
    }
}
