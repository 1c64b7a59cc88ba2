import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Wire

/// Settings of the new-mail bot (IRC-1..3).
public struct IRCNotifierConfiguration: Sendable, Equatable {
    public var client: IRCClientConfiguration
    public var notifier: Notifier.Configuration
    /// Reconnect back-off: doubles from `reconnectMinimum` up to `reconnectMaximum`, with jitter.
    public var reconnectMinimum: TimeAmount
    public var reconnectMaximum: TimeAmount
    /// Longest line taken from the server, line ending included (RFC 2812 2.3: 512).
    public var maxIncomingLineLength: Int
    /// Notices kept while there is no connection; beyond this the oldest go.
    public var outboxLimit: Int
    /// How often the coalescing policy is asked for due notices.
    public var tickInterval: TimeAmount
    /// Sent to a nick right after it was verified (a fixed text, never the user's input);
    /// `nil` to stay silent.
    public var confirmationText: String?

    public init(client: IRCClientConfiguration, notifier: Notifier.Configuration = .init(),
                reconnectMinimum: TimeAmount = .seconds(1), reconnectMaximum: TimeAmount = .minutes(5),
                maxIncomingLineLength: Int = IRCMessage.maxLineOctets, outboxLimit: Int = 100,
                tickInterval: TimeAmount = .seconds(1),
                confirmationText: String? = "Verified: new-mail notices for this nick are on.") {
        self.client = client
        self.notifier = notifier
        self.reconnectMinimum = reconnectMinimum
        self.reconnectMaximum = reconnectMaximum
        self.maxIncomingLineLength = maxIncomingLineLength
        self.outboxLimit = max(1, outboxLimit)
        self.tickInterval = tickInterval
        self.confirmationText = confirmationText
    }
}

/// Exponential reconnect back-off with jitter: the n-th delay is drawn from [¾·d, d] where
/// d = min(maximum, minimum·2ⁿ), so many bots restarted together do not reconnect in step.
public struct ReconnectBackoff: Sendable {
    public var minimum: TimeAmount
    public var maximum: TimeAmount
    public private(set) var attempt = 0

    public init(minimum: TimeAmount, maximum: TimeAmount) {
        self.minimum = .nanoseconds(max(1, minimum.nanoseconds))
        self.maximum = .nanoseconds(max(self.minimum.nanoseconds, maximum.nanoseconds))
    }

    public mutating func nextDelay<R: RandomNumberGenerator>(using random: inout R) -> TimeAmount {
        let shift = min(attempt, 40)
        let (scaled, overflow) = minimum.nanoseconds.multipliedReportingOverflow(by: Int64(1) << shift)
        let ceiling = overflow ? maximum.nanoseconds : min(maximum.nanoseconds, scaled)
        attempt += 1
        let floor = ceiling - ceiling / 4
        return .nanoseconds(Int64.random(in: floor...ceiling, using: &random))
    }

    public mutating func nextDelay() -> TimeAmount {
        var random = SystemRandomNumberGenerator()
        return nextDelay(using: &random)
    }

    public mutating func reset() { attempt = 0 }
}

/// The bot: one connection to the configured IRC server through a `StreamConnector` (TCP, or an
/// I2P client tunnel), kept up with back-off, carrying the notices of a `Notifier`.
///
/// The core calls `notify(account:address:count:)` for each delivery of new mail, `issueCode`
/// when a user asks to verify a nick, and persists what `onVerified` reports. Logs name no nick
/// and no account (only events and counts), so they never link the two.
public final class IRCNotifierService: Sendable {
    public let configuration: IRCNotifierConfiguration
    private let connector: any StreamConnector
    private let group: any EventLoopGroup
    private let logger: Logger
    private let onVerified: @Sendable (String, String) -> Void
    private let state: NIOLockedValueBox<State>

    private struct State {
        var notifier: Notifier
        var stopped = false
        var connection: NIOLoopBound<IRCConnectionHandler>?
        var registeredThisConnection = false
        var outbox: [Notice] = []
        var wake: CheckedContinuation<Void, Never>?
        var wakeTimer: Scheduled<Void>?
    }

    /// Checks a private message against codes kept elsewhere (the core's database, where the
    /// account page and `postern account set` put them): the account it verifies, or nil.
    public typealias CodeChecker = @Sendable (_ nick: String, _ text: String) async -> String?

    /// With `codeChecker`, codes are the caller's (and `issueCode` is not used); without it, the
    /// in-memory codes of `Notifier`.
    private let codeChecker: CodeChecker?

    /// `onVerified(account, nick)` runs in its own task (never on an event loop), so it may
    /// write to the database; verifications of different accounts may arrive in any order.
    public init(configuration: IRCNotifierConfiguration, connector: any StreamConnector, logger: Logger,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                codeChecker: CodeChecker? = nil,
                onVerified: @escaping @Sendable (_ account: String, _ nick: String) -> Void = { _, _ in }) {
        self.configuration = configuration
        self.connector = connector
        self.group = group
        self.logger = logger
        self.codeChecker = codeChecker
        self.onVerified = onVerified
        self.state = NIOLockedValueBox(State(notifier: Notifier(configuration: configuration.notifier)))
    }

    // MARK: - What the core calls

    /// New mail for `account` (address e.g. "alice@mail.i2p"): `count` messages. Ignored unless the
    /// account has a verified nick (seeded or verified since start). Never blocks.
    public func notify(account: String, address: String, count: Int) {
        let notices = state.withLockedValue { $0.notifier.mailArrived(account: account, address: address, count: count, now: .now()) }
        dispatch(notices)
    }

    /// A new one-time code for the account page: the user sends it to the bot from `nick`.
    public func issueCode(account: String, nick: String) -> String {
        state.withLockedValue { $0.notifier.code(for: account, nick: nick, now: .now()) }
    }

    /// The stored verified nicks (account → nick), loaded at start.
    public func seedVerified(_ nicks: [String: String]) {
        state.withLockedValue { $0.notifier.seedVerified(nicks) }
    }

    /// The account dropped its nick, or was deleted.
    public func removeVerified(account: String) {
        state.withLockedValue { $0.notifier.removeVerified(account: account) }
    }

    public func verifiedNick(account: String) -> String? {
        state.withLockedValue { $0.notifier.verified(account: account) }
    }

    /// Connects and stays connected until `stop()` (or the task is cancelled).
    public func run() async {
        let ticker = group.next().scheduleRepeatedTask(initialDelay: configuration.tickInterval,
                                                       delay: configuration.tickInterval) { [self] _ in
            let notices = state.withLockedValue { $0.notifier.tick(now: .now()) }
            dispatch(notices)
        }
        defer { ticker.cancel() }
        var backoff = ReconnectBackoff(minimum: configuration.reconnectMinimum, maximum: configuration.reconnectMaximum)
        await withTaskCancellationHandler {
            while !isStopped {
                await connectOnce()
                let registered = state.withLockedValue { state in
                    state.connection = nil
                    defer { state.registeredThisConnection = false }
                    return state.registeredThisConnection
                }
                if registered { backoff.reset() }
                if isStopped { break }
                let delay = backoff.nextDelay()
                logger.info("irc: reconnecting", metadata: ["in_ms": "\(delay.nanoseconds / 1_000_000)"])
                await sleep(delay)
            }
        } onCancel: {
            stop()
        }
        logger.info("irc: stopped")
    }

    /// Sends QUIT :bye on the open connection and makes `run()` return.
    public func stop() {
        let (connection, wake) = state.withLockedValue { state in
            state.stopped = true
            state.wakeTimer?.cancel()
            state.wakeTimer = nil
            defer { state.wake = nil }
            return (state.connection, state.wake)
        }
        wake?.resume()
        if let connection {
            connection.eventLoop.execute { connection.value.quit() }
        }
    }

    private var isStopped: Bool { state.withLockedValue { $0.stopped } }

    private func connectOnce() async {
        let maxLine = configuration.maxIncomingLineLength
        let client = configuration.client
        do {
            let channel = try await connector.connect(group: group) { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = IRCConnectionHandler(client: client, maxLineLength: maxLine, service: self)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    let bound = NIOLoopBound(handler, eventLoop: channel.eventLoop)
                    let stopped = state.withLockedValue { state in
                        state.connection = bound
                        return state.stopped
                    }
                    if stopped { handler.quit() }
                    return channel
                }
            }
            logger.info("irc: connected")
            try? await channel.closeFuture.get()
            logger.info("irc: connection closed")
        } catch {
            logger.info("irc: connect failed", metadata: ["error": "\(type(of: error))"])
        }
    }

    private func sleep(_ delay: TimeAmount) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLockedValue { state -> Bool in
                if state.stopped { return true }
                state.wake = continuation
                state.wakeTimer = group.next().scheduleTask(in: delay) { [self] in
                    let wake = self.state.withLockedValue { state in
                        defer { state.wake = nil; state.wakeTimer = nil }
                        return state.wake
                    }
                    wake?.resume()
                }
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func dispatch(_ notices: [Notice]) {
        guard !notices.isEmpty else { return }
        let connection = state.withLockedValue { state -> NIOLoopBound<IRCConnectionHandler>? in
            if let connection = state.connection { return connection }
            keep(notices, in: &state)
            return nil
        }
        if let connection {
            connection.eventLoop.execute { connection.value.enqueue(notices) }
        }
    }

    private func keep(_ notices: [Notice], in state: inout State) {
        state.outbox += notices
        if state.outbox.count > configuration.outboxLimit {
            state.outbox.removeFirst(state.outbox.count - configuration.outboxLimit)
        }
    }

    // MARK: - Called by the connection handler (on its event loop; nothing here blocks)

    fileprivate func takeOutbox() -> [Notice] {
        state.withLockedValue { state in
            defer { state.outbox.removeAll() }
            return state.outbox
        }
    }

    fileprivate func returnToOutbox(_ notices: [Notice]) {
        guard !notices.isEmpty else { return }
        state.withLockedValue { keep(notices, in: &$0) }
    }

    fileprivate func didRegister() {
        state.withLockedValue { $0.registeredThisConnection = true }
        logger.info("irc: registered")
    }

    /// A user's private message: a code, or ignored. Returns the confirmation to send back.
    fileprivate func privateMessage(from nick: String, text: String) -> String? {
        if let codeChecker {
            // Only what could be a code is looked up: a flood of chatter costs no query.
            let candidate = text.trimmingSpaces()
            guard (4...32).contains(candidate.utf8.count), candidate.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
            let onVerified = self.onVerified
            let confirmation = configuration.confirmationText
            Task {
                guard let account = await codeChecker(nick, candidate) else { return }
                self.state.withLockedValue { $0.notifier.setVerified(account: account, nick: nick) }
                self.logger.info("irc: nick verified")
                onVerified(account, nick)
                if let confirmation { self.dispatch([Notice(nick: nick, text: confirmation)]) }
            }
            return nil
        }
        guard let verification = state.withLockedValue({ $0.notifier.received(privmsgFrom: nick, text: text, now: .now()) }) else {
            return nil
        }
        logger.info("irc: nick verified")
        let onVerified = self.onVerified
        Task { onVerified(verification.account, verification.nick) }
        return configuration.confirmationText
    }

    fileprivate func log(_ message: Logger.Message, _ metadata: Logger.Metadata? = nil) {
        logger.info(message, metadata: metadata)
    }
}

/// The NIO shell of one connection: frames lines (LF or CRLF, bounded), feeds the session, writes
/// its lines, keeps its timer. Confined to the channel's event loop.
final class IRCConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var session: IRCClientSession
    private var framer: IRCLineFramer
    private let service: IRCNotifierService
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var started = false
    private var finished = false
    private var lastWrite: EventLoopFuture<Void>?

    init(client: IRCClientConfiguration, maxLineLength: Int, service: IRCNotifierService) {
        self.session = IRCClientSession(configuration: client)
        self.framer = IRCLineFramer(maxLineLength: maxLineLength)
        self.service = service
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Over I2P the stream is already open when the handler is added.
        if context.channel.isActive { start() }
    }

    func channelActive(context: ChannelHandlerContext) {
        start()
        context.fireChannelActive()
    }

    private func start() {
        guard !started, !finished else { return }
        started = true
        apply(session.handle(.connected(now: .now())))
        enqueue(service.takeOutbox())
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        framer.append(buffer.readableBytesView)
        while !finished, let frame = framer.next() {
            switch frame {
            case .line(let bytes):
                if let message = IRCMessage.parse(bytes) {
                    apply(session.handle(.received(message, now: .now())))
                } else {
                    apply(session.handle(.receivedUnreadable(now: .now())))
                }
            case .tooLong:
                apply(session.handle(.receivedUnreadable(now: .now())))
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        service.log("irc: connection error", ["error": "\(type(of: error))"])
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // Our output is a few lines a minute; a full write buffer means the server stopped reading.
        if !context.channel.isWritable {
            service.log("irc: server not reading, closing")
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Notices for the session; back to the service's outbox if this connection is over.
    func enqueue(_ notices: [Notice]) {
        guard !finished else {
            service.returnToOutbox(notices)
            return
        }
        for notice in notices {
            apply(session.handle(.sendPrivateMessage(to: notice.nick, text: notice.text, now: .now())))
        }
    }

    func quit() {
        guard !finished else { return }
        if started {
            apply(session.handle(.quit(reason: "bye", now: .now())))
        } else {
            context?.close(promise: nil)
        }
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        timer = nil
        _ = session.handle(.disconnected)
        service.returnToOutbox(session.takeQueuedMessages().map { Notice(nick: $0.to, text: $0.text) })
        if session.droppedCount > 0 { service.log("irc: notices dropped", ["count": "\(session.droppedCount)"]) }
    }

    private func apply(_ actions: [IRCClientSession.Action]) {
        guard let context, !finished else { return }
        var wrote = false
        var replies: [(to: String, text: String)] = []
        defer {
            // After this batch, so that the schedule it carries never overrides a newer one.
            for reply in replies { apply(session.handle(.sendPrivateMessage(to: reply.to, text: reply.text, now: .now()))) }
        }
        for action in actions {
            switch action {
            case .send(let message):
                guard let bytes = message.serialised() else { continue }
                lastWrite = context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)))
                wrote = true
            case .close(let reason):
                if wrote { context.flush() }
                service.log("irc: closing", ["reason": "\(reason)"])
                let channel = context.channel
                if let lastWrite {
                    // Close once QUIT (or whatever was last) is on the wire.
                    lastWrite.whenComplete { _ in channel.close(promise: nil) }
                } else {
                    channel.close(promise: nil)
                }
                return
            case .registered:
                service.didRegister()
            case .privateMessage(let from, let text):
                if let reply = service.privateMessage(from: from, text: text) { replies.append((from, reply)) }
            case .schedule(let deadline):
                timer?.cancel()
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                timer = context.eventLoop.scheduleTask(deadline: deadline) {
                    bound.value.apply(bound.value.session.handle(.tick(now: .now())))
                }
            }
        }
        if wrote { context.flush() }
    }
}
