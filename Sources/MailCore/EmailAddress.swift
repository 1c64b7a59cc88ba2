/// An e-mail address (RFC 5321 4.1.2 Mailbox): a local part and a domain.
///
/// The domain is kept lower case (RFC 5321 2.4: domains are case-insensitive). The local part is
/// kept as written; Postern's own accounts are case-insensitive (ACCT-2) and compare through
/// `canonical`.
public struct EmailAddress: Hashable, Sendable, CustomStringConvertible {
    public let localPart: String
    public let domain: String

    public init(localPart: String, domain: String) {
        self.localPart = localPart
        self.domain = domain.lowercased()
    }

    /// Parses `local@domain` (no angle brackets). Accepts a dot-string or quoted-string local part
    /// (RFC 5321 4.1.2) and a domain of dot-separated labels or an address literal. Non-ASCII is
    /// accepted only when `allowUTF8` (RFC 6531 SMTPUTF8).
    public init?(_ text: String, allowUTF8: Bool = false) {
        // RFC 5321 4.5.3.1.3: a path is at most 256 octets with its angle brackets, so 254 without.
        guard !text.isEmpty, text.utf8.count <= 254 else { return nil }
        if !allowUTF8 && text.utf8.contains(where: { $0 >= 0x80 }) { return nil }
        guard let at = text.lastIndex(of: "@") else { return nil }
        let local = String(text[..<at])
        let domain = String(text[text.index(after: at)...])
        guard EmailAddress.isValidLocalPart(local), EmailAddress.isValidDomain(domain) else { return nil }
        self.init(localPart: local, domain: domain)
    }

    /// Lower-cased form, used for Postern's own (case-insensitive) accounts.
    public var canonical: String { "\(localPart.lowercased())@\(domain)" }

    public var description: String { "\(localPart)@\(domain)" }

    // RFC 5321 4.5.3.1.1: local part at most 64 octets.
    static func isValidLocalPart(_ local: String) -> Bool {
        let bytes = Array(local.utf8)
        guard !bytes.isEmpty, bytes.count <= 64 else { return false }
        if bytes.first == UInt8(ascii: "\"") {
            // Quoted-string: qtextSMTP or quoted-pairSMTP (RFC 5321 4.1.2).
            guard bytes.count >= 2, bytes.last == UInt8(ascii: "\"") else { return false }
            var i = 1
            while i < bytes.count - 1 {
                let b = bytes[i]
                if b == UInt8(ascii: "\\") {
                    guard i + 1 < bytes.count - 1, (32...126).contains(bytes[i + 1]) else { return false }
                    i += 2
                    continue
                }
                guard b == 32 || b == 33 || (35...91).contains(b) || (93...126).contains(b) || b >= 0x80 else { return false }
                i += 1
            }
            return true
        }
        // Dot-string: atoms separated by single dots.
        var previousWasDot = true
        for b in bytes {
            if b == UInt8(ascii: ".") {
                if previousWasDot { return false }
                previousWasDot = true
            } else {
                guard isAtext(b) else { return false }
                previousWasDot = false
            }
        }
        return !previousWasDot
    }

    // RFC 5322 3.2.3 atext, plus UTF-8 bytes (RFC 6531 3.3).
    static func isAtext(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"),
             UInt8(ascii: "="), UInt8(ascii: "?"), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"),
             UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"), UInt8(ascii: "~"):
            return true
        default:
            return b >= 0x80
        }
    }

    // RFC 5321 4.1.2 Domain / address-literal; 4.5.3.1.2: at most 255 octets.
    static func isValidDomain(_ domain: String) -> Bool {
        let bytes = Array(domain.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else { return false }
        if bytes.first == UInt8(ascii: "[") {
            guard bytes.last == UInt8(ascii: "]"), bytes.count > 2 else { return false }
            return bytes.dropFirst().dropLast().allSatisfy { (33...126).contains($0) && $0 != UInt8(ascii: "[") && $0 != UInt8(ascii: "]") && $0 != UInt8(ascii: "\\") }
        }
        for label in domain.split(separator: ".", omittingEmptySubsequences: false) {
            let l = Array(label.utf8)
            guard !l.isEmpty, l.count <= 63, l.first != UInt8(ascii: "-"), l.last != UInt8(ascii: "-") else { return false }
            guard l.allSatisfy({ b in
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "-") || b >= 0x80
            }) else { return false }
        }
        return true
    }
}
