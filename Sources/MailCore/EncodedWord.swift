/// RFC 2047 encoded words (`=?charset?B|Q?text?=`) in header text: reading them wherever a
/// sender put them, writing them for Postern's own Subject.
public enum EncodedWord {
    /// Decodes every well-formed encoded word in an unfolded header value. White space between
    /// two adjacent encoded words is dropped (RFC 2047 6.2); malformed words stay literal.
    public static func decode(_ text: String) -> String {
        decodeReporting(text).text
    }

    /// As `decode`, also naming the charsets that were not known (read as UTF-8).
    static func decodeReporting(_ text: String) -> (text: String, unknownCharsets: [String]) {
        let bytes = Array(text.utf8)
        guard bytes.count >= 8, containsStart(bytes) else { return (text, []) }
        var out = ""
        var unknown: [String] = []
        var pending: [UInt8] = []
        var pendingCharset: String?
        var literalStart = 0
        var previousWasWord = false
        func flush() {
            guard let charset = pendingCharset else { return }
            let decoded = MIMECharset.decode(pending, charset: charset)
            if !decoded.known && !unknown.contains(charset) { unknown.append(charset) }
            out += decoded.text
            pending.removeAll(keepingCapacity: true)
            pendingCharset = nil
        }
        var i = 0
        while i + 1 < bytes.count {
            guard bytes[i] == UInt8(ascii: "="), bytes[i + 1] == UInt8(ascii: "?") else { i += 1; continue }
            switch parseWord(bytes, at: i) {
            case .word(let charset, let decoded, let end):
                let literal = bytes[literalStart..<i]
                if !(previousWasWord && literal.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 })) {
                    flush()
                    out += String(decoding: literal, as: UTF8.self)
                }
                if pendingCharset != charset { flush(); pendingCharset = charset }
                pending += decoded
                previousWasWord = true
                literalStart = end
                i = end
            case .failed(let resume):
                // No word can start before `resume` (see parseWord), which keeps this linear.
                i = max(resume, i + 1)
            }
        }
        flush()
        out += String(decoding: bytes[literalStart...], as: UTF8.self)
        return (out, unknown)
    }

    private static func containsStart(_ bytes: [UInt8]) -> Bool {
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == UInt8(ascii: "="), bytes[i + 1] == UInt8(ascii: "?") { return true }
            i += 1
        }
        return false
    }

    private enum Parsed {
        case word(charset: String, bytes: [UInt8], end: Int)
        case failed(resume: Int)
    }

    /// Reads one `=?charset?e?text?=` at `start`. On failure inside the text, no "?=" occurs
    /// before the white space or end that stopped the scan, so any later start before it would
    /// fail the same way: the caller may resume there.
    private static func parseWord(_ bytes: [UInt8], at start: Int) -> Parsed {
        var i = start + 2
        let charsetStart = i
        while i < bytes.count, i - charsetStart <= 64, bytes[i] != UInt8(ascii: "?") {
            let b = bytes[i]
            guard b > 32 && b < 127 && b != UInt8(ascii: "=") else { return .failed(resume: start + 1) }
            i += 1
        }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "?"), i > charsetStart else { return .failed(resume: start + 1) }
        let charset = MIMECharset.normalise(String(decoding: bytes[charsetStart..<i], as: UTF8.self))
        guard i + 2 < bytes.count, bytes[i + 2] == UInt8(ascii: "?") else { return .failed(resume: start + 1) }
        let encoding = bytes[i + 1] | 0x20
        guard encoding == UInt8(ascii: "b") || encoding == UInt8(ascii: "q") else { return .failed(resume: start + 1) }
        let textStart = i + 3
        var j = textStart
        while j < bytes.count {
            let b = bytes[j]
            if b == UInt8(ascii: "?"), j + 1 < bytes.count, bytes[j + 1] == UInt8(ascii: "=") { break }
            // RFC 2047 5: an encoded word holds no white space.
            if b == 32 || b == 9 || b == 13 || b == 10 { return .failed(resume: j) }
            j += 1
        }
        guard j < bytes.count else { return .failed(resume: j) }
        let text = bytes[textStart..<j]
        let decoded = encoding == UInt8(ascii: "b") ? MIMETransferEncoding.decodeBase64(text).bytes : decodeQ(text)
        return .word(charset: charset, bytes: decoded, end: j + 2)
    }

    /// RFC 2047 4.2: "_" is a space, "=XX" a byte; a broken escape stays literal.
    static func decodeQ(_ text: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        var i = text.startIndex
        while i < text.endIndex {
            let b = text[i]
            if b == UInt8(ascii: "_") {
                out.append(32)
            } else if b == UInt8(ascii: "="), i + 2 < text.endIndex,
                      let high = MIMETransferEncoding.hexValue(text[i + 1]), let low = MIMETransferEncoding.hexValue(text[i + 2]) {
                out.append(high << 4 | low)
                i += 3
                continue
            } else {
                out.append(b)
            }
            i += 1
        }
        return out
    }

    // MARK: Writing

    /// Characters RFC 2047 5 (3) allows unencoded in a Q word anywhere in a header.
    private static func isQLiteral(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
            || b == UInt8(ascii: "!") || b == UInt8(ascii: "*") || b == UInt8(ascii: "+") || b == UInt8(ascii: "-") || b == UInt8(ascii: "/")
    }

    /// `text` as UTF-8 encoded words, B or Q whichever is shorter, each at most 75 characters
    /// (RFC 2047 2) and holding whole characters (RFC 2047 5), separated by CRLF SP so the
    /// header stays folded. The first word fits in `firstLineRoom` characters.
    public static func encode(_ text: String, firstLineRoom: Int = 75) -> String {
        let bytes = Array(text.utf8)
        let qLength = bytes.reduce(0) { $0 + (isQLiteral($1) || $1 == 32 ? 1 : 3) }
        let useB = (bytes.count + 2) / 3 * 4 < qLength
        let overhead = 12  // "=?utf-8?B?" + "?="
        var words: [String] = []
        var chunk: [UInt8] = []
        var room = max(firstLineRoom, 24) - overhead
        func encodedLength(_ n: Int) -> Int { (n + 2) / 3 * 4 }
        func emit() {
            guard !chunk.isEmpty else { return }
            if useB {
                words.append("=?utf-8?B?" + String(decoding: MIMETransferEncoding.encodeBase64(chunk, lineLength: .max).filter { $0 != 13 && $0 != 10 }, as: UTF8.self) + "?=")
            } else {
                var q = ""
                for b in chunk {
                    if b == 32 { q += "_" } else if isQLiteral(b) { q.unicodeScalars.append(Unicode.Scalar(b)) } else { q += "=" + hex(b) }
                }
                words.append("=?utf-8?Q?" + q + "?=")
            }
            chunk.removeAll()
            room = 75 - overhead
        }
        var used = 0
        for scalar in text.unicodeScalars {
            let scalarBytes = Array(String(scalar).utf8)
            let added: Int
            if useB {
                added = encodedLength(chunk.count + scalarBytes.count) - encodedLength(chunk.count)
            } else {
                added = scalarBytes.reduce(0) { $0 + (isQLiteral($1) || $1 == 32 ? 1 : 3) }
            }
            if !chunk.isEmpty && used + added > room { emit(); used = 0 }
            let recount = useB ? encodedLength(chunk.count + scalarBytes.count) : used + added
            chunk += scalarBytes
            used = recount
        }
        emit()
        return words.joined(separator: "\r\n ")
    }

    static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String(digits[Int(b >> 4)]) + String(digits[Int(b & 15)])
    }
}
