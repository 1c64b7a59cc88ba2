import Foundation
import MailCore
import Testing
@testable import Privacy

// SCAN-2: `InboundHTMLPolicy.apply` rewrites the HTML a reader's client would show and keeps
// every other byte. The interop test (tests/interop/test_inbound_html.py) renders its output in
// a real browser; these pin the MIME surgery.

private func apply(_ text: String) -> InboundHTMLPolicy.Result {
    InboundHTMLPolicy.apply(crlf(text))
}

private func string(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first && Array(haystack[i..<(i + needle.count)]) == needle { return true }
        i += 1
    }
    return false
}

private func base64Lines(_ bytes: [UInt8]) -> String {
    let encoded = Data(bytes).base64EncodedString()
    var lines: [String] = []
    var rest = Substring(encoded)
    while !rest.isEmpty {
        lines.append(String(rest.prefix(76)))
        rest = rest.dropFirst(76)
    }
    return lines.joined(separator: "\n")
}

/// The leaves of a message, as the policy sees them (lenient MIME parse).
private func leaves(_ message: [UInt8]) -> [MIMEEntity] {
    var out: [MIMEEntity] = []
    func walk(_ entity: MIMEEntity) {
        if let parts = entity.parts { parts.forEach(walk) } else { out.append(entity) }
    }
    walk(MIMEEntity.parse(message, lenient: true))
    return out
}

private func field(_ entity: MIMEEntity, _ name: String) -> String? {
    entity.fields.last { $0.name.lowercased() == name.lowercased() }?.value
}

/// A leaf's body decoded to text by its transfer encoding and charset.
private func text(of entity: MIMEEntity, in message: [UInt8]) -> String {
    let decoded = MIMETransferEncoding.decode(message[entity.bodyRange], encoding: field(entity, "Content-Transfer-Encoding")).0
    return MIMECharset.decode(decoded.bytes, charset: entity.contentType["charset"]).text
}

/// The decoded HTML of every text/html leaf.
private func htmlTexts(_ message: [UInt8]) -> [String] {
    leaves(message).filter { $0.contentType.value.lowercased() == "text/html" }.map { text(of: $0, in: message) }
}

/// The decoded HTML of the message's one text/html leaf ("" when there is not exactly one).
private func onlyHTML(_ message: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> String {
    let texts = htmlTexts(message)
    #expect(texts.count == 1, sourceLocation: sourceLocation)
    return texts.count == 1 ? texts[0] : ""
}

/// Every rewritten part says what it now is, and nothing else about its body.
private func expectRewrittenHeader(_ entity: MIMEEntity, sourceLocation: SourceLocation = #_sourceLocation) {
    let types = entity.fields.filter { $0.name.lowercased() == "content-type" }
    let encodings = entity.fields.filter { $0.name.lowercased() == "content-transfer-encoding" }
    #expect(types.map(\.value) == ["text/html; charset=utf-8"], sourceLocation: sourceLocation)
    #expect(encodings.map(\.value) == ["quoted-printable"], sourceLocation: sourceLocation)
}

private let tracker = "http://tracker.example/p.gif"

@Suite struct InboundHTMLPolicyTests {
    // MARK: - single part

    @Test func singlePartHTMLKeepsTheHeaderButDescribesTheNewBody() {
        let input = """
            From: Shop <news@shop.example>
            To: alice@mail.i2p
            Subject: offers
            MIME-Version: 1.0
            Content-Type: text/html; charset="us-ascii"
            X-Campaign: 42
            Content-Transfer-Encoding: 7bit
            Received: by i2pmail.org with ESMTP id abc;
            \tMon, 30 Nov 2026 10:00:00 +0000

            <html><body><p>Hello <b>Alice</b></p><img src="\(tracker)" width="1"></body></html>

            """
        let result = apply(input)
        #expect(result.parts == 1)
        #expect(result.removedRemoteReferences >= 1)
        let out = string(result.message)
        let header = out.components(separatedBy: "\r\n\r\n")[0]
        // Every field but Content-Type and Content-Transfer-Encoding, as it was and in order (the
        // folded one too); then the two new ones.
        #expect(header == """
            From: Shop <news@shop.example>\r
            To: alice@mail.i2p\r
            Subject: offers\r
            MIME-Version: 1.0\r
            X-Campaign: 42\r
            Received: by i2pmail.org with ESMTP id abc;\r
            \tMon, 30 Nov 2026 10:00:00 +0000\r
            Content-Type: text/html; charset=utf-8\r
            Content-Transfer-Encoding: quoted-printable
            """)
        let html = onlyHTML(result.message)
        #expect(html.contains("<p>Hello <b>Alice</b></p>"))
        #expect(!html.contains("tracker.example"))
        #expect(!out.contains("tracker.example"))
        #expect(out.hasSuffix("\r\n"))
    }

    @Test func aMessageWithoutHTMLIsReturnedByteIdentical() {
        let inputs = [
            """
            From: a@example.com
            Subject: plain

            <p>this is text/plain, even if it looks like HTML <img src="\(tracker)"></p>
            """,
            """
            From: a@example.com
            Content-Type: multipart/mixed; boundary="b"

            --b
            Content-Type: text/plain

            hello <img src="\(tracker)">
            --b
            Content-Type: application/pdf
            Content-Transfer-Encoding: base64

            JVBERi0xLjQK
            --b--

            """,
            "no header at all, and no line end",
        ]
        for input in inputs {
            let bytes = crlf(input)
            let result = InboundHTMLPolicy.apply(bytes)
            #expect(result.parts == 0)
            #expect(result.message == bytes)
            #expect(result.removedRemoteReferences == 0 && result.removedActiveContent == 0)
        }
    }

    // MARK: - multiparts

    @Test func alternativeKeepsThePlainTextByteIdentical() {
        let plainPart = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
            + "Gr=C3=BC=C3=9Fe, a line with trailing spaces  =20\nand a soft=\n break, x=3Dy\n\n-- \nsig"
        let head = """
            From: Shop <news@shop.example>
            Subject: offers
            MIME-Version: 1.0
            Content-Type: multipart/alternative; boundary="alt"

            This is the preamble.

            --alt
            \(plainPart)
            --alt

            """
        let tail = """

            --alt--
            The epilogue.

            """
        let input = head + """
            Content-Type: text/html; charset=utf-8
            Content-Transfer-Encoding: quoted-printable

            <p style=3D"background:url(\(tracker))">Gr=C3=BC=C3=9Fe</p><img src=3D"\(tracker)">
            """ + tail
        let result = apply(input)
        #expect(result.parts == 1)
        #expect(result.removedRemoteReferences >= 2)
        // Everything up to the HTML part and everything after it: the same bytes.
        #expect(Array(result.message.prefix(crlf(head).count)) == crlf(head))
        #expect(Array(result.message.suffix(crlf(tail).count)) == crlf(tail))
        #expect(contains(result.message, crlf("--alt\n" + plainPart + "\n--alt\n")))
        let parts = leaves(result.message)
        #expect(parts.map(\.contentType.value) == ["text/plain", "text/html"])
        #expect(Array(result.message[parts[0].range]) == crlf(plainPart))
        expectRewrittenHeader(parts[1])
        let html = text(of: parts[1], in: result.message)
        #expect(html.contains("Grüße"))
        #expect(!html.contains("tracker.example"))
    }

    @Test func relatedKeepsCidReferencesAndTheImagePart() {
        let imagePart = """
            Content-Type: image/png; name="logo.png"
            Content-Transfer-Encoding: base64
            Content-ID: <logo@shop.example>
            Content-Disposition: inline; filename="logo.png"

            iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9
            awAAAABJRU5ErkJggg==
            """
        let input = """
            From: a@shop.example
            Content-Type: multipart/related; boundary="rel"; type="text/html"

            --rel
            Content-Type: text/html; charset=us-ascii

            <p>Logo: <img src="cid:logo@shop.example" alt="logo"> and <img src="\(tracker)"></p>
            --rel
            \(imagePart)
            --rel--

            """
        let result = apply(input)
        #expect(result.parts == 1)
        let parts = leaves(result.message)
        #expect(parts.map(\.contentType.value) == ["text/html", "image/png"])
        let html = text(of: parts[0], in: result.message)
        #expect(html.contains("src=\"cid:logo@shop.example\""))
        #expect(!html.contains("tracker.example"))
        #expect(Array(result.message[parts[1].range]) == crlf(imagePart))
        #expect(contains(result.message, crlf("--rel\n" + imagePart + "\n--rel--\n")))
    }

    @Test func anHTMLAttachmentIsLeftAlone() {
        let attachment = """
            Content-Type: text/html; charset=us-ascii; name="invoice.html"
            Content-Disposition: ATTACHMENT; filename="invoice.html"

            <html><img src="\(tracker)"><script>alert(1)</script></html>
            """
        let input = """
            From: a@shop.example
            Content-Type: multipart/mixed; boundary="mix"

            --mix
            Content-Type: text/plain

            See the attachment.
            --mix
            \(attachment)
            --mix--

            """
        let result = apply(input)
        #expect(result.parts == 0)
        #expect(result.message == crlf(input))

        // Beside a displayed HTML part: only that one is rewritten.
        let both = input.replacingOccurrences(of: "--mix--", with: """
            --mix
            Content-Type: text/html
            Content-Disposition: inline

            <p>shown<img src="\(tracker)"></p>
            --mix--
            """)
        let rewritten = apply(both)
        #expect(rewritten.parts == 1)
        #expect(contains(rewritten.message, crlf("--mix\n" + attachment + "\n--mix\n")))
        let parts = leaves(rewritten.message)
        #expect(field(parts[2], "Content-Disposition") == "inline")
        expectRewrittenHeader(parts[2])
    }

    // MARK: - encodings and charsets

    @Test func base64HTMLIsDecodedAndRewritten() {
        let html = "<p>Привет, 世界 — \(tracker)</p><img src=\"\(tracker)\"><p>end</p>"
        let input = """
            From: a@shop.example
            Content-Type: text/html; charset=UTF-8
            Content-Transfer-Encoding: BASE64

            \(base64Lines(Array(html.utf8)))

            """
        let result = apply(input)
        #expect(result.parts == 1)
        let out = onlyHTML(result.message)
        #expect(out.contains("Привет, 世界 — "))
        #expect(out.contains("<p>end</p>"))
        #expect(!out.contains("<img src"))
        expectRewrittenHeader(leaves(result.message)[0])
        #expect(!string(result.message).lowercased().contains("base64"))
    }

    @Test func quotedPrintableHTMLIsDecodedAndRewritten() {
        let input = """
            From: a@shop.example
            Content-Type: text/html; charset="utf-8"
            Content-Transfer-Encoding: Quoted-Printable

            <p class=3D"x">caf=C3=A9 =E2=82=AC 5, a very long line that is wrapped by a so=
            ft line break</p><img src=3D"\(tracker)" onerror=3D"alert(1)">

            """
        let result = apply(input)
        #expect(result.parts == 1)
        #expect(result.removedActiveContent >= 1)
        let out = onlyHTML(result.message)
        #expect(out.contains("café € 5, a very long line that is wrapped by a soft line break</p>"))
        #expect(!out.contains("onerror") && !out.contains("tracker.example"))
    }

    @Test func latin1HTMLIsDecodedInEitherEncoding() {
        let html = "<p>Grüße aus Köln, Ihr Händler – £5</p><img src=\"\(tracker)\">"
        let latin1 = Array(html.replacingOccurrences(of: "–", with: "-").data(using: .isoLatin1)!)
        #expect(latin1.contains(0xFC))  // the ü as one byte
        let head = crlf("From: a@shop.example\nContent-Type: text/html; charset=ISO-8859-1\n")
        let eightBit = head + crlf("Content-Transfer-Encoding: 8bit\n\n") + latin1 + crlf("\n")
        let base64 = head + crlf("Content-Transfer-Encoding: base64\n\n" + base64Lines(latin1) + "\n")
        for input in [eightBit, base64] {
            let result = InboundHTMLPolicy.apply(input)
            #expect(result.parts == 1)
            let out = onlyHTML(result.message)
            #expect(out.contains("<p>Grüße aus Köln, Ihr Händler - £5</p>"))
            #expect(!out.contains("tracker.example"))
            // Written back as UTF-8 quoted-printable: 7-bit clean, the ü as =C3=BC.
            #expect(result.message.allSatisfy { $0 < 0x80 })
            #expect(string(result.message).contains("=C3=BC"))
        }
    }

    // MARK: - broken and nested structure

    @Test func aMissingClosingBoundaryStillRewritesTheHTML() {
        let plainPart = "Content-Type: text/plain\n\nplain <img src=\"\(tracker)\">"
        let input = """
            From: a@shop.example
            Content-Type: multipart/alternative; boundary="alt"

            --alt
            \(plainPart)
            --alt
            Content-Type: text/html

            <p>html</p><img src="\(tracker)"><p>and the message just ends
            """
        let result = apply(input)
        #expect(result.parts == 1)
        #expect(contains(result.message, crlf("--alt\n" + plainPart + "\n--alt\n")))
        let out = onlyHTML(result.message)
        #expect(out.contains("<p>html</p>"))
        #expect(out.contains("and the message just ends"))
        #expect(!out.contains("tracker.example"))
        // The text/plain part is never touched, whatever it says.
        #expect(string(result.message).contains("plain <img src=\"\(tracker)\">"))
    }

    @Test func nestedMultipartsAreRewrittenAtEveryDepth() {
        let plainPart = "Content-Type: text/plain\n\nplain text"
        let pdfPart = "Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK"
        let input = """
            From: a@shop.example
            Content-Type: multipart/mixed; boundary="L1"

            --L1
            Content-Type: multipart/alternative; boundary="L2"

            --L2
            \(plainPart)
            --L2
            Content-Type: multipart/related; boundary="L3"

            --L3
            Content-Type: text/html

            <p>deep</p><img src="\(tracker)">
            --L3
            Content-Type: image/gif
            Content-ID: <g@x>

            GIF89a
            --L3--

            --L2--

            --L1
            \(pdfPart)
            --L1
            Content-Type: text/html; charset=utf-8

            <p>second</p><link rel="stylesheet" href="\(tracker)">
            --L1--

            """
        let result = apply(input)
        #expect(result.parts == 2)
        let texts = htmlTexts(result.message)
        #expect(texts.count == 2)
        #expect(texts[0].contains("<p>deep</p>") && texts[1].contains("<p>second</p>"))
        #expect(!string(result.message).contains("tracker.example"))
        #expect(contains(result.message, crlf("--L2\n" + plainPart + "\n--L2\n")))
        #expect(contains(result.message, crlf("--L1\n" + pdfPart + "\n--L1\n")))
        #expect(contains(result.message, crlf("--L3\nContent-Type: image/gif\nContent-ID: <g@x>\n\nGIF89a\n--L3--\n")))
        let parts = leaves(result.message)
        #expect(parts.map(\.contentType.value) == ["text/plain", "text/html", "image/gif", "application/pdf", "text/html"])
        expectRewrittenHeader(parts[1])
        expectRewrittenHeader(parts[4])
    }

    /// Multiparts MIMEEntity will not read — a boundary over RFC 2046's 70 characters, nesting
    /// deeper than `MIMEEntity.maximumDepth` — are read by mail clients all the same (Python's
    /// email package, Thunderbird): the HTML inside must not reach them untouched.
    @Test(arguments: [(String(repeating: "b", count: 71), 1), (String(repeating: "x", count: 200), 1), ("n", 40)])
    func unreadableMultipartsAreNoWayAround(boundary: String, depth: Int) {
        var entity = "Content-Type: text/html\n\n<p>hi</p><img src=\"\(tracker)\">\n"
        for level in 0..<depth {
            let b = "\(boundary)\(level)"
            entity = "Content-Type: multipart/mixed; boundary=\"\(b)\"\n\n--\(b)\n\(entity)--\(b)--\n"
        }
        let result = apply("From: a@shop.example\nSubject: hidden\nMIME-Version: 1.0\n" + entity)
        #expect(result.parts >= 1)
        #expect(!string(result.message).contains("tracker.example"))
    }

    @Test func applyingTwiceChangesNothingMore() {
        let inputs = [
            """
            From: a@shop.example
            Content-Type: multipart/alternative; boundary="alt"

            --alt
            Content-Type: text/plain

            plain
            --alt
            Content-Type: text/html; charset=iso-8859-1
            Content-Transfer-Encoding: quoted-printable

            <style>p{color:red;background:url(\(tracker))}</style><p>caf=E9 <a href=3D"https://shop.example/x">link</a></p>
            <img src=3D"cid:a@b"><img src=3D"\(tracker)"><script>x()</script>
            --alt--

            """,
            """
            Subject: single
            Content-Type: text/html

            <table><tr><td background="\(tracker)">cell</td></tr></table><p>Dear customer,
            """,
        ]
        for input in inputs {
            let once = apply(input)
            let twice = InboundHTMLPolicy.apply(once.message)
            #expect(once.parts == 1 && twice.parts == 1)
            #expect(twice.removedRemoteReferences == 0 && twice.removedActiveContent == 0)
            let first = htmlTexts(once.message).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            let second = htmlTexts(twice.message).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            #expect(first == second)
            #expect(first.allSatisfy { !$0.contains("tracker.example") })
            // Everything outside the HTML part is the same after either pass.
            let outsideOnce = leaves(once.message).filter { $0.contentType.value != "text/html" }.map { Array(once.message[$0.range]) }
            let outsideTwice = leaves(twice.message).filter { $0.contentType.value != "text/html" }.map { Array(twice.message[$0.range]) }
            #expect(outsideOnce == outsideTwice)
        }
    }

    // MARK: - forwarded messages

    /// A forwarded message's HTML is what a client shows inline: rewritten, its header and the
    /// outer message's other bytes kept.
    @Test func forwardedMessagesHaveTheirHTMLRewritten() {
        let input = """
            Subject: fwd
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="out"

            --out
            Content-Type: text/plain

            see below
            --out
            Content-Type: message/rfc822
            Content-Disposition: attachment; filename="original.eml"

            Subject: original
            Content-Type: text/html

            <p>inner</p><img src="http://tracker.example/inner.gif">
            --out--

            """
        let result = apply(input)
        let out = string(result.message)
        #expect(result.parts == 1)
        #expect(result.removedRemoteReferences >= 1)
        #expect(!out.contains("tracker.example"))
        #expect(out.contains("Subject: original\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"))
        #expect(out.hasPrefix(string(crlf("Subject: fwd\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"out\"\n\n--out\nContent-Type: text/plain\n\nsee below\n--out\n"))))
    }

    /// Forwarded inside forwarded stops at a bound, as MIME nesting does.
    @Test func forwardingIsFollowedOnlySoDeep() {
        var message = "Subject: 0\nContent-Type: text/html\n\n<img src=\"http://tracker.example/deep.gif\">\n"
        for level in 1...(InboundHTMLPolicy.maximumEmbedding + 1) {
            message = "Subject: \(level)\nContent-Type: message/rfc822\n\n" + message
        }
        #expect(apply(message).parts == 0)
        var shallow = "Subject: 0\nContent-Type: text/html\n\n<img src=\"http://tracker.example/deep.gif\">\n"
        for level in 1...InboundHTMLPolicy.maximumEmbedding {
            shallow = "Subject: \(level)\nContent-Type: message/rfc822\n\n" + shallow
        }
        #expect(apply(shallow).parts == 1)
    }
}
