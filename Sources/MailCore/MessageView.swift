/// A received message read for display (the webmail): decoded headers, the text and HTML
/// bodies, the attachments, and notes on whatever was wrong with it.
///
/// Reading never fails: malformed, truncated or hostile mail gives what could be read plus a
/// line in `problems`. Work is linear in the message size; MIME nesting is bounded by
/// `MIMEEntity.maximumDepth`.
public struct MessageView: Sendable {
    public struct Attachment: Sendable, Equatable {
        /// Position in `attachments`, the argument of `attachmentData(_:)`.
        public var index: Int
        /// Safe for a download: no path separators, no control or bidi characters, never empty.
        public var filename: String
        /// Lower-case `type/subtype`.
        public var contentType: String
        /// Size after the transfer encoding is undone.
        public var size: Int
        /// The Content-ID without angle brackets, for `cid:` references (RFC 2392).
        public var contentID: String?

        public init(index: Int, filename: String, contentType: String, size: Int, contentID: String?) {
            self.index = index
            self.filename = filename
            self.contentType = contentType
            self.size = size
            self.contentID = contentID
        }
    }

    /// The decoded Subject, "" when there is none.
    public var subject: String = ""
    /// The decoded From field as written (`Alice <alice@mail.i2p>`), "" when there is none.
    public var from: String = ""
    public var fromAddress: String?
    public var to: [String] = []
    public var cc: [String] = []
    public var replyTo: [String] = []
    /// Seconds since 1970 (UTC) from the Date field.
    public var date: Int64?
    /// Message identifiers keep their angle brackets (`<id@host>`), ready to be written back.
    public var messageID: String?
    public var inReplyTo: [String] = []
    public var references: [String] = []
    /// Line ends are "\n".
    public var textBody: String?
    public var htmlBody: String?
    public var attachments: [Attachment] = []
    public var problems: [String] = []
    /// Every top-level header field, values decoded (RFC 2047) and unfolded.
    public var headerFields: [(name: String, value: String)] = []

    /// The bytes and where each attachment's body is, for `attachmentData(_:)`.
    private var bytes: [UInt8] = []
    private var sources: [(range: Range<Int>, encoding: String?)] = []

    /// The text to show or quote: the plain body, else text made from the HTML body, else "".
    public var plainText: String {
        textBody ?? htmlBody.map(HTMLText.plainText) ?? ""
    }

    /// The decoded content of attachment `index`, nil when there is no such attachment.
    public func attachmentData(_ index: Int) -> [UInt8]? {
        guard sources.indices.contains(index) else { return nil }
        let source = sources[index]
        return MIMETransferEncoding.decode(bytes[source.range], encoding: source.encoding).0.bytes
    }

    public init(parsing bytes: [UInt8]) {
        self.bytes = bytes
        let root = MIMEEntity.parse(bytes, lenient: true)
        readHeader(root)
        if bytes.isEmpty {
            note("empty message")
        } else if root.bodyRange.lowerBound == bytes.count && bytes.last != 10 {
            note("header section truncated")
        }
        readBody(root)
    }

    // MARK: Header

    private mutating func readHeader(_ root: MIMEEntity) {
        headerFields = root.fields.map { ($0.name, headerText($0)) }
        func first(_ name: String) -> HeaderField? { Self.field(name, in: root.fields) }
        subject = first("Subject").map { headerText($0) } ?? ""
        if let field = first("From") {
            from = Self.collapsingSpaces(headerText(field))
            fromAddress = AddressList.addresses(in: field.value).compactMap { $0 }.first?.description
        }
        to = addresses("To", root.fields)
        cc = addresses("Cc", root.fields)
        replyTo = addresses("Reply-To", root.fields)
        if let field = first("Date") {
            date = RFC5322Date.parse(field.value)
            if date == nil { note("unreadable Date \"\(Self.clipped(field.value))\"") }
        }
        messageID = first("Message-ID").flatMap { Self.messageIDs(in: $0.value).first }
        inReplyTo = first("In-Reply-To").map { Self.messageIDs(in: $0.value) } ?? []
        references = first("References").map { Self.messageIDs(in: $0.value) } ?? []
    }

    private func addresses(_ name: String, _ fields: [HeaderField]) -> [String] {
        fields.filter { $0.name.lowercased() == name.lowercased() }
            .flatMap { AddressList.addresses(in: $0.value).compactMap { $0?.description } }
    }

    static func field(_ name: String, in fields: [HeaderField]) -> HeaderField? {
        let lower = name.lowercased()
        return fields.first { $0.name.count == lower.count && $0.name.lowercased() == lower }
    }

    /// A field's value for display: raw 8-bit text read as UTF-8 or else windows-1252 (RFC 6532
    /// allows UTF-8; anything else is an undeclared legacy charset), then RFC 2047 words decoded,
    /// then control characters made harmless.
    private mutating func headerText(_ field: HeaderField) -> String {
        var value = field.value
        if let colon = field.raw.firstIndex(of: UInt8(ascii: ":")), field.raw[colon...].contains(where: { $0 >= 0x80 }) {
            let raw = field.raw[(colon + 1)...].filter { $0 != 13 && $0 != 10 }
            value = MIMECharset.decode(raw, charset: nil).text.trimmingSpaces()
        }
        let decoded = EncodedWord.decodeReporting(value)
        for charset in decoded.unknownCharsets { note("unknown charset \"\(Self.clipped(charset))\"; shown as UTF-8") }
        return Self.harmless(decoded.text)
    }

    /// Line breaks and tabs become spaces, other controls and bidi overrides become U+FFFD, so a
    /// decoded value can neither break a line nor reorder what is shown.
    static func harmless(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || isBidiControl($0) }) else { return text }
        var scalars = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s == "\r" || s == "\n" || s == "\t" { scalars.append(" ") } else if s.value < 0x20 || s.value == 0x7F || isBidiControl(s) { scalars.append("\u{FFFD}") } else { scalars.append(s) }
        }
        return String(scalars)
    }

    static func isBidiControl(_ s: Unicode.Scalar) -> Bool {
        (0x202A...0x202E).contains(s.value) || (0x2066...0x2069).contains(s.value) || s.value == 0x200E || s.value == 0x200F || s.value == 0x061C
    }

    static func collapsingSpaces(_ text: String) -> String {
        text.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    static func clipped(_ text: String) -> String {
        let short = text.count > 60 ? String(text.prefix(60)) + "…" : text
        return harmless(short)
    }

    /// The `<id>` tokens of a Message-ID, In-Reply-To or References value (RFC 5322 3.6.4).
    /// Old mailers wrote ids without brackets; a bare token with an "@" is taken then.
    /// Anything that is not printable ASCII without brackets and spaces is dropped, so an id can
    /// always be written back into a header safely.
    static func messageIDs(in value: String) -> [String] {
        let text = Array(AddressList.stripComments(value).utf8)
        func valid(_ id: ArraySlice<UInt8>) -> Bool {
            !id.isEmpty && id.count <= 250 && id.allSatisfy { $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "<") && $0 != UInt8(ascii: ">") }
        }
        var ids: [String] = []
        if text.contains(UInt8(ascii: "<")) {
            var i = 0
            while i < text.count {
                guard text[i] == UInt8(ascii: "<") else { i += 1; continue }
                var j = i + 1
                while j < text.count && text[j] != UInt8(ascii: ">") && text[j] != UInt8(ascii: "<") { j += 1 }
                if j < text.count && text[j] == UInt8(ascii: ">") {
                    let id = text[(i + 1)..<j]
                    if valid(id) { ids.append("<" + String(decoding: id, as: UTF8.self) + ">") }
                    i = j + 1
                } else {
                    i = j
                }
            }
        } else {
            for token in text.split(whereSeparator: { $0 == 32 || $0 == 9 || $0 == UInt8(ascii: ",") }) where token.contains(UInt8(ascii: "@")) && valid(token) {
                ids.append("<" + String(decoding: token, as: UTF8.self) + ">")
            }
        }
        return ids
    }

    // MARK: Body

    private mutating func note(_ problem: String) {
        // Bounded: 10 000 broken parts give one note each kind, not 10 000 lines.
        if problems.count < 50 && !problems.contains(problem) { problems.append(problem) }
    }

    /// Walks the MIME tree without recursion (depth is bounded anyway) in document order.
    private mutating func readBody(_ root: MIMEEntity) {
        var stack: [(entity: MIMEEntity, inAlternative: Bool)] = [(root, false)]
        while let (entity, inAlternative) = stack.popLast() {
            let type = entity.contentType.value
            if let parts = entity.parts {
                if entity.closingDelimiterMissing { note("broken MIME structure: a multipart has no closing boundary") }
                let alternative = inAlternative || type == "multipart/alternative"
                for part in parts.reversed() { stack.append((part, alternative)) }
                continue
            }
            readLeaf(entity, inAlternative: inAlternative)
        }
    }

    private mutating func readLeaf(_ entity: MIMEEntity, inAlternative: Bool) {
        var type = entity.contentType.value
        if type.hasPrefix("multipart/") {
            // RFC 2046 5.1.7 says treat an unreadable multipart like multipart/mixed; with no
            // parts to find, its raw body is the only thing worth showing.
            note(entity.contentType["boundary"] == nil ? "broken MIME structure: a multipart has no boundary" : "broken MIME structure: a multipart has no parts")
            type = "text/plain"
        }
        let fields = entity.fields
        let disposition = Self.field("Content-Disposition", in: fields).map { MIMEParameters(parsing: $0.value) }
        let isAttachment = disposition?.value == "attachment"
        let encoding = Self.field("Content-Transfer-Encoding", in: fields)?.value
        if !isAttachment && ((type == "text/plain" && textBody == nil) || (type == "text/html" && htmlBody == nil)) {
            let text = decodeText(entity, encoding: encoding)
            if type == "text/plain" { textBody = text } else { htmlBody = text }
            return
        }
        // An alternative we did not choose is the same content again, not an attachment.
        if inAlternative && !isAttachment && (type == "text/plain" || type == "text/html") { return }

        let (decoded, _) = decodeBody(entity, encoding: encoding)
        let index = attachments.count
        var name = disposition?.decodedValue("filename") ?? entity.contentType.decodedValue("name") ?? ""
        if type == "message/rfc822" && name.isEmpty {
            let inner = HeaderSection.parse(decoded)
            let innerSubject = Self.field("Subject", in: inner.fields).map { headerText($0) } ?? ""
            name = (innerSubject.isEmpty ? "message-\(index + 1)" : innerSubject) + ".eml"
        }
        let contentID = Self.field("Content-ID", in: fields).map { field -> String in
            var id = Substring(field.value.trimmingSpaces())
            if id.hasPrefix("<") && id.hasSuffix(">") && id.count >= 2 { id = id.dropFirst().dropLast() }
            return Self.harmless(String(id))
        }
        attachments.append(Attachment(index: index, filename: Self.safeFilename(name, index: index), contentType: type,
                                      size: decoded.count, contentID: contentID?.isEmpty == false ? contentID : nil))
        sources.append((entity.bodyRange, encoding))
    }

    private mutating func decodeBody(_ entity: MIMEEntity, encoding: String?) -> ([UInt8], Bool) {
        let (decoded, known) = MIMETransferEncoding.decode(bytes[entity.bodyRange], encoding: encoding)
        if !known { note("unknown transfer encoding \"\(Self.clipped(encoding ?? ""))\"; shown undecoded") }
        if decoded.hadGarbage {
            note((encoding ?? "").lowercased().contains("base64") ? "damaged base64; unreadable characters skipped" : "damaged quoted-printable; broken escapes shown as written")
        }
        return (decoded.bytes, known)
    }

    private mutating func decodeText(_ entity: MIMEEntity, encoding: String?) -> String {
        let (decoded, _) = decodeBody(entity, encoding: encoding)
        let charset = entity.contentType["charset"]
        let text = MIMECharset.decode(decoded, charset: charset)
        if !text.known { note("unknown charset \"\(Self.clipped(charset ?? ""))\"; shown as UTF-8") }
        if text.malformed { note("text not valid in its charset \"\(Self.clipped(charset ?? ""))\"; damaged characters replaced") }
        return Self.normalisedLineEnds(text.text)
    }

    /// CRLF and bare CR become "\n"; NUL (never valid text, RFC 2045 2.7) becomes U+FFFD.
    static func normalisedLineEnds(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\0" }) else { return text }
        var out = String.UnicodeScalarView()
        var previousCR = false
        for s in text.unicodeScalars {
            if s == "\n" && previousCR { previousCR = false; continue }
            previousCR = s == "\r"
            out.append(s == "\r" ? "\n" : s == "\0" ? "\u{FFFD}" : s)
        }
        return String(out)
    }

    /// A name safe to offer as a download: no directories, no control or bidi characters, no
    /// leading or trailing dots or spaces, at most 200 bytes, never empty.
    static func safeFilename(_ name: String, index: Int) -> String {
        var scalars = String.UnicodeScalarView()
        for s in name.unicodeScalars {
            switch s {
            case "/", "\\", ":", "\"", "<", ">", "|", "*", "?": scalars.append("_")
            case _ where s.value < 0x20 || (0x7F...0x9F).contains(s.value) || isBidiControl(s): continue
            default: scalars.append(s)
            }
        }
        var result = Substring(String(scalars))
        while let c = result.first, c == " " || c == "." { result = result.dropFirst() }
        while let c = result.last, c == " " || c == "." { result = result.dropLast() }
        var text = String(result)
        if text.utf8.count > 200 {
            // Keep a short extension so the file still opens with the right program.
            let ext = text.lastIndex(of: ".").map { String(text[$0...]) }.flatMap { $0.utf8.count <= 16 ? $0 : nil } ?? ""
            var stem = ""
            for c in text where stem.utf8.count + c.utf8.count + ext.utf8.count <= 200 { stem.append(c) }
            text = stem + ext
        }
        return text.isEmpty ? "attachment-\(index + 1)" : text
    }
}

/// Text from HTML for quoting and previews: tags dropped, script and style skipped, block ends
/// as line breaks, common entities decoded. Not a renderer; one linear pass.
enum HTMLText {
    private static let blockTags: Set<String> = ["br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "hr", "pre"]
    private static let skippedTags: Set<String> = ["script", "style", "head", "title"]
    private static let entities: [String: Unicode.Scalar] = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ", "copy": "©", "reg": "®", "hellip": "…", "mdash": "—", "ndash": "–", "euro": "€"]

    static func plainText(_ html: String) -> String {
        let s = Array(html.unicodeScalars)
        var out = String.UnicodeScalarView()
        var skipping: String?
        var i = 0
        func space() {
            if let last = out.last, last != " " && last != "\n" { out.append(" ") }
        }
        func find(_ pattern: [Unicode.Scalar], from start: Int) -> Int? {
            var k = start
            while k + pattern.count <= s.count {
                if s[k] == pattern[0] && Array(s[k..<(k + pattern.count)]) == pattern { return k }
                k += 1
            }
            return nil
        }
        while i < s.count {
            let c = s[i]
            if c == "<" {
                if i + 3 < s.count && s[i + 1] == "!" && s[i + 2] == "-" && s[i + 3] == "-" {
                    guard let end = find(["-", "-", ">"], from: i + 4) else { break }
                    i = end + 3
                    continue
                }
                // No ">" now means none later either: the rest is text.
                guard let end = find([">"], from: i + 1) else {
                    if skipping == nil { out.append(contentsOf: s[i...]) }
                    break
                }
                var k = i + 1
                let closing = k < end && s[k] == "/"
                if closing { k += 1 }
                var name = ""
                while k < end, s[k].properties.isAlphabetic || ("0"..."9").contains(s[k]) { name.unicodeScalars.append(s[k]); k += 1 }
                name = name.lowercased()
                i = end + 1
                if let skipped = skipping {
                    if closing && name == skipped { skipping = nil }
                    continue
                }
                if !closing && skippedTags.contains(name) && s[end - 1] != "/" { skipping = name; continue }
                if blockTags.contains(name) { out.append("\n") } else { space() }
                continue
            }
            i += 1
            if skipping != nil { continue }
            if c == "&" {
                var k = i
                var name = ""
                while k < s.count, k - i < 10, s[k] != ";", s[k].isASCII, s[k] != "&", s[k] != "<" { name.unicodeScalars.append(s[k]); k += 1 }
                if k < s.count, s[k] == ";", let decoded = entity(name) {
                    out.append(decoded)
                    i = k + 1
                } else {
                    out.append("&")
                }
                continue
            }
            if c == " " || c == "\t" || c == "\r" || c == "\n" { space(); continue }
            out.append(c)
        }
        // Trim each line and keep at most one empty line in a row.
        var lines: [Substring] = []
        for line in String(out).split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " }.reversed().drop { $0 == " " }
            let clean = Substring(String(trimmed.reversed()))
            if clean.isEmpty && (lines.last?.isEmpty ?? true) { continue }
            lines.append(clean)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    private static func entity(_ name: String) -> Unicode.Scalar? {
        if name.hasPrefix("#") {
            let digits = name.dropFirst()
            let value = digits.first == "x" || digits.first == "X" ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
            guard let value, value != 0 else { return nil }
            return Unicode.Scalar(value)
        }
        return entities[name.lowercased()]
    }
}
