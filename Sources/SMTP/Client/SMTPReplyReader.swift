/// Gathers the lines of a server's replies into whole replies (RFC 5321 4.2): `250-…` lines
/// continue, `250 …` ends. Strict, because a relay that answers garbage is a failed relay, not a
/// reason to guess: a line that is not three digits and a separator, a continuation whose code
/// changes, or a reply of more than `maxLines` lines is an error. Pure.
public struct SMTPReplyReader: Sendable {
    public struct Reply: Sendable, Equatable {
        public var code: Int
        /// RFC 2034 enhanced status of the first line, when it has one.
        public var enhanced: String?
        public var lines: [String]

        public var isTemporary: Bool { (400..<500).contains(code) }
        public var isPermanent: Bool { code >= 500 }
    }

    public enum Problem: Error, Equatable {
        case malformed
        case inconsistentCode
        case tooManyLines
    }

    public var maxLines: Int
    private var code: Int?
    private var lines: [String] = []

    public init(maxLines: Int = 100) {
        self.maxLines = maxLines
    }

    /// Feeds one line (without CRLF); returns the reply it completes, if any.
    public mutating func feed(_ line: String) throws(Problem) -> Reply? {
        let bytes = Array(line.utf8)
        guard bytes.count >= 3, bytes[0...2].allSatisfy({ (0x30...0x39).contains($0) }), (2...5).contains(bytes[0] - 0x30) else {
            throw .malformed
        }
        let lineCode = Int(bytes[0] - 0x30) * 100 + Int(bytes[1] - 0x30) * 10 + Int(bytes[2] - 0x30)
        let separator = bytes.count > 3 ? bytes[3] : UInt8(ascii: " ")
        guard separator == UInt8(ascii: " ") || separator == UInt8(ascii: "-") else { throw .malformed }
        if let code, code != lineCode { throw .inconsistentCode }
        code = lineCode
        lines.append(bytes.count > 4 ? String(decoding: bytes[4...], as: UTF8.self) : "")
        guard lines.count <= maxLines else { throw .tooManyLines }
        guard separator == UInt8(ascii: " ") else { return nil }
        defer { code = nil; lines = [] }
        return Reply(code: lineCode, enhanced: Self.enhancedStatus(in: lines[0], code: lineCode), lines: lines)
    }

    /// `x.y.z` at the start of the text when its class matches the code's (RFC 3463 2).
    static func enhancedStatus(in text: String, code: Int) -> String? {
        guard let first = text.split(separator: " ", maxSplits: 1).first else { return nil }
        let parts = first.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) }),
              parts[0] == "\(code / 100)" else { return nil }
        return String(first)
    }
}
