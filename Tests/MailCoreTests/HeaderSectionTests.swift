import Testing
@testable import MailCore

/// RFC 5322 2.2 header fields: parsing, unfolding (2.2.3), the body offset and leniency.
@Suite struct HeaderSectionTests {
    static func parse(_ text: String) -> HeaderSection {
        HeaderSection.parse(Array(text.utf8))
    }

    static func names(_ section: HeaderSection) -> [String] { section.fields.map(\.name) }
    static func values(_ section: HeaderSection) -> [String] { section.fields.map(\.value) }

    @Test func simpleHeaderAndBody() {
        let text = "From: alice@mail.i2p\r\nTo: bob@mail.i2p\r\nSubject: hello\r\n\r\nbody line\r\n"
        let section = Self.parse(text)
        #expect(Self.names(section) == ["From", "To", "Subject"])
        #expect(Self.values(section) == ["alice@mail.i2p", "bob@mail.i2p", "hello"])
        let expectedOffset = text.utf8.count - "body line\r\n".utf8.count
        #expect(section.bodyOffset == expectedOffset)
        #expect(Array(text.utf8)[section.bodyOffset...] == Array("body line\r\n".utf8)[...])
    }

    @Test func rawKeepsTheOriginalBytesWithoutTheLineEnd() throws {
        let section = Self.parse("Subject:   spaced value  \r\n\r\n")
        let field = try #require(section.fields.first)
        #expect(field.value == "spaced value")
        #expect(field.raw == Array("Subject:   spaced value  ".utf8))
    }

    @Test func foldedValueIsUnfoldedAndRawKeepsTheFolding() throws {
        let section = Self.parse("Subject: first\r\n second\r\n\tthird\r\nTo: x@y\r\n\r\nbody")
        #expect(Self.names(section) == ["Subject", "To"])
        let subject = try #require(section.fields.first)
        // RFC 5322 2.2.3: unfolding removes the CRLF and keeps the white space after it.
        #expect(subject.value == "first second\tthird")
        #expect(subject.raw == Array("Subject: first\r\n second\r\n\tthird".utf8))
    }

    @Test func foldingRightAfterTheColon() throws {
        let section = Self.parse("Subject:\r\n  folded only\r\n\r\n")
        let subject = try #require(section.fields.first)
        #expect(subject.value == "folded only")
        #expect(subject.raw == Array("Subject:\r\n  folded only".utf8))
    }

    @Test func emptyValueIsKept() {
        let section = Self.parse("X-Empty:\r\nX-Blank:   \r\n\r\n")
        #expect(Self.names(section) == ["X-Empty", "X-Blank"])
        #expect(Self.values(section) == ["", ""])
    }

    @Test func colonInsideTheValueBelongsToTheValue() {
        let section = Self.parse("Subject: Re: re: hi\r\n\r\n")
        #expect(Self.values(section) == ["Re: re: hi"])
    }

    @Test func headerWithoutBodyOrEmptyLine() {
        let text = "From: a@b\r\nSubject: x\r\n"
        let section = Self.parse(text)
        #expect(Self.names(section) == ["From", "Subject"])
        #expect(section.bodyOffset == text.utf8.count)
    }

    @Test func headerWithoutFinalLineEnd() {
        let text = "From: a@b\r\nSubject: x"
        let section = Self.parse(text)
        #expect(Self.values(section) == ["a@b", "x"])
        #expect(section.bodyOffset == text.utf8.count)
    }

    @Test func emptyLineAtTheEndGivesAnEmptyBody() {
        let text = "Subject: x\r\n\r\n"
        #expect(Self.parse(text).bodyOffset == text.utf8.count)
    }

    @Test func emptyMessage() {
        let section = Self.parse("")
        #expect(section.fields.isEmpty)
        #expect(section.bodyOffset == 0)
    }

    @Test func messageStartingWithEmptyLineHasNoHeader() {
        let section = Self.parse("\r\nFrom: not-a-header@x\r\n")
        #expect(section.fields.isEmpty)
        #expect(section.bodyOffset == 2)
    }

    @Test func lfOnlyInputIsParsed() {
        let text = "A: 1\nB: two\n  more\n\nbody\n"
        let section = Self.parse(text)
        #expect(Self.names(section) == ["A", "B"])
        #expect(Self.values(section) == ["1", "two  more"])
        #expect(section.bodyOffset == text.utf8.count - "body\n".utf8.count)
        #expect(Array(text.utf8)[section.bodyOffset...] == Array("body\n".utf8)[...])
    }

    @Test func lineWithoutColonIsSkipped() {
        let section = Self.parse("Garbage line\r\nA: 1\r\nmore garbage\r\nB: 2\r\n\r\n")
        #expect(Self.names(section) == ["A", "B"])
        #expect(Self.values(section) == ["1", "2"])
    }

    @Test func continuationOfASkippedLineIsSkippedToo() {
        let section = Self.parse("no colon here\r\n but: folded\r\nA: 1\r\n\r\n")
        #expect(Self.names(section) == ["A"])
    }

    @Test func continuationAsFirstLineIsSkipped() {
        let section = Self.parse(" leading: continuation\r\nA: 1\r\n\r\n")
        #expect(Self.names(section) == ["A"])
        #expect(Self.values(section) == ["1"])
    }

    @Test(arguments: ["Bad Name: x", ": no name", "Tab\tName: x", "Naïve: x"])
    func invalidFieldNamesAreSkipped(line: String) {
        let section = Self.parse("\(line)\r\nA: 1\r\n\r\n")
        #expect(Self.names(section) == ["A"])
    }

    @Test func whitespaceOnlyLineIsAContinuationNotTheEndOfTheHeader() {
        let text = "A: 1\r\n \r\nB: 2\r\n\r\nbody"
        let section = Self.parse(text)
        #expect(Self.names(section) == ["A", "B"])
        #expect(section.bodyOffset == text.utf8.count - 4)
    }

    @Test func bodyIsNotParsedAsHeader() {
        let section = Self.parse("A: 1\r\n\r\nB: 2\r\n")
        #expect(Self.names(section) == ["A"])
    }

    @Test func fieldsNamedIsCaseInsensitiveAndKeepsOrder() {
        let section = Self.parse("Received: one\r\nSUBJECT: s\r\nreceived: two\r\nRECEIVED: three\r\n\r\n")
        #expect(section.fields(named: "received").map(\.value) == ["one", "two", "three"])
        #expect(section.fields(named: "Subject").map(\.name) == ["SUBJECT"])
        #expect(section.fields(named: "From").isEmpty)
    }

    @Test func utf8ValueIsDecoded() {
        let section = Self.parse("Subject: Grüße\r\n\r\n")
        #expect(Self.values(section) == ["Grüße"])
    }

    @Test func bodyBytesAreUntouchedByParsing() {
        var bytes = Array("A: 1\r\n\r\n".utf8)
        let headerLength = bytes.count
        bytes.append(contentsOf: (0...255).map { UInt8($0) })
        let section = HeaderSection.parse(bytes)
        #expect(section.bodyOffset == headerLength)
        #expect(Array(bytes[section.bodyOffset...]) == (0...255).map { UInt8($0) })
    }
}
