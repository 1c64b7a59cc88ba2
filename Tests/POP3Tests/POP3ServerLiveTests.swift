import Logging
import NIOCore
import NIOPosix
import Wire
import Testing
@testable import POP3

/// The real server on a real TCP socket (port 0), with the in-memory backend.
@Suite(.timeLimit(.minutes(1))) struct POP3ServerLiveTests {
    @Test func dialogueOverTCP() async throws {
        let backend = FakePOP3Backend()
        try await withServer(backend: backend) { server, address in
            try await withClient(address) { client in
                #expect(try await client.readLine() == "+OK Postern POP3 ready")
                try await client.write("USER alice@mail.i2p\r\n")
                #expect(try await client.readLine() == "+OK send PASS")
                try await client.write("PASS secret pass\r\n")
                #expect(try await client.readLine() == "+OK logged in, 3 messages (135 octets)")
                try await client.write("RETR 1\r\n")
                #expect(try await client.readLines(9) == [
                    "+OK 59 octets", "From: bob@mail.i2p", "Subject: hi", "", "Hello", "..hidden", "..", "bye", ".",
                ])
                try await client.write("QUIT\r\n")
                #expect(try await client.readLine() == "+OK Postern POP3 signing off (0 messages deleted)")
                #expect(try await client.readLine() == nil)
            }
        }
        #expect(await backend.locked.isEmpty)
    }

    @Test func pipelinedCommandsInOneWrite() async throws {
        let backend = FakePOP3Backend()
        try await withServer(backend: backend) { server, address in
            try await withClient(address) { client in
                #expect(try await client.readLine() == "+OK Postern POP3 ready")
                try await client.write(
                    "CAPA\r\nUSER alice@mail.i2p\r\nPASS secret pass\r\nSTAT\r\nLIST\r\nUIDL 2\r\n"
                        + "TOP 2 1\r\nDELE 1\r\nRETR 1\r\nRETR 3\r\nQUIT\r\n")
                let expected = [
                    "+OK capability list follows", "USER", "SASL PLAIN", "RESP-CODES", "AUTH-RESP-CODE",
                    "PIPELINING", "TOP", "UIDL", ".",
                    "+OK send PASS",
                    "+OK logged in, 3 messages (135 octets)",
                    "+OK 3 135",
                    "+OK 3 messages (135 octets)", "1 59", "2 40", "3 36", ".",
                    "+OK 2 uid-2",
                    "+OK top of message follows", "Subject: two", "", "line 1", ".",
                    "+OK message 1 deleted",
                    "-ERR message 1 already deleted",
                    "+OK 36 octets", "Subject: no final line break", "", "last", ".",
                    "+OK Postern POP3 signing off (1 message deleted)",
                ]
                #expect(try await client.readLines(expected.count) == expected)
                #expect(try await client.readLine() == nil)
            }
        }
        #expect(await backend.deleteCalls == [["uid-1"]])
        #expect(await backend.locked.isEmpty)
    }

    @Test func secondSessionOnTheSameMaildropIsInUse() async throws {
        let backend = FakePOP3Backend()
        try await withServer(backend: backend) { server, address in
            try await withClient(address) { first in
                #expect(try await first.readLine() == "+OK Postern POP3 ready")
                try await first.write("AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz\r\n")
                #expect(try await first.readLine() == "+OK logged in, 3 messages (135 octets)")

                try await withClient(address) { (second: inout LiveClient) async throws in
                    #expect(try await second.readLine() == "+OK Postern POP3 ready")
                    try await second.write("USER alice@mail.i2p\r\nPASS secret pass\r\n")
                    #expect(try await second.readLines(2) == [
                        "+OK send PASS",
                        "-ERR [IN-USE] maildrop is in use by another session; try again later",
                    ])
                    try await first.write("QUIT\r\n")
                    #expect(try await first.readLine() == "+OK Postern POP3 signing off (0 messages deleted)")
                    // The lock is released before QUIT is answered: the second session gets in.
                    try await second.write("USER alice@mail.i2p\r\nPASS secret pass\r\n")
                    #expect(try await second.readLines(2) == [
                        "+OK send PASS", "+OK logged in, 3 messages (135 octets)",
                    ])
                }
            }
            try await eventually { await backend.locked.isEmpty }
        }
    }

    @Test func droppedConnectionDeletesNothingAndReleasesTheLock() async throws {
        let backend = FakePOP3Backend()
        try await withServer(backend: backend) { server, address in
            try await withClient(address) { client in
                _ = try await client.readLine()
                try await client.write("USER alice@mail.i2p\r\nPASS secret pass\r\nDELE 1\r\nDELE 2\r\n")
                #expect(try await client.readLines(4).last == "+OK message 2 deleted")
                #expect(await backend.locked == ["alice@mail.i2p"])
            }  // closed without QUIT
            try await eventually { await backend.locked.isEmpty }
        }
        #expect(await backend.deleteCalls.isEmpty)
        #expect(await backend.messages(in: "alice@mail.i2p").count == 3)
        #expect(await backend.unlockCount == 1)
    }

    @Test func autologoutClosesSilentlyAndDeletesNothing() async throws {
        let backend = FakePOP3Backend()
        let configuration = POP3ServerConfiguration(host: "127.0.0.1", port: 0, autologout: .milliseconds(1500))
        try await withServer(backend: backend, configuration: configuration) { server, address in
            try await withClient(address) { client in
                _ = try await client.readLine()
                try await client.write("USER alice@mail.i2p\r\nPASS secret pass\r\nDELE 1\r\n")
                #expect(try await client.readLines(3).count == 3)
                // RFC 1939 section 3: no response, just the end of the connection.
                #expect(try await client.readLine() == nil)
            }
            try await eventually { await backend.locked.isEmpty }
        }
        #expect(await backend.deleteCalls.isEmpty)
    }

    @Test func sessionsBeyondTheLimitAreRefused() async throws {
        let configuration = POP3ServerConfiguration(host: "127.0.0.1", port: 0, maxSessions: 1)
        try await withServer(backend: FakePOP3Backend(), configuration: configuration) { server, address in
            try await withClient(address) { first in
                #expect(try await first.readLine() == "+OK Postern POP3 ready")
                try await withClient(address) { (second: inout LiveClient) async throws in
                    #expect(try await second.readLine() == "-ERR [SYS/TEMP] too many sessions")
                    #expect(try await second.readLine() == nil)
                }
                try await first.write("NOOP\r\n")
                #expect(try await first.readLine() == "-ERR NOOP is only valid after login")
            }
        }
    }

    @Test func shutdownEndsIdleSessionsAndReleasesLocks() async throws {
        let backend = FakePOP3Backend()
        let server = POP3Server(
            configuration: POP3ServerConfiguration(host: "127.0.0.1", port: 0), backend: backend,
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "pop3-test"))
        let address = try await server.start()
        try await withClient(address) { client in
            _ = try await client.readLine()
            try await client.write("USER alice@mail.i2p\r\nPASS secret pass\r\nDELE 1\r\n")
            #expect(try await client.readLines(3).count == 3)
            await server.shutdown(gracePeriod: .seconds(5))
            #expect(try await client.readLine() == "-ERR [SYS/TEMP] server shutting down")
            #expect(try await client.readLine() == nil)
        }
        #expect(await backend.locked.isEmpty)
        #expect(await backend.deleteCalls.isEmpty)
        // No longer accepting.
        await #expect(throws: (any Error).self) { try await withClient(address) { _ in } }
    }

    @Test func framingErrorsAreAnsweredAndTheSessionGoesOn() async throws {
        try await withServer(backend: FakePOP3Backend()) { server, address in
            try await withClient(address) { client in
                _ = try await client.readLine()
                try await client.write(String(repeating: "A", count: 600) + "\r\nSTAT\nX\r\nNOOP\r\nUSER a\u{0}\r\n")
                #expect(try await client.readLines(4) == [
                    "-ERR line too long; a command line is at most 255 octets",
                    "-ERR line contains a bare CR or LF; end every line with CRLF",
                    "-ERR NOOP is only valid after login",
                    "-ERR command contains a NUL byte",
                ])
                // An overlong line that arrives in pieces.
                for _ in 0..<10 { try await client.write(String(repeating: "B", count: 100)) }
                try await client.write("\r\nQUIT\r\n")
                #expect(try await client.readLines(2) == [
                    "-ERR line too long; a command line is at most 255 octets", "+OK Postern POP3 signing off",
                ])
                #expect(try await client.readLine() == nil)
            }
        }
    }

    @Test func halfClosingClientGetsEveryAnswer() async throws {
        try await withServer(backend: FakePOP3Backend()) { server, address in
            try await withClient(address) { client in
                try await client.write("USER bob@mail.i2p\r\nPASS hunter2\r\nSTAT\r\n")
                try await client.finishWriting()
                #expect(try await client.readLines(4) == [
                    "+OK Postern POP3 ready", "+OK send PASS", "+OK logged in, 0 messages (0 octets)", "+OK 0 0",
                ])
                #expect(try await client.readLine() == nil)
            }
        }
    }

    @Test func largeMessageIsByteExact() async throws {
        // About 1.5 MiB with dots at line starts and no final line break.
        var body = ""
        for index in 0..<60_000 {
            body += index % 7 == 0 ? ".dot line \(index)\r\n" : "line \(index) of the message\r\n"
        }
        let message = "Subject: big\r\n\r\n" + body + "."
        let mailboxes = ["alice@mail.i2p": [FakePOP3Backend.StoredMessage(uid: "big", bytes: message)]]
        let backend = FakePOP3Backend(mailboxes: mailboxes)
        try await withServer(backend: backend) { server, address in
            try await withClient(address) { client in
                try await client.write("USER alice@mail.i2p\r\nPASS secret pass\r\nRETR 1\r\nQUIT\r\n")
                let received = try await client.readToEnd()
                var expected = ByteBuffer(string: "+OK Postern POP3 ready\r\n+OK send PASS\r\n")
                expected.writeString("+OK logged in, 1 message (\(message.utf8.count) octets)\r\n")
                expected.writeString("+OK \(message.utf8.count) octets\r\n")
                DotStuffing.writeMultiline(ByteBuffer(string: message), into: &expected)
                expected.writeString("+OK Postern POP3 signing off (0 messages deleted)\r\n")
                #expect(received == expected)
                #expect(received.readableBytesView.count > 1_000_000)
            }
        }
    }
}

// MARK: - Helpers

private func withServer(
    backend: FakePOP3Backend,
    configuration: POP3ServerConfiguration = POP3ServerConfiguration(host: "127.0.0.1", port: 0),
    _ body: (POP3Server, SocketAddress) async throws -> Void
) async throws {
    let server = POP3Server(
        configuration: configuration, backend: backend, group: MultiThreadedEventLoopGroup.singleton,
        logger: Logger(label: "pop3-test"))
    let address = try await server.start()
    do {
        try await body(server, address)
    } catch {
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
    await server.shutdown(gracePeriod: .seconds(1))
}

private func withClient<Result>(
    _ address: SocketAddress, _ body: (inout LiveClient) async throws -> Result
) async throws -> Result {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .connect(to: address) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(isOutboundHalfClosureEnabled: true))
            }
        }
    return try await channel.executeThenClose { inbound, outbound in
        var client = LiveClient(iterator: inbound.makeAsyncIterator(), writer: outbound)
        return try await body(&client)
    }
}

/// A line-oriented test client over an `NIOAsyncChannel`.
private struct LiveClient {
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let writer: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var buffer = ByteBuffer()
    var atEnd = false

    func write(_ text: String) async throws {
        try await writer.write(ByteBuffer(string: text))
    }

    func finishWriting() async throws {
        writer.finish()
    }

    /// The next line without CRLF, or `nil` when the server closed the connection.
    mutating func readLine() async throws -> String? {
        while true {
            let view = buffer.readableBytesView
            if let crlf = view.firstRange(of: [13, 10]) {
                let length = crlf.lowerBound - view.startIndex
                let line = buffer.readString(length: length)
                buffer.moveReaderIndex(forwardBy: 2)
                return line
            }
            guard try await fill() else { return nil }
        }
    }

    mutating func readLines(_ count: Int) async throws -> [String] {
        var lines: [String] = []
        for _ in 0..<count {
            guard let line = try await readLine() else { break }
            lines.append(line)
        }
        return lines
    }

    mutating func readToEnd() async throws -> ByteBuffer {
        while try await fill() {}
        return buffer
    }

    private mutating func fill() async throws -> Bool {
        guard !atEnd, var chunk = try await iterator.next() else {
            atEnd = true
            return false
        }
        buffer.writeBuffer(&chunk)
        return true
    }
}

private func eventually(_ condition: () async -> Bool) async throws {
    for _ in 0..<200 {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(25))
    }
    Issue.record("condition not met within 5 seconds")
}
