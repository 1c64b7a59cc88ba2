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
        let root = MIMEEntity.parse(message, lenient: true)
        var targets: [MIMEEntity] = []
        collect(root, into: &targets)
        guard !targets.isEmpty else { return Result(message: message, parts: 0, removedRemoteReferences: 0, removedActiveContent: 0) }
        let sanitiser = HTMLSanitiser()
        var out: [UInt8] = []
        out.reserveCapacity(message.count)
        var position = 0
        var result = Result(message: [], parts: 0, removedRemoteReferences: 0, removedActiveContent: 0)
        for part in targets.sorted(by: { $0.range.lowerBound < $1.range.lowerBound }) where part.range.lowerBound >= position {
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

    private static let crlf: [UInt8] = [0x0D, 0x0A]

    /// The HTML parts a reader's client would show: text/html leaves not marked as attachments.
    /// (A forwarded message/rfc822 is an attachment: shown only if the reader opens it.)
    static func collect(_ entity: MIMEEntity, into targets: inout [MIMEEntity]) {
        if let parts = entity.parts {
            for part in parts { collect(part, into: &targets) }
            return
        }
        guard entity.contentType.value.lowercased() == "text/html" else { return }
        let disposition = entity.fields.last { $0.name.lowercased() == "content-disposition" }.map { MIMEParameters(parsing: $0.value).value.lowercased() }
        if disposition == "attachment" { return }
        targets.append(entity)
    }
}
