import HTTPTypes
import MailCore

/// Why a submitted form cannot be read; shown on the page as it is.
public struct FormError: PageProblem, Equatable {
    public var description: String
    public var status: HTTPResponse.Status { .badRequest }
    public init(_ description: String) { self.description = description }
}

/// A submitted form's fields (first value of each name) and uploaded files. Everything about it is
/// bounded: the body by the caller, the number of fields, the length of each.
public struct SubmittedForm: Sendable {
    public struct File: Sendable, Equatable {
        public var field: String
        public var filename: String
        public var contentType: String
        public var data: [UInt8]
    }

    public var fields: [String: String] = [:]
    public var files: [File] = []

    public init(fields: [String: String] = [:], files: [File] = []) {
        self.fields = fields
        self.files = files
    }

    public subscript(_ name: String) -> String? { fields[name] }

    /// A field that must be present and at most `maximum` characters long.
    public func required(_ name: String, label: String, maximum: Int = 1000) throws(FormError) -> String {
        guard let value = fields[name], !value.isEmpty else { throw FormError("\(label) is missing.") }
        guard value.count <= maximum else { throw FormError("\(label) is longer than \(maximum) characters.") }
        return value
    }

    public func optional(_ name: String, label: String, maximum: Int = 1000) throws(FormError) -> String {
        let value = fields[name] ?? ""
        guard value.count <= maximum else { throw FormError("\(label) is longer than \(maximum) characters.") }
        return value
    }

    static let maximumFields = 64

    /// `application/x-www-form-urlencoded` (WHATWG URL standard, section 5.1): `+` is a space,
    /// percent escapes are bytes; invalid UTF-8 or a bad escape makes the form unreadable.
    public static func urlEncoded(_ body: [UInt8]) throws(FormError) -> SubmittedForm {
        var form = SubmittedForm()
        var count = 0
        for pair in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            count += 1
            guard count <= maximumFields else { throw FormError("The form has too many fields.") }
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name = try decode(parts[0])
            let value = parts.count > 1 ? try decode(parts[1]) : ""
            if form.fields[name] == nil { form.fields[name] = value }
        }
        return form
    }

    private static func decode(_ bytes: ArraySlice<UInt8>) throws(FormError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(0x20)
            } else if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex, let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2]) else {
                    throw FormError("The form is not correctly encoded.")
                }
                out.append(high << 4 | low)
                index += 2
            } else {
                out.append(byte)
            }
            index += 1
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw FormError("The form is not valid UTF-8.") }
        // Browsers send CR LF for line breaks in a textarea; NUL has no business in any field.
        guard !text.utf8.contains(0) else { throw FormError("The form contains a NUL character.") }
        return text
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `multipart/form-data` (RFC 7578): a MIME multipart body, read with the same MIME parser as
    /// mail. Parts without a name are ignored; a part with a filename is a file.
    public static func multipart(_ body: [UInt8], contentType: String) throws(FormError) -> SubmittedForm {
        let type = MIMEParameters(parsing: contentType)
        guard type.value.lowercased() == "multipart/form-data", let boundary = type["boundary"], !boundary.isEmpty, boundary.count <= 70 else {
            throw FormError("The upload is not multipart/form-data.")
        }
        // RFC 7578 4.1: the body is a multipart body; give it a header so the MIME parser reads it.
        let header = Array("Content-Type: multipart/form-data; boundary=\"\(boundary)\"\r\n\r\n".utf8)
        let bytes = header + body
        guard let ranges = MIMEEntity.splitParts(bytes, body: header.count..<bytes.count, boundary: boundary) else {
            throw FormError("The upload is not correctly formed.")
        }
        guard ranges.count <= maximumFields else { throw FormError("The form has too many fields.") }
        var form = SubmittedForm()
        for range in ranges {
            let part = MIMEEntity.parse(bytes, range: range, depth: 1)
            guard let disposition = part.fields.first(where: { $0.name.lowercased() == "content-disposition" }) else { continue }
            let parameters = MIMEParameters(parsing: disposition.value)
            guard parameters.value.lowercased() == "form-data", let name = parameters["name"] else { continue }
            let data = Array(bytes[part.bodyRange])
            if let filename = parameters["filename"] {
                // A file input left empty arrives as a part with an empty filename.
                if filename.isEmpty && data.isEmpty { continue }
                let declared = part.fields.first(where: { $0.name.lowercased() == "content-type" })?.value
                form.files.append(File(field: name, filename: filename, contentType: declared.map { MIMEParameters(parsing: $0).value } ?? "application/octet-stream", data: data))
            } else if form.fields[name] == nil {
                guard let text = String(validating: data, as: UTF8.self) else { throw FormError("The form is not valid UTF-8.") }
                form.fields[name] = text
            }
        }
        return form
    }
}
