import TestSupport
import NIOCore
import Testing
import Wire
@testable import POP3

/// The session must answer every input and never trap (QA-3 style, in-process).
@Suite struct POP3RobustnessTests {
    @Test func randomInputNeverBreaksTheSession() async {
        var random = SplitMix64(seed: 42)
        let fragments = [
            "USER alice@mail.i2p", "PASS secret pass", "AUTH PLAIN", "AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz",
            "*", "=", "STAT", "LIST", "LIST 2", "RETR 1", "RETR 3", "TOP 1 0", "TOP 2 5", "UIDL", "UIDL 1",
            "DELE 1", "DELE 2", "RSET", "NOOP", "CAPA", "APOP x y", "RETR 0", "RETR 999999999999999999999",
            "TOP 1 -3", "LIST x", "", " ", ".", "\u{0}",
        ]
        for round in 0..<200 {
            let backend = FakePOP3Backend()
            let driver = SessionDriver(backend: backend)
            _ = await driver.start()
            var framer = CRLFLineFramer(maxLineLength: POP3ConnectionHandler.maxLineLength)
            for _ in 0..<30 {
                var bytes: [UInt8]
                if random.next() % 4 == 0 {
                    bytes = (0..<Int(random.next() % 600)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                } else {
                    bytes = Array(fragments[Int(random.next() % UInt64(fragments.count))].utf8)
                }
                bytes += [13, 10]
                framer.append(ByteBuffer(bytes: bytes))
                while let frame = framer.next(), !driver.closed {
                    let reply = await driver.receive(frame)
                    // Every command line gets exactly one status line first.
                    #expect(reply.hasPrefix("+OK") || reply.hasPrefix("-ERR") || reply == "+ \r\n",
                            "round \(round): \(reply)")
                }
                if driver.closed { break }
            }
            await driver.dropConnection()
            #expect(await backend.locked.isEmpty)
            #expect(await backend.deleteCalls.count <= 1)
        }
    }
}
