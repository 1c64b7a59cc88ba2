import Logging
import NIOCore
import Wire

/// Asks a session to end; fired into every session's pipeline by `POP3Server.shutdown`.
struct POP3ShutdownRequest: Sendable {}

/// The NIO shell around one `POP3Session`: frames input, feeds the session, performs its actions.
///
/// Confined to its channel's event loop like every channel handler. Effects run in tasks off the
/// loop; their results come back to the loop through `assumeIsolated()` futures.
final class POP3ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// RFC 2449 section 4: command lines are at most 255 octets; a little lenience.
    static let maxLineLength = 512
    /// Input waiting while an effect is pending beyond this closes the connection.
    static let maxBufferedInput = 64 * 1024
    /// Large responses are written in slices so the autologout timer sees the progress.
    static let writeSliceSize = 64 * 1024

    private let backend: any POP3Backend
    private let autologout: TimeAmount
    private let logger: Logger
    /// Completed when the connection has ended and no effect is pending: the lock is released.
    private let finished: EventLoopPromise<Void>

    private var session = POP3Session()
    private var framer = CRLFLineFramer(maxLineLength: POP3ConnectionHandler.maxLineLength)
    private var context: ChannelHandlerContext?
    private var isActive = false
    private var hasEnded = false
    private var effectPending = false
    private var isClosing = false
    private var inputClosed = false
    /// A `read` held back while the session cannot take input (back-pressure).
    private var readHeld = false
    private var wroteSinceFlush = false
    private var lastWrite: EventLoopFuture<Void>?
    private var lastActivity = NIODeadline.now()
    private var idleTimer: Scheduled<Void>?

    init(backend: any POP3Backend, autologout: TimeAmount, logger: Logger, finished: EventLoopPromise<Void>) {
        self.backend = backend
        self.autologout = autologout
        self.logger = logger
        self.finished = finished
    }

    // MARK: - Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard !isActive, !hasEnded else { return }
        isActive = true
        logger.debug("POP3 session opened")
        lastActivity = .now()
        scheduleIdleTimer(in: autologout)
        perform(session.start())
        flushIfNeeded()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionEnded()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        connectionEnded()
        self.context = nil
    }

    /// Runs once, however the connection ends: no UPDATE, the session releases its lock.
    private func connectionEnded() {
        guard !hasEnded else { return }
        hasEnded = true
        isActive = false
        idleTimer?.cancel()
        idleTimer = nil
        logger.debug("POP3 session ended")
        perform(session.connectionClosed())
        completeIfFinished()
    }

    private var didFinish = false
    private func completeIfFinished() {
        guard hasEnded, !effectPending, !didFinish else { return }
        didFinish = true
        finished.succeed(())
    }

    // MARK: - Input

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard isActive, !isClosing else { return }
        framer.append(unwrapInboundIn(data))
        if framer.bufferedByteCount > Self.maxBufferedInput {
            logger.debug("POP3 session closed: too much unprocessed input")
            context.close(promise: nil)
            return
        }
        processInput()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            // The client half-closed (e.g. `printf '...QUIT\r\n' | nc`): answer what it sent, then end.
            inputClosed = true
            processInput()
        } else if event is POP3ShutdownRequest {
            perform(session.serverShuttingDown())
            flushIfNeeded()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { processInput() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("POP3 connection error", metadata: ["error": "\(type(of: error))"])
        context.close(promise: nil)
    }

    /// Holds reads back while the session cannot take input, so buffered input stays bounded.
    func read(context: ChannelHandlerContext) {
        if canProcessInput {
            context.read()
        } else {
            readHeld = true
        }
    }

    private var canProcessInput: Bool {
        guard let context, isActive, !isClosing, !effectPending, !session.isClosed else { return false }
        return context.channel.isWritable
    }

    /// Feeds buffered lines to the session, in order, until it waits for an effect or the buffer
    /// has no complete line; then flushes once, so pipelined commands get grouped replies.
    private func processInput() {
        var drained = false
        while canProcessInput {
            guard let frame = framer.next() else {
                drained = true
                break
            }
            lastActivity = .now()
            perform(session.receive(frame))
        }
        flushIfNeeded()
        if drained && inputClosed && !effectPending && !isClosing {
            close()
        }
        if readHeld && canProcessInput, let context {
            readHeld = false
            context.read()
        }
    }

    // MARK: - Actions

    private func perform(_ actions: [POP3Session.Action]) {
        for action in actions {
            switch action {
            case .send(let bytes):
                write(bytes)
            case .close:
                close()
            case .authenticate(let username, let password):
                let backend = self.backend
                runEffect({ loop in backend.authenticate(username: username, password: password, on: loop) }) {
                    $0.authenticated($1)
                }
            case .lockAndList(let mailbox):
                let backend = self.backend
                runEffect({ loop -> EventLoopFuture<POP3Session.MaildropOutcome> in
                    backend.lockMaildrop(mailbox, on: loop).flatMap { locked in
                        guard locked else { return loop.makeSucceededFuture(.inUse) }
                        return backend.listMessages(in: mailbox, on: loop)
                            .map { .opened($0) }
                            .recover { _ in .listFailed }
                    }
                }) { $0.maildropOpened($1) }
            case .fetch(let mailbox, let uid, _):
                let backend = self.backend
                runEffect({ loop in
                    backend.messageBytes(in: mailbox, uid: uid, on: loop)
                        .map { POP3Session.FetchOutcome.message($0) }
                        .recover { _ in .failed }
                }) { $0.fetched($1) }
            case .delete(let mailbox, let uids):
                let backend = self.backend
                runEffect({ loop in
                    loop.makeFutureWithTask { () async -> Bool in
                        do {
                            try await backend.deleteMessages(in: mailbox, uids: uids)
                            return true
                        } catch {
                            return false
                        }
                    }
                }) { $0.deleted(succeeded: $1) }
            case .unlock(let mailbox):
                let backend = self.backend
                runEffect({ loop in loop.makeFutureWithTask { await backend.unlockMaildrop(mailbox) } }) { session, _ in session.unlocked() }
            }
        }
    }

    /// Runs a backend call off the event loop and feeds its result back on the loop. Also after
    /// the connection has ended: the session may still have a lock to release.
    private func runEffect<Result: Sendable>(
        _ work: (any EventLoop) -> EventLoopFuture<Result>,
        resume: @escaping (inout POP3Session, Result) -> [POP3Session.Action]
    ) {
        guard let eventLoop = context?.eventLoop ?? eventLoopAfterRemoval else { return }
        effectPending = true
        work(eventLoop).hop(to: eventLoop).assumeIsolated().whenComplete { result in
            self.effectPending = false
            switch result {
            case .success(let value):
                self.perform(resume(&self.session, value))
            case .failure:
                // Failures come back as values; a failed future (workers shut down) ends the connection.
                self.logger.debug("POP3 effect failed")
                self.context?.close(promise: nil)
            }
            self.lastActivity = .now()
            self.processInput()
            self.completeIfFinished()
        }
    }

    /// Effects after `handlerRemoved` still need a loop; the promise knows it.
    private var eventLoopAfterRemoval: (any EventLoop)? { finished.futureResult.eventLoop }

    private func write(_ bytes: ByteBuffer) {
        guard isActive, let context else { return }
        var remaining = bytes
        while remaining.readableBytes > 0 {
            let length = min(Self.writeSliceSize, remaining.readableBytes)
            guard let slice = remaining.readSlice(length: length) else { break }
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.assumeIsolated().whenSuccess {
                // Progress on a long RETR over a slow link is activity too (POP-4).
                self.lastActivity = .now()
            }
            context.write(wrapOutboundOut(slice), promise: promise)
            lastWrite = promise.futureResult
        }
        wroteSinceFlush = true
    }

    private func flushIfNeeded() {
        guard wroteSinceFlush, isActive, let context else { return }
        wroteSinceFlush = false
        context.flush()
    }

    /// Closes once what was written has gone out.
    private func close() {
        guard isActive, !isClosing, let context else { return }
        isClosing = true
        flushIfNeeded()
        if let lastWrite {
            lastWrite.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: - Autologout (RFC 1939 section 3, POP-4)

    private func scheduleIdleTimer(in delay: TimeAmount) {
        guard let context else { return }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.idleTimerFired()
        }
    }

    private func idleTimerFired() {
        idleTimer = nil
        guard isActive, let context else { return }
        let idle = NIODeadline.now() - lastActivity
        if idle < autologout {
            scheduleIdleTimer(in: autologout - idle)
            return
        }
        if isClosing {
            // The client stopped reading our last reply: give up on it.
            context.close(promise: nil)
            return
        }
        let actions = session.autologoutExpired()
        if actions.isEmpty {
            scheduleIdleTimer(in: autologout)  // busy with an effect, not idle
            return
        }
        logger.debug("POP3 autologout")
        perform(actions)
    }
}

/// Answers a connection beyond `maxSessions` (or during shutdown) and closes it.
final class POP3RejectHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let reply: ByteBuffer
    init(reply: ByteBuffer) { self.reply = reply }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { reject(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        reject(context: context)
    }

    private var rejected = false
    private func reject(context: ChannelHandlerContext) {
        guard !rejected else { return }
        rejected = true
        context.writeAndFlush(wrapOutboundOut(reply)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
