import NIOCore

/// What went wrong in a POP3 client call. Every `POP3Client` method throws this and only this.
///
/// `connectFailed`, `timedOut`, `closed`, `protocolViolation` and `responseTooLarge` end the
/// connection: the client is unusable afterwards and every later call throws `.closed`.
/// `authenticationFailed`, `serverError` and `invalidArgument` leave it usable.
public enum POP3ClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stream could not be opened (TCP refused, the I2P tunnel is down, ...).
    case connectFailed(String)
    /// The server did not answer in time: no byte of the reply (or of the connect) within the
    /// timeout.
    case timedOut
    /// The connection is closed: by `close()`/`quit()`, by an earlier failure, or by the server
    /// (also in the middle of a reply).
    case closed
    /// `-ERR` to USER or PASS (RFC 1939 section 7), with the server's text (which may start
    /// with an RFC 2449 section 8 response code such as `[AUTH]`, `[IN-USE]`, `[SYS/TEMP]`).
    case authenticationFailed(String)
    /// The server broke RFC 1939 / RFC 2449 (garbage status, bad listing, overlong line, ...).
    case protocolViolation(String)
    /// A multi-line response grew beyond `maximumMessageSize`.
    case responseTooLarge
    /// `-ERR` to a command; `command` is the command line as sent (never a password), or
    /// "greeting" for a negative greeting.
    case serverError(command: String, text: String)
    /// The caller's argument cannot be sent (CR, LF or NUL in it, too long, a message number
    /// below 1). Nothing was sent.
    case invalidArgument(String)

    /// True when the error ended the connection.
    public var endsConnection: Bool {
        switch self {
        case .connectFailed, .timedOut, .closed, .protocolViolation, .responseTooLarge: return true
        case .authenticationFailed, .serverError, .invalidArgument: return false
        }
    }

    /// The RFC 2449 section 8 response code at the start of the server's text (`IN-USE`,
    /// `SYS/TEMP`, `AUTH`, ...), when there is one.
    public var responseCode: String? {
        switch self {
        case .authenticationFailed(let text), .serverError(_, let text): return POP3StatusLine.responseCode(in: text)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .connectFailed(let reason): return "POP3: cannot connect: \(reason)"
        case .timedOut: return "POP3: the server did not answer in time"
        case .closed: return "POP3: the connection is closed"
        case .authenticationFailed(let text): return "POP3: login refused: \(text)"
        case .protocolViolation(let reason): return "POP3: protocol violation: \(reason)"
        case .responseTooLarge: return "POP3: response larger than the limit"
        case .serverError(let command, let text): return "POP3: \(command) failed: \(text)"
        case .invalidArgument(let reason): return "POP3: invalid argument: \(reason)"
        }
    }
}

/// A status line (RFC 1939 section 3): `+OK` or `-ERR`, optionally followed by a space and text.
public enum POP3StatusLine: Equatable, Sendable {
    case ok(String)
    case error(String)

    /// Parses one status line without its line end. Strict: the indicator must be `+OK` or
    /// `-ERR` in upper case (RFC 1939 section 3: "Status indicators are in upper case"),
    /// followed by the end of the line or a space. The text is made printable (control
    /// characters become U+FFFD) since it ends up in error messages and pages.
    public static func parse(_ line: some Collection<UInt8>) throws(POP3ClientError) -> POP3StatusLine {
        let bytes = Array(line)
        func text(after count: Int) throws(POP3ClientError) -> String? {
            if bytes.count == count { return "" }
            guard bytes[count] == UInt8(ascii: " ") else { return nil }
            return printable(bytes[(count + 1)...])
        }
        if bytes.starts(with: Array("+OK".utf8)), let text = try text(after: 3) { return .ok(text) }
        if bytes.starts(with: Array("-ERR".utf8)), let text = try text(after: 4) { return .error(text) }
        throw .protocolViolation("response does not start with +OK or -ERR: \(excerpt(bytes))")
    }

    /// Server text made safe to show: invalid UTF-8 and control characters become U+FFFD.
    static func printable(_ bytes: some Collection<UInt8>) -> String {
        var result = String.UnicodeScalarView()
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            result.append(scalar.properties.generalCategory == .control ? "\u{FFFD}" : scalar)
        }
        return String(result)
    }

    /// The start of a hostile line for an error message: printable ASCII only, at most 40 bytes.
    static func excerpt(_ bytes: some Collection<UInt8>) -> String {
        let shown = bytes.prefix(40).map { (0x20...0x7E).contains($0) ? Character(Unicode.Scalar($0)) : "?" }
        return "\"" + String(shown) + (bytes.count > 40 ? "…" : "") + "\""
    }

    /// RFC 2449 section 8: `[CODE]` (or `[CODE/SUB]`) right at the start of the text.
    static func responseCode(in text: String) -> String? {
        guard text.hasPrefix("["), let close = text.firstIndex(of: "]") else { return nil }
        let code = text[text.index(after: text.startIndex)..<close]
        guard !code.isEmpty, code.utf8.count <= 64,
              code.utf8.allSatisfy({ (0x21...0x7E).contains($0) && $0 != UInt8(ascii: "[") }) else { return nil }
        return String(code)
    }
}

/// Cuts a server's byte stream into POP3 responses. A pure value: `append` what arrives, then
/// ask for the part you expect — `nextStatusLine()` after every command, and after a positive
/// status to a command with a multi-line answer `nextMultilineBody()`. Both answer `nil` when
/// more bytes are needed and throw on anything that breaks the protocol or the limits.
///
/// Line ends: RFC 1939 section 3 says CRLF. A bare LF is accepted as a line end too (some
/// servers store and send mail with LF lines); a CR that is not followed by LF stays data.
/// Returned message bytes always have CRLF line ends.
public struct POP3ResponseReader: Sendable {
    /// RFC 2449 section 4: a response line is at most 512 octets including the CRLF. Some
    /// servers send longer ones; twice as much is accepted, more is a protocol violation.
    public static let maximumStatusLineLength = 1024

    /// The largest multi-line body (after dot-unstuffing, CRLF line ends) accepted.
    public let maximumMultilineSize: Int

    private var buffer = ByteBuffer()
    /// Bytes at the front of `buffer` already searched for LF without finding one.
    private var scanned = 0
    /// The multi-line body gathered so far.
    private var body: [UInt8] = []

    public init(maximumMultilineSize: Int) {
        self.maximumMultilineSize = min(max(0, maximumMultilineSize), Int.max / 2)
    }

    /// Bytes received but not yet taken as part of a response.
    public var bufferedByteCount: Int { buffer.readableBytes }

    public mutating func append(_ bytes: ByteBuffer) {
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            var bytes = bytes
            buffer.writeBuffer(&bytes)
        }
    }

    /// The next status line (RFC 1939 section 3), or nil when it has not arrived completely.
    public mutating func nextStatusLine() throws(POP3ClientError) -> POP3StatusLine? {
        switch nextLine(limit: Self.maximumStatusLineLength) {
        case .needMore: return nil
        case .tooLong:
            throw .protocolViolation("status line longer than \(Self.maximumStatusLineLength) octets")
        case .line(let line):
            return try POP3StatusLine.parse(line.readableBytesView)
        }
    }

    /// The rest of a multi-line response (RFC 1939 section 3) up to and without the terminating
    /// "." line: dot-unstuffed (a line starting with "." loses that first "."), every line ended
    /// by CRLF. nil while the terminating line has not arrived.
    public mutating func nextMultilineBody() throws(POP3ClientError) -> [UInt8]? {
        while true {
            // Any line that would take the body past the limit is refused before it is buffered
            // whole: its unstuffed form plus CRLF is at least its wire length - 1 + 2. The slack
            // of 3 lets the "." terminator through when the body is exactly at the limit.
            let limit = maximumMultilineSize - body.count + 3
            switch nextLine(limit: limit) {
            case .needMore: return nil
            case .tooLong: throw .responseTooLarge
            case .line(let line):
                let view = line.readableBytesView
                if view.first == UInt8(ascii: ".") {
                    if view.count == 1 {
                        defer { body = [] }
                        return body
                    }
                    body.append(contentsOf: view.dropFirst())  // RFC 1939 section 3: byte-stuffed
                } else {
                    body.append(contentsOf: view)
                }
                body.append(UInt8(ascii: "\r"))
                body.append(UInt8(ascii: "\n"))
                guard body.count <= maximumMultilineSize else { throw .responseTooLarge }
            }
        }
    }

    private enum Line {
        case line(ByteBuffer)
        case needMore
        case tooLong
    }

    /// The next line without its LF or CRLF. `limit` counts the line with its line end; a line
    /// that cannot end within it is `.tooLong` as soon as that is certain (nothing more of it is
    /// buffered than the limit plus one read).
    private mutating func nextLine(limit: Int) -> Line {
        let lineFeed: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard scanned < bytes.count else { return nil }
            return bytes[scanned...].firstIndex(of: UInt8(ascii: "\n"))
        }
        guard let lineFeed else {
            scanned = buffer.readableBytes
            // With the line end still to come the line is at least one byte longer.
            return scanned + 1 > limit ? .tooLong : .needMore
        }
        scanned = 0
        guard lineFeed + 1 <= limit else { return .tooLong }
        var line = buffer.readSlice(length: lineFeed)!  // lineFeed < readableBytes: found in them
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
        if buffer.readerIndex > 64 * 1024 && buffer.readerIndex > buffer.readableBytes { buffer.discardReadBytes() }
        return .line(line)
    }
}

/// Strict parsers of the answers whose format RFC 1939 fixes. Pure.
public enum POP3Listing {
    /// Message numbers and sizes: 1 to 18 decimal digits, so they always fit in an `Int`.
    static func decimal(_ bytes: some Collection<UInt8>) -> Int? {
        guard (1...18).contains(bytes.count), bytes.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return bytes.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }

    /// STAT (RFC 1939 section 5): "+OK" SP count SP size, then anything (the RFC places no
    /// requirement on what follows the size).
    public static func parseStat(_ text: String) throws(POP3ClientError) -> (count: Int, size: Int) {
        let fields = Array(text.utf8).split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count >= 2, let count = decimal(fields[0]), let size = decimal(fields[1]) else {
            throw .protocolViolation("malformed STAT reply: \(POP3StatusLine.excerpt(Array(text.utf8)))")
        }
        return (count, size)
    }

    /// A LIST scan listing (RFC 1939 section 5): lines of message number SP size (anything after
    /// a further space is ignored, as the RFC allows). Numbers must be at least 1 and strictly
    /// increasing (the RFC lists in order, and a number listed twice is nonsense).
    public static func parseList(_ body: [UInt8]) throws(POP3ClientError) -> [(number: Int, size: Int)] {
        var result: [(number: Int, size: Int)] = []
        for line in lines(of: body) {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count >= 2, let number = decimal(fields[0]), number >= 1, let size = decimal(fields[1]) else {
                throw .protocolViolation("malformed LIST line: \(POP3StatusLine.excerpt(line))")
            }
            guard number > (result.last?.number ?? 0) else {
                throw .protocolViolation("LIST message numbers out of order: \(number)")
            }
            result.append((number, size))
        }
        return result
    }

    /// A UIDL listing (RFC 1939 section 7): lines of message number SP unique-id, the id 1 to 70
    /// characters in 0x21–0x7E. Numbers strictly increasing; ids unique within the maildrop.
    public static func parseUIDL(_ body: [UInt8]) throws(POP3ClientError) -> [(number: Int, uid: String)] {
        var result: [(number: Int, uid: String)] = []
        var seen: Set<String> = []
        for line in lines(of: body) {
            let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard fields.count == 2, let number = decimal(fields[0]), number >= 1, isUniqueID(fields[1]) else {
                throw .protocolViolation("malformed UIDL line: \(POP3StatusLine.excerpt(line))")
            }
            guard number > (result.last?.number ?? 0) else {
                throw .protocolViolation("UIDL message numbers out of order: \(number)")
            }
            let uid = String(decoding: fields[1], as: UTF8.self)
            guard seen.insert(uid).inserted else { throw .protocolViolation("UIDL lists one unique-id twice") }
            result.append((number, uid))
        }
        return result
    }

    /// RFC 1939 section 7: "one to 70 characters in the range 0x21 to 0x7E".
    static func isUniqueID(_ bytes: some Collection<UInt8>) -> Bool {
        (1...70).contains(bytes.count) && bytes.allSatisfy { (0x21...0x7E).contains($0) }
    }

    /// CAPA (RFC 2449 section 5): one capability per line, a tag and its arguments. Empty
    /// lines are skipped; control characters are made harmless.
    public static func parseCapabilities(_ body: [UInt8]) -> [String] {
        lines(of: body).filter { !$0.isEmpty }.map { POP3StatusLine.printable($0) }
    }

    /// The lines of a body from `POP3ResponseReader` (every line ends in CRLF), without CRLF.
    static func lines(of body: [UInt8]) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var start = body.startIndex
        var index = start
        while index + 1 < body.endIndex {
            if body[index] == UInt8(ascii: "\r") && body[index + 1] == UInt8(ascii: "\n") {
                result.append(body[start..<index])
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        return result
    }
}
