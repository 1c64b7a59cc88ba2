import NIOCore

/// A server reply (RFC 5321 4.2): a three-digit code, an enhanced status code (RFC 3463, announced
/// with ENHANCEDSTATUSCODES, RFC 2034) and one or more text lines.
public struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    public var enhanced: String?
    public var lines: [String]

    public init(_ code: Int, _ enhanced: String?, _ text: String) {
        self.code = code
        self.enhanced = enhanced
        self.lines = [text]
    }

    public init(_ code: Int, lines: [String]) {
        self.code = code
        self.enhanced = nil
        self.lines = lines
    }

    /// True for 4xx and 5xx.
    public var isError: Bool { code >= 400 }

    /// The first line as it goes on the wire, without CRLF (handy in tests).
    public var description: String { lines.isEmpty ? "\(code)" : render(line: 0, last: lines.count == 1) }

    private func render(line index: Int, last: Bool) -> String {
        let separator = last ? " " : "-"
        if let enhanced { return "\(code)\(separator)\(enhanced) \(lines[index])" }
        return lines[index].isEmpty ? "\(code)\(separator)" : "\(code)\(separator)\(lines[index])"
    }

    /// Writes the reply with CRLF line ends; multi-line replies use `code-` continuation (RFC 5321 4.2.1).
    public func write(into buffer: inout ByteBuffer) {
        for index in lines.indices {
            buffer.writeString(render(line: index, last: index == lines.count - 1))
            buffer.writeStaticString("\r\n")
        }
    }
}

extension SMTPReply {
    // Replies used in several places; the RFC that fixes each code is named beside it.
    static let ok = SMTPReply(250, "2.0.0", "OK")
    static let bye = SMTPReply(221, "2.0.0", "Bye")
    // RFC 5321 4.2.4
    static let unrecognised = SMTPReply(500, "5.5.1", "Command unrecognized")
    static let badSequence = SMTPReply(503, "5.5.1", "Bad sequence of commands")
    // RFC 4954 6
    static let authRequired = SMTPReply(530, "5.7.0", "Authentication required")
    static let authInvalid = SMTPReply(535, "5.7.8", "Authentication credentials invalid")
    static let authTemporary = SMTPReply(454, "4.7.0", "Temporary authentication failure, try again later")
    static let tooManyAuthFailures = SMTPReply(421, "4.7.0", "Too many failed authentication attempts, closing connection")
    static let bareLineBreakInCommand = SMTPReply(500, "5.5.2", "Bare CR or LF in command: lines must end in CRLF (RFC 5321 2.3.8)")
    static let commandTooLong = SMTPReply(500, "5.5.2", "Command line too long: at most 512 octets (RFC 5321 4.5.3.1.4)")
}
