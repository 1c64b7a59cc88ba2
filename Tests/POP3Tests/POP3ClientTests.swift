import Logging
import NIOCore
import NIOPosix
import Testing
import Wire
@testable import POP3

/// The POP3 client against the real server of this module (in-process, TCP port 0, in-memory
/// backend) and against a scripted server that misbehaves on purpose.
@Suite(.timeLimit(.minutes(1))) struct POP3ClientTests {
    // MARK: - Against the real server

    @Test func readsTheMaildrop() async throws {
        try await withPOP3Server(backend: FakePOP3Backend()) { connector in
            let client = try await POP3Client.connect(connector)
            let capabilities = try await client.capabilities()
            #expect(capabilities.contains("TOP") && capabilities.contains("UIDL") && capabilities.contains("USER"))
            try await client.login(user: "alice@mail.i2p", password: "secret pass")
            let stat = try await client.stat()
            #expect(stat.count == 3 && stat.size == 135)
            let list = try await client.list()
            #expect(list.map(\.number) == [1, 2, 3] && list.map(\.size) == [59, 40, 36])
            let uidl = try await client.uidl()
            #expect(uidl.map(\.number) == [1, 2, 3] && uidl.map(\.uid) == ["uid-1", "uid-2", "uid-3"])
            // Lines starting with "." (".hidden" and a lone ".") are stuffed on the wire.
            #expect(try await client.retrieve(1) == Array(FakePOP3Backend.firstMessage.utf8))
            #expect(try await client.retrieve(2) == Array(FakePOP3Backend.secondMessage.utf8))
            // No final line break in the store: the wire adds CRLF, and so does the result.
            #expect(try await client.retrieve(3) == Array((FakePOP3Backend.thirdMessage + "\r\n").utf8))
            #expect(try await client.top(1, lines: 2)
                == Array("From: bob@mail.i2p\r\nSubject: hi\r\n\r\nHello\r\n.hidden\r\n".utf8))
            #expect(try await client.top(2, lines: 0) == Array("Subject: two\r\n\r\n".utf8))
            try await client.noop()
            await #expect(throws: POP3ClientError.serverError(
                command: "RETR 9", text: "no such message, only 3 messages in maildrop")) {
                try await client.retrieve(9)
            }
            try await client.quit()
            await #expect(throws: POP3ClientError.closed) { try await client.stat() }
        }
    }

    @Test func wrongPasswordIsAuthenticationFailedAndTheClientGoesOn() async throws {
        let backend = FakePOP3Backend()
        try await withPOP3Server(backend: backend) { connector in
            let client = try await POP3Client.connect(connector)
            do {
                try await client.login(user: "alice@mail.i2p", password: "wrong")
                Issue.record("login with a wrong password succeeded")
            } catch let error as POP3ClientError {
                #expect(error == .authenticationFailed("[AUTH] invalid user name or password"))
                #expect(error.responseCode == "AUTH")
                #expect(!error.endsConnection)
            }
            try await client.login(user: "alice@mail.i2p", password: "secret pass")
            #expect(try await client.stat().count == 3)
            try await client.quit()
        }
    }

    @Test func deleteThenQuitCommits() async throws {
        let backend = FakePOP3Backend()
        try await withPOP3Server(backend: backend) { connector in
            let client = try await POP3Client.connect(connector)
            try await client.login(user: "alice@mail.i2p", password: "secret pass")
            try await client.delete(1)
            #expect(try await client.stat().count == 2)
            await #expect(throws: POP3ClientError.serverError(command: "RETR 1", text: "message 1 already deleted")) {
                try await client.retrieve(1)
            }
            try await client.quit()
        }
        #expect(await backend.deleteCalls == [["uid-1"]])
        #expect(await backend.messages(in: "alice@mail.i2p") == ["uid-2", "uid-3"])
    }

    @Test func closeWithoutQuitDeletesNothing() async throws {
        let backend = FakePOP3Backend()
        try await withPOP3Server(backend: backend) { connector in
            let client = try await POP3Client.connect(connector)
            try await client.login(user: "alice@mail.i2p", password: "secret pass")
            try await client.delete(1)
            try await client.delete(2)
            await client.close()
            await client.close()  // twice is harmless
            await #expect(throws: POP3ClientError.closed) { try await client.noop() }
            try await eventually { await backend.locked.isEmpty }
        }
        #expect(await backend.deleteCalls.isEmpty)
        #expect(await backend.messages(in: "alice@mail.i2p").count == 3)
    }

    @Test func resetUnmarksDeletions() async throws {
        let backend = FakePOP3Backend()
        try await withPOP3Server(backend: backend) { connector in
            let client = try await POP3Client.connect(connector)
            try await client.login(user: "alice@mail.i2p", password: "secret pass")
            try await client.delete(2)
            try await client.reset()
            #expect(try await client.list().count == 3)
            try await client.quit()
        }
        #expect(await backend.messages(in: "alice@mail.i2p").count == 3)
    }

    @Test func concurrentCallsAreSerialised() async throws {
        try await withPOP3Server(backend: FakePOP3Backend()) { connector in
            let client = try await POP3Client.connect(connector)
            try await client.login(user: "alice@mail.i2p", password: "secret pass")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for round in 0..<10 {
                    group.addTask {
                        let number = round % 3 + 1
                        let expected = [FakePOP3Backend.firstMessage, FakePOP3Backend.secondMessage,
                                        FakePOP3Backend.thirdMessage + "\r\n"][number - 1]
                        let message = try await client.retrieve(number)
                        #expect(message == Array(expected.utf8))
                    }
                    group.addTask {
                        let uidl = try await client.uidl()
                        #expect(uidl.count == 3)
                    }
                    group.addTask {
                        let stat = try await client.stat()
                        #expect(stat.size == 135)
                    }
                }
                try await group.waitForAll()
            }
            try await client.quit()
        }
    }

    @Test func largeMessageIsByteExact() async throws {
        var body = ""
        for index in 0..<8_000 {
            body += index % 5 == 0 ? ".dot line \(index)\r\n" : "line \(index) of the message\r\n"
        }
        let message = "Subject: big\r\n\r\n" + body + ".\r\n..\r\n"
        let backend = FakePOP3Backend(mailboxes: ["alice@mail.i2p": [.init(uid: "big", bytes: message)]])
        try await withPOP3Server(backend: backend) { connector in
            let client = try await POP3Client.connect(connector)
            try await client.login(user: "alice@mail.i2p", password: "secret pass")
            #expect(try await client.retrieve(1) == Array(message.utf8))
            try await client.quit()
        }
    }

    @Test func argumentsThatWouldSmuggleACommandAreRefusedUnsent() async throws {
        let backend = FakePOP3Backend()
        try await withPOP3Server(backend: backend) { connector in
            let client = try await POP3Client.connect(connector)
            for (user, password) in [("alice@mail.i2p\r\nQUIT", "x"), ("alice@mail.i2p", "secret pass\nDELE 1"),
                                     ("alice@mail.i2p", "a\0b"), ("alice smith", "x"), ("", "x"),
                                     ("alice@mail.i2p", String(repeating: "p", count: 300))] {
                await #expect(throws: POP3ClientError.self) { try await client.login(user: user, password: password) }
            }
            #expect(await backend.authenticateCalls == 0)
            await #expect(throws: POP3ClientError.invalidArgument("message numbers start at 1")) { try await client.retrieve(0) }
            await #expect(throws: POP3ClientError.self) { try await client.top(1, lines: -1) }
            // Still usable.
            try await client.login(user: "alice@mail.i2p", password: "secret pass")
            try await client.quit()
        }
    }

    @Test func failingConnectorIsConnectFailed() async throws {
        do {
            _ = try await POP3Client.connect(FailingConnector(), timeout: .seconds(5))
            Issue.record("connected through a failing connector")
        } catch let error as POP3ClientError {
            #expect(error == .connectFailed("tunnel down"))
            #expect(error.endsConnection)
        }
    }

    @Test func stalledConnectTimesOutAndTheLateStreamIsClosed() async throws {
        try await withScriptedServer({ peer in
            // The stream arrives after the client gave up: it is closed without a word.
            try? await peer.send("+OK too late\r\n")
            try await peer.waitForClose()
        }) { connector in
            let slow = SlowConnector(delay: .milliseconds(500), connector: connector)
            await #expect(throws: POP3ClientError.timedOut) {
                _ = try await POP3Client.connect(slow, timeout: .milliseconds(100))
            }
        }
    }

    // MARK: - Against a hostile scripted server

    @Test func garbageGreetingIsAProtocolViolation() async throws {
        for greeting in ["* OK IMAP4rev1 ready\r\n", "220 smtp ready\r\n", "+ok lower case\r\n", "+OKAY\r\n", "\r\n"] {
            try await withScriptedServer({ peer in
                try await peer.send(greeting)
                try await peer.waitForClose()
            }) { connector in
                await #expect(throws: POP3ClientError.self) {
                    do {
                        _ = try await POP3Client.connect(connector, timeout: .seconds(5))
                    } catch let error as POP3ClientError {
                        guard case .protocolViolation = error else { Issue.record("\(greeting): \(error)"); return }
                        throw error
                    }
                }
            }
        }
    }

    @Test func negativeGreetingIsAServerError() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("-ERR [SYS/TEMP] too many sessions\r\n")
        }) { connector in
            await #expect(throws: POP3ClientError.serverError(command: "greeting", text: "[SYS/TEMP] too many sessions")) {
                _ = try await POP3Client.connect(connector, timeout: .seconds(5))
            }
        }
    }

    @Test func silentServerTimesOutAtTheGreeting() async throws {
        try await withScriptedServer({ peer in
            try await peer.waitForClose()
        }) { connector in
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: POP3ClientError.timedOut) {
                _ = try await POP3Client.connect(connector, timeout: .milliseconds(300))
            }
            #expect(clock.now - start < .seconds(5))
        }
    }

    @Test func hangingServerTimesOutAndTheClientIsClosed() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("STAT")
            try await peer.waitForClose()  // never answers
        }) { connector in
            // Timeouts of a few seconds: the suite also runs on a loaded two-core machine.
            let client = try await POP3Client.connect(connector, timeout: .seconds(3))
            await #expect(throws: POP3ClientError.timedOut) { _ = try await client.stat() }
            await #expect(throws: POP3ClientError.closed) { try await client.noop() }
        }
    }

    @Test func idleTimeBetweenCommandsIsNotATimeout() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("NOOP")
            try await peer.send("+OK\r\n")
            try await peer.expect("NOOP")
            try await peer.send("+OK\r\n")
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(2))
            try await client.noop()
            try await Task.sleep(for: .milliseconds(3500))
            try await client.noop()
            await client.close()
        }
    }

    @Test func slowButMovingResponseIsNotATimeout() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("RETR 1")
            try await peer.send("+OK\r\n")
            // 2.4 s in all, more than the timeout, but never 2 s without a byte.
            for index in 0..<6 {
                try await Task.sleep(for: .milliseconds(400))
                try await peer.send("line \(index)\r\n")
            }
            try await peer.send(".\r\n")
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(2))
            let message = try await client.retrieve(1)
            #expect(message == Array((0..<6).map { "line \($0)\r\n" }.joined().utf8))
            await client.close()
        }
    }

    @Test func overlongStatusLineIsAProtocolViolation() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("STAT")
            // No line end at all: the client must give up without waiting for one.
            try? await peer.send("+OK " + String(repeating: "9", count: 4000))
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5))
            await #expect(throws: POP3ClientError.protocolViolation("status line longer than 1024 octets")) {
                _ = try await client.stat()
            }
            await #expect(throws: POP3ClientError.closed) { try await client.noop() }
        }
    }

    @Test func statusLineOfTheRFC2449SizeIsFine() async throws {
        let text = String(repeating: "x", count: 1024 - "+OK \r\n".utf8.count)
        try await withScriptedServer({ peer in
            try await peer.send("+OK \(text)\r\n")
            try await peer.expect("NOOP")
            try await peer.send("+OK\n")  // a bare LF ends a status line too
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5))
            try await client.noop()
            await client.close()
        }
    }

    @Test func multilineResponseOverTheLimitIsRefused() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("RETR 1")
            try await peer.send("+OK 5000 octets\r\n")
            for _ in 0..<50 { try? await peer.send(String(repeating: "a", count: 98) + "\r\n") }
            try? await peer.send(".\r\n")
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5), maximumMessageSize: 1000)
            await #expect(throws: POP3ClientError.responseTooLarge) { _ = try await client.retrieve(1) }
            await #expect(throws: POP3ClientError.closed) { _ = try await client.stat() }
        }
    }

    @Test func oneEndlessLineOverTheLimitIsRefused() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("TOP 1 0")
            try await peer.send("+OK\r\n")
            for _ in 0..<20 { try? await peer.send(String(repeating: "b", count: 1000)) }
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5), maximumMessageSize: 4096)
            await #expect(throws: POP3ClientError.responseTooLarge) { _ = try await client.top(1, lines: 0) }
        }
    }

    @Test func connectionClosedInTheMiddleOfAMessage() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("RETR 1")
            try await peer.send("+OK\r\nSubject: cut\r\n\r\nhalf a mess")
            // The script returns: the connection closes.
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5))
            await #expect(throws: POP3ClientError.closed) { _ = try await client.retrieve(1) }
            await #expect(throws: POP3ClientError.closed) { _ = try await client.stat() }
        }
    }

    @Test func badListingsAreProtocolViolations() async throws {
        let listings: [(command: String, lines: [String])] = [
            ("LIST", ["1 abc"]), ("LIST", ["0 10"]), ("LIST", ["1  10"]), ("LIST", ["-1 5"]), ("LIST", ["1"]),
            ("LIST", ["1 99999999999999999999"]), ("LIST", ["2 10", "1 10"]), ("LIST", ["1 10", "1 10"]),
            ("LIST", [" 1 10"]), ("LIST", ["1\t10"]), ("LIST", ["+1 10"]),
            ("UIDL", ["1 " + String(repeating: "u", count: 71)]), ("UIDL", ["1 uid extra"]), ("UIDL", ["1 "]),
            ("UIDL", ["1 \u{7F}bad"]), ("UIDL", ["1 a", "2 a"]), ("UIDL", ["1"]), ("UIDL", ["x a"]),
            ("UIDL", ["1 caf\u{E9}"]),
        ]
        for listing in listings {
            try await withScriptedServer({ peer in
                try await peer.send("+OK hello\r\n")
                try await peer.expect(listing.command)
                try await peer.send("+OK\r\n" + listing.lines.map { $0 + "\r\n" }.joined() + ".\r\n")
                try await peer.waitForClose()
            }) { connector in
                let client = try await POP3Client.connect(connector, timeout: .seconds(5))
                do {
                    if listing.command == "LIST" { _ = try await client.list() } else { _ = try await client.uidl() }
                    Issue.record("accepted \(listing)")
                } catch let error as POP3ClientError {
                    guard case .protocolViolation = error else {
                        Issue.record("\(listing): \(error)")
                        return
                    }
                }
                await #expect(throws: POP3ClientError.closed) { try await client.noop() }
            }
        }
    }

    @Test func goodListingsWithExtrasAreRead() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("LIST")
            // RFC 1939 section 5: anything may follow the size. Gaps are deleted messages.
            try await peer.send("+OK\r\n1 120 extra info\r\n3 4500\r\n.\r\n")
            try await peer.expect("UIDL")
            try await peer.send("+OK\r\n1 " + String(repeating: "~", count: 70) + "\r\n3 !\r\n.\r\n")
            try await peer.expect("STAT")
            try await peer.send("+OK 2 4620 whatever follows\r\n")
            try await peer.expect("CAPA")
            try await peer.send("-ERR unknown command\r\n")
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5))
            let list = try await client.list()
            #expect(list.map(\.number) == [1, 3] && list.map(\.size) == [120, 4500])
            let uidl = try await client.uidl()
            #expect(uidl.map(\.number) == [1, 3] && uidl.map(\.uid) == [String(repeating: "~", count: 70), "!"])
            let stat = try await client.stat()
            #expect(stat.count == 2 && stat.size == 4620)
            #expect(try await client.capabilities() == [])
            await client.close()
        }
    }

    @Test func badStatReplyIsAProtocolViolation() async throws {
        for reply in ["+OK three 100", "+OK 3", "+OK", "+OK 3  100", "+OK -3 100"] {
            try await withScriptedServer({ peer in
                try await peer.send("+OK hello\r\n")
                try await peer.expect("STAT")
                try await peer.send(reply + "\r\n")
                try await peer.waitForClose()
            }) { connector in
                let client = try await POP3Client.connect(connector, timeout: .seconds(5))
                await #expect(throws: POP3ClientError.self) {
                    do {
                        _ = try await client.stat()
                    } catch let error as POP3ClientError {
                        guard case .protocolViolation = error else { Issue.record("\(reply): \(error)"); return }
                        throw error
                    }
                }
            }
        }
    }

    @Test func errToPassIsAuthenticationFailedWithTheServerText() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("USER alice")
            try await peer.send("+OK\r\n")
            try await peer.expect("PASS bad password")
            try await peer.send("-ERR [IN-USE] maildrop locked\r\n")
            try await peer.expect("USER alice")
            try await peer.send("+OK\r\n")
            try await peer.expect("PASS good")
            try await peer.send("+OK welcome\r\n")
            try await peer.expect("QUIT")
            try await peer.send("-ERR some deleted messages not removed\r\n")
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5))
            do {
                try await client.login(user: "alice", password: "bad password")
                Issue.record("login succeeded")
            } catch let error as POP3ClientError {
                #expect(error == .authenticationFailed("[IN-USE] maildrop locked"))
                #expect(error.responseCode == "IN-USE")
            }
            try await client.login(user: "alice", password: "good")
            await #expect(throws: POP3ClientError.serverError(command: "QUIT", text: "some deleted messages not removed")) {
                try await client.quit()
            }
            await #expect(throws: POP3ClientError.closed) { try await client.noop() }
        }
    }

    @Test func bareLineFeedsInMessageDataBecomeCRLF() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("RETR 1")
            try await peer.send("+OK\nSubject: lf\n\n..dotted\nstray\rcr\r\n.\n")
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5))
            #expect(try await client.retrieve(1) == Array("Subject: lf\r\n\r\n.dotted\r\nstray\rcr\r\n".utf8))
            await client.close()
        }
    }

    @Test func unsolicitedDataAfterAResponseIsAProtocolViolation() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("NOOP")
            try await peer.send("+OK\r\n+OK injected\r\n")
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5))
            await #expect(throws: POP3ClientError.protocolViolation("the server sent more than one response")) {
                try await client.noop()
            }
        }
    }

    @Test func serverTextIsMadePrintable() async throws {
        try await withScriptedServer({ peer in
            try await peer.send("+OK hello\r\n")
            try await peer.expect("DELE 2")
            try await peer.send("-ERR no\u{1B}[31m such\u{7}\r\n")
            try await peer.waitForClose()
        }) { connector in
            let client = try await POP3Client.connect(connector, timeout: .seconds(5))
            await #expect(throws: POP3ClientError.serverError(command: "DELE 2", text: "no\u{FFFD}[31m such\u{FFFD}")) {
                try await client.delete(2)
            }
            await client.close()
        }
    }

    // MARK: - The reader as a pure value

    @Test func readerTakesAResponseByteByByte() throws {
        var reader = POP3ResponseReader(maximumMultilineSize: 100)
        var statuses: [POP3StatusLine] = []
        var body: [UInt8]? = nil
        for byte in "+OK 2 octets\r\nab\r\n..\r\n.x\r\n.\r\n".utf8 {
            reader.append(ByteBuffer(bytes: [byte]))
            if statuses.isEmpty {
                if let status = try reader.nextStatusLine() { statuses.append(status) }
            } else if body == nil {
                body = try reader.nextMultilineBody()
            }
        }
        #expect(statuses == [.ok("2 octets")])
        #expect(body == Array("ab\r\n.\r\nx\r\n".utf8))
        #expect(reader.bufferedByteCount == 0)
    }

    @Test func readerLimitsAreExact() throws {
        // A body of exactly the limit passes; one byte more does not.
        var exact = POP3ResponseReader(maximumMultilineSize: 10)
        exact.append(ByteBuffer(string: "12345678\r\n.\r\n"))
        #expect(try exact.nextMultilineBody() == Array("12345678\r\n".utf8))

        var over = POP3ResponseReader(maximumMultilineSize: 10)
        over.append(ByteBuffer(string: "123456789\r\n.\r\n"))
        #expect(throws: POP3ClientError.responseTooLarge) { try over.nextMultilineBody() }

        var status = POP3ResponseReader(maximumMultilineSize: 10)
        status.append(ByteBuffer(string: "+OK " + String(repeating: "x", count: 1024 - 5) + "\r\n"))
        #expect(throws: POP3ClientError.protocolViolation("status line longer than 1024 octets")) {
            try status.nextStatusLine()
        }
    }
}

// MARK: - Helpers

/// Runs the real POP3 server on 127.0.0.1:0 with `backend` and gives `body` a connector to it.
private func withPOP3Server(backend: FakePOP3Backend, _ body: (TCPConnector) async throws -> Void) async throws {
    let server = POP3Server(
        configuration: POP3ServerConfiguration(host: "127.0.0.1", port: 0), backend: backend,
        group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "pop3-client-test"))
    let address = try await server.start()
    let connector = TCPConnector(host: "127.0.0.1", port: address.port ?? 0)
    do {
        try await body(connector)
    } catch {
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
    await server.shutdown(gracePeriod: .seconds(1))
}

/// The server side of one scripted connection.
private struct ScriptedPeer {
    var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let writer: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var buffer = ByteBuffer()

    func send(_ text: String) async throws {
        try await writer.write(ByteBuffer(string: text))
    }

    /// The next line without CRLF; nil when the client closed.
    mutating func readLine() async throws -> String? {
        while true {
            let view = buffer.readableBytesView
            if let crlf = view.firstRange(of: [13, 10]) {
                let line = buffer.readString(length: crlf.lowerBound - view.startIndex)
                buffer.moveReaderIndex(forwardBy: 2)
                return line
            }
            guard var chunk = try await iterator.next() else { return nil }
            buffer.writeBuffer(&chunk)
        }
    }

    mutating func expect(_ line: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let received = try await readLine()
        #expect(received == line, sourceLocation: sourceLocation)
    }

    /// Reads (and ignores) everything until the client closes (a reset, from a client that
    /// closes with our data unread, is a close too).
    mutating func waitForClose() async throws {
        while let _ = try? await iterator.next() {}
    }
}

/// A one-connection server on 127.0.0.1:0 that plays `script`; `body` gets a connector to it.
private func withScriptedServer(
    _ script: @escaping @Sendable (inout ScriptedPeer) async throws -> Void,
    _ body: (TCPConnector) async throws -> Void
) async throws {
    let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .bind(host: "127.0.0.1", port: 0) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    let port = try #require(server.channel.localAddress?.port)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try await server.executeThenClose { connections in
                var accepted = connections.makeAsyncIterator()
                guard let connection = try await accepted.next() else { return }
                try await connection.executeThenClose { inbound, outbound in
                    var peer = ScriptedPeer(iterator: inbound.makeAsyncIterator(), writer: outbound)
                    try await script(&peer)
                }
                // Any other connection (none is expected) is closed through its owner.
                try? await server.channel.close()
                while let extra = try? await accepted.next() { try? await extra.executeThenClose { _, _ in } }
            }
        }
        do {
            try await body(TCPConnector(host: "127.0.0.1", port: port))
        } catch {
            group.cancelAll()
            server.channel.close(promise: nil)
            throw error
        }
        try await group.waitForAll()
    }
}

/// A transport that cannot connect (an I2P tunnel that is down).
private struct FailingConnector: StreamConnector {
    struct Down: Error, CustomStringConvertible {
        var description: String { "tunnel down" }
    }

    func connect<Output: Sendable>(group: any EventLoopGroup,
                                   initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output {
        throw Down()
    }
}

/// A transport that takes `delay` to connect (a slow I2P tunnel build).
private struct SlowConnector: StreamConnector {
    var delay: Duration
    var connector: TCPConnector

    func connect<Output: Sendable>(group: any EventLoopGroup,
                                   initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output {
        try? await Task.sleep(for: delay)
        return try await connector.connect(group: group, initializer: initializer)
    }
}

private func eventually(_ condition: () async -> Bool) async throws {
    for _ in 0..<200 {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(25))
    }
    Issue.record("condition not met within 5 seconds")
}
