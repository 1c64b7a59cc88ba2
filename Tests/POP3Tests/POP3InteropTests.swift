import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
@testable import POP3

/// QA-1: Python's poplib against the live server. Skipped where python3 is missing.
@Suite(.timeLimit(.minutes(1))) struct POP3InteropTests {
    static let python: String? = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: python != nil)) func pythonPoplib() async throws {
        let backend = FakePOP3Backend()
        let server = POP3Server(
            configuration: POP3ServerConfiguration(host: "127.0.0.1", port: 0), backend: backend,
            group: MultiThreadedEventLoopGroup.singleton, logger: Logger(label: "pop3-interop"))
        let address = try await server.start()

        let script = """
            import poplib, sys
            p = poplib.POP3('127.0.0.1', \(address.port ?? 0), timeout=10)
            out = []
            out.append(p.getwelcome().decode())
            out.append(' '.join(sorted(p.capa().keys())))
            p.user('alice@mail.i2p'); p.pass_('secret pass')
            out.append(repr(p.stat()))
            out.append(repr(p.uidl()[1]))
            resp, lines, octets = p.retr(1)
            original = 'From: bob@mail.i2p\\r\\nSubject: hi\\r\\n\\r\\nHello\\r\\n.hidden\\r\\n.\\r\\nbye\\r\\n'
            out.append('retr-exact' if b'\\r\\n'.join(lines) + b'\\r\\n' == original.encode() else 'retr-differs')
            out.append(repr(p.top(2, 1)[1]))
            p.dele(2)
            try:
                p.retr(2)
            except poplib.error_proto as e:
                out.append(e.args[0].decode())
            out.append(p.quit().decode())
            print('\\n'.join(out))
            """
        let output: String
        do {
            output = try await run(Self.python ?? "python3", ["-c", script])
        } catch {
            await server.shutdown(gracePeriod: .seconds(1))
            throw error
        }
        await server.shutdown(gracePeriod: .seconds(1))
        #expect(output.split(separator: "\n").map(String.init) == [
            "+OK Postern POP3 ready",
            "AUTH-RESP-CODE PIPELINING RESP-CODES SASL TOP UIDL USER",
            "(3, 135)",
            "[b'1 uid-1', b'2 uid-2', b'3 uid-3']",
            "retr-exact",
            "[b'Subject: two', b'', b'line 1']",
            "-ERR message 2 already deleted",
            "+OK Postern POP3 signing off (1 message deleted)",
        ])
        #expect(await backend.deleteCalls == [["uid-2"]])
    }

    private func run(_ executable: String, _ arguments: [String]) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        return String(decoding: data, as: UTF8.self)
    }
}
