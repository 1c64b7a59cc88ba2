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
