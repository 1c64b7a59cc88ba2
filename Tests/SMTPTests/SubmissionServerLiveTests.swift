import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
@testable import SMTP

#if canImport(Glibc)
import Glibc
#endif

/// A blocking line client over a real TCP socket, for live tests of the NIO shell.
final class LineClient {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(fd) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// The next CRLF line, or nil when the server closed the connection (or 10 s passed).
    func line() -> String? {
        while true {
            if let index = buffer.firstIndex(of: 10) {
                let line = buffer[..<index]
                buffer.removeSubrange(...index)
                return String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            buffer += chunk[..<n]
        }
    }

    /// Reads one whole (possibly multi-line) reply.
    func reply() -> [String] {
        var lines: [String] = []
        while let line = line() {
            lines.append(line)
            if line.count < 4 || line[line.index(line.startIndex, offsetBy: 3)] != "-" { break }
        }
        return lines
    }
}

/// Serialized: `LineClient` blocks its thread in recv; two such tests at once would hold both
/// cooperative threads of a two-core machine. (The fake backend answers on the event loop, so a
/// blocked cooperative pool cannot delay its replies.)
@Suite(.serialized) struct SubmissionServerLiveTests {
    func withServer(_ configuration: SubmissionServerConfiguration = .init(port: 0),
                    backend: FakeSubmissionBackend = .init(),
                    _ body: (Int, SubmissionServer) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = SubmissionServer(configuration: configuration, backend: backend, group: group, logger: Logger(label: "test"))
        let address = try await server.start()
        try await body(address.port!, server)
        await server.shutdown(gracePeriod: .milliseconds(200))
        try await group.shutdownGracefully()
    }

    @Test func pipelinedTransactionInOneWrite() async throws {
        let backend = FakeSubmissionBackend()
        try await withServer(backend: backend) { port, _ in
            let client = try LineClient(port: port)
            #expect(client.reply() == ["220 mail.i2p ESMTP Postern"])
            client.send("EHLO c\r\nAUTH PLAIN \(alicePlain)\r\nMAIL FROM:<alice@mail.i2p>\r\nRCPT TO:<bob@mail.i2p>\r\nDATA\r\n")
            #expect(client.reply().last == "250 HELP")
            #expect(client.reply() == ["235 2.7.0 Authentication successful"])
            #expect(client.reply() == ["250 2.1.0 Sender OK"])
            #expect(client.reply() == ["250 2.1.5 Recipient OK"])
            #expect(client.reply().first?.hasPrefix("354") == true)
            client.send("Subject: live\r\n\r\nhello\r\n.\r\nQUIT\r\n")
            #expect(client.reply() == ["250 2.0.0 Message accepted for delivery"])
            #expect(client.reply() == ["221 2.0.0 Bye"])
            #expect(client.line() == nil)
        }
        #expect(backend.messages == ["Subject: live\r\n\r\nhello\r\n"])
    }

    @Test func idleClientTimesOut() async throws {
        try await withServer(.init(port: 0, commandTimeout: .milliseconds(300))) { port, _ in
            let client = try LineClient(port: port)
            _ = client.reply()
            #expect(client.reply() == ["421 4.4.2 Timeout waiting for client, closing connection"])
            #expect(client.line() == nil)
        }
    }

    /// Each command moves the deadline: a client active for longer than the timeout stays, and
    /// is timed out once it stops.
    @Test func activityPostponesTheTimeout() async throws {
        try await withServer(.init(port: 0, commandTimeout: .milliseconds(2000))) { port, _ in
            let client = try LineClient(port: port)
            _ = client.reply()
            let started = ContinuousClock.now
            for _ in 0..<4 {
                // A plain sleep of this thread: a task sleep can oversleep by seconds when the
                // other suites keep the cooperative threads busy.
                usleep(600_000)
                client.send("NOOP\r\n")
                #expect(client.reply() == ["250 2.0.0 OK"])
            }
            #expect(ContinuousClock.now - started > .milliseconds(2200))
            #expect(client.reply() == ["421 4.4.2 Timeout waiting for client, closing connection"])
            #expect(client.line() == nil)
        }
    }

    /// DATA waits long (dataTimeout); once the message is answered the session is back to the
    /// short command timeout, so the pending check must move earlier, not stay at DATA's.
    @Test func commandTimeoutAppliesAgainAfterData() async throws {
        let configuration = SubmissionServerConfiguration(port: 0, commandTimeout: .milliseconds(1500), dataTimeout: .seconds(60))
        try await withServer(configuration) { port, _ in
            let client = try LineClient(port: port)
            _ = client.reply()
            client.send("EHLO c\r\nAUTH PLAIN \(alicePlain)\r\nMAIL FROM:<alice@mail.i2p>\r\nRCPT TO:<bob@mail.i2p>\r\nDATA\r\n")
            for _ in 0..<4 { _ = client.reply() }
            #expect(client.reply().first?.hasPrefix("354") == true)
            // Part of the message moves the deadline to DATA's 60 s; the pending check then finds
            // time left and moves itself there. Longer than the command timeout: DATA allows it.
            client.send("Subject: slow\r\n")
            usleep(3_000_000)
            client.send("\r\nhello\r\n.\r\n")
            #expect(client.reply() == ["250 2.0.0 Message accepted for delivery"])
            let answered = ContinuousClock.now
            #expect(client.reply() == ["421 4.4.2 Timeout waiting for client, closing connection"])
            // the 1.5 s command timeout (checked at least every second), never DATA's 60 s
            #expect(ContinuousClock.now - answered < .seconds(5))
        }
    }

    @Test func sessionCapRefusesTheExtraConnection() async throws {
        try await withServer(.init(port: 0, maxSessions: 1)) { port, _ in
            let first = try LineClient(port: port)
            #expect(first.reply().first?.hasPrefix("220") == true)
            let second = try LineClient(port: port)
            #expect(second.reply() == ["421 4.7.0 Too many sessions, try again later"])
            first.send("NOOP\r\n")
            #expect(first.reply() == ["250 2.0.0 OK"])
        }
    }

    @Test func shutdownClosesIdleSessionsWith421() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = SubmissionServer(configuration: .init(port: 0), backend: FakeSubmissionBackend(), group: group, logger: Logger(label: "test"))
        let port = try await server.start().port!
        let client = try LineClient(port: port)
        _ = client.reply()
        await server.shutdown(gracePeriod: .seconds(2))
        #expect(client.reply() == ["421 4.3.2 Server shutting down, try again later"])
        #expect((try? LineClient(port: port)) == nil)
        try await group.shutdownGracefully()
    }
}
