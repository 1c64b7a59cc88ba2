import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Scan

// MARK: - reply parser

@Suite struct ClamdReplyTests {
    private func parse(_ text: String) -> ClamdReply { ClamdReply.parse(Array(text.utf8)) }

    @Test func recognisesEveryDocumentedReply() {
        #expect(parse("stream: OK") == .ok)
        #expect(parse("stream: Eicar-Test-Signature FOUND") == .found(signature: "Eicar-Test-Signature"))
        #expect(parse("stream: Eicar-Test-Signature.UNOFFICIAL FOUND") == .found(signature: "Eicar-Test-Signature.UNOFFICIAL"))
        #expect(parse("INSTREAM size limit exceeded. ERROR") == .sizeLimitExceeded)
        #expect(parse("Can't allocate memory ERROR") == .error("Can't allocate memory"))
        #expect(parse("PONG") == .pong)
        #expect(parse("stream: OK\n") == .ok)  // the "n" prefix's terminator
    }

    @Test func rejectsGarbage() {
        for text in ["", "OK", "stream: ", "stream: OK ", "stream:  FOUND", "stream: FOUND", " ERROR", "ERROR",
                     "HTTP/1.1 200 OK", "pong", "stream: OK\r\n", "stream: O\u{7}K", "stream: Ä FOUND"] {
            #expect(parse(text) == .unrecognised, "\(text.debugDescription)")
        }
        #expect(ClamdReply.parse([UInt8](repeating: UInt8(ascii: "A"), count: 4097)) == .unrecognised)
        #expect(ClamdReply.parse([UInt8](repeating: UInt8(ascii: "A"), count: 10) + [0]) == .unrecognised)
    }

    @Test func verdicts() {
        #expect(ClamdReply.ok.scanVerdict == .clean)
        #expect(ClamdReply.found(signature: "X").scanVerdict == .infected(signature: "X"))
        #expect(ClamdReply.sizeLimitExceeded.scanVerdict == .tooLarge)
        #expect(ClamdReply.error("boom").scanVerdict == .unavailable("clamd error: boom"))
        #expect(ClamdReply.pong.scanVerdict == .unavailable("unexpected reply from clamd"))
        #expect(ClamdReply.unrecognised.scanVerdict == .unavailable("unexpected reply from clamd"))
    }

    @Test func addresses() {
        #expect(ClamdAddress("127.0.0.1:3310") == .tcp(host: "127.0.0.1", port: 3310))
        #expect(ClamdAddress("localhost:1") == .tcp(host: "localhost", port: 1))
        #expect(ClamdAddress("[::1]:3310") == .tcp(host: "::1", port: 3310))
        #expect(ClamdAddress("unix:/run/clamav/clamd.ctl") == .unix(path: "/run/clamav/clamd.ctl"))
        for text in ["", "127.0.0.1", "127.0.0.1:", ":3310", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:33a",
                     "127.0.0.1:+331", "::1:3310", "[::1:3310", "[]:3310", "unix:", "unix:relative/path", "a b:1"] {
            #expect(ClamdAddress(text) == nil, "\(text.debugDescription)")
        }
        #expect(ClamdAddress("[::1]:3310")?.description == "[::1]:3310")
        #expect(ClamdAddress("unix:/x")?.description == "unix:/x")
    }
}

// MARK: - a fake clamd

/// What the fake clamd saw on one connection.
struct Transcript: Sendable {
    var command = ""
    var chunkLengths: [Int] = []
    var data: [UInt8] = []
    var sawTerminator = false
    /// Bytes after the zero-length chunk (there must be none).
    var bytesAfterTerminator = 0
}

enum FakeBehaviour: Sendable {
    /// Reads the whole request, then sends `reply` and a NUL.
    case answer(String)
    /// Reads the whole request, then sends these bytes as they are.
    case raw([UInt8])
    /// Reads everything, never answers.
    case hang
    /// Closes as soon as the connection is accepted.
    case closeAtOnce
    /// Reads the whole request, then closes without a reply.
    case closeAfterRequest
    /// clamd's StreamMaxLength: past `limit` data bytes, answers "size limit exceeded" and closes.
    case sizeLimit(Int)
    /// Past `bytes` data bytes, closes without a reply.
    case closeAfter(bytes: Int)
}

/// Parses clamd's INSTREAM framing strictly on the server side and acts out a behaviour.
final class FakeClamdHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let behaviour: FakeBehaviour
    private let transcripts: AsyncStream<Transcript>.Continuation
    private var transcript = Transcript()
    private var buffer = ByteBuffer()
    private var commandRead = false
    private var finished = false

    init(behaviour: FakeBehaviour, transcripts: AsyncStream<Transcript>.Continuation) {
        self.behaviour = behaviour
        self.transcripts = transcripts
    }

    func channelActive(context: ChannelHandlerContext) {
        if case .closeAtOnce = behaviour { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if transcript.sawTerminator || finished {
            transcript.bytesAfterTerminator += bytes.readableBytes
            return
        }
        buffer.writeBuffer(&bytes)
        if !commandRead {
            guard let nul = buffer.readableBytesView.firstIndex(of: 0) else { return }
            transcript.command = buffer.readString(length: nul - buffer.readerIndex)!
            buffer.moveReaderIndex(forwardBy: 1)
            commandRead = true
            if transcript.command == "zPING" {
                transcript.sawTerminator = true
                respondToCompleteRequest(context: context)
                return
            }
        }
        while !finished, !transcript.sawTerminator {
            guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else { return }
            if length == 0 {
                buffer.moveReaderIndex(forwardBy: 4)
                transcript.sawTerminator = true
                transcript.bytesAfterTerminator += buffer.readableBytes
                respondToCompleteRequest(context: context)
                return
            }
            guard buffer.readableBytes >= 4 + Int(length) else { return }
            buffer.moveReaderIndex(forwardBy: 4)
            transcript.chunkLengths.append(Int(length))
            transcript.data += buffer.readableBytesView.prefix(Int(length))
            buffer.moveReaderIndex(forwardBy: Int(length))
            buffer.discardReadBytes()
            switch behaviour {
            case .sizeLimit(let limit) where transcript.data.count > limit:
                finished = true
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "INSTREAM size limit exceeded. ERROR\0")))
                    .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            case .closeAfter(let bytes) where transcript.data.count > bytes:
                finished = true
                context.close(promise: nil)
            default:
                break
            }
        }
    }

    private func respondToCompleteRequest(context: ChannelHandlerContext) {
        switch behaviour {
        case .answer(let text):
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text + "\0")), promise: nil)
        case .raw(let bytes):
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
        case .closeAfterRequest:
            context.close(promise: nil)
        case .hang, .closeAtOnce, .sizeLimit, .closeAfter:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        transcripts.yield(transcript)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// A fake clamd on 127.0.0.1:0 or on a Unix socket in a fresh temporary directory.
final class FakeClamd: Sendable {
    let channel: any Channel
    let address: ClamdAddress
    let transcripts: AsyncStream<Transcript>
    private let directory: String?

    init(_ behaviour: FakeBehaviour, group: any EventLoopGroup, unix: Bool = false) async throws {
        let (stream, continuation) = AsyncStream<Transcript>.makeStream()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        FakeClamdHandler(behaviour: behaviour, transcripts: continuation))
                }
            }
        if unix {
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("scan-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let path = directory + "/clamd.ctl"
            self.channel = try await bootstrap.bind(unixDomainSocketPath: path).get()
            self.address = .unix(path: path)
            self.directory = directory
        } else {
            self.channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
            self.address = .tcp(host: "127.0.0.1", port: channel.localAddress!.port!)
            self.directory = nil
        }
        self.transcripts = stream
    }

    /// The transcript of the next connection to end.
    func nextTranscript() async -> Transcript? {
        var iterator = transcripts.makeAsyncIterator()
        return await iterator.next()
    }

    func stop() async throws {
        try await channel.close()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }
}

private func message(_ count: Int) -> ByteBuffer {
    // A 251-byte pattern (prime, so chunk boundaries fall at different offsets), repeated.
    let pattern = (0..<251).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    var buffer = ByteBuffer()
    buffer.reserveCapacity(count)
    while buffer.readableBytes + pattern.count <= count { buffer.writeBytes(pattern) }
    buffer.writeBytes(pattern.prefix(count - buffer.readableBytes))
    return buffer
}

// MARK: - the client against the fake

@Suite struct ClamdClientTests {
    let group = MultiThreadedEventLoopGroup.singleton

    @Test(arguments: [false, true]) func cleanMessageWithExactFraming(unix: Bool) async throws {
        let clamd = try await FakeClamd(.answer("stream: OK"), group: group, unix: unix)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(10))
        let body = message(1000)
        #expect(await client.scan(body) == .clean)
        let transcript = try #require(await clamd.nextTranscript())
        #expect(transcript.command == "zINSTREAM")
        #expect(transcript.chunkLengths == [1000])
        #expect(transcript.data == Array(body.readableBytesView))
        #expect(transcript.sawTerminator)
        #expect(transcript.bytesAfterTerminator == 0)
        try await clamd.stop()
    }

    @Test(arguments: [false, true]) func infected(unix: Bool) async throws {
        let clamd = try await FakeClamd(.answer("stream: Eicar-Test-Signature FOUND"), group: group, unix: unix)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(10))
        #expect(await client.scan(ByteBuffer(string: "hello")) == .infected(signature: "Eicar-Test-Signature"))
        try await clamd.stop()
    }

    @Test func largeMessageIsChunked() async throws {
        let clamd = try await FakeClamd(.answer("stream: OK"), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(20))
        let body = message(1 << 20 | 17)
        #expect(await client.scan(body) == .clean)
        let transcript = try #require(await clamd.nextTranscript())
        #expect(transcript.chunkLengths == Array(repeating: 65536, count: 16) + [17])
        #expect(transcript.data == Array(body.readableBytesView))
        #expect(transcript.sawTerminator && transcript.bytesAfterTerminator == 0)
        try await clamd.stop()
    }

    @Test func smallChunksOverUnixSocket() async throws {
        let clamd = try await FakeClamd(.answer("stream: OK"), group: group, unix: true)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(20), chunkSize: 1000)
        let body = message(300_001)
        #expect(await client.scan(body) == .clean)
        let transcript = try #require(await clamd.nextTranscript())
        #expect(transcript.chunkLengths == Array(repeating: 1000, count: 300) + [1])
        #expect(transcript.data == Array(body.readableBytesView))
        try await clamd.stop()
    }

    @Test func emptyMessageIsJustTheTerminator() async throws {
        let clamd = try await FakeClamd(.answer("stream: OK"), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(10))
        #expect(await client.scan(ByteBuffer()) == .clean)
        let transcript = try #require(await clamd.nextTranscript())
        #expect(transcript.chunkLengths.isEmpty && transcript.sawTerminator)
        try await clamd.stop()
    }

    @Test func sizeLimitAnswerIsTooLarge() async throws {
        let clamd = try await FakeClamd(.sizeLimit(100_000), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(20))
        // Far more than loopback socket buffers hold, so the client is still sending when clamd stops.
        #expect(await client.scan(message(16 << 20)) == .tooLarge)
        try await clamd.stop()
    }

    @Test func sizeLimitAnswerAfterTheWholeStreamIsTooLarge() async throws {
        let clamd = try await FakeClamd(.answer("INSTREAM size limit exceeded. ERROR"), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(10))
        #expect(await client.scan(message(5000)) == .tooLarge)
        try await clamd.stop()
    }

    @Test func closingEarlyIsTooLarge() async throws {
        let clamd = try await FakeClamd(.closeAfter(bytes: 100_000), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(20))
        #expect(await client.scan(message(16 << 20)) == .tooLarge)
        try await clamd.stop()
    }

    @Test func configuredLimitStopsBeforeSending() async throws {
        let clamd = try await FakeClamd(.answer("stream: OK"), group: group)
        let client = ClamdClient(address: clamd.address, group: group, maxStreamLength: 1000)
        #expect(await client.scan(message(1001)) == .tooLarge)
        #expect(await client.scan(message(1000)) == .clean)  // the limit itself is allowed
        let transcript = try #require(await clamd.nextTranscript())
        #expect(transcript.data.count == 1000)  // the first scan never connected
        try await clamd.stop()
    }

    @Test func errorReplyIsUnavailable() async throws {
        let clamd = try await FakeClamd(.answer("Can't allocate memory ERROR"), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(10))
        #expect(await client.scan(message(10)) == .unavailable("clamd error: Can't allocate memory"))
        try await clamd.stop()
    }

    @Test func garbageIsUnavailable() async throws {
        for reply: [UInt8] in [Array("HTTP/1.1 400 Bad Request\r\n\r\n\0".utf8), Array("PONG\0".utf8)] {
            let clamd = try await FakeClamd(.raw(reply), group: group)
            let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(10))
            #expect(await client.scan(message(10)) == .unavailable("unexpected reply from clamd"))
            try await clamd.stop()
        }
    }

    @Test func overlongReplyIsUnavailableWithoutWaitingForTheEnd() async throws {
        // 5000 bytes and no NUL: the client gives up at 4 KiB, long before its timeout.
        let clamd = try await FakeClamd(.raw(Array(repeating: UInt8(ascii: "A"), count: 5000)), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(30))
        let start = ContinuousClock.now
        #expect(await client.scan(message(10)) == .unavailable("unexpected reply from clamd"))
        #expect(ContinuousClock.now - start < .seconds(20))
        try await clamd.stop()
    }

    @Test func unterminatedReplyThenCloseIsUnavailable() async throws {
        let clamd = try await FakeClamd(.raw(Array("stream: OK".utf8)), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .milliseconds(500))
        guard case .unavailable = await client.scan(message(10)) else {
            Issue.record("a reply without its NUL must not count")
            return
        }
        try await clamd.stop()
    }

    @Test(arguments: [false, true]) func hangingClamdTimesOut(unix: Bool) async throws {
        let clamd = try await FakeClamd(.hang, group: group, unix: unix)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .milliseconds(300))
        let start = ContinuousClock.now
        #expect(await client.scan(message(100)) == .unavailable("clamd timed out"))
        // Far below "forever", with room for a test process whose shared event loops are busy.
        #expect(ContinuousClock.now - start < .seconds(15))
        #expect(await client.ping() == false)
        try await clamd.stop()
    }

    @Test func closedWithoutReplyIsUnavailable() async throws {
        for behaviour in [FakeBehaviour.closeAfterRequest, .closeAtOnce] {
            let clamd = try await FakeClamd(behaviour, group: group)
            let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(10))
            #expect(await client.scan(message(100)) == .unavailable("clamd closed the connection without a reply"))
            try await clamd.stop()
        }
    }

    @Test func connectRefusedIsUnavailable() async throws {
        let clamd = try await FakeClamd(.answer("stream: OK"), group: group)
        let address = clamd.address
        try await clamd.stop()
        let client = ClamdClient(address: address, group: group, timeout: .seconds(5))
        guard case .unavailable(let reason) = await client.scan(message(10)) else {
            Issue.record("expected unavailable")
            return
        }
        #expect(reason.hasPrefix("cannot connect to clamd"))
        #expect(await client.ping() == false)

        let missing = ClamdClient(address: .unix(path: "/nonexistent/clamd.ctl"), group: group)
        guard case .unavailable = await missing.scan(message(10)) else {
            Issue.record("expected unavailable")
            return
        }
    }

    @Test(arguments: [false, true]) func ping(unix: Bool) async throws {
        let clamd = try await FakeClamd(.answer("PONG"), group: group, unix: unix)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(5))
        #expect(await client.ping())
        let transcript = try #require(await clamd.nextTranscript())
        #expect(transcript.command == "zPING")
        try await clamd.stop()

        let wrong = try await FakeClamd(.answer("stream: OK"), group: group, unix: unix)
        #expect(await ClamdClient(address: wrong.address, group: group, timeout: .seconds(5)).ping() == false)
        try await wrong.stop()
    }

    @Test func eventLoopFutureVariant() async throws {
        let clamd = try await FakeClamd(.answer("stream: Eicar-Test-Signature FOUND"), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(10))
        let loop = group.next()
        let future = client.scan(ByteBuffer(string: "x"), on: loop)
        let verdict = try await future.map { verdict -> ScanVerdict in
            loop.preconditionInEventLoop()
            return verdict
        }.get()
        #expect(verdict == .infected(signature: "Eicar-Test-Signature"))
        try await clamd.stop()
    }

    @Test func concurrentScans() async throws {
        let clamd = try await FakeClamd(.answer("stream: OK"), group: group)
        let client = ClamdClient(address: clamd.address, group: group, timeout: .seconds(20))
        let verdicts = await withTaskGroup(of: ScanVerdict.self) { tasks in
            for i in 0..<20 { tasks.addTask { await client.scan(message(1000 * i + 1)) } }
            return await tasks.reduce(into: []) { $0.append($1) }
        }
        #expect(verdicts == Array(repeating: .clean, count: 20))
        try await clamd.stop()
    }
}

// MARK: - the real clamd

/// Runs only when POSTERN_CLAMD names a running clamd (tests/peers/clamd-start.sh DIR starts one on
/// 127.0.0.1:3310 with EICAR signatures and StreamMaxLength 25M).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["POSTERN_CLAMD"] != nil, "POSTERN_CLAMD not set"))
struct RealClamdTests {
    @Test func eicarCleanPingAndLimit() async throws {
        let text = try #require(ProcessInfo.processInfo.environment["POSTERN_CLAMD"])
        let address = try #require(ClamdAddress(text), "POSTERN_CLAMD must be host:port or unix:/path")
        let group = MultiThreadedEventLoopGroup.singleton
        let client = ClamdClient(address: address, group: group, timeout: .seconds(60))

        #expect(await client.ping())
        // Assembled from two halves so that this source file is not itself "infected".
        let eicar = #"X5O!P%@AP[4\PZX54(P^)7CC)7}$"# + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
        guard case .infected(let signature) = await client.scan(ByteBuffer(string: eicar)) else {
            Issue.record("EICAR must be found")
            return
        }
        #expect(signature.contains("Eicar"))
        let mail = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nJust text.\r\n"
        #expect(await client.scan(ByteBuffer(string: mail)) == .clean)
        // EICAR inside a mail, in 7-byte chunks: the stream is reassembled by clamd.
        let small = ClamdClient(address: address, group: group, timeout: .seconds(60), chunkSize: 7)
        guard case .infected = await small.scan(ByteBuffer(string: mail + eicar + "\r\n")) else {
            Issue.record("EICAR inside a mail must be found")
            return
        }
        // Past StreamMaxLength (25 MiB in the kit; POSTERN_CLAMD_STREAM_MAX overrides).
        let limit = ProcessInfo.processInfo.environment["POSTERN_CLAMD_STREAM_MAX"].flatMap { Int($0) } ?? 25 << 20
        #expect(await client.scan(message(limit + (1 << 20))) == .tooLarge)
    }
}
