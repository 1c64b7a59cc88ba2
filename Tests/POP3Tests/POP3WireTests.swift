import TestSupport
import NIOCore
import Wire
import Testing
@testable import POP3

/// Byte-exact dot-stuffing (RFC 1939 section 3, POP-3), base64 and command line parsing.
@Suite struct POP3DotStuffingTests {
    private func stuffed(_ message: String, topLines: Int? = nil) -> String {
        var out = ByteBuffer()
        DotStuffing.writeMultiline(ByteBuffer(string: message), maxBodyLines: topLines, into: &out)
        return String(decoding: out.readableBytesView, as: UTF8.self)
    }

    @Test(arguments: [
        // (stored, sent)
        ("Subject: a\r\n\r\nHello\r\n", "Subject: a\r\n\r\nHello\r\n.\r\n"),
        ("", ".\r\n"),
        (".", "..\r\n.\r\n"),
        (".\r\n", "..\r\n.\r\n"),
        ("\r\n", "\r\n.\r\n"),
        ("a", "a\r\n.\r\n"),
        ("a\r\nb", "a\r\nb\r\n.\r\n"),
        ("a\r\n.", "a\r\n..\r\n.\r\n"),
        ("a\r", "a\r\r\n.\r\n"),
        ("..\r\n...\r\n.x\r\n", "...\r\n....\r\n..x\r\n.\r\n"),
        ("a.b\r\n x.\r\n", "a.b\r\n x.\r\n.\r\n"),
        ("a\r\n.\r\n.\r\n", "a\r\n..\r\n..\r\n.\r\n"),
        ("\r\n.\r\n", "\r\n..\r\n.\r\n"),
        // A bare LF starts a line for stuffing purposes: no lone "." can end the reply early.
        ("a\n.\r\n", "a\n..\r\n.\r\n"),
        ("a\r.\r\n", "a\r.\r\n.\r\n"),
    ])
    func retr(stored: String, sent: String) {
        #expect(stuffed(stored) == sent)
    }

    @Test func topSendsHeaderBlankLineAndAtMostNLines() {
        let message = "H: 1\r\nH: 2\r\n\r\nb1\r\n.b2\r\nb3\r\n"
        #expect(stuffed(message, topLines: 0) == "H: 1\r\nH: 2\r\n\r\n.\r\n")
        #expect(stuffed(message, topLines: 1) == "H: 1\r\nH: 2\r\n\r\nb1\r\n.\r\n")
        #expect(stuffed(message, topLines: 2) == "H: 1\r\nH: 2\r\n\r\nb1\r\n..b2\r\n.\r\n")
        #expect(stuffed(message, topLines: 3) == "H: 1\r\nH: 2\r\n\r\nb1\r\n..b2\r\nb3\r\n.\r\n")
        #expect(stuffed(message, topLines: Int.max) == "H: 1\r\nH: 2\r\n\r\nb1\r\n..b2\r\nb3\r\n.\r\n")
    }

    @Test func topEdgeCases() {
        // No blank line: the whole message is header.
        #expect(stuffed("H: 1\r\nH: 2\r\n", topLines: 0) == "H: 1\r\nH: 2\r\n.\r\n")
        #expect(stuffed("H: 1", topLines: 0) == "H: 1\r\n.\r\n")
        // The last body line has no line break.
        #expect(stuffed("H: 1\r\n\r\nb1\r\nb2", topLines: 2) == "H: 1\r\n\r\nb1\r\nb2\r\n.\r\n")
        #expect(stuffed("H: 1\r\n\r\nb1\r\nb2", topLines: 1) == "H: 1\r\n\r\nb1\r\n.\r\n")
        // No header at all: the message starts with the blank line.
        #expect(stuffed("\r\n.b\r\nc\r\n", topLines: 1) == "\r\n..b\r\n.\r\n")
        #expect(stuffed("", topLines: 5) == ".\r\n")
        #expect(stuffed("H: 1\r\n\r\n", topLines: 5) == "H: 1\r\n\r\n.\r\n")
    }

    @Test func appendsToExistingBytes() {
        var out = ByteBuffer(string: "+OK 2 octets\r\n")
        DotStuffing.writeMultiline(ByteBuffer(string: ".\r\n"), into: &out)
        #expect(String(buffer: out) == "+OK 2 octets\r\n..\r\n.\r\n")
    }

    @Test func readsFromASliceNotTheWholeStorage() {
        var storage = ByteBuffer(string: "xx.a\r\n.b\r\n")
        storage.moveReaderIndex(forwardBy: 2)
        var out = ByteBuffer()
        DotStuffing.writeMultiline(storage, into: &out)
        #expect(String(buffer: out) == "..a\r\n..b\r\n.\r\n")
    }

    /// Random messages over a small alphabet against a plain line-by-line reference.
    @Test func matchesAReferenceImplementation() {
        var random = SplitMix64(seed: 0x9E37_79B9)
        let alphabet: [UInt8] = Array(".\r\na ".utf8)
        for _ in 0..<2000 {
            let length = Int(random.next() % 40)
            let bytes = (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            let topLines: Int? = random.next() % 2 == 0 ? nil : Int(random.next() % 4)
            var out = ByteBuffer()
            DotStuffing.writeMultiline(ByteBuffer(bytes: bytes), maxBodyLines: topLines, into: &out)
            let expected = Self.reference(bytes, topLines: topLines)
            #expect(Array(out.readableBytesView) == expected, "input \(bytes) top \(String(describing: topLines))")
        }
    }

    /// Splits into lines after each LF, keeps what TOP keeps, stuffs, terminates.
    private static func reference(_ bytes: [UInt8], topLines: Int?) -> [UInt8] {
        var lines: [[UInt8]] = []
        var current: [UInt8] = []
        for byte in bytes {
            current.append(byte)
            if byte == 10 {
                lines.append(current)
                current = []
            }
        }
        if !current.isEmpty { lines.append(current) }
        if let topLines {
            if let blank = lines.firstIndex(where: { $0 == [13, 10] || $0 == [10] }) {
                lines = Array(lines.prefix(blank + 1 + topLines))
            }
        }
        var out: [UInt8] = []
        for line in lines {
            if line.first == 46 { out.append(46) }
            out += line
        }
        if !out.isEmpty && !(out.count >= 2 && out[out.count - 2] == 13 && out[out.count - 1] == 10) {
            out += [13, 10]
        }
        return out + [46, 13, 10]
    }
}

@Suite struct SASLBase64Tests {
    private func decode(_ text: String) -> [UInt8]? { SASLBase64.decode(text[...].utf8) }

    @Test func decodesCanonicalBase64() {
        #expect(decode("") == [])
        #expect(decode("YQ==") == Array("a".utf8))
        #expect(decode("YWI=") == Array("ab".utf8))
        #expect(decode("YWJj") == Array("abc".utf8))
        #expect(decode("AGFsaWNlAHB3") == Array("\u{0}alice\u{0}pw".utf8))
        #expect(decode("+/+/") == [0xFB, 0xFF, 0xBF])
    }

    @Test(arguments: ["Y", "YQ", "YQ=", "YQ===", "Y===", "YQ=a", "=YQ=", "YW J", "YWJ\n", "YR==", "YWK=", "éé==", "YW*j"])
    func rejects(_ text: String) {
        #expect(decode(text) == nil)
    }
}

@Suite struct POP3CommandLineTests {
    private func parse(_ text: String) -> POP3CommandLine? {
        try? POP3CommandLine.parse(ByteBuffer(string: text)).get()
    }

    @Test func splitsKeywordAndArguments() {
        let line = parse("pass  two  words ")
        #expect(line?.keyword == "PASS")
        #expect(line?.argumentText == " two  words ")
        #expect(line?.arguments == ["two", "words"])
        #expect(parse("STAT")?.arguments == [])
        #expect(parse("")?.keyword == "")
    }

    @Test func numbers() {
        #expect(POP3NumberArgument("12") == .number(12))
        #expect(POP3NumberArgument("0") == .number(0))
        #expect(POP3NumberArgument("99999999999999999999") == .tooLarge)
        #expect(POP3NumberArgument("-1") == .invalid)
        #expect(POP3NumberArgument("+1") == .invalid)
        #expect(POP3NumberArgument("١") == .invalid)  // Arabic-Indic digit one
        #expect(POP3NumberArgument("") == .invalid)
    }
}
