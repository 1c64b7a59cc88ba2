import Logging
import NIOCore
import NIOPosix

// A clamd client (SCAN-1): INSTREAM scans and PING health checks over TCP or a Unix socket.
//
// clamd(8) "INSTREAM": the client sends "zINSTREAM\0", then the data in chunks, each preceded by its
// length as a 4-byte unsigned integer in network byte order, and ends the stream with a chunk of
// length zero. clamd answers one NUL-terminated reply (see ClamdReply). Past StreamMaxLength clamd
// answers "INSTREAM size limit exceeded. ERROR" and closes the connection.
//
// Every exchange is one connection driven by a handler on its event loop: nothing blocks, the data
// is written as the socket drains (back-pressure), the reply is read up to 4 KiB, and one deadline
// covers connecting, sending and waiting for the verdict.

/// Where clamd listens: `host:port` (clamd.conf TCPSocket/TCPAddr) or `unix:/path` (LocalSocket).
public enum ClamdAddress: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    /// Parses `127.0.0.1:3310`, `localhost:3310`, `[::1]:3310` or `unix:/run/clamav/clamd.ctl`.
    public init?(_ text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard path.hasPrefix("/"), !path.contains("\0") else { return nil }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = Substring(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = Int(portText), (1...65535).contains(port) else { return nil }
        if host.hasPrefix("[") {
            // An IPv6 literal must be bracketed, so its colons are not taken for the port's.
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = host.dropFirst().dropLast()
        } else if host.contains(":") {
            return nil
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "/" }) else { return nil }
        self = .tcp(host: String(host), port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        }
    }
}

/// A clamd client. A value: each scan or ping opens its own connection, so one client may be used
/// from any number of tasks and event loops at once.
public struct ClamdClient: Sendable {
    public let address: ClamdAddress
    public let group: any EventLoopGroup
    /// The whole exchange: connecting, sending the message, waiting for the verdict.
    public let timeout: TimeAmount
    /// Connecting alone (capped by `timeout`).
    public let connectTimeout: TimeAmount
    /// Data bytes per INSTREAM chunk.
    public let chunkSize: Int
    /// A message longer than this is `.tooLarge` at once, without contacting clamd; set it to
    /// clamd's StreamMaxLength (or lower) to spare both sides the transfer.
    public let maxStreamLength: Int?
    public let logger: Logger

    public init(
        address: ClamdAddress,
        group: any EventLoopGroup,
        timeout: TimeAmount = .seconds(30),
        connectTimeout: TimeAmount = .seconds(5),
        chunkSize: Int = 65536,
        maxStreamLength: Int? = nil,
        logger: Logger = Logger(label: "postern.scan")
    ) {
        precondition(chunkSize > 0 && chunkSize <= Int(UInt32.max), "chunkSize must fit clamd's 4-byte length")
        precondition(maxStreamLength.map { $0 >= 0 } ?? true, "maxStreamLength must not be negative")
        self.address = address
        self.group = group
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.chunkSize = chunkSize
        self.maxStreamLength = maxStreamLength
        self.logger = logger
    }

    // MARK: async

    /// Scans one message. Never throws: every failure is `.unavailable(reason)`.
    public func scan(_ message: ByteBuffer) async -> ScanVerdict {
        do {
            return try await scan(message, on: group.next()).get()
        } catch {
            return .unavailable("\(error)")  // not reached: the future never fails
        }
    }

    /// True when clamd answers PING with PONG within `timeout`.
    public func ping() async -> Bool {
        do {
            return try await ping(on: group.next()).get()
        } catch {
            return false
        }
    }

    // MARK: EventLoopFuture

    /// Scans one message on `loop`; the future always succeeds, on `loop`.
    public func scan(_ message: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<ScanVerdict> {
        if let limit = maxStreamLength, message.readableBytes > limit {
            return loop.makeSucceededFuture(.tooLarge)
        }
        let logger = self.logger
        return exchange(.instream(message, chunkSize: chunkSize), on: loop).map { outcome in
            let verdict: ScanVerdict
            switch outcome {
            case .reply(let reply): verdict = reply.scanVerdict
            case .closedWhileSending:
                // clamd stops reading past StreamMaxLength.
                logger.debug("clamd closed the connection during the stream; taken as too large")
                verdict = .tooLarge
            case .failed(let reason): verdict = .unavailable(reason)
            }
            if case .unavailable(let reason) = verdict {
                logger.debug("clamd scan without verdict", metadata: ["reason": "\(reason)"])
            }
            return verdict
        }
    }

    /// Sends PING on `loop`; the future always succeeds with whether clamd answered PONG.
    public func ping(on loop: any EventLoop) -> EventLoopFuture<Bool> {
        exchange(.ping, on: loop).map { outcome in
            if case .reply(.pong) = outcome { return true }
            return false
        }
    }

    // MARK: the connection

    private func exchange(_ request: ClamdExchangeHandler.Request, on loop: any EventLoop) -> EventLoopFuture<ClamdExchangeHandler.Outcome> {
        let promise = loop.makePromise(of: ClamdExchangeHandler.Outcome.self)
        let deadline = NIODeadline.now() + timeout
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(min(connectTimeout, timeout))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ClamdExchangeHandler(request: request, deadline: deadline, promise: promise))
                }
            }
        let connected: EventLoopFuture<any Channel>
        switch address {
        case .tcp(let host, let port):
            connected = bootstrap.connect(host: host, port: port)
        case .unix(let path):
            connected = bootstrap.connect(unixDomainSocketPath: path)
        }
        let address = self.address
        connected.whenFailure { error in
            promise.succeed(.failed("cannot connect to clamd at \(address): \(error)"))
        }
        return promise.futureResult
    }
}

/// One request and its reply on one connection; confined to the channel's event loop.
final class ClamdExchangeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Request: Sendable {
        case instream(ByteBuffer, chunkSize: Int)
        case ping
    }

    enum Outcome: Sendable {
        case reply(ClamdReply)
        /// The connection ended before the whole stream was handed to the socket.
        case closedWhileSending
        case failed(String)
    }

    private enum State {
        case idle
        case sending
        case awaitingReply
        case done
    }

    private let request: Request
    private let deadline: NIODeadline
    private let promise: EventLoopPromise<Outcome>
    private var state = State.idle
    private var remaining: ByteBuffer
    private let chunkSize: Int
    /// Set once the end of the request (the zero-length chunk, or PING) has left for the socket.
    private var requestWritten = false
    private var replyBytes: ByteBuffer?
    private var timer: Scheduled<Void>?

    init(request: Request, deadline: NIODeadline, promise: EventLoopPromise<Outcome>) {
        self.request = request
        self.deadline = deadline
        self.promise = promise
        switch request {
        case .instream(let message, let chunkSize):
            self.remaining = message
            self.chunkSize = chunkSize
        case .ping:
            self.remaining = ByteBuffer()
            self.chunkSize = 1
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.finish(.failed("clamd timed out"), context: context)
        }
        switch request {
        case .ping:
            state = .awaitingReply
            writeEndOfRequest(context.channel.allocator.buffer(string: "zPING\0"), context: context)
            context.flush()
        case .instream:
            state = .sending
            // The "z" prefix asks for NUL-terminated replies (clamd(8)).
            context.write(wrapOutboundOut(context.channel.allocator.buffer(string: "zINSTREAM\0")), promise: nil)
            pump(context: context)
        }
        context.fireChannelActive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if state == .sending { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Writes chunks while the channel is writable, so a large message is held only once, in the
    /// caller's buffer (chunks are slices of it), and a slow clamd slows the writer down.
    private func pump(context: ChannelHandlerContext) {
        while state == .sending, context.channel.isWritable, remaining.readableBytes > 0 {
            let length = min(chunkSize, remaining.readableBytes)
            let chunk = remaining.readSlice(length: length)!
            var prefix = context.channel.allocator.buffer(capacity: 4)
            prefix.writeInteger(UInt32(length), endianness: .big)
            context.write(wrapOutboundOut(prefix), promise: nil)
            context.write(wrapOutboundOut(chunk), promise: nil)
        }
        if state == .sending, remaining.readableBytes == 0 {
            state = .awaitingReply
            var end = context.channel.allocator.buffer(capacity: 4)
            end.writeInteger(UInt32(0), endianness: .big)
            writeEndOfRequest(end, context: context)
        }
        context.flush()
    }

    private func writeEndOfRequest(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenSuccess { self.requestWritten = true }
        context.write(wrapOutboundOut(buffer), promise: written)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state != .done else { return }
        var bytes = unwrapInboundIn(data)
        if replyBytes == nil {
            replyBytes = bytes
        } else {
            replyBytes!.writeBuffer(&bytes)
        }
        guard let reply = replyBytes else { return }
        if let nul = reply.readableBytesView.firstIndex(of: 0) {
            let text = reply.readableBytesView[reply.readableBytesView.startIndex..<nul]
            // A reply may come before the stream ends (size limit exceeded): it ends the exchange.
            finish(.reply(ClamdReply.parse(text)), context: context)
        } else if reply.readableBytes > ClamdReply.maximumLength {
            finish(.reply(.unrecognised), context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The connection is of no further use; channelInactive tells what that means.
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // clamd went away before the socket took the whole stream: past StreamMaxLength it stops
        // reading, and its "size limit exceeded" reply (read before the close, even after a reset)
        // may not have come. Once the stream is all written, a close without a reply is a failure.
        let streaming: Bool
        if case .instream = request { streaming = true } else { streaming = false }
        if streaming && (state == .sending || (state == .awaitingReply && !requestWritten)) {
            finish(.closedWhileSending, context: context)
        } else {
            finish(.failed("clamd closed the connection without a reply"), context: context)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Never active: the connect failed, and the bootstrap's future reports why.
        guard state != .idle else { return }
        finish(.failed("clamd connection ended"), context: context)
    }

    private func finish(_ outcome: Outcome, context: ChannelHandlerContext) {
        guard state != .done else { return }
        state = .done
        timer?.cancel()
        timer = nil
        remaining = ByteBuffer()
        replyBytes = nil
        promise.succeed(outcome)
        context.close(promise: nil)
    }
}
