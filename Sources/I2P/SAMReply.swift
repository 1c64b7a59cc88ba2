import Foundation

/// One line from a SAM bridge (SAM v3, https://geti2p.net/en/docs/api/samv3): `TOPIC VERB` and
/// `KEY=VALUE` pairs, values bare or in double quotes (3.2: `\"` and `\\` escapes). Pure and strict:
/// a line longer than `maxLength`, a control character, a malformed pair or a missing verb is an
/// error, never a guess — the bridge is a local program, so anything odd means something is wrong.
public struct SAMReply: Sendable, Equatable {
    public var topic: String
    public var verb: String
    public var fields: [String: String]

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case tooLong, empty, badCharacter, badKeyword, badPair, unterminatedQuote, duplicateKey

        public var description: String {
            switch self {
            case .tooLong: return "a SAM reply line is too long"
            case .empty: return "an empty SAM reply"
            case .badCharacter: return "a SAM reply holds a control character"
            case .badKeyword: return "a SAM reply does not start with TOPIC VERB"
            case .badPair: return "a SAM reply holds a malformed KEY=VALUE"
            case .unterminatedQuote: return "a SAM reply has an unterminated quoted value"
            case .duplicateKey: return "a SAM reply names a key twice"
            }
        }
    }

    /// Long enough for a private key with an Ed25519 certificate (about 900 characters of base64)
    /// and a lease-set option or two; far below anything that could hurt.
    public static let maxLength = 16 * 1024

    public init(topic: String, verb: String, fields: [String: String] = [:]) {
        self.topic = topic
        self.verb = verb
        self.fields = fields
    }

    public subscript(key: String) -> String? { fields[key] }

    /// `RESULT` (absent means OK, as for DEST REPLY).
    public var isOK: Bool { (fields["RESULT"] ?? "OK") == "OK" }

    /// What went wrong, for a log line: `RESULT` and `MESSAGE`, never a destination.
    public var failure: String {
        let result = fields["RESULT"] ?? "?"
        return fields["MESSAGE"].map { "\(result) (\($0.prefix(200)))" } ?? result
    }

    /// Parses one line, without its LF (a trailing CR is tolerated).
    public static func parse<Bytes: Collection>(_ line: Bytes) throws(ParseError) -> SAMReply where Bytes.Element == UInt8 {
        var bytes = Array(line)
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        guard bytes.count <= maxLength else { throw .tooLong }
        guard bytes.contains(where: { $0 != UInt8(ascii: " ") }) else { throw .empty }
        guard !bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) else { throw .badCharacter }
        var index = 0
        func skipSpaces() { while index < bytes.count && bytes[index] == UInt8(ascii: " ") { index += 1 } }
        func word() -> [UInt8] {
            let start = index
            while index < bytes.count && bytes[index] != UInt8(ascii: " ") { index += 1 }
            return Array(bytes[start..<index])
        }
        func isKeyword(_ w: [UInt8]) -> Bool { !w.isEmpty && w.allSatisfy { (0x41...0x5A).contains($0) } }
        skipSpaces()
        let topic = word()
        skipSpaces()
        let verb = word()
        guard isKeyword(topic), isKeyword(verb) else { throw .badKeyword }
        var fields: [String: String] = [:]
        while true {
            skipSpaces()
            guard index < bytes.count else { break }
            let keyStart = index
            while index < bytes.count && bytes[index] != UInt8(ascii: "=") && bytes[index] != UInt8(ascii: " ") { index += 1 }
            let key = Array(bytes[keyStart..<index])
            guard !key.isEmpty, key.allSatisfy(isKeyByte) else { throw .badPair }
            var value: [UInt8] = []
            if index < bytes.count && bytes[index] == UInt8(ascii: "=") {
                index += 1
                if index < bytes.count && bytes[index] == UInt8(ascii: "\"") {
                    index += 1
                    var closed = false
                    while index < bytes.count {
                        let byte = bytes[index]
                        index += 1
                        if byte == UInt8(ascii: "\\") && index < bytes.count {
                            value.append(bytes[index])
                            index += 1
                        } else if byte == UInt8(ascii: "\"") {
                            closed = true
                            break
                        } else {
                            value.append(byte)
                        }
                    }
                    guard closed else { throw .unterminatedQuote }
                    guard index == bytes.count || bytes[index] == UInt8(ascii: " ") else { throw .badPair }
                } else {
                    value = word()
                    guard !value.contains(UInt8(ascii: "\"")) else { throw .badPair }
                }
            }
            // A bare key (no "=") is a flag such as SILENT; it reads as an empty value.
            let name = String(decoding: key, as: UTF8.self)
            guard fields[name] == nil else { throw .duplicateKey }
            fields[name] = String(decoding: value, as: UTF8.self)
        }
        return SAMReply(topic: String(decoding: topic, as: UTF8.self), verb: String(decoding: verb, as: UTF8.self), fields: fields)
    }

    private static func isKeyByte(_ byte: UInt8) -> Bool {
        (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte)
            || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
    }
}

/// A command to the SAM bridge, one line. Values with a space, a quote or a backslash are quoted
/// and escaped (SAM 3.2); a value with a control character cannot be sent at all.
public struct SAMCommand: Sendable {
    public var words: [String]
    public var fields: [(String, String)]

    public init(_ words: String..., fields: [(String, String)] = []) {
        self.words = words
        self.fields = fields
    }

    public struct Unsendable: Error {}

    public func line() throws(Unsendable) -> String {
        var parts = words
        for (key, value) in fields {
            guard !key.isEmpty, !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }),
                  !key.contains(where: { $0 == " " || $0 == "=" }) else { throw Unsendable() }
            if value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "\\" }) {
                let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                parts.append("\(key)=\"\(escaped)\"")
            } else {
                parts.append("\(key)=\(value)")
            }
        }
        return parts.joined(separator: " ") + "\n"
    }
}
