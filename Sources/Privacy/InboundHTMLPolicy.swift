import MailCore

/// SCAN-2: the HTML of mail from the Internet made harmless to its reader. Every text/html part
/// that a mail client would display (not one sent as an attachment) is decoded, run through
/// `HTMLSanitiser` — so nothing in it can make the reader's client fetch from the network, run
/// script or submit a form — and written back as UTF-8 quoted-printable. Everything else keeps
/// its bytes: the header (but for the part's Content-Type and Content-Transfer-Encoding), the
/// text/plain alternative, attachments, and `cid:` references to parts of the same message.
///
/// A multipart whose structure cannot be read is not guessed at: if its declared type is HTML
/// it is treated as one HTML part, and HTML that cannot be parsed comes out as its text (the
/// sanitiser re-serialises from tokens: markup never passes through as it came).
public enum InboundHTMLPolicy {
    public struct Result: Sendable, Equatable {
        public var message: [UInt8]
        /// HTML parts rewritten.
        public var parts: Int
        public var removedRemoteReferences: Int
        public var removedActiveContent: Int
    }

    /// The header fields that describe a rewritten part's body; replaced, all others kept.
    static let replacedFields: Set<String> = ["content-type", "content-transfer-encoding"]

    public static func apply(_ message: [UInt8]) -> Result {
        apply(message, depth: 0)
    }

    /// Forwarded messages inside forwarded messages: a bound, as for MIME nesting.
    static let maximumEmbedding = 8

    static func apply(_ message: [UInt8], depth: Int) -> Result {
        let root = MIMEEntity.parse(message, lenient: true)
        var targets: [Target] = []
        collect(root, into: &targets)
        if depth >= maximumEmbedding { targets.removeAll { if case .embedded = $0 { return true } else { return false } } }
        guard !targets.isEmpty else { return Result(message: message, parts: 0, removedRemoteReferences: 0, removedActiveContent: 0) }
        let sanitiser = HTMLSanitiser()
        var out: [UInt8] = []
        out.reserveCapacity(message.count)
        var position = 0
        var result = Result(message: [], parts: 0, removedRemoteReferences: 0, removedActiveContent: 0)
        for target in targets.sorted(by: { $0.entity.range.lowerBound < $1.entity.range.lowerBound })
        where target.entity.range.lowerBound >= position {
            let part = target.entity
            switch target {
            case .embedded:
                // A forwarded message (RFC 2046 5.2.1): its own HTML made harmless, its bytes
                // otherwise kept; its encoding can only be 7bit, 8bit or binary.
                let inner = apply(Array(message[part.bodyRange]), depth: depth + 1)
                guard inner.parts > 0 else { continue }
                out.append(contentsOf: message[position..<part.bodyRange.lowerBound])
                out.append(contentsOf: inner.message)
                result.parts += inner.parts
                result.removedRemoteReferences += inner.removedRemoteReferences
                result.removedActiveContent += inner.removedActiveContent
                position = part.bodyRange.upperBound
                continue
            case .html:
                break
            }
            out.append(contentsOf: message[position..<part.range.lowerBound])
            let encoding = part.fields.last { $0.name.lowercased() == "content-transfer-encoding" }?.value
            let decoded = MIMETransferEncoding.decode(message[part.bodyRange], encoding: encoding).0
            let text = MIMECharset.decode(decoded.bytes, charset: part.contentType["charset"]).text
            let clean = sanitiser.sanitise(text)
            result.parts += 1
            result.removedRemoteReferences += clean.removedRemoteReferences
            result.removedActiveContent += clean.removedActiveContent
            // The part's own header, less what described the old body (RFC 2045 5, 6).
            for field in part.fields where !replacedFields.contains(field.name.lowercased()) {
                out.append(contentsOf: field.raw)
                out.append(contentsOf: crlf)
            }
            out.append(contentsOf: Array("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n".utf8))
            out.append(contentsOf: MIMETransferEncoding.encodeQuotedPrintable(Array(clean.html.utf8)))
            // A part ends where the CRLF before the next delimiter begins (RFC 2046 5.1.1): keep
            // the rewritten body on lines of its own.
            if out.last != 0x0A { out.append(contentsOf: crlf) }
            position = part.range.upperBound
        }
        out.append(contentsOf: message[position...])
        result.message = out
        return result
    }

    enum Target {
        /// A text/html part, or a multipart the parser could not read (made harmless whole).
        case html(MIMEEntity)
        /// A message/rfc822 part: its own HTML parts are rewritten.
        case embedded(MIMEEntity)

        var entity: MIMEEntity {
            switch self {
            case .html(let entity), .embedded(let entity): return entity
            }
        }
    }

    private static let crlf: [UInt8] = [0x0D, 0x0A]

    /// The HTML parts a reader's client would show: text/html leaves not marked as attachments,
    /// and forwarded messages (clients show them inline, attachment or not).
    static func collect(_ entity: MIMEEntity, into targets: inout [Target]) {
        if let parts = entity.parts {
            for part in parts { collect(part, into: &targets) }
            return
        }
        let type = entity.contentType.value.lowercased()
        if type == "message/rfc822" {
            targets.append(.embedded(entity))
            return
        }
        // A multipart MIMEEntity could not read (a boundary over 70 characters, nesting deeper
        // than MIMEEntity.maximumDepth, no delimiter) is read by mail clients all the same: its
        // whole body is made harmless as one HTML part rather than passed on untouched.
        guard type == "text/html" || type.hasPrefix("multipart/") else { return }
        let disposition = entity.fields.last { $0.name.lowercased() == "content-disposition" }.map { MIMEParameters(parsing: $0.value).value.lowercased() }
        if disposition == "attachment" && type == "text/html" { return }
        targets.append(.html(entity))
    }
}
