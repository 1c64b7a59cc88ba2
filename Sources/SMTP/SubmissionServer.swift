import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Wire

public struct SubmissionServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var session: SubmissionSession.Configuration
    /// RFC 5321 4.5.3.2.7 recommends 5 minutes for the server waiting for a command (SMTP-6).
    public var commandTimeout: TimeAmount
    /// Time allowed between two reads while receiving message data (SMTP-6: 10 minutes).
    public var dataTimeout: TimeAmount
    /// Global cap on concurrent sessions: all I2P clients arrive from 127.0.0.1, so no per-IP limit.
    public var maxSessions: Int
    /// Decides at connect time, from the client's address, whether to refuse it with a reply
    /// (an exchange's rate limit). Runs on the event loop: it must not block.
    public var admission: (@Sendable (SocketAddress?) -> SMTPReply?)?
    /// Puts a TLS server handler first in the pipeline, for STARTTLS (the exchange role).
    public var startTLS: (@Sendable (any Channel) throws -> Void)?

    public init(host: String = "127.0.0.1", port: Int = 5587, session: SubmissionSession.Configuration = .init(),
                commandTimeout: TimeAmount = .minutes(5), dataTimeout: TimeAmount = .minutes(10), maxSessions: Int = 1000,
                admission: (@Sendable (SocketAddress?) -> SMTPReply?)? = nil, startTLS: (@Sendable (any Channel) throws -> Void)? = nil) {
        self.host = host
        self.port = port
        self.session = session
        self.commandTimeout = commandTimeout
        self.dataTimeout = dataTimeout
        self.maxSessions = maxSessions
        self.admission = admission
        self.startTLS = startTLS
    }
}

/// The SMTP submission listener: NIO moves bytes, `SubmissionSession` decides.
public final class SubmissionServer: Sendable {
    private let configuration: SubmissionServerConfiguration
    private let backend: any SubmissionBackend
    private let group: any EventLoopGroup
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var serverChannel: (any Channel)?
        var sessions: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
    }

    public init(configuration: SubmissionServerConfiguration, backend: any SubmissionBackend, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.backend = backend
        self.group = group
        self.logger = logger
    }

    /// Binds and starts accepting; returns the bound address (port 0 picks a free port).
    public func start() async throws -> SocketAddress {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.admit(channel)
                }
            }
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        state.withLockedValue { $0.serverChannel = channel }
        return channel.localAddress!
    }

    private func admit(_ channel: any Channel) throws {
        let id = ObjectIdentifier(channel)
        let accepted: Bool = state.withLockedValue { state in
            guard !state.shuttingDown, state.sessions.count < configuration.maxSessions else { return false }
            state.sessions[id] = channel
            return true
        }
        let remote = channel.remoteAddress
        let refusal = accepted ? configuration.admission?(remote) : SMTPReply(421, "4.7.0", "Too many sessions, try again later")
        let backend = refusal == nil ? self.backend.connection(from: remote) : self.backend
        channel.closeFuture.whenComplete { [state] _ in
            _ = state.withLockedValue { $0.sessions.removeValue(forKey: id) }
            if refusal == nil { backend.connectionClosed() }
        }
        let handler = SubmissionHandler(configuration: configuration, backend: backend, logger: logger, refusal: refusal)
        try channel.pipeline.syncOperations.addHandler(handler)
    }

    /// Serves a connection that arrived another way: an I2P stream the SAM bridge handed over,
    /// already checked to come from the one allowed peer. Call on the channel's event loop.
    public func adopt(_ channel: any Channel) throws {
        try admit(channel)
    }

    /// Stops accepting, lets sessions finish for up to `gracePeriod`, then closes the rest (OPS-4).
    /// A session whose message has not been acknowledged loses nothing: the client still holds it.
    public func shutdown(gracePeriod: TimeAmount) async {
        let (server, sessions) = state.withLockedValue { state -> ((any Channel)?, [any Channel]) in
            state.shuttingDown = true
            return (state.serverChannel, Array(state.sessions.values))
        }
        try? await server?.close()
        for channel in sessions {
            channel.pipeline.fireUserInboundEventTriggered(SubmissionHandler.ShutdownRequested())
        }
        let deadline = NIODeadline.now() + gracePeriod
        while NIODeadline.now() < deadline {
            if state.withLockedValue({ $0.sessions.isEmpty }) { return }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        for channel in state.withLockedValue({ Array($0.sessions.values) }) {
            try? await channel.close()
        }
    }
}

/// One connection. Confined to its channel's event loop; effects run in tasks and come back to
/// the loop before they touch the session.
final class SubmissionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct ShutdownRequested {}
    struct TLSUnavailable: Error {}

    private let configuration: SubmissionServerConfiguration
    private let backend: any SubmissionBackend
    private let logger: Logger
    private let refusal: SMTPReply?
    private var session: SubmissionSession
    private var framer: CRLFLineFramer
    private var output: ByteBuffer
    private var timeout: Scheduled<Void>?
    private var deadline = NIODeadline.now()
    private var checkAt = NIODeadline.now()
    private var readPaused = false
    private var readRequested = false
    private var shutdownRequested = false
    private var closing = false
    private var started = false

    init(configuration: SubmissionServerConfiguration, backend: any SubmissionBackend, logger: Logger, refusal: SMTPReply?) {
        self.configuration = configuration
        self.backend = backend
        self.logger = logger
        self.refusal = refusal
        self.session = SubmissionSession(configuration: configuration.session)
        self.framer = CRLFLineFramer(maxLineLength: SubmissionSession.InputMode.command.lineLimit)
        self.output = ByteBufferAllocator().buffer(capacity: 512)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // An adopted connection (an I2P stream) is active already: no channelActive will come.
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        if let refusal {
            closing = true
            refusal.write(into: &output)
            flushAndClose(context: context)
            return
        }
        session.greeting().write(into: &output)
        writeReplies(context: context)
        armTimeout(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        closing = true
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        framer.append(unwrapInboundIn(data))
        armTimeout(context: context)
        process(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ShutdownRequested {
            shutdownRequested = true
            closeIfIdleForShutdown(context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("smtp session error", metadata: ["error": "\(type(of: error))"])
        context.close(promise: nil)
    }

    // Back-pressure: no reads while an effect is outstanding or too much input is buffered.
    func read(context: ChannelHandlerContext) {
        if readPaused {
            readRequested = true
        } else {
            context.read()
        }
    }

    /// Feeds buffered input to the session until it waits for an effect or needs more bytes.
    private func process(context: ChannelHandlerContext) {
        while !closing && !session.awaitingEffect && !session.isClosed {
            let mode = session.inputMode
            var actions: [SubmissionSession.Action]
            if case .chunk(let remaining) = mode {
                guard let bytes = framer.nextBytes(upTo: remaining) else { break }
                actions = session.chunk(bytes)
            } else {
                framer.maxLineLength = mode.lineLimit
                if mode == .dataLine, let lines = framer.nextOrdinaryLines() {
                    perform(session.dataLines(lines), context: context)
                    continue
                }
                guard let frame = framer.next() else { break }
                switch (frame, mode) {
                case (.line(let line), .dataLine): actions = session.dataLine(line)
                case (.line(let line), _): actions = session.command(line)
                case (.tooLong, _): actions = session.framingError(.tooLong)
                case (.bareLineBreak, _): actions = session.framingError(.bareLineBreak)
                }
            }
            perform(actions, context: context)
        }
        if output.readableBytes > 0 { writeReplies(context: context) }
        closeIfIdleForShutdown(context: context)
        updateReadPause(context: context)
    }

    private func perform(_ actions: [SubmissionSession.Action], context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .reply(let reply):
                reply.write(into: &output)
            case .close:
                flushAndClose(context: context)
            case .authenticate(let username, let password):
                // Replies before this one go out now: the check may take seconds (back-off).
                writeReplies(context: context)
                runEffect(context: context, backend.authenticate(username: username, password: password, on: context.eventLoop)) {
                    $0.authenticated($1)
                }
            case .checkSender(let sender, let helo):
                runEffect(context: context, backend.checkSender(sender, helo: helo, on: context.eventLoop)) {
                    $0.senderChecked($1)
                }
            case .startTLS:
                writeReplies(context: context)
                // RFC 3207 4: what the client pipelined after STARTTLS was sent in clear and
                // is not part of the protected session (CVE-2011-0411): dropped unread.
                framer.discardBuffered()
                do {
                    guard let startTLS = configuration.startTLS else { throw TLSUnavailable() }
                    try startTLS(context.channel)
                } catch {
                    logger.debug("cannot start TLS", metadata: ["error": "\(type(of: error))"])
                    flushAndClose(context: context)
                }
            case .checkRecipient(let recipient, let sender, let size, let earlier):
                runEffect(context: context, backend.checkRecipient(recipient, sender: sender, declaredSize: size, earlier: earlier,
                                                                   on: context.eventLoop)) {
                    $0.recipientChecked($1)
                }
            case .deliver(let envelope, let message):
                runEffect(context: context, backend.deliver(envelope, message: message, on: context.eventLoop)) {
                    $0.delivered($1)
                }
            }
        }
    }

    /// Feeds the result of a backend call (running off the event loop) back to the session on the loop.
    private func runEffect<Result: Sendable>(
        context: ChannelHandlerContext,
        _ work: EventLoopFuture<Result>,
        resume: @escaping (inout SubmissionSession, Result) -> [SubmissionSession.Action]
    ) {
        let loop = context.eventLoop
        let boundContext = NIOLoopBound(context, eventLoop: loop)
        let boundSelf = NIOLoopBound(self, eventLoop: loop)
        work.hop(to: loop).assumeIsolated().whenComplete { outcome in
            let handler = boundSelf.value
            guard !handler.closing else { return }
            guard case .success(let result) = outcome else {
                // Backends answer refusals as values; a failed future means the server is going away.
                SMTPReply(421, "4.3.0", "Local problem, closing connection").write(into: &handler.output)
                handler.flushAndClose(context: boundContext.value)
                return
            }
            let actions = resume(&handler.session, result)
            handler.armTimeout(context: boundContext.value)
            handler.perform(actions, context: boundContext.value)
            handler.process(context: boundContext.value)
        }
    }

    private func updateReadPause(context: ChannelHandlerContext) {
        let shouldPause = session.awaitingEffect || framer.bufferedByteCount > 256 * 1024
        if readPaused && !shouldPause {
            readPaused = false
            if readRequested {
                readRequested = false
                context.read()
            }
        } else {
            readPaused = shouldPause
        }
    }

    private func closeIfIdleForShutdown(context: ChannelHandlerContext) {
        // OPS-4: a session between commands is closed at once; one in DATA or waiting for the
        // store finishes first (the server's grace period bounds it).
        guard shutdownRequested, !closing, !session.awaitingEffect, session.inputMode == .command,
              framer.bufferedByteCount == 0 else { return }
        SMTPReply(421, "4.3.2", "Server shutting down, try again later").write(into: &output)
        flushAndClose(context: context)
    }

    /// Pushes the inactivity deadline forward (SMTP-6). Called on every read, so it only stores
    /// the new deadline; one scheduled check per session moves itself along until the deadline
    /// has really passed.
    private func armTimeout(context: ChannelHandlerContext) {
        let amount = session.inputMode == .command || session.inputMode == .authResponse
            ? configuration.commandTimeout : configuration.dataTimeout
        deadline = .now() + amount
        // The deadline only moves later, except when DATA's longer wait ends: then check earlier.
        if timeout == nil || deadline < checkAt {
            timeout?.cancel()
            scheduleTimeoutCheck(context: context, at: deadline)
        }
    }

    private func scheduleTimeoutCheck(context: ChannelHandlerContext, at when: NIODeadline) {
        let boundSelf = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        checkAt = when
        timeout = context.eventLoop.scheduleTask(deadline: when) {
            let handler = boundSelf.value
            handler.timeout = nil
            guard !handler.closing else { return }
            // Waiting for our own store is not the client's delay: look again later.
            if handler.session.awaitingEffect || NIODeadline.now() < handler.deadline {
                let next = max(handler.deadline, .now() + .seconds(1))
                handler.scheduleTimeoutCheck(context: boundContext.value, at: next)
                return
            }
            // RFC 5321 4.5.3.2: on timeout the server closes; 421 tells the client why.
            SMTPReply(421, "4.4.2", "Timeout waiting for client, closing connection").write(into: &handler.output)
            handler.flushAndClose(context: boundContext.value)
        }
    }

    private func writeReplies(context: ChannelHandlerContext) {
        guard output.readableBytes > 0 else { return }
        let bytes = output
        output = context.channel.allocator.buffer(capacity: 512)
        context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    private func flushAndClose(context: ChannelHandlerContext) {
        guard !closing || output.readableBytes > 0 else { return }
        closing = true
        timeout?.cancel()
        let bytes = output
        output = context.channel.allocator.buffer(capacity: 0)
        context.writeAndFlush(wrapOutboundOut(bytes)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
