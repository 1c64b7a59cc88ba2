/// Content-Transfer-Encoding (RFC 2045 6): decoding that never fails and always runs in one pass,
/// and the two encodings Postern writes.
public enum MIMETransferEncoding {
    public struct Decoded: Sendable, Equatable {
        public var bytes: [UInt8]
        /// Bytes the decoder skipped or kept literally because they broke the encoding.
        public var hadGarbage: Bool
    }

    /// Decodes a body by its Content-Transfer-Encoding value. 7bit, 8bit, binary and unknown
    /// encodings are returned as they are (`known` tells the caller which).
    public static func decode(_ bytes: ArraySlice<UInt8>, encoding: String?) -> (Decoded, known: Bool) {
        switch (encoding ?? "").trimmingSpaces().lowercased() {
        case "base64": return (decodeBase64(bytes), true)
        case "quoted-printable": return (decodeQuotedPrintable(bytes), true)
        case "", "7bit", "8bit", "binary": return (Decoded(bytes: Array(bytes), hadGarbage: false), true)
        default: return (Decoded(bytes: Array(bytes), hadGarbage: false), false)
        }
    }

    private static let base64Values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()
    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// RFC 2045 6.8: characters outside the alphabet are ignored. Padding is not required, and
    /// data after a pad is still read (concatenated encoders exist); output is at most 3/4 of the input.
    public static func decodeBase64<Bytes: Collection>(_ bytes: Bytes) -> Decoded where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count / 4 * 3 + 3)
        var accumulator: UInt32 = 0
        var count = 0
        var garbage = false
        for b in bytes {
            let v = base64Values[Int(b)]
            if v == 0xFF {
                if !(b == 13 || b == 10 || b == 32 || b == 9 || b == UInt8(ascii: "=")) { garbage = true }
                continue
            }
            accumulator = accumulator << 6 | UInt32(v)
            count += 1
            if count == 4 {
                out.append(UInt8(truncatingIfNeeded: accumulator >> 16))
                out.append(UInt8(truncatingIfNeeded: accumulator >> 8))
                out.append(UInt8(truncatingIfNeeded: accumulator))
                accumulator = 0
                count = 0
            }
        }
        // A partial quantum: 2 characters carry one byte, 3 carry two; 1 carries nothing.
        if count == 2 {
            out.append(UInt8(truncatingIfNeeded: accumulator >> 4))
        } else if count == 3 {
            out.append(UInt8(truncatingIfNeeded: accumulator >> 10))
            out.append(UInt8(truncatingIfNeeded: accumulator >> 2))
        } else if count == 1 {
            garbage = true
        }
        return Decoded(bytes: out, hadGarbage: garbage)
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10  // RFC 2045 6.7 (1): be robust
        default: return nil
        }
    }

    /// RFC 2045 6.7: `=XX` escapes, `=` at a line end is a soft line break (transport padding
    /// after it is allowed), trailing white space on a line is dropped, and an `=` that starts no
    /// valid escape is kept literally.
    public static func decodeQuotedPrintable<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> Decoded where Bytes.Element == UInt8, Bytes.Index == Int {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var garbage = false
        var i = bytes.startIndex
        let end = bytes.endIndex
        // Index in `out` after the last non-white byte of the current line, for rule (3).
        var lineContentEnd = 0
        while i < end {
            let b = bytes[i]
            if b == UInt8(ascii: "=") {
                // Soft line break: "=" then optional white space then CRLF, LF or the end.
                var j = i + 1
                while j < end && (bytes[j] == 32 || bytes[j] == 9) { j += 1 }
                if j == end || bytes[j] == 10 || (bytes[j] == 13 && (j + 1 == end || bytes[j + 1] == 10)) {
                    if j < end && bytes[j] == 13 { j += 1 }
                    i = j < end ? j + 1 : j
                    lineContentEnd = out.count
                    continue
                }
                if i + 2 < end, let high = hexValue(bytes[i + 1]), let low = hexValue(bytes[i + 2]) {
                    out.append(high << 4 | low)
                    lineContentEnd = out.count
                    i += 3
                    continue
                }
                garbage = true
                out.append(b)
                lineContentEnd = out.count
                i += 1
                continue
            }
            if b == 10 || (b == 13 && i + 1 < end && bytes[i + 1] == 10) {
                out.removeSubrange(lineContentEnd..<out.count)
                if b == 13 { out.append(13); i += 1 }
                out.append(10)
                i += 1
                lineContentEnd = out.count
                continue
            }
            out.append(b)
            if b != 32 && b != 9 { lineContentEnd = out.count }
            i += 1
        }
        out.removeSubrange(lineContentEnd..<out.count)
        return Decoded(bytes: out, hadGarbage: garbage)
    }

    /// RFC 2045 6.8, lines of 76 characters joined by CRLF, ending with CRLF.
    public static func encodeBase64(_ bytes: [UInt8], lineLength: Int = 76) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 4 / 3 + bytes.count / 38 + 8)
        var column = 0
        var i = 0
        func emit(_ c: UInt8) {
            out.append(c)
            column += 1
            if column == lineLength { out.append(13); out.append(10); column = 0 }
        }
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let n = b0 << 16 | b1 << 8 | b2
            emit(base64Alphabet[Int(n >> 18 & 63)])
            emit(base64Alphabet[Int(n >> 12 & 63)])
            emit(i + 1 < bytes.count ? base64Alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            emit(i + 2 < bytes.count ? base64Alphabet[Int(n & 63)] : UInt8(ascii: "="))
            i += 3
        }
        if column != 0 { out.append(13); out.append(10) }
        return out
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// RFC 2045 6.7 for text already in CRLF lines: lines of at most 76 characters with soft
    /// breaks, `=` and every byte outside printable ASCII escaped, white space before a line end
    /// escaped so transport trimming cannot change it.
    public static func encodeQuotedPrintable(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 8 + 8)
        var column = 0
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 13 && i + 1 < bytes.count && bytes[i + 1] == 10 {
                out.append(13); out.append(10)
                column = 0
                i += 2
                continue
            }
            let atLineEnd = i + 1 == bytes.count || (bytes[i + 1] == 13 && i + 2 < bytes.count && bytes[i + 2] == 10)
            let literal = (b >= 33 && b <= 126 && b != UInt8(ascii: "=")) || ((b == 32 || b == 9) && !atLineEnd)
            let width = literal ? 1 : 3
            // Leave room for the soft break "=" (RFC 2045 6.7 rule 5: at most 76 characters).
            let limit = atLineEnd ? 76 : 75
            if column + width > limit {
                out.append(UInt8(ascii: "=")); out.append(13); out.append(10)
                column = 0
            }
            if literal {
                out.append(b)
            } else {
                out.append(UInt8(ascii: "="))
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 15)])
            }
            column += width
            i += 1
        }
        return out
    }
}
