/// A structured header value such as `multipart/mixed; boundary="x"; charset=utf-8`
/// (RFC 2045 5.1, RFC 2183 2): the leading value and its parameters, each parameter kept as the
/// raw text the client wrote so that RFC 2231 continuations and encodings survive untouched.
public struct MIMEParameters: Sendable, Equatable {
    public struct Parameter: Sendable, Equatable {
        /// Lower-case name, including any RFC 2231 suffix (`filename*`, `filename*0*`).
        public var name: String
        /// `name=value` exactly as written (folding whitespace removed at the edges).
        public var raw: String

        public init(name: String, raw: String) {
            self.name = name
            self.raw = raw
        }

        /// The name without an RFC 2231 section or encoding suffix.
        public var baseName: String {
            String(name.prefix { $0 != "*" })
        }

        /// The value with surrounding quotes removed and quoted-pairs resolved (for plain values).
        public var value: String {
            guard let eq = raw.firstIndex(of: "=") else { return "" }
            var text = Substring(raw[raw.index(after: eq)...])
            while text.first == " " || text.first == "\t" { text = text.dropFirst() }
            guard text.first == "\"" else { return String(text).trimmingSpaces() }
            var result = ""
            var escaped = false
            for c in text.dropFirst() {
                if escaped { result.append(c); escaped = false; continue }
                if c == "\\" { escaped = true; continue }
                if c == "\"" { break }
                result.append(c)
            }
            return result
        }
    }

    /// The value before the first `;`, lower-cased (`multipart/mixed`, `attachment`).
    public var value: String
    public var parameters: [Parameter]

    public init(value: String, parameters: [Parameter]) {
        self.value = value
        self.parameters = parameters
    }

    /// Parses an unfolded header value. Never fails: what cannot be read as `name=value` is dropped.
    public init(parsing text: String) {
        let pieces = Self.splitOutsideQuotes(text)
        value = (pieces.first ?? "").trimmingSpaces().lowercased()
        parameters = pieces.dropFirst().compactMap { piece in
            let trimmed = Self.stripComments(piece).trimmingSpaces()
            guard let eq = trimmed.firstIndex(of: "=") else { return nil }
            let name = String(trimmed[..<eq]).trimmingSpaces().lowercased()
            guard !name.isEmpty else { return nil }
            return Parameter(name: name, raw: name + "=" + String(trimmed[trimmed.index(after: eq)...]).trimmingSpaces())
        }
    }

    /// The first parameter with this name (plain, not RFC 2231 encoded).
    public subscript(name: String) -> String? {
        parameters.first { $0.name == name }?.value
    }

    /// The value of parameter `name` (lower case, no `*`) with RFC 2231 applied: `name*=` with a
    /// charset and percent escapes (4), continuations `name*0`, `name*1*`… in order up to the
    /// first gap (3), else the plain `name=`, whose RFC 2047 encoded words are decoded too
    /// (forbidden by RFC 2047 5, written by common mailers anyway).
    public func decodedValue(_ name: String) -> String? {
        let name = name.lowercased()
        if let extended = parameters.first(where: { $0.name == name + "*" }) {
            return Self.decodeExtended([(extended.value, true)])
        }
        // Sections: name*N (plain) or name*N* (extended); bounded so hostile input stays cheap.
        var sections: [Int: (String, Bool)] = [:]
        for parameter in parameters where parameter.baseName == name && parameter.name != name {
            var suffix = parameter.name.dropFirst(name.count + 1)
            let extended = suffix.hasSuffix("*")
            if extended { suffix = suffix.dropLast() }
            guard suffix.count <= 4, let number = Int(suffix), number >= 0, sections[number] == nil else { continue }
            sections[number] = (parameter.value, extended)
        }
        if !sections.isEmpty {
            var ordered: [(String, Bool)] = []
            var n = 0
            while let section = sections[n] { ordered.append(section); n += 1 }
            if !ordered.isEmpty { return Self.decodeExtended(ordered) }
        }
        guard let plain = self[name] else { return nil }
        return plain.contains("=?") ? EncodedWord.decode(plain) : plain
    }

    /// Joins RFC 2231 sections; the first extended one may carry `charset'language'`.
    static func decodeExtended(_ sections: [(value: String, extended: Bool)]) -> String {
        var charset: String?
        var bytes: [UInt8] = []
        for (index, section) in sections.enumerated() {
            var text = Substring(section.value)
            if section.extended && index == 0 {
                let parts = text.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                if parts.count == 3 {
                    charset = String(parts[0])
                    text = parts[2]
                }
            }
            guard section.extended else { bytes += Array(text.utf8); continue }
            let raw = Array(text.utf8)
            var i = 0
            while i < raw.count {
                if raw[i] == UInt8(ascii: "%"), i + 2 < raw.count,
                   let high = MIMETransferEncoding.hexValue(raw[i + 1]), let low = MIMETransferEncoding.hexValue(raw[i + 2]) {
                    bytes.append(high << 4 | low)
                    i += 3
                } else {
                    bytes.append(raw[i])
                    i += 1
                }
            }
        }
        return MIMECharset.decode(bytes, charset: charset?.isEmpty == false ? charset : nil).text
    }

    /// Writes `value;` and one parameter per folded line, so that no line grows past the limit
    /// whatever the parameters hold (RFC 5322 2.2.3 folding).
    public func serialised() -> String {
        var text = value
        for parameter in parameters {
            text += ";\r\n " + parameter.raw
        }
        return text
    }

    /// Splits at `;` outside quoted strings.
    static func splitOutsideQuotes(_ text: String) -> [String] {
        var pieces: [String] = []
        var current = ""
        var inQuotes = false
        var escaped = false
        var commentDepth = 0
        for c in text {
            if escaped { current.append(c); escaped = false; continue }
            switch c {
            case "\\" where inQuotes: escaped = true; current.append(c)
            case "\"" where commentDepth == 0: inQuotes.toggle(); current.append(c)
            case "(" where !inQuotes: commentDepth += 1; current.append(c)
            case ")" where !inQuotes && commentDepth > 0: commentDepth -= 1; current.append(c)
            case ";" where !inQuotes && commentDepth == 0:
                pieces.append(current); current = ""
            default: current.append(c)
            }
        }
        pieces.append(current)
        return pieces
    }

    static func stripComments(_ text: String) -> String {
        AddressList.stripComments(text)
    }
}
