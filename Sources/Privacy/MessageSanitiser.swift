import MailCore

/// Rebuilds a message so that it carries only what the policy allows (SPEC section 6). Pure: the
/// time and the random source come in as arguments.
///
/// What is rebuilt:
/// - the header, from an allow-list, in one fixed order with canonical field names (the order
///   and spelling of fields tell which program wrote a message);
/// - Message-ID (fresh, random, at the given domain) and Date (the given time, UTC, to the minute);
/// - From, from the account's address and the display name the client gave (comments dropped);
/// - inside MIME: part headers reduced to five fields, Content-Disposition date parameters
///   removed, every boundary replaced by a random one, preambles and epilogues dropped.
/// What is never touched: body bytes of leaf parts, and the signed part of multipart/signed
/// (RFC 1847 2.1: its bytes are what the signature covers).
public struct MessageSanitiser: Sendable {
    /// Header fields a submitted message may keep (PRIV-1), in the order they are written.
    public static let submissionFields = [
        "Date", "From", "Reply-To", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Autocrypt", "OpenPGP",
    ]
    /// Header fields a MIME part may keep (PRIV-3).
    public static let partFields = ["Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID", "Content-Description"]
    /// Parameters that carry file times (RFC 2183 2.4–2.6): removed from Content-Disposition and,
    /// should a client put them there, from Content-Type.
    public static let dateParameters: Set<String> = ["creation-date", "modification-date", "read-date"]

    /// True for a parameter that is dropped: file times, and the non-standard `x-` parameters some
    /// clients add (`x-unix-mode`, `x-mac-type`, …) which name the client and the user's system.
    static func isDroppedParameter(_ parameter: MIMEParameters.Parameter) -> Bool {
        dateParameters.contains(parameter.baseName) || parameter.baseName.hasPrefix("x-")
    }

    public struct Context: Sendable {
        /// The account: From and nothing else.
        public var sender: EmailAddress
        /// Domain of the new Message-ID.
        public var messageIDDomain: String
        /// The time the message leaves the server (PRIV-2), seconds since 1970.
        public var releaseTime: Int64
        /// Address rewriting for Internet-bound mail (PRIV-4): `@from` → `@to` in From, To, Cc,
        /// Reply-To and Autocrypt's addr. nil on submission.
        public var rewriteDomain: (from: String, to: String)?
        /// The new Message-ID (with angle brackets); nil: a random one at `messageIDDomain`.
        public var messageID: String?
        /// Message-IDs this account's earlier messages had when its client wrote them, mapped to
        /// the ones Postern gave them. In-Reply-To and References are rewritten with it, so that a
        /// reply to one's own sent mail (or a patch series) still threads (PRIV-2 keeps threading).
        public var referenceReplacements: [String: String]

        public init(sender: EmailAddress, messageIDDomain: String, releaseTime: Int64, rewriteDomain: (from: String, to: String)? = nil,
                    messageID: String? = nil, referenceReplacements: [String: String] = [:]) {
            self.sender = sender
            self.messageIDDomain = messageIDDomain
            self.releaseTime = releaseTime
            self.rewriteDomain = rewriteDomain
            self.messageID = messageID
            self.referenceReplacements = referenceReplacements
        }
    }

    public init() {}

    /// The sanitised message. `message` is CRLF text as received (dot-unstuffed).
    public func sanitise<R: RandomNumberGenerator>(_ message: [UInt8], context: Context, random: inout R) -> [UInt8] {
        let root = MIMEEntity.parse(message)
        var out: [UInt8] = []
        out.reserveCapacity(message.count + 512)

        // The top-level header, from the allow-list.
        var kept: [String: HeaderField] = [:]
        for field in root.fields {
            let canonical = Self.submissionFields.first { $0.lowercased() == field.name.lowercased() }
            if let canonical, kept[canonical] == nil { kept[canonical] = field }
        }
        var newBoundary: String?
        for name in Self.submissionFields {
            switch name {
            case "Date":
                Self.writeField(&out, name, RFC5322Date.format(secondsSince1970: context.releaseTime))
            case "From":
                Self.writeField(&out, name, Self.fromValue(kept["From"], sender: context.sender))
            case "Message-ID":
                Self.writeField(&out, name, context.messageID ?? Self.newMessageID(domain: context.messageIDDomain, random: &random))
            case "In-Reply-To", "References":
                guard let field = kept[name] else { continue }
                let ids = Self.messageIDs(in: field.value)
                if ids.contains(where: { context.referenceReplacements[$0] != nil }) {
                    Self.writeField(&out, name, ids.map { context.referenceReplacements[$0] ?? $0 }.joined(separator: "\r\n "))
                } else {
                    Self.writeRaw(&out, name, field)
                }
            case "MIME-Version":
                if kept[name] != nil || kept["Content-Type"] != nil { Self.writeField(&out, name, "1.0") }
            case "Content-Type":
                guard let field = kept[name] else { continue }
                if root.parts != nil {
                    let boundary = Self.freshBoundary(&random, avoiding: message)
                    newBoundary = boundary
                    Self.writeField(&out, name, Self.replacingBoundary(root.contentType, with: boundary))
                } else {
                    Self.writeCleaned(&out, name, field)
                }
            case "Content-Disposition":
                guard let field = kept[name] else { continue }
                Self.writeCleaned(&out, name, field)
            case "To", "Cc", "Reply-To", "Autocrypt":
                // Autocrypt's addr= must match From (Autocrypt Level 1, 2.1), so it moves with it.
                guard let field = kept[name] else { continue }
                if let rewrite = context.rewriteDomain {
                    Self.writeRawValue(&out, name, AddressRewriter.rewrite(Self.rawValue(field), from: rewrite.from, to: rewrite.to))
                } else {
                    Self.writeRaw(&out, name, field)
                }
            default:
                if let field = kept[name] { Self.writeRaw(&out, name, field) }
            }
        }
        out.append(contentsOf: [13, 10])
        writeBody(of: root, in: message, boundary: newBoundary, into: &out, random: &random)
        return out
    }

    /// `<26 random characters@domain>`: no time, no host, nothing of the client (PRIV-2).
    public static func newMessageID<R: RandomNumberGenerator>(domain: String, random: inout R) -> String {
        "<\(RandomToken.make(length: 26, using: &random))@\(domain)>"
    }

    /// The msg-ids (`<…>`) in an In-Reply-To, References or Message-ID value (RFC 5322 3.6.4).
    public static func messageIDs(in value: String) -> [String] {
        var ids: [String] = []
        var current: String?
        for c in AddressList.stripComments(value) {
            if c == "<" { current = "<" } else if c == ">", var id = current {
                id.append(c)
                ids.append(id)
                current = nil
            } else if current != nil, c != " ", c != "\t" {
                current!.append(c)
            }
            if let id = current, id.count > 998 { current = nil }
        }
        return ids
    }

    /// Writes the body of `entity`: leaf bytes unchanged, multiparts rebuilt with `boundary`.
    private func writeBody<R: RandomNumberGenerator>(of entity: MIMEEntity, in message: [UInt8], boundary: String?,
                                                     into out: inout [UInt8], random: inout R) {
        guard let parts = entity.parts, let boundary else {
            out.append(contentsOf: message[entity.bodyRange])
            return
        }
        let signed = entity.contentType.value == "multipart/signed"
        for (index, part) in parts.enumerated() {
            out.append(contentsOf: Array("--\(boundary)\r\n".utf8))
            if signed {
                // RFC 1847 2.1 / RFC 3156 5: the signed part and its signature stay byte-identical.
                out.append(contentsOf: message[part.range])
            } else {
                writePart(part, in: message, into: &out, random: &random)
            }
            _ = index
            out.append(contentsOf: [13, 10])
        }
        out.append(contentsOf: Array("--\(boundary)--\r\n".utf8))
    }

    private func writePart<R: RandomNumberGenerator>(_ part: MIMEEntity, in message: [UInt8], into out: inout [UInt8], random: inout R) {
        var childBoundary: String?
        for name in Self.partFields {
            guard let field = part.fields.first(where: { $0.name.lowercased() == name.lowercased() }) else { continue }
            switch name {
            case "Content-Type" where part.parts != nil:
                let boundary = Self.freshBoundary(&random, avoiding: message)
                childBoundary = boundary
                Self.writeField(&out, name, Self.replacingBoundary(part.contentType, with: boundary))
            case "Content-Type", "Content-Disposition":
                Self.writeCleaned(&out, name, field)
            case "Content-ID":
                // Some clients put host name and time into every part's Content-ID. One that no
                // other part refers to (cid: URLs, multipart/related "start") is dropped; one that
                // is referred to must stay, since bodies are never altered.
                if Self.isReferenced(contentID: field.value, in: message) { Self.writeRaw(&out, name, field) }
            default:
                Self.writeRaw(&out, name, field)
            }
        }
        out.append(contentsOf: [13, 10])
        writeBody(of: part, in: message, boundary: childBoundary, into: &out, random: &random)
    }

    // MARK: - Field helpers

    static func writeField(_ out: inout [UInt8], _ name: String, _ value: String) {
        out.append(contentsOf: Array("\(name): \(value)\r\n".utf8))
    }

    /// The value as the client wrote it, folding included, without the name and colon.
    static func rawValue(_ field: HeaderField) -> [UInt8] {
        guard let colon = field.raw.firstIndex(of: UInt8(ascii: ":")) else { return [] }
        var start = colon + 1
        while start < field.raw.count && (field.raw[start] == UInt8(ascii: " ") || field.raw[start] == UInt8(ascii: "\t")) { start += 1 }
        return Array(field.raw[start...])
    }

    /// The field under its canonical name with its raw value (RFC 2047 words and folding kept).
    static func writeRaw(_ out: inout [UInt8], _ name: String, _ field: HeaderField) {
        writeRawValue(&out, name, rawValue(field))
    }

    static func writeRawValue(_ out: inout [UInt8], _ name: String, _ value: [UInt8]) {
        out.append(contentsOf: Array("\(name): ".utf8))
        out.append(contentsOf: value)
        out.append(contentsOf: [13, 10])
    }

    /// `display name <account>`: the address is always the account's (PRIV-1, SMTP-3), the
    /// display name is the client's, comments are dropped (they can hold anything).
    static func fromValue(_ field: HeaderField?, sender: EmailAddress) -> String {
        guard let field else { return "<\(sender)>" }
        let value = AddressList.stripComments(field.value)
        guard let open = value.lastIndex(of: "<") else { return "<\(sender)>" }
        let display = String(value[..<open]).trimmingCharacters(in: [" ", "\t"])
        return display.isEmpty ? "<\(sender)>" : "\(display) <\(sender)>"
    }

    static func replacingBoundary(_ type: MIMEParameters, with boundary: String) -> String {
        var type = type
        type.parameters.removeAll { $0.baseName == "boundary" || isDroppedParameter($0) }
        type.parameters.insert(.init(name: "boundary", raw: "boundary=\"\(boundary)\""), at: 0)
        return type.serialised()
    }

    /// A Content-Type or Content-Disposition field without dropped parameters. A field with none
    /// to drop is kept as written, folding included.
    static func writeCleaned(_ out: inout [UInt8], _ name: String, _ field: HeaderField) {
        var parsed = MIMEParameters(parsing: field.value)
        guard parsed.parameters.contains(where: isDroppedParameter) else { return writeRaw(&out, name, field) }
        parsed.parameters.removeAll(where: isDroppedParameter)
        writeField(&out, name, parsed.serialised())
    }

    /// A random boundary that does not occur in the message (RFC 2046 5.1.1). 30 random
    /// characters make a collision all but impossible; the check makes it impossible.
    static func freshBoundary<R: RandomNumberGenerator>(_ random: inout R, avoiding message: [UInt8]) -> String {
        while true {
            let candidate = "=_" + RandomToken.make(length: 30, using: &random)
            if !contains(message, Array(candidate.utf8)) { return candidate }
        }
    }

    /// True when the Content-ID may be referred to: its id occurs in the message more often than
    /// in its own field, or the message holds any `cid:` URL at all (a quoted-printable HTML part
    /// can split an id across lines, so a `cid:` anywhere keeps every Content-ID, to be safe).
    static func isReferenced(contentID value: String, in message: [UInt8]) -> Bool {
        guard let id = messageIDs(in: value).first?.dropFirst().dropLast(), !id.isEmpty else { return false }
        if occurrences(of: Array(id.utf8), in: message, upTo: 2) >= 2 { return true }
        return containsCaseInsensitive(message, Array("cid:".utf8))
    }

    static func containsCaseInsensitive(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        let lowered = needle.map { (65...90).contains($0) ? $0 + 32 : $0 }
        var index = 0
        while index <= haystack.count - needle.count {
            var match = true
            for offset in 0..<lowered.count {
                let byte = haystack[index + offset]
                if ((65...90).contains(byte) ? byte + 32 : byte) != lowered[offset] { match = false; break }
            }
            if match { return true }
            index += 1
        }
        return false
    }

    static func occurrences(of needle: [UInt8], in haystack: [UInt8], upTo limit: Int) -> Int {
        guard let first = needle.first, needle.count <= haystack.count else { return 0 }
        var count = 0
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == first && haystack[index..<(index + needle.count)].elementsEqual(needle) {
                count += 1
                if count >= limit { return count }
                index += needle.count
            } else {
                index += 1
            }
        }
        return count
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, needle.count <= haystack.count else { return false }
        var index = 0
        while index <= haystack.count - needle.count {
            if haystack[index] == first && haystack[index..<(index + needle.count)].elementsEqual(needle) { return true }
            index += 1
        }
        return false
    }
}

extension String {
    func trimmingCharacters(in set: Set<Character>) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}

/// Rewrites the domain of addresses inside a raw address header value (PRIV-4, PRIV-5):
/// `user@from` becomes `user@to`, case-insensitively, only where the domain ends the address.
public enum AddressRewriter {
    public static func rewrite(_ value: [UInt8], from: String, to: String) -> [UInt8] {
        let needle = Array(("@" + from).lowercased().utf8)
        let replacement = Array(("@" + to).utf8)
        var out: [UInt8] = []
        out.reserveCapacity(value.count + 16)
        var index = 0
        while index < value.count {
            if value[index] == UInt8(ascii: "@"), index + needle.count <= value.count,
               zip(value[index..<(index + needle.count)], needle).allSatisfy({ lower($0) == $1 }) {
                let after = index + needle.count
                // The domain must end here: not "@mail.i2p.example" or "@mail.i2pfoo".
                if after == value.count || !isDomainByte(value[after]) {
                    out.append(contentsOf: replacement)
                    index = after
                    continue
                }
            }
            out.append(value[index])
            index += 1
        }
        return out
    }

    private static func lower(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 : byte
    }

    private static func isDomainByte(_ byte: UInt8) -> Bool {
        let b = lower(byte)
        return (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b >= 0x80
    }
}
