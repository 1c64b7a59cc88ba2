/// A file to send with a message.
public struct OutgoingAttachment: Sendable, Equatable {
    public var filename: String
    /// `type/subtype`; anything unreadable is sent as application/octet-stream.
    public var contentType: String
    public var data: [UInt8]

    public init(filename: String, contentType: String = "application/octet-stream", data: [UInt8]) {
        self.filename = filename
        self.contentType = contentType
        self.data = data
    }
}

/// A message the webmail user wrote, before it is turned into bytes.
public struct OutgoingMessage: Sendable {
    /// Address only, e.g. alice@mail.i2p.
    public var from: String
    public var to: [String]
    public var cc: [String]
    /// Envelope only: never written into the message.
    public var bcc: [String]
    public var subject: String
    /// The user's text, any line ends.
    public var body: String
    public var attachments: [OutgoingAttachment]
    /// A message identifier with or without angle brackets.
    public var inReplyTo: String?
    public var references: [String]

    public init(from: String, to: [String] = [], cc: [String] = [], bcc: [String] = [], subject: String = "", body: String = "",
                attachments: [OutgoingAttachment] = [], inReplyTo: String? = nil, references: [String] = []) {
        self.from = from
        self.to = to
        self.cc = cc
        self.bcc = bcc
        self.subject = subject
        self.body = body
        self.attachments = attachments
        self.inReplyTo = inReplyTo
        self.references = references
    }

    /// Everyone the message goes to (RCPT TO), each once (compared case-insensitively), in order.
    public var envelopeRecipients: [String] {
        var seen = Set<String>()
        var result: [String] = []
        for address in to + cc + bcc {
            let trimmed = address.trimmingSpaces()
            guard !trimmed.isEmpty, seen.insert(trimmed.lowercased()).inserted else { continue }
            result.append(trimmed)
        }
        return result
    }
}

/// Writes the webmail's outgoing mail with a minimal header set (PRIV-2): nothing names the
/// machine, the program or the local time zone. Also the reply and forward helpers.
public enum MessageComposer {
    /// RFC 5322 2.1.1: lines SHOULD stay within 78 characters.
    static let lineLimit = 78

    /// The message as CRLF bytes. Header order: Date, From, To, Cc, Subject, Message-ID,
    /// In-Reply-To, References, MIME-Version, Content-Type, Content-Transfer-Encoding.
    /// Invalid To/Cc addresses are left out of the header; CR and LF can never start a new field.
    public static func compose<R: RandomNumberGenerator>(_ message: OutgoingMessage, date: Int64, messageIDDomain: String, random: inout R) -> [UInt8] {
        var header = ""
        func field(_ text: String) { header += text + "\r\n" }
        field("Date: " + RFC5322Date.format(secondsSince1970: date, roundedToMinute: true))
        field("From: " + (headerAddress(message.from) ?? strippedAddressText(message.from)))
        let to = message.to.compactMap(headerAddress)
        if !to.isEmpty { field(foldedList("To", to, separator: ",")) }
        let cc = message.cc.compactMap(headerAddress)
        if !cc.isEmpty { field(foldedList("Cc", cc, separator: ",")) }
        field(subjectField(message.subject))
        field("Message-ID: <" + RandomToken.make(length: 24, using: &random) + "@" + safeDomain(messageIDDomain) + ">")
        if let inReplyTo = message.inReplyTo.flatMap(normalisedMessageID) { field("In-Reply-To: " + inReplyTo) }
        let references = message.references.compactMap(normalisedMessageID)
        if !references.isEmpty { field(foldedList("References", references, separator: "")) }
        field("MIME-Version: 1.0")

        let text = normalisedText(message.body)
        let (textBytes, textEncoding) = encodedText(text)
        var out: [UInt8]
        if message.attachments.isEmpty {
            field("Content-Type: text/plain; charset=utf-8")
            field("Content-Transfer-Encoding: " + textEncoding)
            out = Array((header + "\r\n").utf8) + textBytes
            // The message ends with a line end, as SMTP DATA wants (RFC 5321 4.1.1.4).
            if !out.isEmpty, out.last != 10 { out += [13, 10] }
            return out
        }
        // RFC 2046 5.1.1: the boundary must not occur in any part. Base64 and quoted-printable
        // never produce "=_"; only a 7bit text part could, so it is checked.
        var boundary = "=_" + RandomToken.make(length: 30, using: &random)
        while contains(textBytes, Array(("--" + boundary).utf8)) { boundary = "=_" + RandomToken.make(length: 30, using: &random) }
        field("Content-Type: multipart/mixed;\r\n boundary=\"\(boundary)\"")
        field("Content-Transfer-Encoding: 7bit")
        out = Array((header + "\r\n").utf8)
        let delimiter = Array("--\(boundary)\r\n".utf8)
        out += delimiter
        out += Array("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: \(textEncoding)\r\n\r\n".utf8)
        // The CRLF before each delimiter belongs to the delimiter (RFC 2046 5.1.1), so the text
        // comes back exactly as written.
        out += textBytes
        for attachment in message.attachments {
            out += [13, 10] + delimiter
            out += Array(("Content-Type: " + validContentType(attachment.contentType) + "\r\n").utf8)
            out += Array(("Content-Disposition: attachment" + filenameParameters(attachment.filename) + "\r\n").utf8)
            out += Array("Content-Transfer-Encoding: base64\r\n\r\n".utf8)
            var encoded = MIMETransferEncoding.encodeBase64(attachment.data)
            if encoded.count >= 2 { encoded.removeLast(2) }
            out += encoded
        }
        out += Array("\r\n--\(boundary)--\r\n".utf8)
        return out
    }

    // MARK: Header pieces

    /// A valid address as written into a header (RFC 5321 4.1.2, ASCII), else nil.
    static func headerAddress(_ text: String) -> String? {
        var trimmed = text.trimmingSpaces()
        if trimmed.hasPrefix("<") && trimmed.hasSuffix(">") && trimmed.count >= 2 { trimmed = String(trimmed.dropFirst().dropLast()) }
        return EmailAddress(trimmed, allowUTF8: false)?.description
    }

    /// An invalid From still has to be one harmless line: only printable ASCII without spaces,
    /// brackets or separators survives.
    static func strippedAddressText(_ text: String) -> String {
        let kept = text.unicodeScalars.filter { $0.value > 32 && $0.value < 127 && !"<>,;:\"()[]\\".unicodeScalars.contains($0) }
        let result = String(String.UnicodeScalarView(kept))
        return result.isEmpty ? "invalid@invalid" : result
    }

    static func safeDomain(_ domain: String) -> String {
        let kept = domain.lowercased().unicodeScalars.filter { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." }
        let result = String(String.UnicodeScalarView(kept))
        return result.isEmpty ? "invalid" : result
    }

    /// `<id>` when `text` is a message identifier of printable ASCII, else nil (RFC 5322 3.6.4).
    static func normalisedMessageID(_ text: String) -> String? {
        var id = Substring(text.trimmingSpaces())
        if id.hasPrefix("<") && id.hasSuffix(">") && id.count >= 2 { id = id.dropFirst().dropLast() }
        guard !id.isEmpty, id.utf8.count <= 250, id.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }) else { return nil }
        return "<" + id + ">"
    }

    /// `Name: a, b, c` folded before an item that would pass the line limit (RFC 5322 2.2.3).
    static func foldedList(_ name: String, _ items: [String], separator: String) -> String {
        var text = name + ":"
        var column = text.count
        for (i, item) in items.enumerated() {
            let sep = i + 1 < items.count ? separator : ""
            if i > 0 && column + 1 + item.count + sep.count > lineLimit {
                text += "\r\n"
                column = 0
            }
            text += " " + item + sep
            column += 1 + item.count + sep.count
        }
        return text
    }

    /// Subject with CR, LF and other controls made harmless; plain ASCII folded at spaces, any
    /// other text as RFC 2047 encoded words (also when the text itself looks like one, so the
    /// reader sees what was typed).
    static func subjectField(_ subject: String) -> String {
        var scalars = String.UnicodeScalarView()
        for s in subject.unicodeScalars {
            if s == "\r" || s == "\n" || s == "\t" { scalars.append(" ") } else if s.value < 0x20 || s.value == 0x7F { continue } else { scalars.append(s) }
        }
        let text = String(scalars).trimmingSpaces()
        let prefix = "Subject:"
        if text.isEmpty { return prefix }
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        let needsEncoding = text.unicodeScalars.contains { $0.value >= 0x80 } || text.contains("=?") || words.contains { $0.utf8.count > 900 }
        if needsEncoding {
            return prefix + " " + EncodedWord.encode(text, firstLineRoom: lineLimit - prefix.count - 1)
        }
        var out = prefix
        var column = prefix.count
        for word in words {
            // Fold before the space: unfolding removes only the CRLF (RFC 5322 2.2.3).
            if column + 1 + word.count > lineLimit && column > prefix.count && !word.isEmpty {
                out += "\r\n"
                column = 0
            }
            out += " " + word
            column += 1 + word.count
        }
        return out
    }

    // MARK: Body pieces

    /// Any line end becomes CRLF; NUL is dropped (RFC 5322 2.3 and RFC 2045 2.7 allow it nowhere
    /// in text).
    static func normalisedText(_ body: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.utf8.count + body.utf8.count / 32)
        var previousCR = false
        for b in body.utf8 {
            if b == 10 {
                if !previousCR { out += [13, 10] }
                previousCR = false
                continue
            }
            if previousCR { previousCR = false }
            if b == 13 { out += [13, 10]; previousCR = true; continue }
            if b == 0 { continue }
            out.append(b)
        }
        return out
    }

    /// 7bit when every byte is ASCII and every line at most 998 octets (RFC 5322 2.1.1), else
    /// quoted-printable.
    static func encodedText(_ text: [UInt8]) -> ([UInt8], String) {
        var lineLength = 0
        var needsQP = false
        for b in text {
            if b >= 0x80 { needsQP = true; break }
            if b == 10 { lineLength = 0; continue }
            if b != 13 { lineLength += 1 }
            if lineLength > 998 { needsQP = true; break }
        }
        return needsQP ? (MIMETransferEncoding.encodeQuotedPrintable(text), "quoted-printable") : (text, "7bit")
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        var i = 0
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    /// RFC 2045 5.1 `type/subtype` tokens only, lower case. multipart and message types are
    /// refused: they may not be base64-encoded (RFC 2045 6.4).
    static func validContentType(_ text: String) -> String {
        let value = MIMEParameters(parsing: text).value
        let pieces = value.split(separator: "/", omittingEmptySubsequences: false)
        let tspecials = "()<>@,;:\\\"/[]?=".unicodeScalars
        func isToken(_ s: Substring) -> Bool {
            !s.isEmpty && s.utf8.count <= 100 && s.unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 && !tspecials.contains($0) }
        }
        guard pieces.count == 2, isToken(pieces[0]), isToken(pieces[1]), pieces[0] != "multipart", pieces[0] != "message" else {
            return "application/octet-stream"
        }
        return value
    }

    /// RFC 2231 7 attribute-char: what may stand unescaped in an extended value.
    private static func isAttributeChar(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
            || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || "!#$&+-.^_`|~".utf8.contains(b)
    }

    /// `; filename="…"` for a short plain ASCII name; otherwise an ASCII fallback plus the exact
    /// name as RFC 2231 `filename*` (UTF-8, split into sections that keep lines short).
    static func filenameParameters(_ filename: String) -> String {
        // Only the last path component, no controls: the receiver must not be told a directory.
        let base = filename.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        var name = String(String.UnicodeScalarView(base.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F && !(0x80...0x9F).contains($0.value) })).trimmingSpaces()
        if name.isEmpty { name = "attachment" }
        let plain = name.utf8.count <= 60 && name.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        if plain { return ";\r\n filename=\"\(name)\"" }
        var fallback = String(String.UnicodeScalarView(name.unicodeScalars.map { s in
            s.value >= 0x20 && s.value < 0x7F && s != "\"" && s != "\\" ? s : "_"
        }))
        if fallback.utf8.count > 60 {
            let ext = fallback.lastIndex(of: ".").map { String(fallback[$0...]) }.flatMap { $0.count <= 12 ? $0 : nil } ?? ""
            fallback = String(fallback.prefix(60 - ext.count)) + ext
        }
        var escaped: [String] = []
        for b in name.utf8 { escaped.append(isAttributeChar(b) ? String(UnicodeScalar(b)) : "%" + EncodedWord.hex(b)) }
        var sections: [String] = []
        var current = ""
        for piece in escaped {
            if current.count + piece.count > 60 { sections.append(current); current = "" }
            current += piece
        }
        sections.append(current)
        var text = ";\r\n filename=\"\(fallback)\""
        if sections.count == 1 {
            text += ";\r\n filename*=utf-8''" + sections[0]
        } else {
            for (i, section) in sections.enumerated() {
                text += ";\r\n filename*\(i)*=" + (i == 0 ? "utf-8''" : "") + section
            }
        }
        return text
    }

    // MARK: Address input

    /// Splits a typed list ("a@b, c@d; e@f", also `Name <a@b>` entries and spaces) into valid
    /// addresses (each once, case-insensitively) and the entries that are not addresses.
    public static func validateAddresses(_ list: String) -> ([String], invalid: [String]) {
        var valid: [String] = []
        var invalid: [String] = []
        var seen = Set<String>()
        let normalised = String(list.map { $0 == ";" || $0 == "\n" || $0 == "\r" ? "," : $0 })
        for entry in AddressList.splitEntries(normalised) {
            let trimmed = entry.trimmingSpaces()
            guard !trimmed.isEmpty else { continue }
            var candidates: [String]
            if let open = trimmed.lastIndex(of: "<"), let close = trimmed.lastIndex(of: ">"), open < close {
                // "Name <a@b> c@d": the bracketed address, then whatever follows it.
                candidates = [String(trimmed[trimmed.index(after: open)..<close])]
                    + trimmed[trimmed.index(after: close)...].split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            } else {
                candidates = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            }
            for candidate in candidates {
                if let address = headerAddress(candidate) {
                    if seen.insert(address.lowercased()).inserted { valid.append(address) }
                } else {
                    invalid.append(MessageView.harmless(candidate))
                }
            }
        }
        return (valid, invalid)
    }

    // MARK: Reply and forward

    private static let replyPrefixes = ["re", "aw", "sv", "antw"]
    private static let forwardPrefixes = ["fwd", "fw"]

    /// Drops leading prefixes such as "Re:", "RE:", "Re[2]:", "Aw:" (any case, repeated).
    private static func stripping(_ prefixes: [String], from subject: String) -> String {
        var text = Substring(subject.trimmingSpaces())
        while true {
            let lower = text.lowercased()
            guard let prefix = prefixes.first(where: { lower.hasPrefix($0) }) else { break }
            var rest = text.dropFirst(prefix.count)
            if rest.first == "[" || rest.first == "(" {
                let close: Character = rest.first == "[" ? "]" : ")"
                let inside = rest.dropFirst().prefix { $0 != close }
                guard inside.allSatisfy(\.isASCIIDigit), rest.dropFirst(inside.count + 1).first == close else { break }
                rest = rest.dropFirst(inside.count + 2)
            }
            while rest.first == " " { rest = rest.dropFirst() }
            guard rest.first == ":" else { break }
            text = rest.dropFirst()
            while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        }
        return String(text)
    }

    public static func replySubject(_ subject: String) -> String {
        "Re: " + stripping(replyPrefixes, from: subject)
    }

    public static func forwardSubject(_ subject: String) -> String {
        "Fwd: " + stripping(forwardPrefixes, from: subject)
    }

    /// "On <date>, <from> wrote:" then the text with "> " before each line ("\n" line ends).
    public static func quoted(_ view: MessageView) -> String {
        let who = view.from.isEmpty ? (view.fromAddress ?? "someone") : view.from
        let intro = view.date.map { "On \(RFC5322Date.format(secondsSince1970: $0, roundedToMinute: false)), \(who) wrote:" } ?? "\(who) wrote:"
        var lines = view.plainText.split(separator: "\n", omittingEmptySubsequences: false)
        while lines.last?.isEmpty == true { lines.removeLast() }
        let quotedLines = lines.map { line in line.isEmpty ? ">" : line.hasPrefix(">") ? ">" + line : "> " + line }
        return ([intro] + quotedLines).joined(separator: "\n") + "\n"
    }

    /// RFC 5322 3.6.4: In-Reply-To is the parent's Message-ID; References the parent's References
    /// (or its single In-Reply-To) then its Message-ID. A long list keeps the first and the last
    /// 20, so the thread root and the recent ancestors survive while the header stays bounded.
    public static func threading(replyingTo view: MessageView) -> (inReplyTo: String?, references: [String]) {
        var references = view.references.isEmpty ? (view.inReplyTo.count == 1 ? view.inReplyTo : []) : view.references
        if let id = view.messageID, references.last != id { references.append(id) }
        if references.count > 21 { references = [references[0]] + references.suffix(20) }
        return (view.messageID, references)
    }

    /// Reply-To, else From. Reply-all adds the original To and Cc; `me` and duplicates are
    /// removed (case-insensitively). Replying to one's own message goes to its recipients.
    public static func replyRecipients(_ view: MessageView, replyAll: Bool, me: String) -> (to: [String], cc: [String]) {
        let meKey = me.trimmingSpaces().lowercased()
        var seen: Set<String> = [meKey]
        func unique(_ list: [String]) -> [String] {
            list.filter { seen.insert($0.lowercased()).inserted }
        }
        var primary = view.replyTo.isEmpty ? (view.fromAddress.map { [$0] } ?? []) : view.replyTo
        if primary.allSatisfy({ $0.lowercased() == meKey }) && !primary.isEmpty { primary = view.to }
        let to = unique(primary)
        let cc = replyAll ? unique(view.to + view.cc) : []
        return (to, cc)
    }

    public static func forwardBody(_ view: MessageView) -> String {
        var lines = ["---------- Forwarded message ----------"]
        lines.append("From: " + view.from)
        if let date = view.date { lines.append("Date: " + RFC5322Date.format(secondsSince1970: date, roundedToMinute: false)) }
        lines.append("Subject: " + view.subject)
        if !view.to.isEmpty { lines.append("To: " + view.to.joined(separator: ", ")) }
        if !view.cc.isEmpty { lines.append("Cc: " + view.cc.joined(separator: ", ")) }
        return lines.joined(separator: "\n") + "\n\n" + view.plainText
    }
}
