/// One IRC message (RFC 2812 2.3.1; RFC 1459 2.3.1):
/// `[":" prefix SPACE] command [SPACE params] CRLF`, where params are up to 14 middles and an
/// optional trailing parameter after ":" (the 15th parameter needs no ":").
///
/// Parsing never traps and accepts what servers really send (runs of spaces, a missing trailing
/// ":" after 14 middles, any bytes decoded as UTF-8 with replacement); it refuses NUL, CR and LF
/// inside a line. Serialising is strict: it refuses anything that would change the meaning of the
/// line on the wire and cuts only the last parameter, at a UTF-8 boundary, so that the line with
/// its CRLF fits in 512 octets (RFC 2812 2.3).
public struct IRCMessage: Equatable, Sendable, CustomStringConvertible {
    /// The longest line, CRLF included (RFC 2812 2.3).
    public static let maxLineOctets = 512

    public var prefix: String?
    /// Upper-case letters, or exactly three digits for a numeric reply (RFC 2812 2.4).
    public var command: String
    public var parameters: [String]

    public init(prefix: String? = nil, command: String, parameters: [String] = []) {
        self.prefix = prefix
        self.command = command
        self.parameters = parameters
    }

    /// The nick part of the prefix (`nick!user@host` → `nick`); `nil` without a prefix.
    public var sourceNick: String? {
        guard let prefix else { return nil }
        let end = prefix.firstIndex(where: { $0 == "!" || $0 == "@" }) ?? prefix.endIndex
        let nick = prefix[..<end]
        return nick.isEmpty ? nil : String(nick)
    }

    /// True when the prefix names a user (`nick!user@host`), not a server (RFC 2812 2.3.1).
    public var isFromUser: Bool {
        guard let prefix else { return false }
        return prefix.contains("!")
    }

    /// Whether `command` is a three-digit numeric reply (RFC 2812 5).
    public var isNumeric: Bool {
        command.utf8.count == 3 && command.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    public var description: String {
        String(decoding: serialised(limit: .max)?.dropLast(2) ?? Array("<invalid>".utf8), as: UTF8.self)
    }

    // MARK: - Parsing

    public static func parse(_ line: String) -> IRCMessage? { parse(Array(line.utf8)) }

    /// Parses one line without its line ending (a trailing CR, left by a bare-LF framer, is
    /// ignored). `nil` for an empty line (RFC 2812 2.3.1: silently ignored), a line with NUL, CR or
    /// LF inside, a prefix without a command, or a command that is neither letters nor 3 digits.
    public static func parse<Bytes: Collection>(_ line: Bytes) -> IRCMessage? where Bytes.Element == UInt8 {
        var bytes = Array(line)
        if bytes.last == cr { bytes.removeLast() }
        if bytes.contains(where: { $0 == 0 || $0 == cr || $0 == lf }) { return nil }
        var index = 0
        let end = bytes.count

        func skipSpaces() { while index < end && bytes[index] == space { index += 1 } }
        func word() -> ArraySlice<UInt8> {
            let start = index
            while index < end && bytes[index] != space { index += 1 }
            return bytes[start..<index]
        }

        skipSpaces()
        var prefix: String? = nil
        if index < end && bytes[index] == colon {
            index += 1
            let p = word()
            if p.isEmpty { return nil }
            prefix = String(decoding: p, as: UTF8.self)
            skipSpaces()
        }
        let commandBytes = word()
        guard let command = validCommand(commandBytes) else { return nil }
        var parameters: [String] = []
        while true {
            skipSpaces()
            if index >= end { break }
            if bytes[index] == colon {
                parameters.append(String(decoding: bytes[(index + 1)..<end], as: UTF8.self))
                break
            }
            if parameters.count == 14 {
                // RFC 2812 2.3.1: after 14 middles the rest is the trailing parameter, ":" optional.
                parameters.append(String(decoding: bytes[index..<end], as: UTF8.self))
                break
            }
            parameters.append(String(decoding: word(), as: UTF8.self))
        }
        return IRCMessage(prefix: prefix, command: command, parameters: parameters)
    }

    /// Letters (normalised to upper case) or exactly three digits.
    private static func validCommand(_ bytes: ArraySlice<UInt8>) -> String? {
        if bytes.isEmpty || bytes.count > 32 { return nil }
        if bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            return bytes.count == 3 ? String(decoding: bytes, as: UTF8.self) : nil
        }
        guard bytes.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) }) else { return nil }
        return String(decoding: bytes.map { $0 >= 0x61 ? $0 - 0x20 : $0 }, as: UTF8.self)
    }

    // MARK: - Serialising

    /// The line with its CRLF, at most `limit` octets (512 by default, RFC 2812 2.3). The last
    /// parameter is cut at a UTF-8 boundary when the line would be longer; `nil` when the message
    /// cannot be sent as it is: an invalid command or prefix, more than 15 parameters, NUL, CR,
    /// LF or \u{1} anywhere (the last one so that nothing we send can be CTCP), a middle parameter
    /// that is empty, holds a space or starts with ":", or a line too long even with the last
    /// parameter emptied.
    public func serialised(limit: Int = IRCMessage.maxLineOctets) -> [UInt8]? {
        guard Self.validCommand(ArraySlice(command.utf8)) == command else { return nil }
        if let prefix, prefix.isEmpty || prefix.utf8.contains(where: { $0 == Self.space || Self.isForbidden($0) }) { return nil }
        guard parameters.count <= 15 else { return nil }
        for parameter in parameters where parameter.utf8.contains(where: Self.isForbidden) { return nil }
        for middle in parameters.dropLast() {
            guard let first = middle.utf8.first, first != Self.colon, !middle.utf8.contains(Self.space) else { return nil }
        }

        var head: [UInt8] = []
        if let prefix { head.append(Self.colon); head.append(contentsOf: prefix.utf8); head.append(Self.space) }
        head.append(contentsOf: command.utf8)
        for middle in parameters.dropLast() { head.append(Self.space); head.append(contentsOf: middle.utf8) }
        guard let last = parameters.last else {
            return head.count + 2 <= limit ? head + [Self.cr, Self.lf] : nil
        }
        var lastBytes = Array(last.utf8)
        var needsColon = lastBytes.isEmpty || lastBytes.first == Self.colon || lastBytes.contains(Self.space)
        head.append(Self.space)
        if head.count + (needsColon ? 1 : 0) + lastBytes.count + 2 > limit {
            needsColon = true  // a cut parameter may end up empty or end in a space
            let budget = limit - 2 - head.count - 1
            guard budget >= 0 else { return nil }
            var cut = budget
            // Step back over UTF-8 continuation bytes (10xxxxxx) so no character is split.
            while cut > 0 && lastBytes[cut] & 0xC0 == 0x80 { cut -= 1 }
            lastBytes.removeSubrange(cut...)
        }
        if needsColon { head.append(Self.colon) }
        head.append(contentsOf: lastBytes)
        head.append(Self.cr)
        head.append(Self.lf)
        return head
    }

    private static func isForbidden(_ byte: UInt8) -> Bool { byte == 0 || byte == cr || byte == lf || byte == 1 }

    static let cr = UInt8(ascii: "\r")
    static let lf = UInt8(ascii: "\n")
    static let space = UInt8(ascii: " ")
    static let colon = UInt8(ascii: ":")
}

/// RFC 2812 2.2: nicks compare case-insensitively, and because of IRC's Scandinavian origin the
/// characters `{}|^` are the lower-case forms of `[]\~` ("rfc1459" case mapping).
public enum IRCCaseMapping {
    public static func fold(_ name: String) -> String {
        String(decoding: name.utf8.map { byte -> UInt8 in
            switch byte {
            case 0x41...0x5A: byte + 0x20          // A-Z
            case UInt8(ascii: "["): UInt8(ascii: "{")
            case UInt8(ascii: "]"): UInt8(ascii: "}")
            case UInt8(ascii: "\\"): UInt8(ascii: "|")
            case UInt8(ascii: "~"): UInt8(ascii: "^")
            default: byte
            }
        }, as: UTF8.self)
    }

    public static func equal(_ a: String, _ b: String) -> Bool { fold(a) == fold(b) }

    /// A nick as RFC 2812 2.3.1 allows it, without its 9-character limit (servers allow longer):
    /// a letter or special first, then letters, digits, specials or "-". Good enough for a form to
    /// refuse a typo or an attempt to smuggle a channel or a second target.
    public static func isValidNick(_ nick: String) -> Bool {
        let bytes = Array(nick.utf8)
        guard let first = bytes.first, bytes.count <= 64 else { return false }
        func letter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
        func special(_ b: UInt8) -> Bool { (b >= 0x5B && b <= 0x60) || (b >= 0x7B && b <= 0x7D) }
        func digit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        guard letter(first) || special(first) else { return false }
        return bytes.dropFirst().allSatisfy { letter($0) || special($0) || digit($0) || $0 == UInt8(ascii: "-") }
    }
}
