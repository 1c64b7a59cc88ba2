import Testing
@testable import Notify

@Suite struct IRCMessageTests {
    @Test func parsesPrefixCommandMiddlesAndTrailing() throws {
        let m = try #require(IRCMessage.parse(":alice!a@host.i2p PRIVMSG postman :hello there: you"))
        #expect(m.prefix == "alice!a@host.i2p")
        #expect(m.sourceNick == "alice")
        #expect(m.isFromUser)
        #expect(m.command == "PRIVMSG")
        #expect(m.parameters == ["postman", "hello there: you"])
    }

    @Test func parsesNumericsAndServerPrefixes() throws {
        let m = try #require(IRCMessage.parse(":irc.kit.test 001 postman :Welcome to the Internet Relay Network"))
        #expect(m.isNumeric)
        #expect(m.command == "001")
        #expect(m.sourceNick == "irc.kit.test")
        #expect(!m.isFromUser)
        let nick = try #require(IRCMessage.parse(":srv 433 * postman :Nickname already in use"))
        #expect(nick.parameters == ["*", "postman", "Nickname already in use"])
    }

    @Test func acceptsWhatServersReallySend() throws {
        // Runs of spaces, lower-case commands, a trailing CR left by a bare-LF framer, no prefix.
        let m = try #require(IRCMessage.parse("  ping   :tok en\r"))
        #expect(m.command == "PING")
        #expect(m.parameters == ["tok en"])
        #expect(IRCMessage.parse("PING")?.parameters == [])
        #expect(IRCMessage.parse("PRIVMSG a :")?.parameters == ["a", ""])
        // RFC 2812 2.3.1: the 15th parameter is trailing without ":".
        let many = try #require(IRCMessage.parse("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 fifteen and more"))
        #expect(many.parameters.count == 15)
        #expect(many.parameters.last == "fifteen and more")
    }

    @Test(arguments: ["", "   ", ":", ":prefixonly", ":p ", "12 x", "1234 x", "PRIV-MSG x", "PRIVMSG a\u{0}b",
                      "PRIVMSG a\rb", ":p\u{0} PING", "\u{1}\u{2}\u{3}", "€€€ :x"])
    func refusesGarbage(line: String) {
        #expect(IRCMessage.parse(line) == nil)
    }

    @Test func neverTrapsOnRandomBytes() {
        var random = SplitMix(seed: 7)
        for _ in 0..<5_000 {
            let length = Int(random.next() % 600)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if let m = IRCMessage.parse(bytes) {
                // What parses can be said again, or is refused cleanly (e.g. \u{1} inside).
                _ = m.serialised()
            }
        }
    }

    @Test func serialisesWithColonOnlyWhenNeeded() {
        #expect(text(IRCMessage(command: "NICK", parameters: ["postman"])) == "NICK postman\r\n")
        #expect(text(IRCMessage(command: "USER", parameters: ["pm", "0", "*", "Postern bot"])) == "USER pm 0 * :Postern bot\r\n")
        #expect(text(IRCMessage(command: "PRIVMSG", parameters: ["a", ":)"])) == "PRIVMSG a ::)\r\n")
        #expect(text(IRCMessage(command: "PRIVMSG", parameters: ["a", ""])) == "PRIVMSG a :\r\n")
        #expect(text(IRCMessage(prefix: "me", command: "QUIT")) == ":me QUIT\r\n")
    }

    @Test func refusesWhatWouldChangeTheLine() {
        #expect(IRCMessage(command: "PRIVMSG", parameters: ["a", "x\r\nQUIT"]).serialised() == nil)
        #expect(IRCMessage(command: "PRIVMSG", parameters: ["a", "x\u{0}"]).serialised() == nil)
        #expect(IRCMessage(command: "PRIVMSG", parameters: ["a", "\u{1}VERSION\u{1}"]).serialised() == nil)  // no CTCP
        #expect(IRCMessage(command: "PRIVMSG", parameters: ["a b", "x"]).serialised() == nil)
        #expect(IRCMessage(command: "PRIVMSG", parameters: [":a", "x"]).serialised() == nil)
        #expect(IRCMessage(command: "PRIVMSG", parameters: ["", "x"]).serialised() == nil)
        #expect(IRCMessage(command: "PRIV MSG").serialised() == nil)
        #expect(IRCMessage(command: "1234").serialised() == nil)
        #expect(IRCMessage(prefix: "a b", command: "PING").serialised() == nil)
        #expect(IRCMessage(command: "X", parameters: Array(repeating: "p", count: 16)).serialised() == nil)
    }

    @Test func truncatesTheTrailingParameterTo512OctetsWithCRLF() throws {
        let long = String(repeating: "a", count: 1_000)
        let bytes = try #require(IRCMessage(command: "PRIVMSG", parameters: ["bob", long]).serialised())
        #expect(bytes.count == 512)
        #expect(bytes.suffix(2) == [13, 10])
        #expect(String(decoding: bytes.prefix(13), as: UTF8.self) == "PRIVMSG bob :")
        // Exactly at the limit: untouched.
        let fits = String(repeating: "b", count: 512 - 2 - "PRIVMSG bob :".utf8.count)
        #expect(IRCMessage(command: "PRIVMSG", parameters: ["bob", "x " + fits.dropFirst(2)]).serialised()?.count == 512)
    }

    @Test(arguments: ["é", "€", "𝄞", "a€"])
    func truncatesAtAUTF8Boundary(unit: String) throws {
        let long = String(repeating: unit, count: 400)
        let bytes = try #require(IRCMessage(command: "PRIVMSG", parameters: ["bob", long]).serialised())
        #expect(bytes.count <= 512)
        #expect(bytes.count > 512 - 4)
        let body = Array(bytes.dropFirst("PRIVMSG bob :".utf8.count).dropLast(2))
        // Valid UTF-8 round-trips unchanged; a cut character would turn into U+FFFD.
        let decoded = String(decoding: body, as: UTF8.self)
        #expect(Array(decoded.utf8) == body)
        #expect(long.hasPrefix(decoded))
    }

    @Test func refusesWhenTheFixedPartAloneIsTooLong() {
        let target = String(repeating: "n", count: 520)
        #expect(IRCMessage(command: "PRIVMSG", parameters: [target, "x"]).serialised() == nil)
        #expect(IRCMessage(command: "PING", parameters: [target]).serialised()?.count == 512)
    }

    @Test func roundTrips() throws {
        let original = IRCMessage(prefix: "n!u@h", command: "PRIVMSG", parameters: ["bob", "3 new messages for alice@mail.i2p"])
        let bytes = try #require(original.serialised())
        #expect(IRCMessage.parse(bytes.dropLast(2)) == original)
    }

    @Test func caseMappingOfRFC2812() {
        #expect(IRCCaseMapping.equal("Alice[]\\~", "alice{}|^"))
        #expect(!IRCCaseMapping.equal("alice", "alice_"))
        #expect(IRCCaseMapping.fold("ÄB") == "Äb")  // only ASCII folds
        #expect(IRCCaseMapping.isValidNick("alice"))
        #expect(IRCCaseMapping.isValidNick("[x]-1"))
        #expect(!IRCCaseMapping.isValidNick("#chan"))
        #expect(!IRCCaseMapping.isValidNick("a,b"))
        #expect(!IRCCaseMapping.isValidNick("a b"))
        #expect(!IRCCaseMapping.isValidNick("1abc"))
        #expect(!IRCCaseMapping.isValidNick(""))
    }

    private func text(_ message: IRCMessage) -> String? {
        message.serialised().map { String(decoding: $0, as: UTF8.self) }
    }
}

@Suite struct IRCLineFramerTests {
    private func frames(_ input: [UInt8], limit: Int = 512, chunk: Int = .max) -> ([String], IRCLineFramer) {
        var framer = IRCLineFramer(maxLineLength: limit)
        var result: [String] = []
        var offset = 0
        while offset < input.count {
            let end = min(input.count, offset + chunk)
            framer.append(input[offset..<end])
            offset = end
            #expect(framer.bufferedByteCount <= limit + min(chunk, input.count))
            while let frame = framer.next() {
                switch frame {
                case .line(let line): result.append(String(decoding: line, as: UTF8.self))
                case .tooLong: result.append("<too long>")
                }
            }
        }
        return (result, framer)
    }

    @Test(arguments: [1, 2, 5, 100, Int.max])
    func splitsOnCRLFAndBareLF(chunk: Int) {
        #expect(frames(Array("PING :a\r\nPING :b\n\r\nX\r\n".utf8), chunk: chunk).0 == ["PING :a", "PING :b", "", "X"])
    }

    @Test(arguments: [1, 7, 4096, Int.max])
    func skipsOverlongLinesWithoutBufferingThem(chunk: Int) {
        let long = Array(repeating: UInt8(ascii: "x"), count: 10_000)
        let input = Array("A\r\n".utf8) + long + Array("\r\nB\r\n".utf8)
        let (lines, framer) = frames(input, chunk: min(chunk, 4096))
        #expect(lines == ["A", "<too long>", "B"])
        #expect(framer.bufferedByteCount == 0)
    }

    @Test func countsTheLimitWithTheLineEnding() {
        let fits = Array(repeating: UInt8(ascii: "x"), count: 510)
        #expect(frames(fits + [13, 10]).0.count == 1)
        #expect(frames(fits + [10]).0 == [String(repeating: "x", count: 510)])
        #expect(frames(fits + [UInt8(ascii: "y"), 13, 10]).0 == ["<too long>"])
        #expect(frames(fits + [UInt8(ascii: "y"), 10]).0 == ["<too long>"])
    }
}

/// A small deterministic generator for the fuzz loop and codes.
struct SplitMix: RandomNumberGenerator {
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
