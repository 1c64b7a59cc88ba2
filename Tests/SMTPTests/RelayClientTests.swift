import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import Wire
@testable import SMTP

/// The relay client (QUEUE-2's next hop): the reply reader on its own, then live dialogues with
/// Postern's own submission server (a real AUTH) and with a scripted server that misbehaves.
@Suite(.serialized) struct RelayClientTests {
    @Test func replyReaderJoinsMultilineRepliesStrictly() throws {
        var reader = SMTPReplyReader(maxLines: 3)
        #expect(try reader.feed("250-mail.example") == nil)
        #expect(try reader.feed("250-SIZE 1000") == nil)
        #expect(try reader.feed("250 AUTH PLAIN") == .init(code: 250, enhanced: nil, lines: ["mail.example", "SIZE 1000", "AUTH PLAIN"]))
        #expect(try reader.feed("550 5.1.1 no such user")?.enhanced == "5.1.1")
        #expect(try reader.feed("451 5.1.1 class mismatch")?.enhanced == nil)  // RFC 3463: class must match
        #expect(try reader.feed("220")?.code == 220)
        #expect(throws: SMTPReplyReader.Problem.malformed) { try reader.feed("hello") }
        #expect(throws: SMTPReplyReader.Problem.malformed) { try reader.feed("250_x") }
        #expect(throws: SMTPReplyReader.Problem.malformed) { try reader.feed("650 six") }
        var mixed = SMTPReplyReader()
        _ = try mixed.feed("250-a")
        #expect(throws: SMTPReplyReader.Problem.inconsistentCode) { try mixed.feed("251 b") }
        var long = SMTPReplyReader(maxLines: 3)
        for _ in 0..<3 { _ = try? long.feed("250-x") }
        #expect(throws: SMTPReplyReader.Problem.tooManyLines) { try long.feed("250-x") }
    }

    @Test func dotStuffingAndFinalLine() {
        // The shared Wire rule, as DATA needs it (RFC 5321 4.5.2).
        func stuffed(_ text: String) -> String {
            var out = ByteBufferAllocator().buffer(capacity: 0)
            DotStuffing.writeMultiline(ByteBuffer(string: text), into: &out)
            return String(buffer: out)
        }
        #expect(stuffed(".a\r\nb\r\n..c\r\n.\r\nend") == "..a\r\nb\r\n...c\r\n..\r\nend\r\n.\r\n")
        #expect(stuffed("x\r\n") == "x\r\n.\r\n")
    }

    static let message = ByteBuffer(string: "From: alice@mail.i2p\r\nTo: bob@mail.i2p\r\nSubject: t\r\n\r\n.leading dot\r\nbody\r\n")

    @Test func relaysWithAuthToARealSubmissionServer() async throws {
        let backend = FakeSubmissionBackend()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = SubmissionServer(configuration: .init(port: 0), backend: backend, group: group, logger: Logger(label: "test"))
        let address = try await server.start()
        let client = RelayClient(configuration: .init(host: "127.0.0.1", port: address.port!, helo: "mail.i2p",
                                                      username: "alice", password: "correct-horse-1"), group: group)
        let outcomes = await client.relay(from: "alice@mail.i2p", to: ["bob@mail.i2p", "nobody@mail.i2p"], message: Self.message)
        #expect(outcomes == [.delivered, .permanent(code: 550, status: "5.1.1")])
        let delivered = backend.delivered.withLockedValue { $0 }
        #expect(delivered.count == 1)
        #expect(delivered.first?.0.recipients.map(\.description) == ["bob@mail.i2p"])
        #expect(delivered.first?.1.contains("\r\n.leading dot\r\n") == true)  // unstuffed again by the server
        // A wrong password is the relay link's problem, not the message's: deferred, not bounced.
        let wrong = RelayClient(configuration: .init(host: "127.0.0.1", port: address.port!, helo: "mail.i2p",
                                                     username: "alice", password: "nope"), group: group)
        let refused = await wrong.relay(from: "alice@mail.i2p", to: ["bob@mail.i2p"], message: Self.message)
        #expect(refused == [.temporary(code: 535, status: "4.7.8")])
        await server.shutdown(gracePeriod: .milliseconds(100))
        try await group.shutdownGracefully()
    }

    /// A server that answers each command with what `script` says: a reply line (CRLF added),
    /// nil for silence, or "CLOSE" to hang up.
    final class ScriptedServer: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let script: @Sendable (String) -> String?
        let greeting: String?
        let received = NIOLockedValueBox<[String]>([])
        private let inData = NIOLockedValueBox(false)
        private let pending = NIOLockedValueBox("")

        init(greeting: String? = "220 scripted ESMTP", script: @escaping @Sendable (String) -> String?) {
            self.greeting = greeting
            self.script = script
        }

        func channelActive(context: ChannelHandlerContext) {
            if let greeting { context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: greeting + "\r\n")), promise: nil) }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = pending.withLockedValue { $0 } + String(buffer: unwrapInboundIn(data))
            var lines = text.components(separatedBy: "\r\n")
            pending.withLockedValue { $0 = lines.removeLast() }
            for line in lines {
                received.withLockedValue { $0.append(line) }
                let collecting = inData.withLockedValue { $0 }
                if collecting && line != "." { continue }
                if line == "." { inData.withLockedValue { $0 = false } }
                let command = collecting ? "." : line
                guard let answer = script(command) else { continue }
                if answer == "CLOSE" { context.close(promise: nil); return }
                if command.uppercased() == "DATA" && answer.hasPrefix("354") { inData.withLockedValue { $0 = true } }
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer + "\r\n")), promise: nil)
            }
        }
    }

    func withScripted(greeting: String? = "220 scripted ESMTP", replyTimeout: TimeAmount = .seconds(5),
                      _ script: @escaping @Sendable (String) -> String?,
                      _ body: (RelayClient, ScriptedServer) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let handler = ScriptedServer(greeting: greeting, script: script)
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { $0.pipeline.addHandler(handler) }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = RelayClient(configuration: .init(host: "127.0.0.1", port: channel.localAddress!.port!, helo: "mail.i2p",
                                                      replyTimeout: replyTimeout), group: group)
        try await body(client, handler)
        try await channel.close()
        try await group.shutdownGracefully()
    }

    /// Ordinary answers, with per-command overrides.
    static func ordinary(_ overrides: [String: String?] = [:]) -> @Sendable (String) -> String? {
        { line in
            let verb = String(line.uppercased().prefix { $0 != " " && $0 != ":" })
            let key = line.hasPrefix("RCPT") ? line : verb
            if let override = overrides[key] { return override }
            switch verb {
            case "EHLO": return "250-scripted\r\n250-8BITMIME\r\n250 SIZE 100000"
            case "MAIL", "RCPT": return "250 2.1.0 ok"
            case "DATA": return "354 go on"
            case ".": return "250 2.0.0 queued"
            case "QUIT": return "221 bye"
            default: return "502 5.5.1 what"
            }
        }
    }

    @Test func perRecipientOutcomesAndDotStuffingOnTheWire() async throws {
        try await withScripted(Self.ordinary(["RCPT TO:<gone@example.com>": "550 5.1.1 no such user",
                                              "RCPT TO:<busy@example.com>": "452 4.2.2 mailbox busy"])) { client, server in
            let outcomes = await client.relay(from: "alice@i2pmail.org", to: ["bob@example.com", "gone@example.com", "busy@example.com"],
                                              message: Self.message)
            #expect(outcomes == [.delivered, .permanent(code: 550, status: "5.1.1"), .temporary(code: 452, status: "4.2.2")])
            let received = server.received.withLockedValue { $0 }
            #expect(received.first == "EHLO mail.i2p")
            #expect(received.contains("MAIL FROM:<alice@i2pmail.org> SIZE=\(Self.message.readableBytes)"))
            #expect(received.contains("..leading dot"))
        }
    }

    @Test func aTemporaryRefusalAtTheEndOfDataIsTemporaryForAll() async throws {
        try await withScripted(Self.ordinary([".": "451 4.3.0 try later"])) { client, _ in
            let outcomes = await client.relay(from: "a@i2pmail.org", to: ["x@example.com", "y@example.com"], message: Self.message)
            #expect(outcomes == [.temporary(code: 451, status: "4.3.0"), .temporary(code: 451, status: "4.3.0")])
        }
    }

    @Test func garbageHangsAndClosesAreTemporaryFailures() async throws {
        // Garbage instead of a greeting.
        try await withScripted(greeting: "hello there", Self.ordinary()) { client, _ in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message)
                    == [.temporary(code: nil, status: "4.4.2")])
        }
        // A server that never answers EHLO: the reply timeout ends the attempt.
        try await withScripted(replyTimeout: .milliseconds(300), Self.ordinary(["EHLO": Optional<String>.none])) { client, _ in
            let started = ContinuousClock.now
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message)
                    == [.temporary(code: nil, status: "4.4.2")])
            #expect(ContinuousClock.now - started < .seconds(3))
        }
        // A close in the middle of DATA.
        try await withScripted(Self.ordinary([".": "CLOSE"])) { client, _ in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message)
                    == [.temporary(code: nil, status: "4.4.2")])
        }
        // A 421 at MAIL (the server is going away) is temporary; so is a 554 greeting (the relay
        // refuses this server, which says nothing about the message); a 550 to MAIL is permanent.
        try await withScripted(Self.ordinary(["MAIL": "421 4.3.2 closing"])) { client, _ in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message)
                    == [.temporary(code: 421, status: "4.3.2")])
        }
        try await withScripted(greeting: "554 5.7.1 go away", Self.ordinary()) { client, _ in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message)
                    == [.temporary(code: 554, status: "4.7.1")])
        }
        try await withScripted(Self.ordinary(["MAIL": "550 5.7.1 sender refused"])) { client, _ in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com", "y@example.com"], message: Self.message)
                    == [.permanent(code: 550, status: "5.7.1"), .permanent(code: 550, status: "5.7.1")])
        }
        // Nobody listening.
        let nobody = RelayClient(configuration: .init(host: "127.0.0.1", port: 1, helo: "mail.i2p"))
        #expect(await nobody.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message)
                == [.temporary(code: nil, status: "4.4.1")])
    }

    @Test func everyStepExpectsItsOwnReply() async throws {
        // A 354 to the end of data is no delivery; a 334 to AUTH PLAIN with its response is no login.
        try await withScripted(Self.ordinary([".": "354 more please"])) { client, _ in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message)
                    == [.temporary(code: 354, status: "4.5.0")])
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let handler = ScriptedServer { line in
            line.hasPrefix("EHLO") ? "250-scripted\r\n250 AUTH PLAIN" : line.hasPrefix("AUTH") ? "334 " : "250 ok"
        }
        let channel = try await ServerBootstrap(group: group).childChannelInitializer { $0.pipeline.addHandler(handler) }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = RelayClient(configuration: .init(host: "127.0.0.1", port: channel.localAddress!.port!, helo: "mail.i2p",
                                                      username: "core", password: "pw"), group: group)
        #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message) == [.temporary(code: 334, status: "4.5.0")])
        #expect(!handler.received.withLockedValue { $0 }.contains { $0.hasPrefix("MAIL") })
        try await channel.close()
        try await group.shutdownGracefully()
    }

    @Test func anOldServerGetsHELO() async throws {
        try await withScripted(Self.ordinary(["EHLO": "502 5.5.1 what is EHLO", "HELO": "250 hello"])) { client, server in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message) == [.delivered])
            let received = server.received.withLockedValue { $0 }
            #expect(received.contains("HELO mail.i2p"))
            #expect(received.contains("MAIL FROM:<a@i2pmail.org>"))  // no extensions: no SIZE
        }
    }

    @Test func internationalMailNeedsTheExtensionsItUses() async throws {
        let utf8Header = ByteBuffer(string: "From: a@i2pmail.org\r\nSubject: Grüße\r\n\r\nhi\r\n")
        let eightBitBody = ByteBuffer(string: "From: a@i2pmail.org\r\nSubject: x\r\n\r\nGrüße\r\n")
        // Offered: used, with the parameters (RFC 6531 3.4, RFC 6152 2).
        try await withScripted(Self.ordinary(["EHLO": "250-scripted\r\n250-8BITMIME\r\n250 SMTPUTF8"])) { client, server in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["jürgen@example.com"], message: utf8Header) == [.delivered])
            #expect(server.received.withLockedValue { $0 }.contains("MAIL FROM:<a@i2pmail.org> BODY=8BITMIME SMTPUTF8"))
        }
        // Not offered: a non-ASCII address is refused for good before any MAIL; UTF-8 in the
        // header travels as 8-bit data, as legacy mail always has.
        try await withScripted(Self.ordinary(["EHLO": "250-scripted\r\n250 8BITMIME"])) { client, server in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["jürgen@example.com"], message: Self.message) == [.permanent(code: 553, status: "5.6.7")])
            #expect(!server.received.withLockedValue { $0 }.contains { $0.hasPrefix("MAIL") })
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: utf8Header) == [.delivered])
            #expect(server.received.withLockedValue { $0 }.contains("MAIL FROM:<a@i2pmail.org> BODY=8BITMIME"))
        }
        try await withScripted(Self.ordinary(["EHLO": "250-scripted\r\n250 SIZE 1000000"])) { client, server in
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: eightBitBody) == [.permanent(code: 554, status: "5.6.3")])
            #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message) == [.delivered])
        }
    }

    @Test func aTricklingRelayIsCutOffByTheSessionLimit() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Answers EHLO with continuation lines, one every 50 ms, never the last one.
        final class Trickler: ChannelInboundHandler, Sendable {
            typealias InboundIn = ByteBuffer
            typealias OutboundOut = ByteBuffer
            func channelActive(context: ChannelHandlerContext) {
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "220 slow\r\n")), promise: nil)
            }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                let channel = context.channel
                channel.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(50)) { task in
                    guard channel.isActive else { task.cancel(); return }
                    channel.writeAndFlush(ByteBuffer(string: "250-still here\r\n"), promise: nil)
                }
            }
        }
        let channel = try await ServerBootstrap(group: group).childChannelInitializer { $0.pipeline.addHandler(Trickler()) }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = RelayClient(configuration: .init(host: "127.0.0.1", port: channel.localAddress!.port!, helo: "mail.i2p",
                                                      replyTimeout: .milliseconds(300), sessionTimeout: .milliseconds(700)), group: group)
        let started = ContinuousClock.now
        // The reply reader refuses more than 100 lines, so the trickle is kept below that by time.
        #expect(await client.relay(from: "a@i2pmail.org", to: ["x@example.com"], message: Self.message) == [.temporary(code: nil, status: "4.4.2")])
        #expect(ContinuousClock.now - started < .seconds(3))
        try await channel.close()
        try await group.shutdownGracefully()
    }
}

/// STARTTLS as a client (RFC 3207) against scripted servers: the cases that need no handshake.
@Suite(.serialized) struct RelayClientStartTLSTests {
    typealias Scripted = RelayClientTests.ScriptedServer

    func withServer(_ script: @escaping @Sendable (String) -> String?, tls: TLSPolicy,
                    _ body: (RelayClient, Scripted) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let handler = Scripted(script: script)
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { $0.pipeline.addHandler(handler) }
            .bind(host: "127.0.0.1", port: 0).get()
        // No case here waits for a timeout; a short one would only trip when the test process's
        // other suites keep the task pool busy (seen in CI: an idle close read as a bad connection).
        let client = RelayClient(configuration: .init(host: "127.0.0.1", port: channel.localAddress!.port!, helo: "mx.i2pmail.org",
                                                      replyTimeout: .seconds(60), tls: tls), group: group)
        try await body(client, handler)
        try await channel.close()
        try await group.shutdownGracefully()
    }

    /// An upgrade that must never run in these cases.
    static let noUpgrade: @Sendable (any Channel) async throws -> Void = { _ in Issue.record("TLS upgrade was started") }

    static func offering(_ startTLSAnswer: String) -> @Sendable (String) -> String? {
        RelayClientTests.ordinary(["EHLO": "250-scripted\r\n250-STARTTLS\r\n250 8BITMIME", "STARTTLS": startTLSAnswer])
    }

    @Test func injectedRepliesAfterTheStartTLSReplyEndTheAttempt() async throws {
        // A man in the middle appends cleartext "replies" to the 220: they must never be read as
        // the answers to what follows inside TLS (CVE-2021-38371 class).
        try await withServer(Self.offering("220 2.0.0 go ahead\r\n250 injected\r\n250 injected"),
                             tls: .required(upgrade: Self.noUpgrade)) { client, server in
            let attempt = await client.attempt(from: "a@i2pmail.org", to: ["x@example.com"], message: RelayClientTests.message)
            // A TLS failure (4.7.5): only opportunistic delivery may go on in clear afterwards.
            #expect(attempt.outcomes == [.temporary(code: nil, status: "4.7.5")])
            #expect(!attempt.encrypted && attempt.tlsFailed)
            #expect(!server.received.withLockedValue { $0 }.contains { $0.hasPrefix("MAIL") })
        }
    }

    @Test func aRefusedStartTLSGoesOnInClearOnlyWhenOpportunistic() async throws {
        try await withServer(Self.offering("454 4.7.0 TLS not available"), tls: .opportunistic(upgrade: Self.noUpgrade)) { client, server in
            let attempt = await client.attempt(from: "a@i2pmail.org", to: ["x@example.com"], message: RelayClientTests.message)
            #expect(attempt.outcomes == [.delivered] && !attempt.encrypted && !attempt.tlsFailed)
            #expect(server.received.withLockedValue { $0 }.contains("STARTTLS"))
        }
        try await withServer(Self.offering("454 4.7.0 TLS not available"), tls: .required(upgrade: Self.noUpgrade)) { client, server in
            let attempt = await client.attempt(from: "a@i2pmail.org", to: ["x@example.com"], message: RelayClientTests.message)
            #expect(attempt.outcomes == [.temporary(code: 454, status: "4.7.0")])
            #expect(!server.received.withLockedValue { $0 }.contains { $0.hasPrefix("MAIL") })
        }
        // Not offered at all: required TLS sends nothing (RFC 5248 4.7.10).
        try await withServer(RelayClientTests.ordinary(), tls: .required(upgrade: Self.noUpgrade)) { client, server in
            let attempt = await client.attempt(from: "a@i2pmail.org", to: ["x@example.com"], message: RelayClientTests.message)
            #expect(attempt.outcomes == [.temporary(code: nil, status: "4.7.10")])
            #expect(!server.received.withLockedValue { $0 }.contains { $0.hasPrefix("MAIL") })
        }
    }
}
