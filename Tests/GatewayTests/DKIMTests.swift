import Crypto
import MailCore
import Foundation
import Testing
@testable import Gateway

/// DKIM (RFC 6376, RFC 8463): canonicalization on the RFC's own example, the fields chosen, keys
/// and records. That real verifiers accept the signatures is tested in tests/interop/test_dkim.py.
@Suite struct DKIMTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func relaxedCanonicalizationOfTheRFCExample() {
        // RFC 6376 3.4.5.
        #expect(DKIM.relaxedHeader(Self.bytes("A: X")) == Self.bytes("a:X"))
        #expect(DKIM.relaxedHeader(Self.bytes("B : Y\t\r\n\tZ  ")) == Self.bytes("b:Y Z"))
        #expect(DKIM.relaxedBody(Self.bytes(" C \r\nD \t E\r\n\r\n\r\n")) == Self.bytes(" C\r\nD E\r\n"))
    }

    @Test func relaxedBodyEdgeCases() {
        #expect(DKIM.relaxedBody([]) == [])
        #expect(DKIM.relaxedBody(Self.bytes("\r\n\r\n")) == [])
        #expect(DKIM.relaxedBody(Self.bytes("no final line break")) == Self.bytes("no final line break\r\n"))
        #expect(DKIM.relaxedBody(Self.bytes("a\r\n \r\nb\r\n")) == Self.bytes("a\r\n\r\nb\r\n"))  // inner empty lines stay
    }

    static let message = Self.bytes("From: Alice <alice@i2pmail.org>\r\nTo: bob@example.com\r\nSubject: hello\r\n"
                                    + "Date: Sun, 29 Nov 2026 12:00:00 +0000\r\nMessage-ID: <abc@i2pmail.org>\r\n"
                                    + "X-Other: not signed\r\n\r\nHello Bob.\r\n")

    @Test func signsTheListedFieldsAndOversignsFrom() throws {
        let field = try DKIM.signatureField(for: Self.message, domain: "i2pmail.org", selector: "s-ed25519",
                                            key: .ed25519(.init()), time: 1_796_000_000)
        #expect(field.hasPrefix("DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=i2pmail.org; s=s-ed25519;\r\n"))
        #expect(field.contains("\tt=1796000000; h=from:from:to:subject:date:message-id;\r\n"))
        // bh is the SHA-256 of the relaxed body.
        let bh = Data(SHA256.hash(data: Self.bytes("Hello Bob.\r\n"))).base64EncodedString()
        #expect(field.contains("\tbh=\(bh);\r\n"))
        #expect(field.hasSuffix("\r\n") && field.split(separator: "\n").allSatisfy { $0.utf8.count < 998 })
    }

    @Test func ed25519SignaturesAreDeterministicAndCoverTheBody() throws {
        let key = DKIM.Key.ed25519(.init())
        let one = try DKIM.signatureField(for: Self.message, domain: "i2pmail.org", selector: "s", key: key, time: 1)
        let two = try DKIM.signatureField(for: Self.message, domain: "i2pmail.org", selector: "s", key: key, time: 1)
        #expect(one == two)
        var changed = Self.message
        changed[changed.count - 3] = UInt8(ascii: "!")
        #expect(try DKIM.signatureField(for: changed, domain: "i2pmail.org", selector: "s", key: key, time: 1) != one)
    }

    @Test func keysRoundTripThroughPEMAndPublishTheirRecords() throws {
        let ed = Curve25519.Signing.PrivateKey()
        let again = try DKIM.Key(pem: DKIM.Key.ed25519(ed).pemRepresentation)
        guard case .ed25519(let read) = again else { Issue.record("not read as ed25519"); return }
        #expect(read.rawRepresentation == ed.rawRepresentation)
        #expect(again.dnsRecord == "v=DKIM1; k=ed25519; p=\(ed.publicKey.rawRepresentation.base64EncodedString())")
        #expect(DKIM.Key.ed25519(ed).pemRepresentation.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(throws: (any Error).self) { try DKIM.Key(pem: "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n") }
    }
}

/// The verifier's pure parts; real signatures from dkimpy are checked in tests/interop/test_dkim.py.
@Suite struct DKIMVerifierTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func theSignatureValueIsRemovedButNotBH() {
        let raw = Self.bytes("DKIM-Signature: v=1; bh=AAAA;\r\n\tb=abc\r\n\t def; d=x")
        #expect(DKIM.withoutSignatureValue(raw) == Self.bytes("DKIM-Signature: v=1; bh=AAAA;\r\n\tb=; d=x"))
        #expect(DKIM.withoutSignatureValue(Self.bytes("DKIM-Signature: b = xyz")) == Self.bytes("DKIM-Signature: b ="))
    }

    @Test func simpleBodyAndTagLists() {
        #expect(DKIM.simpleBody([]) == [13, 10])
        #expect(DKIM.simpleBody(Self.bytes("a \r\n\r\n\r\n")) == Self.bytes("a \r\n"))
        #expect(DKIM.tagList(" v = DKIM1 ; k=ed25519;p= AB\r\n CD ; v=ignored") == ["v": "DKIM1", "k": "ed25519", "p": "AB\r\n CD"])
    }

    @Test func ourSignaturesVerifyAndTheirFlawsAreNamed() throws {
        let key = Curve25519.Signing.PrivateKey()
        let record = DKIM.Key.ed25519(key).dnsRecord
        let message = Self.bytes("From: a@i2pmail.org\r\nSubject: s\r\n\r\nbody\r\n")
        func check(_ signed: [UInt8], record: String, now: Int64 = 100) throws -> DKIMResult {
            let header = HeaderSection.parse(signed)
            let field = header.fields[0]
            return DKIM.check(try DKIM.Signature(field), field: field, header: header, message: signed, keyRecord: record, now: now)
        }
        let signed = try DKIM.sign(message, domain: "i2pmail.org", selector: "s", key: .ed25519(key), time: 50)
        #expect(try check(signed, record: record).verdict == .pass)
        #expect(try check(signed, record: "v=DKIM1; k=ed25519; p=").reason == "key revoked")
        #expect(try check(signed, record: "v=DKIM1; k=rsa; p=AAAA").reason == "algorithm does not match the key")
        let other = DKIM.Key.ed25519(.init()).dnsRecord
        #expect(try check(signed, record: other) == DKIMResult(verdict: .fail, domain: "i2pmail.org", selector: "s",
                                                                reason: "signature did not verify"))
        let expiring = Self.bytes(String(decoding: signed, as: UTF8.self).replacingOccurrences(of: "t=50;", with: "t=50; x=60;"))
        #expect(try check(expiring, record: record, now: 100).reason == "signature expired")
    }
}
