import NIOCore

/// Encodes server responses (RFC 1939 section 3). Texts come from the session, never from the
/// client or the store, so they hold no CR or LF.
enum POP3Response {
    /// Extended response codes (RFC 2449 section 8, RFC 3206).
    enum Code: String, Sendable {
        case auth = "AUTH"
        case inUse = "IN-USE"
        case systemTemporary = "SYS/TEMP"
    }

    static func ok(_ text: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(text.utf8.count + 6)
        buffer.writeStaticString("+OK")
        if !text.isEmpty {
            buffer.writeStaticString(" ")
            buffer.writeString(text)
        }
        buffer.writeStaticString("\r\n")
        return buffer
    }

    static func error(_ text: String, code: Code? = nil) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(text.utf8.count + 20)
        buffer.writeStaticString("-ERR ")
        if let code {
            buffer.writeStaticString("[")
            buffer.writeString(code.rawValue)
            buffer.writeStaticString("] ")
        }
        buffer.writeString(text)
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// A positive multi-line response: `+OK text`, the lines (dot-stuffed), then `.` (RFC 1939
    /// section 3).
    static func multiline(_ text: String, lines: [String]) -> ByteBuffer {
        var buffer = ok(text)
        for line in lines {
            if line.utf8.first == UInt8(ascii: ".") { buffer.writeStaticString(".") }
            buffer.writeString(line)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString(".\r\n")
        return buffer
    }

    /// The `+ ` continuation of a SASL exchange with an empty challenge (RFC 5034 section 4).
    static let emptyContinuation = ByteBuffer(string: "+ \r\n")
}
