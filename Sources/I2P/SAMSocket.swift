import NIOCore
import NIOPosix

/// Where the SAM bridge listens (the router's `[sam]`, 127.0.0.1:7656 by default).
public struct SAMBridge: Sendable {
    public var host: String
    public var port: Int
    /// The longest wait for a reply. SESSION CREATE of a new destination takes 20 s on i2pd 2.45.
    public var replyTimeout: TimeAmount

    public init(host: String = "127.0.0.1", port: Int = 7656, replyTimeout: TimeAmount = .seconds(120)) {
        self.host = host
        self.port = port
        self.replyTimeout = replyTimeout
    }
}

public enum SAMError: Error, Equatable, CustomStringConvertible {
    /// The bridge cannot be reached or closed the connection.
    case unavailable
    case timeout
    case malformed(SAMReply.ParseError)
    /// The bridge said no (`RESULT` other than OK), or answered with another topic.
    case refused(String)

    public var description: String {
        switch self {
        case .unavailable: return "the SAM bridge is not reachable or closed the connection"
        case .timeout: return "the SAM bridge did not answer in time"
        case .malformed(let error): return error.description
        case .refused(let why): return "the SAM bridge refused: \(why)"
        }
    }
}

/// One TCP connection to the SAM bridge, spoken line by line until it becomes a data stream
/// (after STREAM CONNECT or ACCEPT) or stays a session's control connection. Every reply is
/// parsed strictly by `SAMReply`.
public final class SAMSocket: Sendable {
    public let channel: any Channel
    private let reader: NIOLoopBound<SAMLineReader>
    private let bridge: SAMBridge

    private init(channel: any Channel, reader: NIOLoopBound<SAMLineReader>, bridge: SAMBridge) {
        self.channel = channel
        self.reader = reader
        self.bridge = bridge
    }

    /// Connects and says HELLO (SAM 3.1 to 3.3: i2pd 2.45 speaks 3.1).
    public static func open(_ bridge: SAMBridge, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> SAMSocket {
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(10))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(SAMLineReader()) }
                }
                .connect(host: bridge.host, port: bridge.port).get()
        } catch {
            throw SAMError.unavailable
        }
        let reader = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: SAMLineReader.self), eventLoop: channel.eventLoop)
        }.get()
        let socket = SAMSocket(channel: channel, reader: reader, bridge: bridge)
        do {
            let hello = try await socket.request(SAMCommand("HELLO", "VERSION", fields: [("MIN", "3.1"), ("MAX", "3.3")]))
            guard hello.topic == "HELLO", hello.isOK else { throw SAMError.refused(hello.failure) }
        } catch {
            socket.close()
            throw error
        }
        return socket
    }

    /// Sends a command and returns its reply, checked for `RESULT=OK`.
    @discardableResult
    public func request(_ command: SAMCommand, timeout: TimeAmount? = nil) async throws -> SAMReply {
        let line: String
        do { line = try command.line() } catch { throw SAMError.refused("a value cannot be sent") }
        let bytes = try await exchange(send: line, timeout: timeout ?? bridge.replyTimeout)
        let reply: SAMReply
        do { reply = try SAMReply.parse(bytes) } catch { throw SAMError.malformed(error) }
        guard reply.isOK else { throw SAMError.refused(reply.failure) }
        return reply
    }

    /// The next line without sending anything (the peer's destination after STREAM ACCEPT).
    public func readLine(timeout: TimeAmount?) async throws -> [UInt8] {
        try await exchange(send: nil, timeout: timeout)
    }

    private func exchange(send line: String?, timeout: TimeAmount?) async throws -> [UInt8] {
        let channel = self.channel
        let reader = self.reader
        let promise = channel.eventLoop.makePromise(of: [UInt8].self)
        channel.eventLoop.execute {
            reader.value.expect(promise, timeout: timeout, on: channel.eventLoop)
            if let line { channel.writeAndFlush(ByteBuffer(string: line), promise: nil) }
        }
        return try await promise.futureResult.get()
    }

    /// Hands the connection over as a data stream: `initializer` sets up the pipeline, then the
    /// line reader leaves, passing on any bytes that came after the last line.
    public func detach<Output: Sendable>(_ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output {
        let channel = self.channel
        let reader = self.reader
        return try await channel.eventLoop.flatSubmit {
            initializer(channel).flatMap { output in
                reader.value.release(on: channel.eventLoop).map { output }
            }
        }.get()
    }

    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }

    public func close() {
        channel.close(promise: nil)
    }
}

/// Reads LF-ended lines for whoever waits for one; on `release()` it removes itself and passes on
/// the bytes it holds. A line longer than `SAMReply.maxLength`, a close or an error fails the
/// waiter (and closes the connection).
final class SAMLineReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var buffer = ByteBuffer()
    private var waiter: EventLoopPromise<[UInt8]>?
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    private var failure: SAMError?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        fail(.unavailable)
    }

    func expect(_ promise: EventLoopPromise<[UInt8]>, timeout: TimeAmount?, on loop: any EventLoop) {
        if let failure {
            promise.fail(failure)
            return
        }
        guard waiter == nil else {
            promise.fail(SAMError.refused("two requests at once"))
            return
        }
        waiter = promise
        if let timeout {
            let bound = NIOLoopBound(self, eventLoop: loop)
            timer = loop.scheduleTask(in: timeout) {
                bound.value.fail(.timeout)
                bound.value.context?.close(promise: nil)
            }
        }
        deliver()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        // Bounded even while nobody waits for a line (a stream's first bytes before `detach`
        // are at most a window's worth; a bridge that floods the control connection is closed).
        if buffer.readableBytes > 4 * SAMReply.maxLength + 1_048_576 {
            fail(.malformed(.tooLong))
            context.close(promise: nil)
            return
        }
        deliver()
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.unavailable)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(.unavailable)
        context.close(promise: nil)
    }

    private func deliver() {
        guard let waiter else { return }
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > SAMReply.maxLength {
                fail(.malformed(.tooLong))
                context?.close(promise: nil)
            }
            return
        }
        let length = newline - buffer.readableBytesView.startIndex
        guard length <= SAMReply.maxLength else {
            fail(.malformed(.tooLong))
            context?.close(promise: nil)
            return
        }
        let line = buffer.readBytes(length: length) ?? []
        buffer.moveReaderIndex(forwardBy: 1)
        self.waiter = nil
        timer?.cancel()
        timer = nil
        waiter.succeed(line)
    }

    private func fail(_ error: SAMError) {
        if failure == nil { failure = error }
        timer?.cancel()
        timer = nil
        let pending = waiter
        waiter = nil
        pending?.fail(error)
    }

    /// Leaves the pipeline; what was read past the last line goes on to the next handler.
    func release(on loop: any EventLoop) -> EventLoopFuture<Void> {
        guard let context else { return loop.makeFailedFuture(SAMError.unavailable) }
        let leftover = buffer
        buffer = ByteBuffer()
        let pipeline = context.pipeline
        return pipeline.syncOperations.removeHandler(context: context).map {
            // Replayed from the head: the stream's handlers see it from its first byte.
            if leftover.readableBytes > 0 {
                pipeline.syncOperations.fireChannelRead(NIOAny(leftover))
                // An NIOAsyncChannel hands reads on at read-complete: without it the peer's first
                // bytes (an SMTP greeting) would wait for the next read.
                pipeline.syncOperations.fireChannelReadComplete()
            }
        }
    }
}
