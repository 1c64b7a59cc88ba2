import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One unit cut from a CRLF-delimited byte stream.
public enum LineFrame: Equatable, Sendable {
    /// A complete line, without its CRLF.
    case line(ByteBuffer)
    /// A line that did not end within the limit. The framer has skipped it up to and including its
    /// CRLF (or is still skipping: the frame is produced once, when the limit is crossed).
    case tooLong
    /// A line that contains a CR or LF that is not part of a CRLF pair. Closes SMTP smuggling:
    /// RFC 5321 2.3.8 — a bare CR or LF is never a line ending.
    case bareLineBreak
}

/// Cuts a byte stream into CRLF-terminated lines of bounded length.
///
/// Only the CRLF pair ends a line. A line that holds a lone CR or LF is reported as
/// `.bareLineBreak`, a line longer than `maxLineLength` (counted with its CRLF) as `.tooLong`;
/// neither is ever buffered beyond the limit. The framer is a plain value: feed it bytes with
/// `append`, take frames with `next()` until it answers `nil`.
public struct CRLFLineFramer: Sendable {
    /// The longest accepted line, CRLF included (RFC 5321 4.5.3.1.4: 512 for commands, 1000 for text).
    public var maxLineLength: Int

    private var buffer: ByteBuffer
    /// Bytes of the current line that have been scanned and contain no CRLF.
    private var scanned = 0
    /// True while the rest of an overlong line is being thrown away.
    private var discarding = false
    /// True when the current (unfinished) line already held a bare CR or LF.
    private var sawBareBreak = false

    public init(maxLineLength: Int) {
        self.maxLineLength = maxLineLength
        self.buffer = ByteBufferAllocator().buffer(capacity: 0)
    }

    /// Number of bytes waiting in the framer.
    public var bufferedByteCount: Int { buffer.readableBytes }

    /// Throws away everything buffered (RFC 3207 4: input that arrived before a TLS handshake).
    public mutating func discardBuffered() {
        buffer.clear()
        scanned = 0
        discarding = false
        sawBareBreak = false
    }

    public mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            // The common case: nothing pending. Take the caller's storage instead of copying.
            buffer = bytes
        } else {
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next frame, or `nil` when more bytes are needed.
    public mutating func next() -> LineFrame? {
        while true {
            let view = buffer.readableBytesView
            let start = view.startIndex
            var index = start + scanned
            var crlfAt: Int? = nil
            while index < view.endIndex {
                let byte = view[index]
                if byte == UInt8(ascii: "\r") {
                    if index + 1 < view.endIndex {
                        if view[index + 1] == UInt8(ascii: "\n") { crlfAt = index; break }
                        sawBareBreak = true
                    } else {
                        break  // a CR at the end: wait for the next byte
                    }
                } else if byte == UInt8(ascii: "\n") {
                    sawBareBreak = true
                }
                index += 1
            }
            if let crlf = crlfAt {
                let lineLength = crlf - start
                defer {
                    buffer.moveReaderIndex(forwardBy: lineLength + 2)
                    scanned = 0
                    sawBareBreak = false
                    compactIfLarge()
                }
                if discarding {
                    discarding = false
                    continue
                }
                if lineLength + 2 > maxLineLength { return .tooLong }
                if sawBareBreak { return .bareLineBreak }
                return .line(buffer.getSlice(at: buffer.readerIndex, length: lineLength)!)
            }
            scanned = index - start
            // No CRLF yet. Keep at most the limit; beyond it, drop what we have and report once.
            if scanned + 2 > maxLineLength || discarding {
                let keep = (index < view.endIndex) ? 1 : 0  // a trailing CR may start the CRLF
                let drop = buffer.readableBytes - keep
                buffer.moveReaderIndex(forwardBy: drop)
                scanned = 0
                compactIfLarge()
                if !discarding {
                    discarding = true
                    sawBareBreak = false
                    return .tooLong
                }
            }
            return nil
        }
    }

    /// The longest run of complete, ordinary lines at the front of the buffer, CRLFs included:
    /// each ends in CRLF, is at most `maxLineLength` long, holds no other CR or LF and does not
    /// start with "." (so it is neither dot-stuffed nor the end of DATA). nil when the first line
    /// is not such a line or is incomplete: `next()` then takes it, with its usual verdicts.
    ///
    /// Message data goes through here run by run instead of line by line, with `memchr` doing
    /// the scanning, so a 100 KB message costs a few calls instead of 1,300 line frames.
    public mutating func nextOrdinaryLines() -> ByteBuffer? {
        guard !discarding, scanned == 0, buffer.readableBytes > 0 else { return nil }
        let limit = maxLineLength
        let runLength: Int = buffer.withUnsafeReadableBytes { raw in
            guard let base = raw.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
            let end = raw.count
            var start = 0
            while start < end {
                if base[start] == UInt8(ascii: ".") { break }
                let searchLength = min(end - start, limit)
                guard let found = memchr(base + start, Int32(UInt8(ascii: "\n")), searchLength) else { break }
                let lf = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                // CRLF only (RFC 5321 2.3.8), and no CR anywhere before the one that ends the line.
                guard lf > start, base[lf - 1] == UInt8(ascii: "\r"),
                      memchr(base + start, Int32(UInt8(ascii: "\r")), lf - 1 - start) == nil else { break }
                start = lf + 1
            }
            return start
        }
        guard runLength > 0 else { return nil }
        let run = buffer.readSlice(length: runLength)!
        compactIfLarge()
        return run
    }

    /// Takes up to `count` raw bytes (for BDAT chunks, RFC 3030), bypassing line framing.
    public mutating func nextBytes(upTo count: Int) -> ByteBuffer? {
        precondition(!discarding && scanned == 0, "raw read in the middle of a line")
        guard buffer.readableBytes > 0, count > 0 else { return nil }
        let length = min(count, buffer.readableBytes)
        let slice = buffer.readSlice(length: length)!
        compactIfLarge()
        return slice
    }

    private mutating func compactIfLarge() {
        if buffer.readerIndex > 64 * 1024 && buffer.readerIndex > buffer.readableBytes {
            buffer.discardReadBytes()
        }
    }
}
