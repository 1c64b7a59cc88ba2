/// Reads the addresses out of an address header such as From, To or Cc (RFC 5322 3.4):
/// `"Name" <a@b>`, `a@b (comment)`, `Name <a@b>, c@d`, groups `team: a@b, c@d;`.
///
/// Only the addr-specs are returned; display names and comments are dropped. The reader is
/// lenient about what it skips and strict about what it returns: every returned value parsed as
/// an `EmailAddress`, and an entry that does not is reported as `nil` so callers can refuse it.
public enum AddressList {
    public static func addresses(in value: String, allowUTF8: Bool = true) -> [EmailAddress?] {
        var result: [EmailAddress?] = []
        for entry in splitEntries(stripComments(value)) {
            var text = Substring(entry)
            // A group "name: a, b;" (RFC 5322 3.4): the display name ends at a colon that comes
            // before any address (an address literal "[IPv6:…]" has colons after its "@").
            if let colon = firstUnquoted(":", in: text),
               firstUnquoted("@", in: text).map({ colon < $0 }) ?? true,
               firstUnquoted("<", in: text).map({ colon < $0 }) ?? true {
                text = text[text.index(after: colon)...]
            }
            // The group ends with ";" outside quotes.
            var trimmed = String(text).trimmingSpaces()
            if let semicolon = firstUnquoted(";", in: Substring(trimmed)) {
                trimmed = String(trimmed[..<semicolon]).trimmingSpaces()
            }
            if trimmed.isEmpty { continue }
            let spec: String
            if let open = trimmed.lastIndex(of: "<"), let close = trimmed.lastIndex(of: ">"), open < close {
                spec = String(trimmed[trimmed.index(after: open)..<close]).trimmingSpaces()
            } else {
                spec = trimmed
            }
            result.append(EmailAddress(spec, allowUTF8: allowUTF8))
        }
        return result
    }

    /// Removes RFC 5322 3.2.2 comments (nested parentheses), keeping quoted strings intact.
    public static func stripComments(_ value: String) -> String {
        var out = ""
        var depth = 0
        var inQuotes = false
        var escaped = false
        for c in value {
            if escaped { if depth == 0 { out.append(c) }; escaped = false; continue }
            if c == "\\" { escaped = true; if depth == 0 { out.append(c) }; continue }
            if inQuotes {
                out.append(c)
                if c == "\"" { inQuotes = false }
                continue
            }
            switch c {
            case "\"" where depth == 0: inQuotes = true; out.append(c)
            case "(": depth += 1
            case ")": if depth > 0 { depth -= 1 } else { out.append(c) }
            default: if depth == 0 { out.append(c) }
            }
        }
        return out
    }

    /// Splits at commas outside quotes and angle brackets.
    static func splitEntries(_ value: String) -> [String] {
        var entries: [String] = []
        var current = ""
        var inQuotes = false
        var inAngle = false
        var escaped = false
        for c in value {
            if escaped { current.append(c); escaped = false; continue }
            switch c {
            case "\\": escaped = true; current.append(c)
            case "\"": inQuotes.toggle(); current.append(c)
            case "<" where !inQuotes: inAngle = true; current.append(c)
            case ">" where !inQuotes: inAngle = false; current.append(c)
            case "," where !inQuotes && !inAngle:
                entries.append(current); current = ""
            default: current.append(c)
            }
        }
        entries.append(current)
        return entries
    }

    static func firstUnquoted(_ target: Character, in text: Substring) -> Substring.Index? {
        var inQuotes = false
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if c == "\"" { inQuotes.toggle() } else if c == target && !inQuotes { return index }
            index = text.index(after: index)
        }
        return nil
    }
}
