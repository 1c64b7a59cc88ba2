import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import Wire
@testable import Notify

/// A tiny IRC server on 127.0.0.1:0 that records the lines each client sends and lets the test
/// write anything back — including what no real server should send.
final class FakeIRCServer: Sendable {
    final class Connection: Sendable {
        let channel: any Channel
        private let received = NIOLockedValueBox<(lines: [String], partial: [UInt8], read: Int)>(([], [], 0))

        init(channel: any Channel) { self.channel = channel }

        fileprivate func append(_ bytes: [UInt8]) {
            received.withLockedValue { state in
                for byte in bytes {
                    if byte == UInt8(ascii: "\n") {
                        var line = state.partial
                        if line.last == UInt8(ascii: "\r") { line.removeLast() }
                        state.lines.append(String(decoding: line, as: UTF8.self))
                        state.partial.removeAll()
                    } else {
                        state.partial.append(byte)
                    }
                }
            }
        }

        var allLines: [String] { received.withLockedValue { $0.lines } }

        func send(_ text: String) { send(Array(text.utf8)) }

        func send(_ bytes: [UInt8]) {
            let channel = self.channel
            channel.eventLoop.execute { channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil) }
        }

        func close() { channel.close(promise: nil) }

        /// The next line (after those already taken) that satisfies `predicate`.
        func next(timeout: Duration = .seconds(10), where predicate: @Sendable (String) -> Bool = { _ in true }) async throws -> String {
            let clock = ContinuousClock()
            let end = clock.now + timeout
            while clock.now < end {
                let found: String? = received.withLockedValue { state in
                    while state.read < state.lines.count {
                        let line = state.lines[state.read]
                        state.read += 1
                        if predicate(line) { return line }
                    }
                    return nil
                }
                if let found { return found }
                try await Task.sleep(for: .milliseconds(10))
            }
            throw TimeoutError()
        }
    }

    struct TimeoutError: Error {}

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let connection: Connection
        init(connection: Connection) { self.connection = connection }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            connection.append(buffer.readBytes(length: buffer.readableBytes) ?? [])
        }
    }

    private let server: any Channel
    private let connections = NIOLockedValueBox<[Connection]>([])
    var port: Int { server.localAddress!.port! }

    init(group: any EventLoopGroup) async throws {
        let connections = self.connections
        server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let connection = Connection(channel: channel)
                    try channel.pipeline.syncOperations.addHandler(Handler(connection: connection))
                    connections.withLockedValue { $0.append(connection) }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var connectionCount: Int { connections.withLockedValue { $0.count } }

    /// The `index`-th connection accepted (0-based), waiting for it.
    func connection(_ index: Int, timeout: Duration = .seconds(10)) async throws -> Connection {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if let connection = connections.withLockedValue({ $0.count > index ? $0[index] : nil }) { return connection }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TimeoutError()
    }

    func shutdown() async throws {
        try await server.close()
        for connection in connections.withLockedValue({ $0 }) { try? await connection.channel.close() }
    }
}

@Suite(.serialized) struct IRCNotifierServiceTests {
    private func configuration(gather: TimeAmount = .milliseconds(300)) -> IRCNotifierConfiguration {
        IRCNotifierConfiguration(
            client: IRCClientConfiguration(nick: "postman", registrationTimeout: .seconds(10), floodInterval: .milliseconds(200)),
            notifier: Notifier.Configuration(interval: .seconds(60), gather: gather),
            reconnectMinimum: .milliseconds(100), reconnectMaximum: .seconds(1),
            tickInterval: .milliseconds(50))
    }

    @Test func liveAgainstAFakeServer() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await FakeIRCServer(group: group)
        let verifications = NIOLockedValueBox<[Verification]>([])
        let service = IRCNotifierService(
            configuration: configuration(),
            connector: TCPConnector(host: "127.0.0.1", port: server.port),
            logger: Logger(label: "irc-test"),
            group: group,
            onVerified: { account, nick in verifications.withLockedValue { $0.append(Verification(account: account, nick: nick)) } })
        let running = Task { await service.run() }

        // Registration.
        let first = try await server.connection(0)
        #expect(try await first.next() == "NICK postman")
        #expect(try await first.next() == "USER postman 0 * :Postern new-mail notices")
        first.send(":irc.fake 433 * postman :Nickname is already in use\r\n")
        #expect(try await first.next() == "NICK postman_")
        first.send(":irc.fake 001 postman_ :Welcome\r\n")

        // PING is answered with its token.
        first.send("PING :tok-1\r\n")
        #expect(try await first.next() == "PONG tok-1")

        // A 10 KB line, garbage and bare LFs do not stall or crash the client.
        first.send(Array(":irc.fake NOTICE postman_ :".utf8) + Array(repeating: UInt8(ascii: "x"), count: 10_240) + [13, 10])
        first.send([0, 1, 2, 0xFF, 0xFE, 13, 10, 0x3A, 10, 0x20, 0x20, 10] + Array("€€€ garbage\n".utf8))
        first.send(":x!y@z PRIVMSG postman_ :\u{1}VERSION\u{1}\n:x!y@z PRIVMSG #chan :hello\nPING :tok-2\n")
        #expect(try await first.next() == "PONG tok-2")

        // Verification: the code from another nick is ignored, from the right one accepted.
        let code = service.issueCode(account: "alice", nick: "alice")
        first.send(":mallory!m@h PRIVMSG postman_ :\(code)\r\n")
        first.send(":Alice!a@h PRIVMSG postman_ :\(code)\r\n")
        #expect(try await first.next() == "PRIVMSG Alice :Verified: new-mail notices for this nick are on.")
        try await eventually { verifications.withLockedValue { $0 } == [Verification(account: "alice", nick: "Alice")] }
        #expect(service.verifiedNick(account: "alice") == "Alice")

        // Three mails give exactly one coalesced notice.
        for _ in 0..<3 { service.notify(account: "alice", address: "alice@mail.i2p", count: 1) }
        service.notify(account: "nobody", address: "nobody@mail.i2p", count: 1)
        #expect(try await first.next { $0.hasPrefix("PRIVMSG") } == "PRIVMSG Alice :3 new messages for alice@mail.i2p")
        try await Task.sleep(for: .milliseconds(600))
        #expect(first.allLines.filter { $0.hasPrefix("PRIVMSG") && $0.contains("new message") }.count == 1)
        // Nothing ever joined a channel or answered CTCP, and no line was over 512 octets.
        #expect(!first.allLines.contains { $0.hasPrefix("JOIN") || $0.contains("\u{1}") })
        #expect(first.allLines.allSatisfy { $0.utf8.count <= 510 })

        // The server drops the connection: the client reconnects.
        first.close()
        let second = try await server.connection(1)
        #expect(try await second.next() == "NICK postman")
        second.send(":irc.fake 001 postman :Welcome\r\n")
        second.send("PING :tok-3\r\n")
        #expect(try await second.next { $0.hasPrefix("PONG") } == "PONG tok-3")

        // A notice while connected again goes out (the interval since the first has not passed:
        // it waits, so use a fresh account).
        service.seedVerified(["bob": "bob"])
        service.notify(account: "bob", address: "bob@mail.i2p", count: 1)
        #expect(try await second.next { $0.hasPrefix("PRIVMSG") } == "PRIVMSG bob :1 new message for bob@mail.i2p")

        // stop() says QUIT and run() returns.
        service.stop()
        #expect(try await second.next { $0.hasPrefix("QUIT") } == "QUIT bye")
        await running.value
        #expect(server.connectionCount == 2)
        try await server.shutdown()
    }

    @Test func reconnectsWithBackoffWhenTheServerIsDown() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        // A port nobody listens on: bind, note the port, close.
        let probe = try await FakeIRCServer(group: group)
        let port = probe.port
        try await probe.shutdown()
        let attempts = NIOLockedValueBox(0)
        struct CountingConnector: StreamConnector {
            let inner: TCPConnector
            let attempts: NIOLockedValueBox<Int>
            func connect<Output: Sendable>(group: any EventLoopGroup,
                                           initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output {
                attempts.withLockedValue { $0 += 1 }
                return try await inner.connect(group: group, initializer: initializer)
            }
        }
        let service = IRCNotifierService(configuration: configuration(),
                                         connector: CountingConnector(inner: TCPConnector(host: "127.0.0.1", port: port), attempts: attempts),
                                         logger: Logger(label: "irc-test"), group: group)
        let running = Task { await service.run() }
        try await eventually(timeout: .seconds(5)) { attempts.withLockedValue { $0 } >= 3 }
        // Back-off: 100 ms, 200 ms, 400 ms … — far fewer attempts than a busy loop would make.
        try await Task.sleep(for: .milliseconds(500))
        #expect(attempts.withLockedValue { $0 } < 10)
        service.stop()
        await running.value
    }

    @Test func stopEndsRunWhileCancelledToo() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await FakeIRCServer(group: group)
        let service = IRCNotifierService(configuration: configuration(),
                                         connector: TCPConnector(host: "127.0.0.1", port: server.port),
                                         logger: Logger(label: "irc-test"), group: group)
        let running = Task { await service.run() }
        let connection = try await server.connection(0)
        _ = try await connection.next { $0.hasPrefix("USER") }
        running.cancel()
        #expect(try await connection.next { $0.hasPrefix("QUIT") } == "QUIT bye")
        await running.value
        try await server.shutdown()
    }

    /// Like the I2P connector: the stream is open before the IRC handler is added.
    struct AlreadyOpenConnector: StreamConnector {
        let port: Int
        func connect<Output: Sendable>(group: any EventLoopGroup,
                                       initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output {
            let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
            try await Task.sleep(for: .milliseconds(50))
            return try await channel.eventLoop.flatSubmit { initializer(channel) }.get()
        }
    }

    @Test func registersOnAStreamThatIsAlreadyOpen() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await FakeIRCServer(group: group)
        let service = IRCNotifierService(configuration: configuration(), connector: AlreadyOpenConnector(port: server.port),
                                         logger: Logger(label: "irc-test"), group: group)
        let running = Task { await service.run() }
        let connection = try await server.connection(0)
        #expect(try await connection.next() == "NICK postman")
        service.stop()
        #expect(try await connection.next { $0.hasPrefix("QUIT") } == "QUIT bye")
        await running.value
        try await server.shutdown()
    }

    @Test func noticesWaitInTheOutboxWhileDisconnected() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let server = try await FakeIRCServer(group: group)
        let service = IRCNotifierService(configuration: configuration(gather: .zero),
                                         connector: TCPConnector(host: "127.0.0.1", port: server.port),
                                         logger: Logger(label: "irc-test"), group: group)
        service.seedVerified(["carol": "carol"])
        // Before run(): nothing is connected, the notice is kept.
        service.notify(account: "carol", address: "carol@mail.i2p", count: 2)
        let running = Task { await service.run() }
        let connection = try await server.connection(0)
        _ = try await connection.next { $0.hasPrefix("USER") }
        connection.send(":irc.fake 001 postman :Welcome\r\n")
        #expect(try await connection.next { $0.hasPrefix("PRIVMSG") } == "PRIVMSG carol :2 new messages for carol@mail.i2p")
        service.stop()
        await running.value
        try await server.shutdown()
    }
}

func eventually(timeout: Duration = .seconds(10), _ condition: @Sendable () -> Bool) async throws {
    let clock = ContinuousClock()
    let end = clock.now + timeout
    while clock.now < end {
        if condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw FakeIRCServer.TimeoutError()
}
