import NIOCore

/// A command line cut into its keyword and arguments (RFC 1939 section 3). Which keywords exist and
/// which arguments they take is the session's business: it must first say whether a command is
/// valid in the current state.
struct POP3CommandLine: Equatable, Sendable {
    /// The keyword, upper-cased: RFC 1939 section 3 keywords are case-insensitive.
    var keyword: String
    /// Everything after the first space, untouched: PASS takes it whole, spaces included.
    var argumentText: Substring
    /// The arguments, split on runs of spaces. RFC 1939 asks for single spaces; clients that send
    /// two, or a trailing one, are still understood.
    var arguments: [Substring]

    enum Failure: Error, Equatable, Sendable {
        case containsNUL
        case notUTF8
    }

    /// RFC 1939 section 3: arguments may be up to 40 characters long.
    static let maxArgumentLength = 40

    static func parse(_ line: ByteBuffer) -> Result<POP3CommandLine, Failure> {
        let view = line.readableBytesView
        if view.contains(0) { return .failure(.containsNUL) }
        let text = String(decoding: view, as: UTF8.self)
        // Decoding repairs invalid sequences with U+FFFD; a changed byte count or content means the
        // line was not UTF-8.
        guard text.utf8.elementsEqual(view) else { return .failure(.notUTF8) }

        let keyword: Substring
        let argumentText: Substring
        if let space = text.firstIndex(of: " ") {
            keyword = text[..<space]
            argumentText = text[text.index(after: space)...]
        } else {
            keyword = text[...]
            argumentText = text[text.endIndex...]
        }
        return .success(POP3CommandLine(
            keyword: asciiUppercased(keyword),
            argumentText: argumentText,
            arguments: argumentText.split(separator: " ", omittingEmptySubsequences: true)
        ))
    }

    /// Upper-cases ASCII letters only: keywords are ASCII, and nothing else may compare equal.
    private static func asciiUppercased(_ text: Substring) -> String {
        String(decoding: text.utf8.map { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) ? byte - 32 : byte
        }, as: UTF8.self)
    }
}

/// A message number or count argument (RFC 1939 section 3: decimal, no sign).
enum POP3NumberArgument: Equatable, Sendable {
    case number(Int)
    /// All digits but too large for `Int`: out of every range.
    case tooLarge
    case invalid

    init(_ text: Substring) {
        guard !text.isEmpty, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else {
            self = .invalid
            return
        }
        if let value = Int(text) { self = .number(value) } else { self = .tooLarge }
    }
}
