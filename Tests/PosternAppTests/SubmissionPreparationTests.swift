import MailCore
import NIOCore
import Testing
@testable import PosternApp

/// What the core does to a submitted message before storing it: the submission privacy policy
/// (PRIV-1..3, tested in depth in PrivacyTests) and its own Return-Path (RFC 5321 4.4), with any
/// client copy dropped; a From naming the account when there is none; the body untouched.
@Suite struct SubmissionPreparationTests {
    static let sender = EmailAddress(localPart: "alice", domain: "mail.i2p")
    /// 2023-11-14 22:13:20 UTC.
    static let now: Int64 = 1_700_000_000
    static let date = "Date: Tue, 14 Nov 2023 22:13:00 +0000"

    static func prepare(_ message: ByteBuffer, sender: EmailAddress = sender, domain: String = "mail.i2p") -> [UInt8] {
        Array(SubmissionPreparation.prepare(message, sender: sender, domain: domain, now: now).readableBytesView)
    }

    static func prepare(_ text: String) -> String {
        String(decoding: prepare(ByteBuffer(string: text)), as: UTF8.self)
    }

    /// The header lines (unfolded lines as written) and the body bytes of a prepared message.
    static func split(_ bytes: [UInt8]) throws -> (header: [String], body: [UInt8]) {
        let separator: [UInt8] = [13, 10, 13, 10]
        var index = 0
        while index + 4 <= bytes.count && !bytes[index..<(index + 4)].elementsEqual(separator) { index += 1 }
        try #require(index + 4 <= bytes.count, "no end of header")
        let header = String(decoding: bytes[..<index], as: UTF8.self).components(separatedBy: "\r\n")
        return (header, Array(bytes[(index + 4)...]))
    }

    static func split(_ text: String) throws -> (header: [String], body: String) {
        let (header, body) = try split(Array(text.utf8))
        return (header, String(decoding: body, as: UTF8.self))
    }

    static func isMessageID(_ line: String, domain: String) -> Bool {
        guard line.hasPrefix("Message-ID: <"), line.hasSuffix("@\(domain)>") else { return false }
        let token = line.dropFirst("Message-ID: <".count).dropLast("@\(domain)>".count)
        return token.count >= 16 && token.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber) }
    }

    @Test func plainMessageGetsReturnPathDateAndMessageIDAndKeepsItsBody() throws {
        let prepared = Self.prepare("From: Alice <alice@mail.i2p>\r\nTo: bob@mail.i2p\r\nSubject: hi\r\n\r\nHello Bob.\r\n")
        let (header, body) = try Self.split(prepared)
        #expect(header.count == 6)
        #expect(Array(header.prefix(5)) == [
            "Return-Path: <alice@mail.i2p>",
            Self.date,
            "From: Alice <alice@mail.i2p>",
            "To: bob@mail.i2p",
            "Subject: hi",
        ])
        #expect(Self.isMessageID(header[5], domain: "mail.i2p"), "\(header[5])")
        #expect(body == "Hello Bob.\r\n")
    }

    @Test func returnPathComesFirstAndExactlyOnce() throws {
        let prepared = Self.prepare("Subject: x\r\n\r\nbody\r\n")
        #expect(prepared.hasPrefix("Return-Path: <alice@mail.i2p>\r\n"))
        let (header, _) = try Self.split(prepared)
        #expect(header.filter { $0.lowercased().hasPrefix("return-path:") }.count == 1)
    }

    @Test func fromNamingTheAccountIsAddedWhenMissing() throws {
        let (header, _) = try Self.split(Self.prepare("To: bob@mail.i2p\r\nSubject: hi\r\n\r\nHello.\r\n"))
        #expect(header.filter { $0.hasPrefix("From:") } == ["From: <alice@mail.i2p>"])
    }

    @Test func fromInTheBodyDoesNotCount() throws {
        let (header, body) = try Self.split(Self.prepare("Subject: x\r\n\r\nFrom: someone@else\r\n"))
        #expect(header.filter { $0.hasPrefix("From:") } == ["From: <alice@mail.i2p>"])
        #expect(body == "From: someone@else\r\n")
    }

    @Test(arguments: [
        "Return-Path: <forged@evil.example>",
        "return-path: <forged@evil.example>",
        "RETURN-PATH:\r\n <forged@evil.example>",
        "Return-Path: <>",
    ])
    func clientReturnPathIsDropped(line: String) throws {
        let message = "\(line)\r\nFrom: alice@mail.i2p\r\nSubject: x\r\n\r\nbody\r\n"
        let prepared = Self.prepare(message)
        let (header, body) = try Self.split(prepared)
        #expect(header.first == "Return-Path: <alice@mail.i2p>")
        #expect(header.filter { $0.lowercased().hasPrefix("return-path") }.count == 1)
        #expect(!prepared.contains("evil.example"))
        #expect(!header.contains("Return-Path: <>"))
        #expect(body == "body\r\n")
    }

    @Test func severalClientReturnPathsAreAllDropped() throws {
        let prepared = Self.prepare("Return-Path: <a@evil.example>\r\nSubject: x\r\nReturn-Path: <b@evil.example>\r\n\r\nReturn-Path: <in-the-body@stays>\r\n")
        let (header, body) = try Self.split(prepared)
        #expect(header.filter { $0.lowercased().hasPrefix("return-path") } == ["Return-Path: <alice@mail.i2p>"])
        #expect(body == "Return-Path: <in-the-body@stays>\r\n")
        #expect(!prepared.contains("evil.example"))
    }

    @Test func clientDateAndMessageIDAreReplaced() throws {
        let prepared = Self.prepare("Date: Mon, 1 Jan 2001 10:11:12 +0200\r\nMessage-ID: <leaky.12345@laptop.local>\r\nFrom: alice@mail.i2p\r\n\r\nx")
        let (header, _) = try Self.split(prepared)
        #expect(header.filter { $0.hasPrefix("Date:") } == [Self.date])
        let ids = header.filter { $0.hasPrefix("Message-ID:") }
        #expect(ids.count == 1)
        #expect(Self.isMessageID(ids[0], domain: "mail.i2p"))
        #expect(!prepared.contains("laptop.local") && !prepared.contains("+0200"))
    }

    @Test func messageIDIsFreshAndAtTheGivenDomain() throws {
        let message = "Subject: x\r\n\r\nbody"
        let one = try Self.split(Self.prepare(ByteBuffer(string: message), domain: "example.i2p")).header
        let two = try Self.split(Self.prepare(ByteBuffer(string: message), domain: "example.i2p")).header
        let idOne = try #require(one.first { $0.hasPrefix("Message-ID:") })
        let idTwo = try #require(two.first { $0.hasPrefix("Message-ID:") })
        #expect(Self.isMessageID(idOne, domain: "example.i2p"))
        #expect(Self.isMessageID(idTwo, domain: "example.i2p"))
        #expect(idOne != idTwo)
    }

    @Test func headerFieldsOutsideTheAllowListAreDropped() throws {
        let prepared = Self.prepare("""
            Received: from laptop (192.168.1.7) by mail.i2p\r
            From: Alice <alice@mail.i2p>\r
            X-Mailer: Leaky Mail 1.0\r
            User-Agent: Leaky/1.0 (Linux)\r
            Bcc: hidden@mail.i2p\r
            Subject: keep me\r
            \r
            body\r

            """)
        let (header, body) = try Self.split(prepared)
        #expect(header.contains("Subject: keep me"))
        for leak in ["192.168.1.7", "Leaky", "hidden@mail.i2p", "laptop"] {
            #expect(!prepared.contains(leak), "\(leak) survived")
        }
        #expect(body == "body\r\n")
    }

    @Test func bodyIsByteIdentical() throws {
        let header = Array("Return-Path: <x@y>\r\nFrom: alice@mail.i2p\r\nSubject: bytes\r\n\r\n".utf8)
        var body = (0...255).map { UInt8($0) }
        body += Array("\r\n.\r\n..leading dot\r\nbare\nlf and bare\rcr\r\n\r\n\r\nFrom: x\r\n--boundary\r\nno final line end".utf8)
        let prepared = Self.prepare(ByteBuffer(bytes: header + body))
        #expect(try Self.split(prepared).body == body)
        #expect(Array(prepared.suffix(body.count)) == body)
    }

    @Test func bufferWithAReaderOffsetIsHandled() throws {
        var message = ByteBuffer(string: "IGNORED BYTES|Return-Path: <x@evil.example>\r\nSubject: s\r\n\r\nthe body\r\n")
        message.moveReaderIndex(forwardBy: "IGNORED BYTES|".utf8.count)
        let prepared = String(decoding: Self.prepare(message), as: UTF8.self)
        #expect(!prepared.contains("IGNORED"))
        #expect(!prepared.contains("evil.example"))
        let (header, body) = try Self.split(prepared)
        #expect(header.contains("Subject: s"))
        #expect(body == "the body\r\n")
    }

    @Test func inputBufferIsNotConsumed() {
        let message = ByteBuffer(string: "Subject: x\r\n\r\nbody")
        _ = Self.prepare(message)
        #expect(message.readableBytes == "Subject: x\r\n\r\nbody".utf8.count)
        #expect(String(buffer: message) == "Subject: x\r\n\r\nbody")
    }

    @Test func headerOnlyAndEmptyMessagesGetAWholeHeader() throws {
        for message in ["Subject: only a header\r\n", "Subject: no line end", ""] {
            let prepared = Self.prepare(message)
            let (header, body) = try Self.split(prepared)
            #expect(header.first == "Return-Path: <alice@mail.i2p>")
            #expect(header.contains("From: <alice@mail.i2p>"))
            #expect(header.contains(Self.date))
            #expect(body.isEmpty, "\(message.debugDescription) → \(prepared.debugDescription)")
        }
    }

    @Test func senderIsWrittenAsGiven() throws {
        let sender = EmailAddress(localPart: "bob.smith", domain: "Mail.I2P")
        let prepared = String(decoding: Self.prepare(ByteBuffer(string: "Subject: x\r\n\r\n"), sender: sender), as: UTF8.self)
        let (header, _) = try Self.split(prepared)
        #expect(header.first == "Return-Path: <bob.smith@mail.i2p>")
        #expect(header.contains("From: <bob.smith@mail.i2p>"))
    }

    /// A header section longer than 256 KiB (legal: lines of at most 1000 octets, 32 MiB in all)
    /// is read to its end: fields after the padding are kept, the body is found.
    @Test func longHeaderIsReadToItsEnd() throws {
        var message = "Return-Path: <x@evil.example>\r\nFrom: Alice <alice@mail.i2p>\r\n"
        let pad = "X-Pad: " + String(repeating: "p", count: 90) + "\r\n"
        while message.utf8.count < 300 * 1024 { message += pad }
        message += "Subject: after the padding\r\n\r\nthe body\r\n"
        let prepared = Self.prepare(message)
        let (header, body) = try Self.split(prepared)
        #expect(header.contains("Subject: after the padding"))
        #expect(header.contains("From: Alice <alice@mail.i2p>"))
        #expect(!prepared.contains("X-Pad"))
        #expect(!prepared.contains("evil.example"))
        #expect(body == "the body\r\n")
    }
}
