import Foundation
import Testing
@testable import Web

private func form(_ text: String) throws(FormError) -> SubmittedForm {
    try SubmittedForm.urlEncoded(Array(text.utf8))
}

@Suite("Forms: application/x-www-form-urlencoded")
struct URLEncodedFormTests {
    @Test func plusIsSpaceAndPercentEscapesAreBytes() throws {
        let parsed = try form("name=alice+b&note=a%2Bb%26c%3Dd&utf=%C3%A9t%C3%A9&crlf=one%0D%0Atwo")
        #expect(parsed["name"] == "alice b")
        #expect(parsed["note"] == "a+b&c=d")
        #expect(parsed["utf"] == "été")
        #expect(parsed["crlf"] == "one\r\ntwo")
        #expect(parsed.fields.count == 4)
        #expect(parsed.files.isEmpty)
    }

    @Test func lowerAndUpperCaseHexAndEscapedNames() throws {
        let parsed = try form("a%2fb=%2F%2f&x%20y=1")
        #expect(parsed["a/b"] == "//")
        #expect(parsed["x y"] == "1")
    }

    @Test func nameWithoutValueAndEmptyPairs() throws {
        let parsed = try form("&&flag&empty=&=nameless&&")
        #expect(parsed["flag"] == "")
        #expect(parsed["empty"] == "")
        #expect(parsed[""] == "nameless")
        #expect(parsed.fields.count == 3)
        #expect(try form("").fields.isEmpty)
    }

    @Test func valueMayContainEquals() throws {
        #expect(try form("stamp=1:8:260101:a@b::r:c==").fields["stamp"] == "1:8:260101:a@b::r:c==")
    }

    @Test func firstValueOfARepeatedNameIsKept() throws {
        let parsed = try form("csrf=first&csrf=second&csrf=third")
        #expect(parsed["csrf"] == "first")
        #expect(parsed.fields.count == 1)
    }

    @Test(arguments: ["a=%zz", "a=%", "a=%4", "a=b%", "a=b%4", "%g0=x", "a=%%41"])
    func badEscapesAreRefused(_ body: String) {
        #expect(throws: FormError("The form is not correctly encoded.")) { try form(body) }
    }

    @Test func escapeAtTheVeryEndIsRead() throws {
        #expect(try form("a=%41")["a"] == "A")
        #expect(try form("a=x%41")["a"] == "xA")
    }

    @Test(arguments: ["a=%ff", "a=%C3", "a=%C3%28", "a=%ED%A0%80", "%ff=x"])
    func invalidUTF8IsRefused(_ body: String) {
        #expect(throws: FormError("The form is not valid UTF-8.")) { try form(body) }
    }

    @Test func rawInvalidUTF8IsRefused() {
        #expect(throws: FormError("The form is not valid UTF-8.")) { try SubmittedForm.urlEncoded(Array("a=".utf8) + [0xC0, 0x80]) }
    }

    @Test(arguments: ["a=%00", "a=x%00y", "%00=y"])
    func nulIsRefused(_ body: String) {
        #expect(throws: FormError("The form contains a NUL character.")) { try form(body) }
    }

    @Test func rawNulByteIsRefused() {
        #expect(throws: FormError("The form contains a NUL character.")) { try SubmittedForm.urlEncoded(Array("a=x".utf8) + [0] + Array("y".utf8)) }
    }

    @Test func atMost64Fields() throws {
        let sixtyFour = (1...64).map { "f\($0)=\($0)" }.joined(separator: "&")
        let parsed = try form(sixtyFour)
        #expect(parsed.fields.count == 64)
        #expect(parsed["f64"] == "64")
        #expect(throws: FormError("The form has too many fields.")) { try form(sixtyFour + "&f65=65") }
        // Repeated names count too: the limit is on pairs, not on distinct names.
        #expect(throws: FormError("The form has too many fields.")) { try form(Array(repeating: "a=1", count: 65).joined(separator: "&")) }
        // Empty pairs are not fields.
        #expect(try form(sixtyFour + "&&&").fields.count == 64)
    }
}

@Suite("Forms: multipart/form-data")
struct MultipartFormTests {
    static let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    static let contentType = "multipart/form-data; boundary=\(boundary)"

    /// The bytes of a body as a browser sends it (CRLF everywhere).
    static func body(_ parts: [(headers: [String], data: [UInt8])], boundary: String = boundary) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts {
            out += Array("--\(boundary)\r\n".utf8)
            for header in part.headers { out += Array("\(header)\r\n".utf8) }
            out += Array("\r\n".utf8)
            out += part.data
            out += Array("\r\n".utf8)
        }
        out += Array("--\(boundary)--\r\n".utf8)
        return out
    }

    static func text(_ name: String, _ value: String) -> (headers: [String], data: [UInt8]) {
        (["Content-Disposition: form-data; name=\"\(name)\""], Array(value.utf8))
    }

    /// Bytes that look like line ends, a boundary delimiter's start and high bytes.
    static let binary: [UInt8] = [0x00, 0xFF, 0x0D, 0x0A, 0x2D, 0x2D, 0x0D, 0x0A, 0x0D, 0x0A, 0x2D, 0x2D, 0x41, 0x0D, 0x0A]
        + Array("--\(boundary.dropLast())x\r\n".utf8) + Array(0...255).map(UInt8.init) + [0x0D, 0x0A, 0x0D, 0x0A]

    @Test func browserShapedBody() throws {
        let body = Self.body([
            Self.text("csrf", "tok-123_abc"),
            Self.text("to", "bob@postern.i2p, carol@example.org"),
            Self.text("body", "Hello,\r\n\r\nline two.\r\n-- \r\nme"),
            (["Content-Disposition: form-data; name=\"attachment\"; filename=\"report été.bin\"", "Content-Type: application/x-thing; charset=binary"], Self.binary),
            (["Content-Disposition: form-data; name=\"attachment2\"; filename=\"\"", "Content-Type: application/octet-stream"], []),
            Self.text("subject", "Résumé"),
        ])
        let parsed = try SubmittedForm.multipart(body, contentType: Self.contentType)
        #expect(parsed["csrf"] == "tok-123_abc")
        #expect(parsed["to"] == "bob@postern.i2p, carol@example.org")
        #expect(parsed["body"] == "Hello,\r\n\r\nline two.\r\n-- \r\nme")
        #expect(parsed["subject"] == "Résumé")
        #expect(parsed.fields.count == 4)
        // The empty file input is not a file.
        try #require(parsed.files.count == 1)
        let file = parsed.files[0]
        #expect(file.field == "attachment")
        #expect(file.filename == "report été.bin")
        #expect(file.contentType == "application/x-thing")
        #expect(file.data == Self.binary)
    }

    @Test func fileWithoutContentTypeIsOctetStream() throws {
        let body = Self.body([(["Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\""], Array("x\r\n".utf8))])
        let parsed = try SubmittedForm.multipart(body, contentType: Self.contentType)
        #expect(parsed.files == [SubmittedForm.File(field: "f", filename: "a.txt", contentType: "application/octet-stream", data: Array("x\r\n".utf8))])
    }

    @Test func emptyTextFieldAndQuotedBoundaryAndRepeatedNames() throws {
        let body = Self.body([Self.text("a", ""), Self.text("b", "1"), Self.text("b", "2")], boundary: "simple boundary")
        let parsed = try SubmittedForm.multipart(body, contentType: "Multipart/Form-Data; boundary=\"simple boundary\"")
        #expect(parsed["a"] == "")
        #expect(parsed["b"] == "1")
    }

    @Test func partsWithoutANameOrNotFormDataAreIgnored() throws {
        let body = Self.body([
            (["Content-Disposition: form-data"], Array("x".utf8)),
            (["Content-Disposition: attachment; name=\"n\""], Array("y".utf8)),
            (["Content-Type: text/plain"], Array("z".utf8)),
            Self.text("ok", "yes"),
        ])
        let parsed = try SubmittedForm.multipart(body, contentType: Self.contentType)
        #expect(parsed.fields == ["ok": "yes"])
        #expect(parsed.files.isEmpty)
    }

    @Test(arguments: [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; charset=utf-8",
        "multipart/mixed; boundary=\(MultipartFormTests.boundary)",
        "application/x-www-form-urlencoded",
        "",
        "multipart/form-data; boundary=" + String(repeating: "b", count: 71),
    ])
    func missingOrBadBoundaryIsAFormError(_ type: String) {
        #expect(throws: FormError("The upload is not multipart/form-data.")) {
            try SubmittedForm.multipart(Self.body([Self.text("a", "b")]), contentType: type)
        }
    }

    @Test func invalidUTF8TextFieldIsRefused() {
        let body = Self.body([(["Content-Disposition: form-data; name=\"a\""], [0x61, 0xFF])])
        #expect(throws: FormError("The form is not valid UTF-8.")) { try SubmittedForm.multipart(body, contentType: Self.contentType) }
    }

    @Test func bodyWithoutTheBoundaryIsRefused() {
        #expect(throws: FormError.self) {
            try SubmittedForm.multipart(Array("no parts here at all\r\n".utf8), contentType: Self.contentType)
        }
    }

    @Test func tooManyParts() throws {
        let many = (1...65).map { Self.text("f\($0)", "v") }
        #expect(throws: FormError("The form has too many fields.")) { try SubmittedForm.multipart(Self.body(many), contentType: Self.contentType) }
        let parsed = try SubmittedForm.multipart(Self.body(Array(many.prefix(64))), contentType: Self.contentType)
        #expect(parsed.fields.count == 64)
    }
}

@Suite("Forms: required and optional fields")
struct FormFieldTests {
    let form = SubmittedForm(fields: ["name": "alice", "empty": "", "long": String(repeating: "é", count: 11)])

    @Test func required() throws {
        #expect(try form.required("name", label: "Account name") == "alice")
        #expect(throws: FormError("Account name is missing.")) { try form.required("absent", label: "Account name") }
        #expect(throws: FormError("Account name is missing.")) { try form.required("empty", label: "Account name") }
        #expect(throws: FormError("Nick is longer than 10 characters.")) { try form.required("long", label: "Nick", maximum: 10) }
        // The limit counts characters, not bytes (11 × "é" is 22 bytes).
        #expect(try form.required("long", label: "Nick", maximum: 11).count == 11)
        #expect(try form.required("name", label: "Account name", maximum: 5) == "alice")
        #expect(throws: FormError("Account name is longer than 4 characters.")) { try form.required("name", label: "Account name", maximum: 4) }
    }

    @Test func optional() throws {
        #expect(try form.optional("absent", label: "Nick") == "")
        #expect(try form.optional("empty", label: "Nick") == "")
        #expect(try form.optional("name", label: "Nick") == "alice")
        #expect(throws: FormError("IRC nick is longer than 10 characters.")) { try form.optional("long", label: "IRC nick", maximum: 10) }
    }

    @Test func formErrorIsABadRequestShownAsItIs() {
        let error = FormError("The form is not valid UTF-8.")
        #expect(error.status == .badRequest)
        #expect(error.description == "The form is not valid UTF-8.")
    }
}
