import Logging
import NIOCore
import NIOPosix

public struct POP3ServerConfiguration: Sendable {
    public var host: String
    /// 0 binds any free port; `start()` returns the real one.
    public var port: Int
    /// RFC 1939 section 3 autologout, at least 10 minutes by the RFC (POP-4).
    public var autologout: TimeAmount
    /// Connections beyond this get `-ERR [SYS/TEMP] too many sessions` and are closed.
    public var maxSessions: Int

    public init(
        host: String = "127.0.0.1", port: Int = 5110, autologout: TimeAmount = .minutes(10),
        maxSessions: Int = 1000
    ) {
        self.host = host
        self.port = port
        self.autologout = autologout
        self.maxSessions = maxSessions
    }
}

public enum POP3ServerError: Error, Equatable, Sendable {
    case alreadyStarted
    case shutDown
    case noLocalAddress
}

/// The POP3 listener: one `POP3ConnectionHandler` (and `POP3Session`) per connection.
public final class POP3Server: Sendable {
    private struct SessionEntry {
        let channel: any Channel
        let finished: EventLoopFuture<Void>
    }

    /// Listener state. Confined to `stateLoop`, so it needs no lock.
    private struct State {
        var serverChannel: (any Channel)?
        var started = false
        var isShuttingDown = false
        var sessions: [ObjectIdentifier: SessionEntry] = [:]
        var nextSessionNumber: UInt64 = 0
    }

    /// After forced closing at the end of the grace period, how long shutdown still waits for
    /// sessions to release their maildrop locks.
    static let lockReleaseWait = TimeAmount.seconds(5)

    private let configuration: POP3ServerConfiguration
    private let backend: any POP3Backend
    private let group: any EventLoopGroup
    private let logger: Logger
    private let stateLoop: any EventLoop
    private let state: NIOLoopBoundBox<State>

    public init(
        configuration: POP3ServerConfiguration, backend: any POP3Backend, group: any EventLoopGroup,
        logger: Logger
    ) {
        self.configuration = configuration
        self.backend = backend
        self.group = group
        self.logger = logger
        let loop = group.next()
        self.stateLoop = loop
        self.state = NIOLoopBoundBox.makeBoxSendingValue(State(), eventLoop: loop)
    }

    /// Binds and starts accepting; returns the bound address (port 0 → real port).
    public func start() async throws -> SocketAddress {
        try await stateLoop.submit {
            if self.state.value.isShuttingDown { throw POP3ServerError.shutDown }
            if self.state.value.started { throw POP3ServerError.alreadyStarted }
            self.state.value.started = true
        }.get()

        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            // A client that half-closes after QUIT still gets its answers.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [self] channel in self.admit(channel) }

        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        let keep = try await stateLoop.submit { () -> Bool in
            guard !self.state.value.isShuttingDown else { return false }
            self.state.value.serverChannel = channel
            return true
        }.get()
        guard keep else {
            try? await channel.close()
            throw POP3ServerError.shutDown
        }
        guard let address = channel.localAddress else {
            try? await channel.close()
            throw POP3ServerError.noLocalAddress
        }
        // The port only: no address at any log level.
        logger.info("POP3 listening", metadata: ["port": "\(address.port ?? 0)"])
        return address
    }

    /// Stops accepting, asks open sessions to end ("-ERR [SYS/TEMP] server shutting down" when idle
    /// in a command wait), waits at most `gracePeriod`, then closes the rest. A dropped session
    /// never deletes. Then waits a few seconds more for maildrop locks to be released.
    public func shutdown(gracePeriod: TimeAmount) async {
        guard let (serverChannel, sessions) = try? await stateLoop.submit({
            () -> ((any Channel)?, [SessionEntry]) in
            self.state.value.isShuttingDown = true
            let serverChannel = self.state.value.serverChannel
            self.state.value.serverChannel = nil
            return (serverChannel, Array(self.state.value.sessions.values))
        }).get() else { return }

        try? await serverChannel?.close()
        for session in sessions {
            session.channel.pipeline.fireUserInboundEventTriggered(POP3ShutdownRequest())
        }
        let finished = sessions.map(\.finished)
        await waitForAll(finished, atMost: gracePeriod)
        for session in sessions where session.channel.isActive {
            try? await session.channel.close()
        }
        await waitForAll(finished, atMost: Self.lockReleaseWait)
        logger.info("POP3 stopped")
    }

    private func waitForAll(_ futures: [EventLoopFuture<Void>], atMost limit: TimeAmount) async {
        guard !futures.isEmpty else { return }
        let all = EventLoopFuture.andAllComplete(futures, on: stateLoop)
        let deadline = stateLoop.scheduleTask(in: limit) {}
        all.whenComplete { _ in deadline.cancel() }
        // Succeeds when the limit passes, fails (cancelled) when everything finished first.
        _ = try? await deadline.futureResult.get()
    }

    // MARK: - Accepting

    private static let tooManySessions = POP3Response.error("too many sessions", code: .systemTemporary)
    private static let shuttingDown = POP3Response.error("server shutting down", code: .systemTemporary)

    /// Counts the connection against `maxSessions` and installs its handler.
    private func admit(_ channel: any Channel) -> EventLoopFuture<Void> {
        let finished = channel.eventLoop.makePromise(of: Void.self)
        let maxSessions = configuration.maxSessions
        let admission = stateLoop.submit { () -> Result<UInt64, Rejection> in
            if self.state.value.isShuttingDown { return .failure(.shuttingDown) }
            guard self.state.value.sessions.count < maxSessions else { return .failure(.tooManySessions) }
            self.state.value.nextSessionNumber += 1
            self.state.value.sessions[ObjectIdentifier(channel)] =
                SessionEntry(channel: channel, finished: finished.futureResult)
            return .success(self.state.value.nextSessionNumber)
        }
        finished.futureResult.whenComplete { _ in
            self.stateLoop.execute { self.state.value.sessions[ObjectIdentifier(channel)] = nil }
        }
        return admission.hop(to: channel.eventLoop).flatMapThrowing { admission in
            switch admission {
            case .success(let number):
                var logger = self.logger
                logger[metadataKey: "pop3.session"] = "\(number)"
                let handler = POP3ConnectionHandler(
                    backend: self.backend, autologout: self.configuration.autologout,
                    logger: logger, finished: finished)
                do {
                    try channel.pipeline.syncOperations.addHandler(handler)
                } catch {
                    finished.succeed(())
                    throw error
                }
            case .failure(let rejection):
                finished.succeed(())
                self.logger.debug("POP3 connection refused", metadata: ["reason": "\(rejection)"])
                let reply = rejection == .tooManySessions ? Self.tooManySessions : Self.shuttingDown
                try channel.pipeline.syncOperations.addHandler(POP3RejectHandler(reply: reply))
            }
        }
    }

    private enum Rejection: Error, Sendable {
        case tooManySessions
        case shuttingDown
    }
}
