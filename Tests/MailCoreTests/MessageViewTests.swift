import Testing
@testable import MailCore

/// Reading received mail for the webmail: headers (RFC 2047, 5322), MIME (RFC 2045/2046/2231),
/// charsets, and graceful handling of broken or hostile input.
@Suite struct MessageViewTests {
    static func view(_ text: String) -> MessageView { MessageView(parsing: Array(text.utf8)) }

    @Test func simpleMessage() {
        let v = Self.view("From: \"Alice A.\" <alice@mail.i2p>\r\nTo: bob@mail.i2p, Carol <carol@x.i2p>\r\nCc: dave@y.i2p\r\nReply-To: list@z.i2p\r\nSubject: hello\r\nDate: Sun, 29 Nov 2026 05:48:00 +0000\r\nMessage-ID: <abc@mail.i2p>\r\nIn-Reply-To: <p@x>\r\nReferences: <r1@x> (c) <p@x>\r\n\r\nHi there\r\nsecond\r\n")
        #expect(v.subject == "hello")
        #expect(v.from == "\"Alice A.\" <alice@mail.i2p>")
        #expect(v.fromAddress == "alice@mail.i2p")
        #expect(v.to == ["bob@mail.i2p", "carol@x.i2p"])
        #expect(v.cc == ["dave@y.i2p"])
        #expect(v.replyTo == ["list@z.i2p"])
        #expect(v.date == RFC5322Date.days(year: 2026, month: 11, day: 29) * 86400 + 5 * 3600 + 48 * 60)
        #expect(v.messageID == "<abc@mail.i2p>")
        #expect(v.inReplyTo == ["<p@x>"])
        #expect(v.references == ["<r1@x>", "<p@x>"])
        #expect(v.textBody == "Hi there\nsecond\n")
        #expect(v.htmlBody == nil)
        #expect(v.attachments.isEmpty)
        #expect(v.problems.isEmpty)
        #expect(v.headerFields.map(\.name) == ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References"])
    }

    @Test func encodedWordsInSubjectAndFrom() {
        let v = Self.view("From: =?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@x.be>\r\nSubject: =?utf-8?B?SGVsbG8g?=\r\n =?utf-8?q?W=C3=B6rld?= and =?bogus =?x?y?z?=\r\n\r\n")
        #expect(v.from == "André Pirard <pirard@x.be>")
        #expect(v.fromAddress == "pirard@x.be")
        // Adjacent words join without the folding white space; malformed ones stay literal.
        #expect(v.subject == "Hello Wörld and =?bogus =?x?y?z?=")
        #expect(v.headerFields.first { $0.name == "Subject" }?.value == v.subject)
    }

    @Test func encodedWordSplitInsideAMultibyteCharacter() {
        // "é" is C3 A9: split over two words of the same charset it must still decode.
        let v = Self.view("Subject: =?utf-8?Q?caf=C3?= =?utf-8?Q?=A9?=\r\n\r\n")
        #expect(v.subject == "café")
    }

    @Test func unknownCharsetInHeaderIsNoted() {
        let v = Self.view("Subject: =?x-foo?Q?abc?=\r\n\r\nbody")
        #expect(v.subject == "abc")
        #expect(v.problems.contains("unknown charset \"x-foo\"; shown as UTF-8"))
    }

    @Test func encodedControlCharactersCannotBreakLines() {
        let v = Self.view("Subject: =?utf-8?Q?a=0D=0ABcc:_x@y=E2=80=AE?=\r\n\r\n")
        #expect(!v.subject.contains("\r") && !v.subject.contains("\n") && !v.subject.contains("\u{202E}"))
    }

    @Test func raw8BitHeaders() {
        let bytes = Array("Subject: caf".utf8) + [0xE9] + Array("\r\nFrom: Jos\u{e9} <j@x.i2p>\r\n\r\n".utf8)
        let v = MessageView(parsing: bytes)
        #expect(v.subject == "café")
        #expect(v.from == "José <j@x.i2p>")
    }

    @Test func multipartAlternativePrefersPlainAndHTML() {
        let text = """
        Content-Type: multipart/alternative; boundary="b1"\r
        \r
        preamble\r
        --b1\r
        Content-Type: text/html; charset=utf-8\r
        \r
        <p>Hello <b>world</b></p>\r
        --b1\r
        Content-Type: text/plain; charset=utf-8\r
        \r
        Hello world\r
        --b1--\r
        epilogue\r

        """
        let v = Self.view(text)
        #expect(v.textBody == "Hello world")
        #expect(v.htmlBody == "<p>Hello <b>world</b></p>")
        #expect(v.attachments.isEmpty)
        #expect(v.problems.isEmpty)
    }

    @Test func nestedMultipartWithInlineImageAndAttachments() throws {
        let text = """
        Subject: nested\r
        Content-Type: multipart/mixed; boundary=outer\r
        \r
        --outer\r
        Content-Type: multipart/alternative; boundary=alt\r
        \r
        --alt\r
        Content-Type: text/plain\r
        \r
        plain text\r
        --alt\r
        Content-Type: multipart/related; boundary=rel\r
        \r
        --rel\r
        Content-Type: text/html\r
        \r
        <img src="cid:img1@x">\r
        --rel\r
        Content-Type: image/png\r
        Content-ID: <img1@x>\r
        Content-Transfer-Encoding: base64\r
        \r
        iVBORw0K\r
        --rel--\r
        --alt--\r
        --outer\r
        Content-Type: application/pdf; name="doc.pdf"\r
        Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r
        Content-Transfer-Encoding: base64\r
        \r
        JVBERi0=\r
        --outer\r
        Content-Type: message/rfc822\r
        \r
        Subject: =?utf-8?Q?Inner_=C3=A9?=\r
        From: x@y\r
        \r
        inner body\r
        --outer--\r

        """
        let v = Self.view(text)
        #expect(v.textBody == "plain text")
        #expect(v.htmlBody == "<img src=\"cid:img1@x\">")
        #expect(v.attachments.map(\.contentType) == ["image/png", "application/pdf", "message/rfc822"])
        #expect(v.attachments.map(\.filename) == ["attachment-1", "résumé.pdf", "Inner é.eml"])
        #expect(v.attachments[0].contentID == "img1@x")
        #expect(v.attachments[0].size == 6)
        #expect(v.attachmentData(0) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A])
        #expect(v.attachmentData(1) == Array("%PDF-".utf8))
        #expect(v.attachments[1].size == 5)
        let inner = try #require(v.attachmentData(2))
        #expect(MessageView(parsing: inner).subject == "Inner é")
        #expect(v.attachments.map(\.index) == [0, 1, 2])
        #expect(v.attachmentData(3) == nil)
        #expect(v.attachmentData(-1) == nil)
    }

    @Test func base64WithGarbage() {
        let v = Self.view("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVs!!bG8g\r\n  d2\u{7}9y bGQ=\r\n===\r\n")
        #expect(v.textBody == "Hello world")
        #expect(v.problems.contains("damaged base64; unreadable characters skipped"))
    }

    @Test func base64Unpadded() {
        #expect(MIMETransferEncoding.decodeBase64(Array("YQ".utf8)).bytes == Array("a".utf8))
        #expect(MIMETransferEncoding.decodeBase64(Array("YWI".utf8)).bytes == Array("ab".utf8))
        #expect(MIMETransferEncoding.decodeBase64(Array("".utf8)).bytes == [])
    }

    @Test func quotedPrintableSoftBreaksAndBrokenEscapes() {
        let v = Self.view("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\nLong line that is =\r\nsoft broken; caf=C3=A9 =3d ok; bad =ZZ and =4 trailing   \r\nsoft with padding=  \r\nend=\r\n")
        #expect(v.textBody == "Long line that is soft broken; café = ok; bad =ZZ and =4 trailing\nsoft with paddingend")
        #expect(v.problems.contains("damaged quoted-printable; broken escapes shown as written"))
    }

    @Test func latin1AndWindows1252Bodies() {
        let latin1 = Array("Content-Type: text/plain; charset=\"ISO-8859-1\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\nna".utf8) + [0xEF, 0x76, 0x65, 0x20, 0xA9]
        #expect(MessageView(parsing: latin1).textBody == "naïve ©")
        let cp1252 = Array("Content-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=93quoted=94 =80 =85".utf8)
        #expect(MessageView(parsing: cp1252).textBody == "\u{201C}quoted\u{201D} € …")
        let latin2 = Array("Content-Type: text/plain; charset=iso-8859-2\r\n\r\n".utf8) + [0xA3, 0xF3, 0x64, 0xBC]
        #expect(MessageView(parsing: latin2).textBody == "Łódź")
        let latin9 = Array("Content-Type: text/plain; charset=iso-8859-15\r\n\r\n".utf8) + [0xA4]
        #expect(MessageView(parsing: latin9).textBody == "€")
        let koi8 = Array("Content-Type: text/plain; charset=koi8-r\r\n\r\n".utf8) + [0xF0, 0xD2, 0xC9, 0xD7, 0xC5, 0xD4]
        #expect(MessageView(parsing: koi8).textBody == "Привет")
        let cp1251 = Array("Content-Type: text/plain; charset=windows-1251\r\n\r\n".utf8) + [0xCF, 0xF0, 0xE8, 0xE2, 0xE5, 0xF2]
        #expect(MessageView(parsing: cp1251).textBody == "Привет")
        let utf16 = Array("Content-Type: text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n\r\n".utf8) + Array(MIMETransferEncoding.encodeBase64([0xFF, 0xFE, 0x48, 0x00, 0xE9, 0x00]))
        #expect(MessageView(parsing: utf16).textBody == "Hé")
    }

    @Test func unknownCharsetFallsBackToUTF8() {
        let bytes = Array("Content-Type: text/plain; charset=x-foo\r\n\r\ncaf".utf8) + [0xC3, 0xA9, 0xFF]
        let v = MessageView(parsing: bytes)
        #expect(v.textBody == "café\u{FFFD}")
        #expect(v.problems.contains("unknown charset \"x-foo\"; shown as UTF-8"))
    }

    @Test func undeclared8BitText() {
        let v = MessageView(parsing: Array("Subject: x\r\n\r\n".utf8) + [0x63, 0x61, 0x66, 0xE9])
        #expect(v.textBody == "café")
    }

    @Test func missingClosingBoundaryStillShowsParts() {
        let v = Self.view("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=a.zip\r\n\r\nPK")
        #expect(v.textBody == "first")
        #expect(v.attachments.map(\.filename) == ["a.zip"])
        #expect(v.attachmentData(0) == Array("PK".utf8))
        #expect(v.problems.contains("broken MIME structure: a multipart has no closing boundary"))
    }

    @Test func multipartWithoutBoundaryOrDelimiter() {
        let noBoundary = Self.view("Content-Type: multipart/mixed\r\n\r\nraw text\r\n")
        #expect(noBoundary.textBody == "raw text\n")
        #expect(noBoundary.problems.contains("broken MIME structure: a multipart has no boundary"))
        let noDelimiter = Self.view("Content-Type: multipart/mixed; boundary=zzz\r\n\r\nraw text\r\n")
        #expect(noDelimiter.textBody == "raw text\n")
        #expect(noDelimiter.problems.contains("broken MIME structure: a multipart has no parts"))
    }

    @Test func garbageContentTypeIsPlainText() {
        let v = Self.view("Content-Type: ;;;\"\"garbage((\r\nContent-Transfer-Encoding: x-weird\r\n\r\nhello")
        #expect(v.textBody == "hello")
        #expect(v.problems.contains("unknown transfer encoding \"x-weird\"; shown undecoded"))
    }

    @Test func truncatedAndEmptyInput() {
        #expect(Self.view("Subject: cut off here").problems.contains("header section truncated"))
        #expect(Self.view("Subject: cut off here").subject == "cut off here")
        #expect(MessageView(parsing: []).problems == ["empty message"])
        // Arbitrary bytes never crash.
        var generator = SeededRandom(seed: 7)
        for _ in 0..<200 {
            let junk = (0..<Int(generator.next() % 400)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            _ = MessageView(parsing: Array("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n".utf8) + junk)
        }
    }

    @Test func rfc2231ContinuationsAndEncodedWordNames() {
        let v = Self.view("""
        Content-Type: multipart/mixed; boundary=b\r
        \r
        --b\r
        Content-Type: application/octet-stream\r
        Content-Disposition: attachment;\r
         filename*0*=iso-8859-1'fr'd%E9j%E0;\r
         filename*1=" vu";\r
         filename*2*=.t%78t\r
        \r
        x\r
        --b\r
        Content-Type: application/octet-stream; name="=?utf-8?B?w6kudHh0?="\r
        \r
        y\r
        --b\r
        Content-Type: application/octet-stream\r
        Content-Disposition: attachment; filename="../../etc/pass\u{7}wd"\r
        \r
        z\r
        --b\r
        Content-Type: application/octet-stream\r
        Content-Disposition: attachment; filename=" .. "\r
        \r
        z\r
        --b--\r

        """)
        #expect(v.attachments.map(\.filename) == ["déjà vu.txt", "é.txt", "_.._etc_passwd", "attachment-4"])
    }

    @Test func dates() {
        let base = RFC5322Date.days(year: 2003, month: 7, day: 1) * 86400 + 10 * 3600 + 52 * 60 + 37
        #expect(RFC5322Date.parse("Tue, 1 Jul 2003 10:52:37 +0200") == base - 7200)
        #expect(RFC5322Date.parse("1 Jul 2003 10:52:37 -0000") == base)
        #expect(RFC5322Date.parse("Tue,  1 Jul 03 10:52:37 GMT (comment)") == base)
        #expect(RFC5322Date.parse("Tue, 01 Jul 103 10:52:37 UT") == base)
        #expect(RFC5322Date.parse("1 JUL 2003 10:52:37 EDT") == base + 4 * 3600)
        #expect(RFC5322Date.parse("1 Jul 2003 10:52:37 PST") == base + 8 * 3600)
        #expect(RFC5322Date.parse("1 Jul 2003 10:52 +0000") == base - 37)
        #expect(RFC5322Date.parse("Tue Jul  1 10:52:37 2003") == base)
        #expect(RFC5322Date.parse("1 Jul 2003 10:52:37 Z") == base)
        #expect(RFC5322Date.parse("1 Jul 2003 10:52:37 +0100 (CET)") == base - 3600)
        #expect(RFC5322Date.parse("1 Jan 99 00:00:00 +0000") == RFC5322Date.days(year: 1999, month: 1, day: 1) * 86400)
        #expect(RFC5322Date.parse("31 Feb 2003 10:52:37 +0000") == nil)
        #expect(RFC5322Date.parse("1 Jul 2003 25:52:37 +0000") == nil)
        #expect(RFC5322Date.parse("yesterday") == nil)
        #expect(RFC5322Date.parse("") == nil)
        // Round trip with the formatter.
        #expect(RFC5322Date.parse(RFC5322Date.format(secondsSince1970: 1_800_000_000, roundedToMinute: false)) == 1_800_000_000)
        #expect(Self.view("Date: garbage\r\n\r\n").problems.contains("unreadable Date \"garbage\""))
    }

    @Test func hugeHeaderParsesQuickly() {
        let clock = ContinuousClock()
        let big = "Subject: " + String(repeating: "=?utf-8?q?x ", count: 100_000) + "\r\n"  // 1.2 MB, pathological for RFC 2047
        let refs = "References: " + String(repeating: "<a@b> ", count: 100_000) + "\r\n"
        let start = clock.now
        let v = Self.view(big + refs + "X-Long: " + String(repeating: "y", count: 1_000_000) + "\r\n\r\nbody")
        #expect(clock.now - start < .seconds(20))
        #expect(v.subject.hasPrefix("=?utf-8?q?x"))
        #expect(v.references.count == 100_000)
        #expect(v.textBody == "body")
    }

    @Test func fiveThousandParts() {
        var text = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nmain\r\n"
        for i in 0..<5000 {
            text += "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=f\(i).bin\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n"
        }
        text += "--b--\r\n"
        let clock = ContinuousClock()
        let start = clock.now
        let v = Self.view(text)
        #expect(clock.now - start < .seconds(20))
        #expect(v.textBody == "main")
        #expect(v.attachments.count == 5000)
        #expect(v.attachments[4999].filename == "f4999.bin")
        #expect(v.attachments[4999].size == 3)
        #expect(v.attachmentData(4999) == [0, 1, 2])
    }

    @Test func deepNestingIsBounded() {
        var text = ""
        for i in 0..<200 { text += "Content-Type: multipart/mixed; boundary=\"b\(i)\"\r\n\r\n--b\(i)\r\n" }
        text += "Content-Type: text/plain\r\n\r\ndeep\r\n"
        let v = Self.view(text)
        // Past MIMEEntity.maximumDepth the rest is one opaque body shown as text; nothing crashes.
        #expect(v.textBody != nil)
    }

    @Test func htmlToText() {
        let text = HTMLText.plainText("<html><head><style>p{}</style><title>T</title></head><body><p>Hello&nbsp;&amp; <b>bye</b></p><script>alert(1)</script><div>x &lt; y &#233;&#x41;</div><!-- hidden --><br>end & more</body></html>")
        #expect(text == "Hello & bye\n\nx < y éA\n\nend & more")
        #expect(HTMLText.plainText("a < b") == "a < b")
    }
}

/// SplitMix64, so the tests are repeatable.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
