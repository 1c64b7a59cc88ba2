import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import SMTP
@testable import I2P

/// The SAM reply parser and command encoder (pure), destinations and their names, and the client
/// against a scripted bridge that replays what i2pd 2.45 answers.
@Suite struct SAMReplyTests {
    func parse(_ text: String) throws -> SAMReply { try SAMReply.parse(Array(text.utf8)) }

    @Test func repliesOfI2pdParse() throws {
        #expect(try parse("HELLO REPLY RESULT=OK VERSION=3.1") == SAMReply(topic: "HELLO", verb: "REPLY", fields: ["RESULT": "OK", "VERSION": "3.1"]))
        let error = try parse("SESSION STATUS RESULT=I2P_ERROR MESSAGE=\"Session already exists: \\\"x\\\"\"\r")
        #expect(error["MESSAGE"] == "Session already exists: \"x\"" && !error.isOK)
        #expect(error.failure == "I2P_ERROR (Session already exists: \"x\")")
        #expect(try parse("DEST REPLY PUB=abc~- PRIV=def==").isOK)  // no RESULT: fine
        #expect(try parse("STREAM STATUS RESULT=CANT_REACH_PEER").failure == "CANT_REACH_PEER")
        #expect(try parse("NAMING REPLY RESULT=OK NAME=ME VALUE=a-b~c=")["VALUE"] == "a-b~c=")
        #expect(try parse("SESSION  STATUS   RESULT=OK  SILENT")["SILENT"] == "")
        #expect(try parse("PONG REPLY X=\"\"")["X"] == "")
    }

    @Test func malformedRepliesAreErrorsNotGuesses() {
        let cases: [(String, SAMReply.ParseError)] = [
            ("", .empty), ("   ", .empty),
            ("HELLO", .badKeyword), ("hello REPLY", .badKeyword), ("HELLO reply RESULT=OK", .badKeyword), ("HELLO 3 X=1", .badKeyword),
            ("HELLO REPLY RESULT=OK\u{1}", .badCharacter), ("HELLO REPLY\tRESULT=OK", .badCharacter),
            ("HELLO REPLY =OK", .badPair), ("HELLO REPLY RE!SULT=OK", .badPair), ("HELLO REPLY A=b\"c", .badPair),
            ("HELLO REPLY A=\"b\"c", .badPair),
            ("HELLO REPLY MESSAGE=\"never closed", .unterminatedQuote),
            ("HELLO REPLY RESULT=OK RESULT=I2P_ERROR", .duplicateKey),
            ("HELLO REPLY X=" + String(repeating: "a", count: SAMReply.maxLength), .tooLong),
        ]
        for (text, error) in cases {
            #expect(throws: error, "\(text.prefix(60))") { try SAMReply.parse(Array(text.utf8)) }
        }
    }

    @Test func commandsQuoteWhatNeedsQuoting() throws {
        #expect(try SAMCommand("HELLO", "VERSION", fields: [("MIN", "3.1"), ("MAX", "3.3")]).line() == "HELLO VERSION MIN=3.1 MAX=3.3\n")
        #expect(try SAMCommand("X", "Y", fields: [("A", "with space"), ("B", "q\"b\\"), ("C", "")]).line()
                == "X Y A=\"with space\" B=\"q\\\"b\\\\\" C=\"\"\n")
        // What the parser reads back is what was sent.
        let line = try SAMCommand("X", "Y", fields: [("A", "with space"), ("B", "q\"b\\")]).line()
        #expect(try SAMReply.parse(Array(line.utf8.dropLast()))["B"] == "q\"b\\")
        // A line break in a value would start another command: refused.
        #expect(throws: SAMCommand.Unsendable.self) { try SAMCommand("X", "Y", fields: [("A", "a\nSESSION CREATE")]).line() }
        #expect(throws: SAMCommand.Unsendable.self) { try SAMCommand("X", "Y", fields: [("A B", "c")]).line() }
    }

    @Test func garbageNeverTraps() {
        var random = SystemRandomNumberGenerator()
        let pieces = Array("ABZ az09=\"\\ _.-~\r\n\t\u{0}\u{7f}é".utf8)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...200, using: &random)
            let bytes = (0..<length).map { _ in Bool.random(using: &random) ? pieces.randomElement(using: &random)! : UInt8.random(in: 0...255, using: &random) }
            if let reply = try? SAMReply.parse(bytes) {
                #expect(!reply.topic.isEmpty && !reply.verb.isEmpty)
            }
        }
    }
}

@Suite struct I2PDestinationTests {
    /// A destination shaped as i2pd makes them: 384 bytes of keys, a key certificate of 4 bytes.
    static func destinationBytes(seed: UInt8) -> [UInt8] {
        (0..<384).map { UInt8(truncatingIfNeeded: Int($0) &* 31 &+ Int(seed)) } + [5, 0, 4, 0, 7, 0, 4]
    }

    @Test func b32IsTheBase32OfTheSHA256OfTheDestination() throws {
        let bytes = Self.destinationBytes(seed: 1)
        // Private keys start with the destination: the same name comes out of both.
        let privateKeys = bytes + Array(repeating: 9, count: 256 + 32)
        let fromPrivate = try #require(I2PDestination(base64: I2PKeys.encode(privateKeys)))
        let fromPublic = try #require(I2PDestination(base64: I2PKeys.encode(bytes)))
        #expect(fromPrivate == fromPublic && fromPublic.bytes == bytes)
        #expect(fromPublic.b32.hasSuffix(".b32.i2p") && fromPublic.b32.count == 52 + 8)
        // RFC 4648 base32 test vectors (lower case, no padding).
        #expect(I2PDestination.base32(Array("foobar".utf8)) == "mzxw6ytboi")
        #expect(I2PDestination.base32(Array("f".utf8)) == "my")
        #expect(fromPublic.isNamed(fromPublic.b32.uppercased()) && fromPublic.isNamed(fromPublic.base64))
        #expect(!fromPublic.isNamed(try #require(I2PDestination(base64: I2PKeys.encode(Self.destinationBytes(seed: 2)))).b32))
        // I2P's alphabet: "-" and "~" instead of "+" and "/".
        #expect(!fromPublic.base64.contains("+") && !fromPublic.base64.contains("/"))
    }

    @Test func shortOrTruncatedDestinationsAreRefused() {
        #expect(I2PDestination(base64: "AAAA") == nil)
        #expect(I2PDestination(base64: "not base64 at all!") == nil)
        var bytes = Self.destinationBytes(seed: 3)
        bytes[386] = 200  // the certificate claims more than there is
        #expect(I2PDestination(base64: I2PKeys.encode(bytes)) == nil)
    }
}

/// The client against a scripted bridge that answers as i2pd 2.45 does (recorded replies).
@Suite(.serialized) struct SAMClientTests {
    final class ScriptedBridge: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let commands = NIOLockedValueBox<[String]>([])
        let answer: @Sendable (String) -> [String]
        private let pending = NIOLockedValueBox("")

        init(answer: @escaping @Sendable (String) -> [String]) { self.answer = answer }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = pending.withLockedValue { pending -> [String] in
                pending += String(buffer: unwrapInboundIn(data))
                var lines: [String] = []
                while let newline = pending.firstIndex(of: "\n") {
                    lines.append(String(pending[..<newline]))
                    pending = String(pending[pending.index(after: newline)...])
                }
                return lines
            }
            for line in text {
                commands.withLockedValue { $0.append(line) }
                for reply in answer(line) {
                    if reply == "CLOSE" { context.close(promise: nil); return }
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: reply)), promise: nil)
                }
            }
        }
    }

    static let destination = I2PKeys.encode(I2PDestinationTests.destinationBytes(seed: 7))
    static let keys = I2PDestinationTests.destinationBytes(seed: 7) + Array(repeating: 1, count: 288)

    func withBridge(_ answer: @escaping @Sendable (String) -> [String],
                    _ body: (SAMBridge, ScriptedBridge) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bridge = ScriptedBridge(answer: answer)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { $0.pipeline.addHandler(bridge) }
            .bind(host: "127.0.0.1", port: 0).get()
        try await body(SAMBridge(host: "127.0.0.1", port: server.localAddress!.port!, replyTimeout: .seconds(2)), bridge)
        try await server.close()
        try await group.shutdownGracefully()
    }

    static func i2pd(_ line: String) -> [String] {
        if line.hasPrefix("HELLO VERSION") { return ["HELLO REPLY RESULT=OK VERSION=3.1\n"] }
        if line.hasPrefix("SESSION CREATE") { return ["SESSION STATUS RESULT=OK DESTINATION=\(I2PKeys.encode(keys))\n"] }
        if line.hasPrefix("DEST GENERATE") { return ["DEST REPLY PUB=\(destination) PRIV=\(I2PKeys.encode(keys))\n"] }
        if line.hasPrefix("NAMING LOOKUP NAME=ME") { return ["NAMING REPLY RESULT=OK NAME=ME VALUE=\(destination)\n"] }
        if line.hasPrefix("STREAM CONNECT") { return ["STREAM STATUS RESULT=OK\n", "220 peer ESMTP\r\n"] }
        if line.hasPrefix("STREAM ACCEPT") { return ["STREAM STATUS RESULT=OK\n", "\(destination) FROM_PORT=0 TO_PORT=0\n", "EHLO x\r\n"] }
        if line.hasPrefix("STREAM FORWARD") { return ["STREAM STATUS RESULT=OK\n"] }
        return ["\(line.split(separator: " ").first ?? "X") STATUS RESULT=I2P_ERROR MESSAGE=\"unknown\"\n"]
    }

    @Test func sessionConnectAcceptAndForwardSpeakSAM() async throws {
        try await withBridge(Self.i2pd) { bridge, script in
            let keys = try await SAMSession.generateKeys(bridge)
            #expect(keys == Self.keys)
            let session = try await SAMSession.create(bridge, keys: keys, options: [("inbound.length", "0")])
            #expect(session.destination.base64 == Self.destination)
            #expect(try await session.lookup("ME") == Self.destination)
            // CONNECT: what the peer sent right after the status line reaches the stream's handler.
            let received = NIOLockedValueBox<[String]>([])
            let socket = try await session.connect(to: "peer.b32.i2p")
            try await socket.detach { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collect(into: received)) }
            }
            try await waitUntil { received.withLockedValue { $0.joined() } == "220 peer ESMTP\r\n" }
            // ACCEPT: the peer's destination first, then the stream.
            let (accepted, peer) = try await session.accept()
            #expect(peer.base64 == Self.destination)
            let streamed = NIOLockedValueBox<[String]>([])
            try await accepted.detach { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collect(into: streamed)) }
            }
            try await waitUntil { streamed.withLockedValue { $0.joined() } == "EHLO x\r\n" }
            let forwarding = try await session.forward(to: "127.0.0.1", port: 5587)
            forwarding.close()
            session.close()
            let commands = script.commands.withLockedValue { $0 }
            #expect(commands.filter { $0.hasPrefix("HELLO VERSION MIN=3.1 MAX=3.3") }.count == 5)  // DEST GENERATE, the session, CONNECT, ACCEPT, FORWARD
            #expect(commands.contains { $0.hasPrefix("SESSION CREATE STYLE=STREAM ID=postern-") && $0.contains(" SIGNATURE_TYPE=7 inbound.length=0") })
            #expect(commands.contains { $0.hasPrefix("STREAM CONNECT ID=postern-") && $0.hasSuffix("DESTINATION=peer.b32.i2p SILENT=false") })
            #expect(commands.contains { $0.hasPrefix("STREAM FORWARD ID=postern-") && $0.hasSuffix("PORT=5587 HOST=127.0.0.1 SILENT=true") })
        }
    }

    @Test func theConnectorHandsTheStreamToAnAsyncSMTPClientWithTheBytesAlreadyRead() async throws {
        // The peer's greeting comes in the same write as STREAM STATUS: it waits in the line
        // reader and must reach the NIOAsyncChannel at once (read and read-complete).
        try await withBridge({ line in
            if line.hasPrefix("STREAM CONNECT") { return ["STREAM STATUS RESULT=OK\n220 peer ESMTP\r\n"] }
            return Self.i2pd(line)
        }) { bridge, _ in
            let session = try await SAMSession.create(bridge, keys: Self.keys, options: [])
            let connector = SAMConnector(peer: "peer.b32.i2p") { session }
            let channel = try await SMTPDialogue.connect(connector, group: MultiThreadedEventLoopGroup.singleton, replyTimeout: .seconds(2))
            let greeting = try await channel.executeThenClose { inbound, outbound in
                var dialogue = SMTPDialogue(lines: inbound.makeAsyncIterator(), outbound: outbound, channel: channel.channel)
                return try await dialogue.reply()
            }
            #expect(greeting.code == 220 && greeting.lines == ["peer ESMTP"])
            session.close()
        }
    }

    @Test func refusalsGarbageSilenceAndClosesAreErrors() async throws {
        try await withBridge({ line in
            if line.hasPrefix("HELLO") { return ["HELLO REPLY RESULT=OK VERSION=3.1\n"] }
            if line.contains("DESTINATION=unreachable") { return ["STREAM STATUS RESULT=CANT_REACH_PEER MESSAGE=\"no lease set\"\n"] }
            if line.contains("DESTINATION=garbage") { return ["this is not SAM\n"] }
            if line.contains("DESTINATION=silent") { return [] }
            if line.contains("DESTINATION=closing") { return ["CLOSE"] }
            if line.hasPrefix("SESSION CREATE") { return ["SESSION STATUS RESULT=OK\n"] }
            return []
        }) { bridge, _ in
            let session = try await SAMSession.create(bridge, keys: Self.keys, options: [])
            await #expect(throws: SAMError.refused("CANT_REACH_PEER (no lease set)")) { try await session.connect(to: "unreachable") }
            await #expect(throws: SAMError.malformed(.badKeyword)) { try await session.connect(to: "garbage") }
            await #expect(throws: SAMError.timeout) { try await session.connect(to: "silent", timeout: .milliseconds(300)) }
            await #expect(throws: SAMError.unavailable) { try await session.connect(to: "closing") }
            session.close()
        }
        // Nobody listening: unavailable, not a hang.
        await #expect(throws: SAMError.unavailable) { try await SAMSocket.open(SAMBridge(host: "127.0.0.1", port: 1)) }
    }

    final class Collect: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let into: NIOLockedValueBox<[String]>
        init(into: NIOLockedValueBox<[String]>) { self.into = into }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            into.withLockedValue { $0.append(text) }
        }
    }

    func waitUntil(_ condition: @Sendable () -> Bool) async throws {
        for _ in 0..<100 {
            if condition() { return }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        Issue.record("condition never became true")
    }
}

/// Keys files: new keys only when there is no file; an unreadable, foreign-readable or damaged one
/// is an error, never replaced (a new key is a new name nobody knows).
@Suite(.serialized) struct I2PKeysFileTests {
    func folder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func missingKeysAreMadeOnceAndKeptPrivate() async throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try await SAMClientTests().withBridge(SAMClientTests.i2pd) { bridge, script in
            let path = "\(dir)/i2p/smtp.dat"
            let made = try await I2PKeys.loadOrGenerate(path, bridge: bridge, group: MultiThreadedEventLoopGroup.singleton)
            #expect(made == SAMClientTests.keys)
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            #expect(mode & 0o777 == 0o600)
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(dir)/i2p") == ["smtp.dat"])  // no temp file left
            // Kept: a second call reads the file and asks the bridge nothing.
            let before = script.commands.withLockedValue { $0.count }
            #expect(try await I2PKeys.loadOrGenerate(path, bridge: bridge, group: MultiThreadedEventLoopGroup.singleton) == made)
            #expect(script.commands.withLockedValue { $0.count } == before)
        }
    }

    @Test func unreadableOrDamagedKeysAreRefusedNotReplaced() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let open = "\(dir)/open.dat"
        FileManager.default.createFile(atPath: open, contents: Data(SAMClientTests.keys), attributes: [.posixPermissions: 0o644])
        #expect(throws: I2PKeys.KeysFileError.self) { try I2PKeys.read(open) }
        let damaged = "\(dir)/damaged.dat"
        FileManager.default.createFile(atPath: damaged, contents: Data([1, 2, 3]), attributes: [.posixPermissions: 0o600])
        #expect(throws: I2PKeys.KeysFileError.self) { try I2PKeys.read(damaged) }
        let directory = "\(dir)/a-directory.dat"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        #expect(throws: (any Error).self) { try I2PKeys.read(directory) }
        #expect(try I2PKeys.read("\(dir)/absent.dat") == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["a-directory.dat", "damaged.dat", "open.dat"])
    }
}
