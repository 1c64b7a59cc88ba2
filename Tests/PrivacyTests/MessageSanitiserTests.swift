import TestSupport
import Foundation
import MailCore
import Testing
@testable import Privacy

func crlf(_ text: String) -> [UInt8] {
    Array(text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n").utf8)
}

let alice = EmailAddress(localPart: "alice", domain: "mail.i2p")
// 2026-11-29 05:48:37 UTC
let releaseTime: Int64 = 1_795_931_317

func sanitise(_ text: String, seed: UInt64 = 1, rewrite: (from: String, to: String)? = nil) -> String {
    var random = SplitMix64(seed: seed)
    let out = MessageSanitiser().sanitise(crlf(text),
                                          context: .init(sender: alice, messageIDDomain: rewrite?.to ?? "mail.i2p", releaseTime: releaseTime,
                                                         rewriteDomain: rewrite),
                                          random: &random)
    return String(decoding: out, as: UTF8.self)
}

func headerNames(_ message: String) -> [String] {
    HeaderSection.parse(Array(message.utf8)).fields.map(\.name)
}

@Suite struct MessageSanitiserTests {
    static let thunderbird = """
        Received: from [192.168.1.23] (laptop.home.lan [192.168.1.23])
        Message-ID: <5f1c2b3a-1234-4f6e-9a8b-0c1d2e3f4a5b@laptop.home.lan>
        Date: Sun, 29 Nov 2026 00:48:37 -0500
        MIME-Version: 1.0
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0
        Content-Language: en-US
        To: Bob <bob@mail.i2p>
        Bcc: secret@mail.i2p
        From: "Alice Example" <alice@mail.i2p> (home 10.0.0.5)
        Subject: =?UTF-8?Q?R=C3=A9union?=
        X-Originating-IP: 10.0.0.5
        Organization: ACME
        In-Reply-To: <orig@example.com>
        References: <root@example.com>
         <orig@example.com>
        Disposition-Notification-To: alice@mail.i2p
        content-type: text/plain; charset=UTF-8; format=flowed
        Content-Transfer-Encoding: 8bit

        Body line one.
        Body line two.

        """

    @Test func headerKeepsOnlyTheAllowListInFixedOrder() {
        let out = sanitise(Self.thunderbird)
        #expect(headerNames(out) == ["Date", "From", "To", "Subject", "Message-ID", "In-Reply-To", "References",
                                     "MIME-Version", "Content-Type", "Content-Transfer-Encoding"])
        for leak in ["192.168", "10.0.0.5", "laptop", "Thunderbird", "ACME", "-0500", "secret@", "en-US", "home"] {
            #expect(!out.contains(leak), "\(leak) survived")
        }
    }

    @Test func dateIsReleaseTimeInUTCToTheMinute() {
        let out = sanitise(Self.thunderbird)
        #expect(out.contains("Date: Sun, 29 Nov 2026 05:48:00 +0000\r\n"))
    }

    @Test func messageIDIsFreshRandomAtTheDomain() {
        let a = sanitise(Self.thunderbird, seed: 1)
        let b = sanitise(Self.thunderbird, seed: 2)
        let idA = HeaderSection.parse(Array(a.utf8)).fields(named: "Message-ID")[0].value
        let idB = HeaderSection.parse(Array(b.utf8)).fields(named: "Message-ID")[0].value
        #expect(idA != idB)
        #expect(idA.hasSuffix("@mail.i2p>"))
        #expect(idA.count == "<@mail.i2p>".count + 26)
    }

    @Test func fromKeepsDisplayNameDropsComments() {
        let out = sanitise(Self.thunderbird)
        #expect(out.contains("From: \"Alice Example\" <alice@mail.i2p>\r\n"))
    }

    @Test func missingFromIsAdded() {
        let out = sanitise("Subject: x\n\nbody\n")
        #expect(out.contains("From: <alice@mail.i2p>\r\n"))
        #expect(out.hasSuffix("\r\n\r\nbody\r\n"))
    }

    @Test func foldedHeadersAndEncodedWordsSurvive() {
        let out = sanitise(Self.thunderbird)
        #expect(out.contains("References: <root@example.com>\r\n <orig@example.com>\r\n"))
        #expect(out.contains("Subject: =?UTF-8?Q?R=C3=A9union?=\r\n"))
        #expect(out.contains("Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"))
    }

    @Test func bodyIsByteIdentical() {
        let out = sanitise(Self.thunderbird)
        #expect(out.hasSuffix("\r\n\r\nBody line one.\r\nBody line two.\r\n"))
    }

    static let multipart = """
        From: alice@mail.i2p
        To: bob@mail.i2p
        Subject: parts
        MIME-Version: 1.0
        Content-Type: multipart/mixed; boundary="------------ThunderbirdBoundary123"

        This is a multi-part message in MIME format.
        --------------ThunderbirdBoundary123
        Content-Type: multipart/alternative;
         boundary="------------InnerAlt456"

        --------------InnerAlt456
        Content-Type: text/plain; charset=UTF-8
        Content-Transfer-Encoding: 7bit
        X-Part-Leak: yes

        plain text
        --------------InnerAlt456
        Content-Type: text/html; charset=UTF-8

        <p>html</p>
        --------------InnerAlt456--

        --------------ThunderbirdBoundary123
        Content-Type: application/pdf; name="r=C3=A9sum=C3=A9.pdf"; x-unix-mode=0644
        Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf;
         creation-date="Sun, 29 Nov 2026 00:40:00 -0500";
         modification-date="Sun, 29 Nov 2026 00:41:00 -0500"; size=6
        Content-Transfer-Encoding: base64
        Content-ID: <part1@mail.i2p>

        JVBERi0=
        --------------ThunderbirdBoundary123--
        epilogue text
        """

    @Test func mimeStructureIsRebuilt() {
        let out = sanitise(Self.multipart)
        for leak in ["ThunderbirdBoundary123", "InnerAlt456", "creation-date", "modification-date", "X-Part-Leak",
                     "x-unix-mode", "multi-part message", "epilogue"] {
            #expect(!out.contains(leak), "\(leak) survived")
        }
        #expect(out.contains("filename*=utf-8''r%C3%A9sum%C3%A9.pdf"))
        #expect(out.contains("size=6"))
        #expect(!out.contains("part1@mail.i2p"))  // no part refers to it: dropped
        // Leaf bodies unchanged, in order.
        let root = MIMEEntity.parse(Array(out.utf8))
        let leaves = flatten(root)
        let bytes = Array(out.utf8)
        #expect(leaves.map { String(decoding: bytes[$0.bodyRange], as: UTF8.self) } == ["plain text", "<p>html</p>", "JVBERi0="])
    }

    @Test func signedPartStaysByteIdentical() {
        let signedPart = "Content-Type: text/plain; charset=us-ascii\r\nX-Inner: kept\r\nContent-Disposition: inline; creation-date=\"x\"\r\n\r\nsigned body\r\n--not-a-boundary\r\n"
        let message = """
            From: alice@mail.i2p
            Subject: signed
            Content-Type: multipart/signed; micalg=pgp-sha256;
             protocol="application/pgp-signature"; boundary="sig-boundary-1"

            --sig-boundary-1
            \(signedPart.replacingOccurrences(of: "\r\n", with: "\n"))
            --sig-boundary-1
            Content-Type: application/pgp-signature; name="signature.asc"

            -----BEGIN PGP SIGNATURE-----
            abc
            -----END PGP SIGNATURE-----

            --sig-boundary-1--

            """
        let out = sanitise(message)
        #expect(out.contains("\r\n" + signedPart + "\r\n--=_"))
        #expect(!out.contains("sig-boundary-1"))
        #expect(out.contains("micalg=pgp-sha256"))
    }

    @Test func internetBoundRewritesDomains() {
        let out = sanitise("From: Alice <alice@mail.i2p>\nTo: bob@mail.i2p, x@example.com\nCc: carol@MAIL.I2P\nReply-To: alice@mail.i2p.example\n\nhi\n",
                           rewrite: ("mail.i2p", "i2pmail.org"))
        #expect(out.contains("To: bob@i2pmail.org, x@example.com\r\n"))
        #expect(out.contains("Cc: carol@i2pmail.org\r\n"))
        #expect(out.contains("Reply-To: alice@mail.i2p.example\r\n"))
        #expect(out.contains("@i2pmail.org>\r\n"))  // Message-ID domain
    }

    @Test func internetBoundMovesAutocryptsAddressWithFrom() {
        let autocrypt = "Autocrypt: addr=alice@mail.i2p; prefer-encrypt=mutual; keydata=\n mDMEawu+ORYJKwYBBAHaRw8BAQdA\n"
        let out = sanitise("From: alice@mail.i2p\n" + autocrypt + "\nhi\n", rewrite: ("mail.i2p", "i2pmail.org"))
        #expect(out.contains("Autocrypt: addr=alice@i2pmail.org; prefer-encrypt=mutual; keydata=\r\n mDMEawu+ORYJKwYBBAHaRw8BAQdA\r\n"))
        #expect(sanitise("From: alice@mail.i2p\n" + autocrypt + "\nhi\n").contains("addr=alice@mail.i2p;"))  // submission: kept
    }

    @Test func unreadableMultipartIsKeptOpaqueWithSanitisedHeader() {
        let message = "From: alice@mail.i2p\nUser-Agent: leaky\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nno closing delimiter\n"
        let out = sanitise(message)
        #expect(!out.contains("User-Agent"))
        #expect(out.hasSuffix("\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nno closing delimiter\r\n"))
    }

    @Test func unreferencedContentIDsAreDroppedReferencedOnesKept() {
        let attachment = """
            From: alice@mail.i2p
            Content-Type: multipart/mixed; boundary="b"

            --b
            Content-Type: text/plain
            Content-ID: <20261129165915.12481@raspberrypi.local>

            text
            --b--

            """
        #expect(!sanitise(attachment).contains("raspberrypi"))
        let related = """
            From: alice@mail.i2p
            Content-Type: multipart/related; boundary="b"

            --b
            Content-Type: text/html

            <img src="cid:img1@mail.i2p">
            --b
            Content-Type: image/png
            Content-ID: <img1@mail.i2p>

            iVBO
            --b--

            """
        #expect(sanitise(related).contains("Content-ID: <img1@mail.i2p>\r\n"))
    }

    @Test func referencesAreRewrittenWithKnownReplacements() {
        var random = SplitMix64(seed: 9)
        let message = crlf("From: alice@mail.i2p\nIn-Reply-To: <cover@laptop.lan>\nReferences: <root@example.com>\n <cover@laptop.lan>\n\nbody\n")
        let out = String(decoding: MessageSanitiser().sanitise(message, context: .init(
            sender: alice, messageIDDomain: "mail.i2p", releaseTime: 0, messageID: "<fixed@mail.i2p>",
            referenceReplacements: ["<cover@laptop.lan>": "<new1@mail.i2p>"]), random: &random), as: UTF8.self)
        #expect(out.contains("Message-ID: <fixed@mail.i2p>\r\n"))
        #expect(out.contains("In-Reply-To: <new1@mail.i2p>\r\n"))
        #expect(out.contains("References: <root@example.com>\r\n <new1@mail.i2p>\r\n"))
        #expect(!out.contains("laptop"))
    }

    @Test func messageIDsAreReadFromValues() {
        #expect(MessageSanitiser.messageIDs(in: "<a@b> (comment <x@y>)\t<c@d>") == ["<a@b>", "<c@d>"])
        #expect(MessageSanitiser.messageIDs(in: "no ids here").isEmpty)
    }

    func flatten(_ entity: MIMEEntity) -> [MIMEEntity] {
        guard let parts = entity.parts else { return [entity] }
        return parts.flatMap(flatten)
    }
}

@Suite struct InboundSanitiserTests {
    @Test func rewritesRecipientsDropsReceiptsAndAddsVerdict() {
        let message = crlf("""
            Received: from mx.example.com by mx.i2pmail.org
            Authentication-Results: i2pmail.org; spf=pass (forged)
            Authentication-Results: other.example; dkim=pass
            From: someone@example.com
            To: Alice <alice@i2pmail.org>
            Cc: bob@I2PMAIL.ORG, x@example.com
            Disposition-Notification-To: someone@example.com
            Return-Receipt-To: someone@example.com
            Subject: hi

            body

            """)
        let out = String(decoding: InboundSanitiser(internetDomain: "i2pmail.org", internalDomain: "mail.i2p")
            .sanitise(message, verdict: "spf=pass smtp.mailfrom=example.com"), as: UTF8.self)
        #expect(out.hasPrefix("Authentication-Results: i2pmail.org; spf=pass smtp.mailfrom=example.com\r\n"))
        #expect(!out.contains("(forged)"))
        #expect(out.contains("Authentication-Results: other.example; dkim=pass\r\n"))
        #expect(out.contains("To: Alice <alice@mail.i2p>\r\n"))
        #expect(out.contains("Cc: bob@mail.i2p, x@example.com\r\n"))
        #expect(!out.contains("Disposition-Notification-To") && !out.contains("Return-Receipt-To"))
        #expect(out.hasSuffix("\r\n\r\nbody\r\n"))
    }
}

@Suite struct RFC5322DateTests {
    @Test(arguments: [
        (Int64(0), "Thu, 1 Jan 1970 00:00:00 +0000"),
        (Int64(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000"),
        (Int64(1_795_931_317), "Sun, 29 Nov 2026 05:48:00 +0000"),
        (Int64(-1), "Wed, 31 Dec 1969 23:59:00 +0000"),
    ])
    func formats(seconds: Int64, expected: String) {
        #expect(RFC5322Date.format(secondsSince1970: seconds) == expected)
    }

    @Test func unroundedKeepsSeconds() {
        #expect(RFC5322Date.format(secondsSince1970: 1_795_931_317, roundedToMinute: false) == "Sun, 29 Nov 2026 05:48:37 +0000")
    }
}
