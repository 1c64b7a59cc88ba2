import MailCore
import Testing
@testable import Privacy

// The ordering of what the gateway puts on top (its verdict, then its trace field), the exact
// output, and the edges of the forged-verdict rule; `InboundSanitiserTests` in
// MessageSanitiserTests.swift covers the basic rewriting without a trace.

private let sanitiser = InboundSanitiser(internetDomain: "i2pmail.org", internalDomain: "mail.i2p")
private let trace = "Received: by i2pmail.org with ESMTPS id abc123def456;\r\n\tSun, 29 Nov 2026 05:48:00 +0000"

private func run(_ text: String, verdict: String = "spf=pass smtp.mailfrom=example.com", trace: String? = trace,
                 with sanitiser: InboundSanitiser = sanitiser) -> String {
    String(decoding: sanitiser.sanitise(crlf(text), verdict: verdict, trace: trace), as: UTF8.self)
}

/// The header section of a sanitised message, one string per line.
private func headerLines(_ output: String) -> [String] {
    let header = output.components(separatedBy: "\r\n\r\n").first ?? ""
    return header.components(separatedBy: "\r\n")
}

@Suite struct InboundSanitiserTraceTests {
    @Test func verdictFirstTraceSecondThenTheMessage() {
        let body = """
            To: carol@i2pmail.org
            Authentication-Results: i2pmail.org; spf=pass
            Disposition-Notification-To: someone@example.com

            ..a line with a dot, trailing spaces   \t
            """
        let output = run("""
            Received: from mx.example.com by relay.example.com; Sun, 29 Nov 2026 05:47:00 +0000
            Authentication-Results: i2pmail.org; spf=pass smtp.mailfrom=example.com
            Authentication-Results: mx.example.com; dkim=pass header.d=example.com
            From: Someone <someone@example.com>
            To: Alice <alice@i2pmail.org>,
             Bob <bob@I2PMAIL.org>
            Cc: carol@i2pmail.org, dave@example.com
            Disposition-Notification-To: someone@example.com
            Return-Receipt-To: <someone@example.com>
            Subject: about alice@i2pmail.org

            \(body)
            """)
        let expected = "Authentication-Results: i2pmail.org; spf=pass smtp.mailfrom=example.com\r\n"
            + trace + "\r\n"
            + "Received: from mx.example.com by relay.example.com; Sun, 29 Nov 2026 05:47:00 +0000\r\n"
            + "Authentication-Results: mx.example.com; dkim=pass header.d=example.com\r\n"
            + "From: Someone <someone@example.com>\r\n"
            + "To: Alice <alice@mail.i2p>,\r\n Bob <bob@mail.i2p>\r\n"
            + "Cc: carol@mail.i2p, dave@example.com\r\n"
            + "Subject: about alice@i2pmail.org\r\n"
            + "\r\n"
            + String(decoding: crlf(body), as: UTF8.self)
        #expect(output == expected)
        let lines = headerLines(output)
        #expect(lines[0].hasPrefix("Authentication-Results: i2pmail.org; "))
        #expect(lines[1].hasPrefix("Received: by i2pmail.org with ESMTPS id "))
        // The body is never touched, even where it looks like a header.
        #expect(output.hasSuffix("\r\n\r\n" + String(decoding: crlf(body), as: UTF8.self)))
    }

    @Test func withoutTraceOnlyTheVerdictIsAdded() {
        let output = run("From: a@example.com\n\nx\n", trace: nil)
        #expect(output == "Authentication-Results: i2pmail.org; spf=pass smtp.mailfrom=example.com\r\nFrom: a@example.com\r\n\r\nx\r\n")
        #expect(!output.contains("Received:"))
    }

    @Test func exactlyOneVerdictOfOursSurvives() {
        let output = run("""
            Authentication-Results: i2pmail.org; spf=pass
            Authentication-Results: I2PMAIL.ORG; dkim=pass header.d=i2pmail.org
            Authentication-Results: i2pmail.org 1; dmarc=pass
            Authentication-Results:
             i2pmail.org; spf=pass (folded)
            Authentication-Results: i2pmail.org;spf=pass
            Authentication-Results: i2pmail.org.evil.example; spf=pass
            Authentication-Results: evil.i2pmail.org; spf=pass
            Authentication-Results: other.example; spf=fail
            From: a@example.com

            x
            """, verdict: "spf=fail smtp.mailfrom=example.com")
        let verdicts = headerLines(output).filter { $0.lowercased().hasPrefix("authentication-results:") }
        #expect(verdicts == [
            "Authentication-Results: i2pmail.org; spf=fail smtp.mailfrom=example.com",
            "Authentication-Results: i2pmail.org.evil.example; spf=pass",
            "Authentication-Results: evil.i2pmail.org; spf=pass",
            "Authentication-Results: other.example; spf=fail",
        ])
        #expect(!output.contains("(folded)"))
        #expect(!output.contains("dmarc=pass"))
    }

    @Test func anotherAuthservIDProtectsItsOwnName() {
        let custom = InboundSanitiser(internetDomain: "i2pmail.org", internalDomain: "mail.i2p", authservID: "mx.i2pmail.org")
        let output = run("""
            Authentication-Results: mx.i2pmail.org; spf=pass
            Authentication-Results: i2pmail.org; spf=pass
            To: alice@i2pmail.org

            x
            """, verdict: "spf=none", with: custom)
        #expect(headerLines(output) == [
            "Authentication-Results: mx.i2pmail.org; spf=none",
            trace.components(separatedBy: "\r\n")[0],
            trace.components(separatedBy: "\r\n")[1],
            "Authentication-Results: i2pmail.org; spf=pass",
            "To: alice@mail.i2p",
        ])
    }

    @Test func recipientFieldsNamedInAnyCaseAreRewrittenOthersAreNot() {
        let output = run("""
            TO: alice@i2pmail.org
            cc: bob@i2pmail.org
            Bcc: carol@i2pmail.org
            Reply-To: alice@i2pmail.org
            Resent-To: dave@i2pmail.org
            To: eve@i2pmail.orgx.example, frank@i2pmail.org.example

            x
            """, trace: nil)
        let lines = headerLines(output)
        #expect(lines.contains("TO: alice@mail.i2p"))
        #expect(lines.contains("cc: bob@mail.i2p"))
        #expect(lines.contains("Reply-To: alice@i2pmail.org"))
        #expect(lines.contains("Resent-To: dave@i2pmail.org"))
        #expect(lines.contains("To: eve@i2pmail.orgx.example, frank@i2pmail.org.example"))
        #expect(lines.contains("Bcc: carol@i2pmail.org"))
    }

    @Test func receiptRequestsInAnyCaseAndFoldedAreRemoved() {
        let output = run("""
            disposition-notification-to: someone@example.com
            RETURN-RECEIPT-TO:
             someone@example.com
            Disposition-Notification-Options: signed-receipt-protocol=optional,pkcs7-signature
            From: a@example.com

            x
            """, trace: nil)
        #expect(!output.lowercased().contains("disposition-notification-to"))
        #expect(!output.lowercased().contains("return-receipt-to"))
        #expect(!output.contains(" someone@example.com\r\n"))
        #expect(headerLines(output).contains("From: a@example.com"))
    }

    @Test func headerOnlyMessageGetsItsEmptyLine() {
        let output = String(decoding: sanitiser.sanitise(Array("From: a@example.com\r\nTo: b@i2pmail.org\r\n".utf8),
                                                         verdict: "spf=none", trace: trace), as: UTF8.self)
        #expect(output == "Authentication-Results: i2pmail.org; spf=none\r\n" + trace + "\r\n"
            + "From: a@example.com\r\nTo: b@mail.i2p\r\n\r\n")
    }

    /// RFC 8601 2.2: the authserv-id may be followed by CFWS (a tab, a comment) before the ";",
    /// and may be a quoted-string. A field claiming this gateway's id in any of these forms is a
    /// forgery (RFC 8601 5) and must go, as must one with a comment before the id.
    @Test func forgedVerdictWithCFWSAfterTheAuthservID() {
        for forged in ["Authentication-Results: i2pmail.org\t; spf=pass",
                       "Authentication-Results: i2pmail.org(forged); spf=pass",
                       "Authentication-Results: \"i2pmail.org\"; spf=pass",
                       "Authentication-Results: (a comment) I2PMAIL.ORG; spf=pass"] {
            let output = run(forged + "\nFrom: a@example.com\n\nx\n", verdict: "spf=fail", trace: nil)
            let verdicts = headerLines(output).filter { $0.hasPrefix("Authentication-Results:") }
            #expect(verdicts == ["Authentication-Results: i2pmail.org; spf=fail"], "\(forged)")
        }
        // Another server's verdict stays, whatever it looks like.
        let kept = run("Authentication-Results: \"mx.example.com\" (i2pmail.org); spf=pass\nFrom: a@example.com\n\nx\n",
                       verdict: "spf=fail", trace: nil)
        #expect(headerLines(kept).filter { $0.hasPrefix("Authentication-Results:") }.count == 2)
    }
}
