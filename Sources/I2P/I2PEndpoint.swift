import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// One Postern service on an I2P destination, kept alive: loads (or has the bridge make) its
/// keys, creates the session, and either forwards every stream to a local listener (SMTP, POP3
/// for users: `.forward`) or accepts streams itself and hands those of one allowed peer to
/// `serve` (the core⇄gateway link: `.accept`), refusing every other destination before a byte of
/// SMTP is spoken, or only holds the session for outgoing streams (the webmail: `.client`, with
/// keys made afresh for each session — no keys file, so no name that links a user's visits). When the router goes away the session is created again, with back-off from 1
/// to 60 s; the loopback services go on meanwhile.
public final class I2PEndpoint: Sendable {
    public enum Mode: Sendable {
        case forward(host: String, port: Int)
        case accept(peer: String, serve: @Sendable (SAMSocket) async -> Void)
        /// Outgoing streams only (`session` with a `SAMConnector`); nothing is accepted.
        case client
    }

    public let name: String
    /// nil: transient keys, made by the bridge for each session and never written.
    private let keysFile: String?
    private let bridge: SAMBridge
    private let options: [(String, String)]
    private let mode: Mode
    private let group: any EventLoopGroup
    private let logger: Logger
    /// Called with the `.b32.i2p` name each time the session is (re)created.
    private let announce: @Sendable (String) -> Void
    private let state = NIOLockedValueBox(State())

    private struct State {
        var session: SAMSession?
        var stopped = false
        var sockets: [SAMSocket] = []
    }

    public init(name: String, keysFile: String?, bridge: SAMBridge, options: [(String, String)], mode: Mode,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
                announce: @escaping @Sendable (String) -> Void) {
        self.name = name
        self.keysFile = keysFile
        self.bridge = bridge
        self.options = options
        self.mode = mode
        self.group = group
        self.logger = logger
        self.announce = announce
    }

    /// The live session, if any (for outgoing streams from this destination).
    public var session: SAMSession? { state.withLockedValue { $0.session } }

    public func stop() {
        let (session, sockets) = state.withLockedValue { state -> (SAMSession?, [SAMSocket]) in
            state.stopped = true
            defer { state.sockets = [] }
            return (state.session, state.sockets)
        }
        session?.close()
        for socket in sockets { socket.close() }
    }

    private var stopped: Bool { state.withLockedValue { $0.stopped } }

    /// Runs until `stop()`.
    public func run() async {
        var backoff: Double = 1
        while !stopped {
            do {
                let keys: [UInt8]
                if let keysFile {
                    keys = try await I2PKeys.loadOrGenerate(keysFile, bridge: bridge, group: group)
                } else {
                    keys = try await SAMSession.generateKeys(bridge, group: group)
                }
                let session = try await SAMSession.create(bridge, keys: keys, options: options, group: group)
                guard !stopped else { session.close(); return }
                state.withLockedValue { $0.session = session }
                announce(session.destination.b32)
                let createdAt = ContinuousClock.now
                switch mode {
                case .forward(let host, let port):
                    let forwarding = try await session.forward(to: host, port: port)
                    remember(forwarding)
                    // Either ends the service: the router dropped the session or the forward.
                    _ = try? await forwarding.closeFuture.or(session.closeFuture).get()
                    forwarding.close()
                case .accept(let peer, let serve):
                    try await acceptLoop(session, peer: peer, serve: serve)
                case .client:
                    _ = try? await session.closeFuture.get()
                }
                session.close()
                state.withLockedValue { $0.session = nil }
                guard !stopped else { return }
                logger.warning("I2P session lost; creating it again", metadata: ["service": "\(name)"])
                // A session that lived a while earns a fresh back-off; a flapping bridge does not.
                if ContinuousClock.now - createdAt > .seconds(300) { backoff = 1 }
                try? await Task.sleep(nanoseconds: UInt64(backoff * 1e9))
                backoff = min(backoff * 2, 60)
            } catch {
                state.withLockedValue { $0.session?.close(); $0.session = nil }
                guard !stopped else { return }
                logger.warning("I2P session not available; retrying",
                               metadata: ["service": "\(name)", "error": "\(error)", "retry_in": "\(Int(backoff))s"])
                try? await Task.sleep(nanoseconds: UInt64(backoff * 1e9))
                backoff = min(backoff * 2, 60)
            }
        }
    }

    private func remember(_ socket: SAMSocket) {
        let stop = state.withLockedValue { state -> Bool in
            if state.stopped { return true }
            state.sockets.removeAll { !$0.channel.isActive }
            state.sockets.append(socket)
            return false
        }
        if stop { socket.close() }
    }

    private func acceptLoop(_ session: SAMSession, peer: String, serve: @escaping @Sendable (SAMSocket) async -> Void) async throws {
        var refusals = 0
        while !stopped {
            let accepted: (SAMSocket, I2PDestination)
            do {
                accepted = try await session.accept { self.remember($0) }
            } catch {
                // One failed accept (an odd line, a dropped acceptor) is not the session's end:
                // while the session lives, accept again.
                guard !stopped, !session.isClosed else { throw error }
                logger.info("an I2P accept failed; accepting again", metadata: ["service": "\(name)", "error": "\(error)"])
                try await Task.sleep(nanoseconds: 500_000_000)
                continue
            }
            let (socket, from) = accepted
            guard from.isNamed(peer) else {
                // I2P-2: only the configured peer; a stranger hears nothing, not even a greeting.
                refusals += 1
                if refusals <= 10 || refusals % 100 == 0 {  // a flood does not flood the log
                    logger.info("I2P stream from an unknown destination refused", metadata: ["service": "\(name)", "refused": "\(refusals)"])
                }
                socket.close()
                continue
            }
            Task { await serve(socket) }
        }
    }
}

private extension EventLoopFuture where Value == Void {
    /// Completes when either completes.
    func or(_ other: EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        let done = NIOLockedValueBox(false)
        let complete: @Sendable (Result<Void, any Error>) -> Void = { result in
            let first = done.withLockedValue { (fired: inout Bool) -> Bool in
                defer { fired = true }
                return !fired
            }
            if first { promise.completeWith(result) }
        }
        whenComplete(complete)
        other.whenComplete(complete)
        return promise.futureResult
    }
}
