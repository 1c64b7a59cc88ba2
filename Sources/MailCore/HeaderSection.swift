/// One header field as it appeared in a message (RFC 5322 2.2): its name, and its value with the
/// folding CRLFs removed (unfolded, RFC 5322 2.2.3). `raw` keeps the original bytes with folding.
public struct HeaderField: Sendable, Equatable {
    public var name: String
    public var value: String
    public var raw: [UInt8]

    public init(name: String, value: String, raw: [UInt8]) {
        self.name = name
        self.value = value
        self.raw = raw
    }
}

/// The header section of a message and where its body starts.
public struct HeaderSection: Sendable {
    public var fields: [HeaderField]
    /// Index of the first body byte (just after the empty line), or the end index when the message
    /// has no body. When a slice is parsed, this is an index of the underlying collection.
    public var bodyOffset: Int

    /// Splits `message` (CRLF lines) into header fields. Lines that are neither a field nor a
    /// continuation are skipped: the parser never fails, a reader can always open the result.
    public static func parse<Bytes: RandomAccessCollection>(_ message: Bytes) -> HeaderSection where Bytes.Element == UInt8, Bytes.Index == Int {
        var fields: [HeaderField] = []
        var index = message.startIndex
        var current: [UInt8] = []
        func finish() {
            guard !current.isEmpty, let field = makeField(current) else { current.removeAll(); return }
            fields.append(field)
            current.removeAll(keepingCapacity: true)
        }
        while index < message.endIndex {
            // Find the end of this line.
            var end = index
            while end < message.endIndex && message[end] != UInt8(ascii: "\n") { end += 1 }
            let next = end < message.endIndex ? end + 1 : end
            var lineEnd = end
            if lineEnd > index && message[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            if lineEnd == index {
                finish()
                return HeaderSection(fields: fields, bodyOffset: next)
            }
            let first = message[index]
            if first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                if !current.isEmpty { current.append(contentsOf: [13, 10]) }
                current.append(contentsOf: message[index..<lineEnd])
            } else {
                finish()
                current.append(contentsOf: message[index..<lineEnd])
            }
            index = next
        }
        finish()
        return HeaderSection(fields: fields, bodyOffset: message.endIndex)
    }

    private static func makeField(_ raw: [UInt8]) -> HeaderField? {
        guard let colon = raw.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let nameBytes = raw[..<colon]
        // RFC 5322 3.6.8: field names are printable ASCII except colon, no spaces.
        guard !nameBytes.isEmpty, nameBytes.allSatisfy({ $0 > 32 && $0 < 127 }) else { return nil }
        var valueBytes = Array(raw[(colon + 1)...])
        valueBytes.removeAll { $0 == 13 || $0 == 10 }  // unfold
        let value = String(decoding: valueBytes, as: UTF8.self).trimmingSpaces()
        return HeaderField(name: String(decoding: nameBytes, as: UTF8.self), value: value, raw: raw)
    }

    /// All fields with this name (case-insensitive, RFC 5322 1.2.2).
    public func fields(named name: String) -> [HeaderField] {
        let lower = name.lowercased()
        return fields.filter { $0.name.lowercased() == lower }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}
