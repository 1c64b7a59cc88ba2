/// A MIME entity (RFC 2045 2.4) located inside a message's bytes: its header fields, where its
/// body is, and — for a multipart that could be read — its parts.
///
/// The tree holds ranges into the original bytes, not copies, so parsing costs memory in
/// proportion to the number of parts, never to the message size.
public struct MIMEEntity: Sendable {
    public var fields: [HeaderField]
    /// The whole entity: header, blank line and body.
    public var range: Range<Int>
    public var bodyRange: Range<Int>
    /// The parsed Content-Type (`text/plain` when absent, RFC 2045 5.2).
    public var contentType: MIMEParameters
    /// The parts of a multipart body, or nil for a leaf or a multipart that could not be read
    /// (no boundary, no delimiter, no closing delimiter, or nested too deep).
    public var parts: [MIMEEntity]?
    /// A lenient parse read this multipart although its closing delimiter was missing.
    public var closingDelimiterMissing = false

    /// Deeper multiparts are kept as opaque bodies: no mail needs more, and a bound keeps hostile
    /// input from costing unbounded work.
    public static let maximumDepth = 32

    /// Parses the entity that spans `range` of `bytes`. `lenient` (for reading, never for
    /// rewriting) accepts a multipart whose closing delimiter is missing, as if the body ended it.
    public static func parse(_ bytes: [UInt8], range: Range<Int>? = nil, depth: Int = 0, lenient: Bool = false) -> MIMEEntity {
        let range = range ?? 0..<bytes.count
        let header = HeaderSection.parse(bytes[range])
        // Parsing a slice: `bodyOffset` is an index into `bytes`, not an offset into the slice.
        let bodyRange = min(max(header.bodyOffset, range.lowerBound), range.upperBound)..<range.upperBound
        let contentTypeText = header.fields(named: "Content-Type").first?.value ?? "text/plain"
        var contentType = MIMEParameters(parsing: contentTypeText)
        if contentType.value.isEmpty || !contentType.value.contains("/") {
            contentType = MIMEParameters(value: "text/plain", parameters: [])
        }
        var entity = MIMEEntity(fields: header.fields, range: range, bodyRange: bodyRange, contentType: contentType, parts: nil)
        if contentType.value.hasPrefix("multipart/"), depth < maximumDepth,
           let boundary = contentType["boundary"], Self.isValidBoundary(boundary),
           let split = Self.splitParts(bytes, body: bodyRange, boundary: boundary, lenient: lenient) {
            entity.parts = split.parts.map { parse(bytes, range: $0, depth: depth + 1, lenient: lenient) }
            entity.closingDelimiterMissing = !split.closed
        }
        return entity
    }

    /// RFC 2046 5.1.1: 1 to 70 characters, not ending in a space.
    static func isValidBoundary(_ boundary: String) -> Bool {
        !boundary.isEmpty && boundary.utf8.count <= 70 && boundary.last != " "
    }

    /// The ranges of each part's content (RFC 2046 5.1.1): between a delimiter line and the CRLF
    /// before the next one. Preamble and epilogue are left out. nil when the body holds no
    /// delimiter or no closing delimiter.
    public static func splitParts(_ bytes: [UInt8], body: Range<Int>, boundary: String) -> [Range<Int>]? {
        splitParts(bytes, body: body, boundary: boundary, lenient: false)?.parts
    }

    /// As above; `lenient` ends an unclosed last part at the end of the body.
    static func splitParts(_ bytes: [UInt8], body: Range<Int>, boundary: String, lenient: Bool) -> (parts: [Range<Int>], closed: Bool)? {
        let marker = [UInt8(ascii: "-"), UInt8(ascii: "-")] + Array(boundary.utf8)
        var parts: [Range<Int>] = []
        var contentStart: Int?
        var lineStart = body.lowerBound
        while lineStart < body.upperBound {
            var lineEnd = lineStart
            while lineEnd < body.upperBound && bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            let next = lineEnd < body.upperBound ? lineEnd + 1 : lineEnd
            if bytes[lineStart] == UInt8(ascii: "-"), let kind = delimiterKind(bytes, line: lineStart..<lineEnd, marker: marker) {
                if let start = contentStart {
                    // The CRLF before the delimiter belongs to the delimiter.
                    var end = lineStart
                    if end > start && bytes[end - 1] == UInt8(ascii: "\n") { end -= 1 }
                    if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                    parts.append(start..<max(start, end))
                }
                if kind == .close { return parts.isEmpty ? nil : (parts, true) }
                contentStart = next
            }
            lineStart = next
        }
        if lenient, let start = contentStart {
            parts.append(start..<max(start, body.upperBound))
            return (parts, false)
        }
        return nil
    }

    private enum Delimiter { case open, close }

    private static func delimiterKind(_ bytes: [UInt8], line: Range<Int>, marker: [UInt8]) -> Delimiter? {
        guard line.count >= marker.count else { return nil }
        for (offset, byte) in marker.enumerated() where bytes[line.lowerBound + offset] != byte { return nil }
        var index = line.lowerBound + marker.count
        var kind = Delimiter.open
        if index + 2 <= line.upperBound, bytes[index] == UInt8(ascii: "-"), bytes[index + 1] == UInt8(ascii: "-") {
            kind = .close
            index += 2
        }
        // Only transport padding (spaces, tabs) and the CR may follow.
        while index < line.upperBound {
            let byte = bytes[index]
            guard byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\r") else { return nil }
            index += 1
        }
        return kind
    }
}
