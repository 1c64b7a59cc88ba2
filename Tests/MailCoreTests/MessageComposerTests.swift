import Testing
@testable import MailCore

/// Composing the webmail's outgoing mail: the minimal header set (PRIV-2), encodings
/// (RFC 2045/2047/2231), folding (RFC 5322 2.1.1, 2.2.3), injection safety, and the reply and
/// forward helpers.
@Suite struct MessageComposerTests {
    static let date: Int64 = 1_800_000_017

    static func compose(_ message: OutgoingMessage, seed: UInt64 = 1) -> [UInt8] {
        var random = SeededRandom(seed: seed)
        return MessageComposer.compose(message, date: date, messageIDDomain: "mail.i2p", random: &random)
    }

    static func headerLines(_ bytes: [UInt8]) -> [String] {
        let header = String(decoding: bytes[..<HeaderSection.parse(bytes).bodyOffset], as: UTF8.self)
        return header.split(separator: "\r\n").map(String.init)
    }

    static func fieldNames(_ bytes: [UInt8]) -> [String] {
        HeaderSection.parse(bytes).fields.map(\.name)
    }

    /// Every line ends in CRLF (no bare CR or LF) and none is longer than 998 octets.
    static func checkLines(_ bytes: [UInt8]) {
        var length = 0
        for (i, b) in bytes.enumerated() {
            if b == 10 {
                #expect(i > 0 && bytes[i - 1] == 13)
                length = 0
            } else if b == 13 {
                #expect(i + 1 < bytes.count && bytes[i + 1] == 10)
            } else {
                length += 1
                #expect(length <= 998)
            }
        }
        #expect(bytes.suffix(2) == [13, 10])
    }

    @Test func exactHeaderSetForPlainText() {
        let message = OutgoingMessage(from: "alice@mail.i2p", to: ["bob@mail.i2p"], cc: ["carol@mail.i2p"], bcc: ["secret@mail.i2p"], subject: "Hello", body: "Hi Bob\nBye\n")
        let bytes = Self.compose(message)
        #expect(Self.fieldNames(bytes) == ["Date", "From", "To", "Cc", "Subject", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"])
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("Date: " + RFC5322Date.format(secondsSince1970: Self.date, roundedToMinute: true) + "\r\n"))
        #expect(text.contains(":00 +0000\r\n"))
        #expect(!text.lowercased().contains("secret"))
        #expect(text.contains("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHi Bob\r\nBye\r\n"))
        let id = HeaderSection.parse(bytes).fields(named: "Message-ID")[0].value
        #expect(id.hasPrefix("<") && id.hasSuffix("@mail.i2p>") && id.count >= 20 + 11)
        Self.checkLines(bytes)
        #expect(message.envelopeRecipients == ["bob@mail.i2p", "carol@mail.i2p", "secret@mail.i2p"])
    }

    @Test func threadingHeadersAndOmittedTo() {
        let message = OutgoingMessage(from: "alice@mail.i2p", bcc: ["b@mail.i2p"], subject: "x", body: "y\n",
                                      inReplyTo: "p@x", references: (0..<30).map { "<r\($0)@example.org>" } + ["bad id", "<a\r\nb>"])
        let bytes = Self.compose(message)
        #expect(Self.fieldNames(bytes) == ["Date", "From", "Subject", "Message-ID", "In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"])
        let view = MessageView(parsing: bytes)
        #expect(view.inReplyTo == ["<p@x>"])
        #expect(view.references == (0..<30).map { "<r\($0)@example.org>" })
        Self.checkLines(bytes)
        for line in Self.headerLines(bytes) { #expect(line.utf8.count <= 78) }
    }

    @Test func roundTripWithAttachmentsAndNonASCII() throws {
        let binary = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let subject = "Grüße aus Köln — ünïcödé 日本語のテキスト and a fairly long tail to force folding of the encoded words"
        let body = "Hallo Wörld\nline two with = sign and trailing space \n" + String(repeating: "x", count: 1200) + "\n"
        let message = OutgoingMessage(from: "alice@mail.i2p", to: ["bob@mail.i2p"], subject: subject, body: body, attachments: [
            OutgoingAttachment(filename: "résumé 2026.pdf", contentType: "application/pdf", data: binary),
            OutgoingAttachment(filename: "C:\\Users\\me\\plain.txt", contentType: "text/plain; charset=utf-8", data: Array("text\r\n".utf8)),
            OutgoingAttachment(filename: String(repeating: "ß", count: 80) + ".bin", contentType: "bogus type", data: []),
            OutgoingAttachment(filename: "evil\"name\r\nX-Injected: 1.zip", contentType: "multipart/mixed", data: [1, 2, 3]),
        ])
        let bytes = Self.compose(message)
        Self.checkLines(bytes)
        for line in Self.headerLines(bytes) { #expect(line.utf8.count <= 78) }
        #expect(Self.fieldNames(bytes) == ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"])
        let view = MessageView(parsing: bytes)
        #expect(view.problems.isEmpty)
        #expect(view.subject == subject)
        #expect(view.textBody == body)
        #expect(view.attachments.map(\.filename) == ["résumé 2026.pdf", "plain.txt", String(repeating: "ß", count: 80) + ".bin", "evil_nameX-Injected_ 1.zip"])
        #expect(view.attachments.map(\.contentType) == ["application/pdf", "text/plain", "application/octet-stream", "application/octet-stream"])
        #expect(view.attachments.map(\.size) == [1000, 6, 0, 3])
        #expect(view.attachmentData(0) == binary)
        #expect(view.attachmentData(1) == Array("text\r\n".utf8))
        #expect(view.attachmentData(2) == [])
        #expect(view.attachmentData(3) == [1, 2, 3])
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(!text.contains("\r\nX-Injected"))
        #expect(text.contains("Content-Transfer-Encoding: quoted-printable"))
        #expect(text.contains("filename*=utf-8''r%C3%A9sum%C3%A9%202026.pdf"))
        #expect(text.contains("filename=\"r_sum_ 2026.pdf\""))
    }

    @Test func roundTripBodiesExactly() {
        for body in ["", "one line\n", "no final newline", "crlf\r\nand cr\rand lf\n", "trailing spaces   \n\nafter blank\n", "From me\n.\n..\n", "--=_looks like a boundary\n"] {
            for attachments in [[], [OutgoingAttachment(filename: "a", data: [0])]] {
                let message = OutgoingMessage(from: "a@b.i2p", to: ["c@d.i2p"], subject: "s", body: body, attachments: attachments)
                let bytes = Self.compose(message)
                Self.checkLines(bytes)
                let expected = body.replacingCRs()
                let view = MessageView(parsing: bytes)
                // A single part gets a final line end (the message must end in CRLF).
                let wanted = attachments.isEmpty && !expected.isEmpty && !expected.hasSuffix("\n") ? expected + "\n" : expected
                #expect(view.textBody == wanted, "body \(body.debugDescription), attachments \(attachments.count)")
            }
        }
    }

    @Test func nulAndBareCRAreHandled() {
        let bytes = Self.compose(OutgoingMessage(from: "a@b.i2p", to: ["c@d.i2p"], subject: "s", body: "a\0b\rc\n"))
        Self.checkLines(bytes)
        #expect(!bytes.contains(0))
        #expect(MessageView(parsing: bytes).textBody == "ab\nc\n")
    }

    @Test func headerInjectionIsImpossible() {
        let message = OutgoingMessage(from: "alice@mail.i2p\r\nBcc: x@evil", to: ["bob@mail.i2p\r\nX-Evil: 1", "ok@mail.i2p"], cc: ["c@d\nBcc: e@f"],
                                      subject: "hi\r\nBcc: victim@x\r\n\r\nbody", body: "b", inReplyTo: "<x@y>\r\nX-Evil: 2")
        let bytes = Self.compose(message)
        Self.checkLines(bytes)
        let names = Self.fieldNames(bytes)
        #expect(names == ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"])
        let view = MessageView(parsing: bytes)
        #expect(view.subject == "hi  Bcc: victim@x    body")
        #expect(view.to == ["ok@mail.i2p"])
        #expect(view.textBody == "b\n")
    }

    @Test func subjectFoldingAndEncoding() {
        let longASCII = (0..<40).map { "word\($0)" }.joined(separator: " ")
        for subject in [longASCII, "Looks like =?utf-8?Q?an_encoded_word?=", "ÄÖÜ" + String(repeating: "ä", count: 200), String(repeating: "a", count: 950), "  spaced   out  "] {
            let bytes = Self.compose(OutgoingMessage(from: "a@b.i2p", to: ["c@d.i2p"], subject: subject, body: "x\n"))
            Self.checkLines(bytes)
            for line in Self.headerLines(bytes) where !line.contains(String(repeating: "a", count: 100)) { #expect(line.utf8.count <= 78, "\(line)") }
            #expect(MessageView(parsing: bytes).subject == subject.trimmingSpaces())
        }
        // Q for mostly-ASCII text, B when that is shorter (RFC 2047 4).
        #expect(MessageComposer.subjectField("Hello there wörld") == "Subject: =?utf-8?Q?Hello_there_w=C3=B6rld?=")
        #expect(MessageComposer.subjectField("Grüße") == "Subject: =?utf-8?B?R3LDvMOfZQ==?=")
        #expect(MessageComposer.subjectField("日本語") == "Subject: =?utf-8?B?5pel5pys6Kqe?=")
    }

    @Test func boundaryNeverInContent() {
        // Whatever the seed, the text may hold "--=_" lines; the boundary is checked against them.
        for seed in 0..<20 as Range<UInt64> {
            var random = SeededRandom(seed: seed)
            let boundary = "=_" + RandomToken.make(length: 30, using: &random)
            let body = "--" + boundary + "\n--" + boundary + "--\n"
            let bytes = Self.compose(OutgoingMessage(from: "a@b.i2p", to: ["c@d.i2p"], subject: "s", body: body, attachments: [OutgoingAttachment(filename: "f", data: [1])]), seed: seed)
            let view = MessageView(parsing: bytes)
            #expect(view.textBody == body)
            #expect(view.attachmentData(0) == [1])
        }
    }

    @Test func validateAddresses() {
        let (valid, invalid) = MessageComposer.validateAddresses("a@b.i2p, C@D.i2p; e@f.i2p\nBob <bob@x.i2p>  g@h.i2p ,, not-an-address, a@B.i2p, x@@y")
        #expect(valid == ["a@b.i2p", "C@d.i2p", "e@f.i2p", "bob@x.i2p", "g@h.i2p"])
        #expect(invalid == ["not-an-address", "x@@y"])
        #expect(MessageComposer.validateAddresses("").0.isEmpty)
    }

    @Test func envelopeRecipientsDeduplicate() {
        let message = OutgoingMessage(from: "a@b", to: ["X@y.i2p", " x@y.i2p"], cc: ["z@y.i2p", ""], bcc: ["X@Y.I2P", "w@y.i2p"])
        #expect(message.envelopeRecipients == ["X@y.i2p", "z@y.i2p", "w@y.i2p"])
    }

    @Test func replyAndForwardSubjects() {
        #expect(MessageComposer.replySubject("Hello") == "Re: Hello")
        #expect(MessageComposer.replySubject("Re: Hello") == "Re: Hello")
        #expect(MessageComposer.replySubject("RE: re: Aw: Hello") == "Re: Hello")
        #expect(MessageComposer.replySubject("Re[3]: Hello") == "Re: Hello")
        #expect(MessageComposer.replySubject("Fwd: Hello") == "Re: Fwd: Hello")
        #expect(MessageComposer.replySubject("Regarding: x") == "Re: Regarding: x")
        #expect(MessageComposer.replySubject("") == "Re: ")
        #expect(MessageComposer.forwardSubject("Fwd: FW: Hello") == "Fwd: Hello")
        #expect(MessageComposer.forwardSubject("Re: Hello") == "Fwd: Re: Hello")
    }

    static let parent = MessageView(parsing: Array("""
    From: Bob Example <bob@x.i2p>\r
    To: alice@mail.i2p, carol@y.i2p\r
    Cc: Dave <dave@z.i2p>, ALICE@mail.i2p\r
    Subject: Plans\r
    Date: Tue, 1 Jul 2003 10:52:37 +0200\r
    Message-ID: <m3@x.i2p>\r
    In-Reply-To: <m2@y.i2p>\r
    References: <m1@x.i2p> <m2@y.i2p>\r
    \r
    Line one\r
    \r
    > older\r

    """.utf8))

    @Test func quotedReply() {
        #expect(MessageComposer.quoted(Self.parent) == "On Tue, 1 Jul 2003 08:52:37 +0000, Bob Example <bob@x.i2p> wrote:\n> Line one\n>\n>> older\n")
        let html = MessageView(parsing: Array("From: a@b\r\nContent-Type: text/html\r\n\r\n<p>Hi</p><p>there</p>".utf8))
        #expect(MessageComposer.quoted(html) == "a@b wrote:\n> Hi\n>\n> there\n")
    }

    @Test func threading() {
        let t = MessageComposer.threading(replyingTo: Self.parent)
        #expect(t.inReplyTo == "<m3@x.i2p>")
        #expect(t.references == ["<m1@x.i2p>", "<m2@y.i2p>", "<m3@x.i2p>"])
        let onlyInReplyTo = MessageView(parsing: Array("Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\n\r\n".utf8))
        #expect(MessageComposer.threading(replyingTo: onlyInReplyTo).references == ["<a@x>", "<b@x>"])
        let long = MessageView(parsing: Array(("Message-ID: <last@x>\r\nReferences: " + (0..<50).map { "<r\($0)@x>" }.joined(separator: " ") + "\r\n\r\n").utf8))
        let capped = MessageComposer.threading(replyingTo: long).references
        #expect(capped.count == 21)
        #expect(capped.first == "<r0@x>")
        #expect(capped.last == "<last@x>")
        #expect(capped[1] == "<r31@x>")
        let none = MessageView(parsing: Array("Subject: x\r\n\r\n".utf8))
        #expect(MessageComposer.threading(replyingTo: none).inReplyTo == nil)
        #expect(MessageComposer.threading(replyingTo: none).references.isEmpty)
    }

    @Test func replyRecipients() {
        let single = MessageComposer.replyRecipients(Self.parent, replyAll: false, me: "alice@mail.i2p")
        #expect(single.to == ["bob@x.i2p"])
        #expect(single.cc.isEmpty)
        let all = MessageComposer.replyRecipients(Self.parent, replyAll: true, me: "Alice@Mail.i2p")
        #expect(all.to == ["bob@x.i2p"])
        #expect(all.cc == ["carol@y.i2p", "dave@z.i2p"])
        let withReplyTo = MessageView(parsing: Array("From: bob@x.i2p\r\nReply-To: list@l.i2p\r\nTo: list@l.i2p, me@m.i2p\r\n\r\n".utf8))
        #expect(MessageComposer.replyRecipients(withReplyTo, replyAll: true, me: "me@m.i2p") == (to: ["list@l.i2p"], cc: []))
        let mine = MessageView(parsing: Array("From: me@m.i2p\r\nTo: bob@x.i2p\r\n\r\n".utf8))
        #expect(MessageComposer.replyRecipients(mine, replyAll: false, me: "me@m.i2p").to == ["bob@x.i2p"])
    }

    @Test func forwardBody() {
        let body = MessageComposer.forwardBody(Self.parent)
        #expect(body == "---------- Forwarded message ----------\nFrom: Bob Example <bob@x.i2p>\nDate: Tue, 1 Jul 2003 08:52:37 +0000\nSubject: Plans\nTo: alice@mail.i2p, carol@y.i2p\nCc: dave@z.i2p, ALICE@mail.i2p\n\nLine one\n\n> older\n")
    }

    @Test func quotedPrintableEncoderRoundTrips() {
        var random = SeededRandom(seed: 3)
        for _ in 0..<100 {
            let bytes = (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next() % 4 == 0 ? random.next() : 32 + random.next() % 95) }
            let encoded = MIMETransferEncoding.encodeQuotedPrintable(bytes)
            #expect(MIMETransferEncoding.decodeQuotedPrintable(encoded).bytes == bytes)
            for line in encoded.split(separator: 10) { #expect(line.count <= 77) }
            let b64 = MIMETransferEncoding.encodeBase64(bytes)
            #expect(MIMETransferEncoding.decodeBase64(b64).bytes == bytes)
        }
    }
}

extension String {
    /// Any line end as "\n", NUL dropped: what a composed body reads back as.
    func replacingCRs() -> String {
        var out = ""
        var previousCR = false
        for s in unicodeScalars {
            if s == "\n" && previousCR { previousCR = false; continue }
            previousCR = s == "\r"
            if s == "\0" { continue }
            out.unicodeScalars.append(s == "\r" ? "\n" : s)
        }
        return out
    }
}
