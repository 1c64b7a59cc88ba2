// What clamd answers, as a pure value (SCAN-1).
//
// clamd(8): with the "z" command prefix every reply ends in a NUL byte. INSTREAM answers
// "stream: OK", "stream: <signature> FOUND", "INSTREAM size limit exceeded. ERROR" (the stream went
// past StreamMaxLength) or "<text> ERROR"; PING answers "PONG". The parser takes the reply without
// its terminating NUL and is strict: anything else is `.unrecognised`, which callers treat as an
// unavailable scanner (fail closed), never as clean.

/// One reply of clamd, parsed.
public enum ClamdReply: Sendable, Equatable {
    /// `stream: OK`
    case ok
    /// `stream: <signature> FOUND`
    case found(signature: String)
    /// `INSTREAM size limit exceeded. ERROR`
    case sizeLimitExceeded
    /// `<text> ERROR` (any other error clamd reports)
    case error(String)
    /// `PONG`
    case pong
    /// Anything else: empty, not ASCII text, or not one of the forms above.
    case unrecognised

    /// The longest reply accepted; a longer one is garbage (clamd's are a few dozen bytes).
    public static let maximumLength = 4096

    /// Parses one reply, given without its terminating NUL. A trailing newline (the "n" command
    /// prefix's terminator) is tolerated.
    public static func parse<Bytes: Collection>(_ bytes: Bytes) -> ClamdReply where Bytes.Element == UInt8 {
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return .unrecognised }
        var scalars = Array(bytes)
        if scalars.last == UInt8(ascii: "\n") { scalars.removeLast() }
        // Printable ASCII only: a NUL, a control byte or a non-ASCII byte means we are not
        // talking to clamd (or are out of step with it).
        guard !scalars.isEmpty, scalars.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return .unrecognised }
        let text = String(decoding: scalars, as: UTF8.self)

        if text == "PONG" { return .pong }
        if text == "stream: OK" { return .ok }
        if text == "INSTREAM size limit exceeded. ERROR" { return .sizeLimitExceeded }
        if text.hasPrefix("stream: "), text.hasSuffix(" FOUND") {
            let signature = text.dropFirst("stream: ".count).dropLast(" FOUND".count)
            let trimmed = signature.trimmingSpaces()
            guard !trimmed.isEmpty else { return .unrecognised }
            return .found(signature: trimmed)
        }
        if text.hasSuffix(" ERROR") {
            let message = text.dropLast(" ERROR".count).trimmingSpaces()
            guard !message.isEmpty else { return .unrecognised }
            return .error(message)
        }
        return .unrecognised
    }

    /// What a reply to INSTREAM means for the message. A reply that does not belong to INSTREAM
    /// (PONG, garbage) makes the scanner unavailable.
    public var scanVerdict: ScanVerdict {
        switch self {
        case .ok: return .clean
        case .found(let signature): return .infected(signature: signature)
        case .sizeLimitExceeded: return .tooLarge
        case .error(let message): return .unavailable("clamd error: \(message)")
        case .pong, .unrecognised: return .unavailable("unexpected reply from clamd")
        }
    }
}

/// The outcome of scanning one message.
public enum ScanVerdict: Sendable, Equatable, CustomStringConvertible {
    /// clamd found nothing.
    case clean
    /// clamd found a signature. The name is for logs and tests only: it must never be shown to a
    /// mail sender (SCAN-1 refuses with a fixed `554 5.7.1`).
    case infected(signature: String)
    /// The message is longer than clamd's StreamMaxLength or the configured `maxStreamLength`:
    /// it was not scanned (whole). The caller decides what to do with it.
    case tooLarge
    /// No verdict: clamd refused the connection, timed out, closed without a reply, answered
    /// garbage or an error. SCAN-1 fails closed on this unless configured otherwise.
    case unavailable(String)

    public var description: String {
        switch self {
        case .clean: return "clean"
        case .infected(let signature): return "infected (\(signature))"
        case .tooLarge: return "too large"
        case .unavailable(let reason): return "unavailable (\(reason))"
        }
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> String {
        var slice = Substring(self)
        while slice.first == " " { slice.removeFirst() }
        while slice.last == " " { slice.removeLast() }
        return String(slice)
    }
}
