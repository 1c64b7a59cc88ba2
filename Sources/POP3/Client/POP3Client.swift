import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Wire

/// A POP3 client (RFC 1939, with CAPA from RFC 2449) for the webmail, which reads the user's
/// maildrop through an I2P client tunnel: the stream comes from a `StreamConnector`, so the
/// transport is not this type's business.
///
/// Everything the server sends is treated as hostile: status lines are bounded (RFC 2449
/// section 4), multi-line responses are bounded by `maximumMessageSize`, listings are parsed
/// strictly, and every reply has an inactivity timeout. Commands are serialised: calls made
/// concurrently are queued and sent one at a time, each after the previous reply (no
/// pipelining, RFC 2449 section 6.6 is not relied on).
///
/// Any failure of the connection itself — timeout, protocol violation, a response over the
/// limit, the server closing — ends the client: that call throws the reason, every later one
/// `.closed`. A `-ERR` answer is an ordinary error and the client stays usable.
///
/// Cancelling the calling task does not abort a command already sent (the stream would be out
/// of step); the call returns when the reply is in or the timeout ends the connection.
public final class POP3Client: Sendable {
    fileprivate struct Reply: Sendable {
        var status: POP3StatusLine
        /// The multi-line body, for a positive answer to a command that has one.
        var body: [UInt8]?
        /// A positive answer to STAT, LIST or UIDL, parsed.
        var listing: Listing = .none
    }

    /// The answers with a fixed format. They are parsed by the serving task, before the next
    /// command goes out, so a malformed one ends the connection like any other violation.
    fileprivate enum Listing: Sendable {
        case none
        case stat(count: Int, size: Int)
        case list([(number: Int, size: Int)])
        case uidl([(number: Int, uid: String)])
    }

    fileprivate enum Format: Sendable { case free, stat, list, uidl }

    fileprivate struct Request: Sendable {
        /// nil: send nothing, read the greeting.
        var line: String?
        var multiline: Bool
        var format: Format = .free
        /// The connection ends after this reply, whatever it is (QUIT).
        var endsSession: Bool
        var answer: CheckedContinuation<Result<Reply, POP3ClientError>, Never>
    }

    /// The longest command line, CRLF included (RFC 2449 section 4).
    static let maximumCommandLength = 255

    private let requests: AsyncStream<Request>.Continuation
    private let channel: any Channel
    private let isOpen: NIOLockedValueBox<Bool>

    private init(requests: AsyncStream<Request>.Continuation, channel: any Channel, isOpen: NIOLockedValueBox<Bool>) {
        self.requests = requests
        self.channel = channel
        self.isOpen = isOpen
    }

    deinit {
        requests.finish()
        channel.close(promise: nil)
    }

    // MARK: - Connecting

    /// Opens the stream through `connector` and reads the greeting, which must be positive
    /// (RFC 1939 section 4). `timeout` bounds the connect and, for every reply, the silence
    /// between two arriving chunks (so a large message on a slow tunnel is fine as long as it
    /// keeps moving). `maximumMessageSize` bounds every multi-line response.
    public static func connect(_ connector: any StreamConnector, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               timeout: TimeAmount = .seconds(60), maximumMessageSize: Int = 64 << 20) async throws -> POP3Client {
        let channel = try await openChannel(connector, group: group, timeout: timeout)
        let (stream, continuation) = AsyncStream<Request>.makeStream()
        let isOpen = NIOLockedValueBox(true)
        let watchdog = ReplyWatchdog(channel: channel.channel, timeout: timeout)
        // The task owns the channel; it must not hold the client, whose deinit ends it.
        Task {
            await serve(channel, requests: stream, continuation: continuation, watchdog: watchdog,
                        maximumMessageSize: maximumMessageSize, isOpen: isOpen)
        }
        let client = POP3Client(requests: continuation, channel: channel.channel, isOpen: isOpen)
        let greeting = try await client.exchange(nil)
        if case .error(let text) = greeting.status {
            await client.close()
            throw POP3ClientError.serverError(command: "greeting", text: text)
        }
        return client
    }

    /// The connector's connect, bounded by `timeout` even when the connector itself has no
    /// limit (a stalled I2P tunnel): a channel that arrives too late is closed.
    private static func openChannel(_ connector: any StreamConnector, group: any EventLoopGroup,
                                    timeout: TimeAmount) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let settled = NIOLockedValueBox(false)
        let settle: @Sendable () -> Bool = {
            settled.withLockedValue { done in
                defer { done = true }
                return !done
            }
        }
        return try await withCheckedThrowingContinuation { (result: CheckedContinuation<NIOAsyncChannel<ByteBuffer, ByteBuffer>, any Error>) in
            let deadline = group.next().scheduleTask(in: timeout) {
                if settle() { result.resume(throwing: POP3ClientError.timedOut) }
            }
            Task {
                do {
                    let channel = try await connector.connect(group: group) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                        }
                    }
                    if settle() {
                        deadline.cancel()
                        result.resume(returning: channel)
                    } else {
                        // Too late. Closed through its owner: a dropped NIOAsyncChannel traps.
                        try? await channel.executeThenClose { _, _ in }
                    }
                } catch {
                    if settle() {
                        deadline.cancel()
                        result.resume(throwing: POP3ClientError.connectFailed(String(describing: error)))
                    }
                }
            }
        }
    }

    // MARK: - Commands

    /// CAPA (RFC 2449 section 5): the capability lines, e.g. `["USER", "TOP", "UIDL",
    /// "SASL PLAIN"]`; empty when the server answers `-ERR` (an RFC 1939-only server).
    public func capabilities() async throws -> [String] {
        let reply = try await exchange("CAPA", multiline: true)
        guard case .ok = reply.status, let body = reply.body else { return [] }
        return POP3Listing.parseCapabilities(body)
    }

    /// USER and PASS (RFC 1939 section 7). `-ERR` to either is `.authenticationFailed` with the
    /// server's text; the client stays in the AUTHORIZATION state and may try again.
    public func login(user: String, password: String) async throws {
        try Self.checkArgument(user, "user name", allowSpace: false)
        try Self.checkArgument(password, "password", allowSpace: true)
        if case .error(let text) = try await exchange("USER " + user).status {
            throw POP3ClientError.authenticationFailed(text)
        }
        if case .error(let text) = try await exchange("PASS " + password).status {
            throw POP3ClientError.authenticationFailed(text)
        }
    }

    /// STAT (RFC 1939 section 5): messages not marked as deleted and their total size.
    public func stat() async throws -> (count: Int, size: Int) {
        guard case .stat(let count, let size) = try await positiveListing("STAT", .stat) else { throw Self.internalMismatch }
        return (count, size)
    }

    /// LIST (RFC 1939 section 5): number and size of every message not marked as deleted.
    public func list() async throws -> [(number: Int, size: Int)] {
        guard case .list(let list) = try await positiveListing("LIST", .list) else { throw Self.internalMismatch }
        return list
    }

    /// UIDL (RFC 1939 section 7): number and unique-id of every message not marked as deleted.
    public func uidl() async throws -> [(number: Int, uid: String)] {
        guard case .uidl(let list) = try await positiveListing("UIDL", .uidl) else { throw Self.internalMismatch }
        return list
    }

    /// TOP (RFC 1939 section 7): the header, the blank line and at most `lines` body lines;
    /// dot-unstuffed, CRLF line ends.
    public func top(_ number: Int, lines: Int) async throws -> [UInt8] {
        try Self.checkMessageNumber(number)
        guard lines >= 0 else { throw POP3ClientError.invalidArgument("TOP needs a line count of 0 or more") }
        return try await positiveBody("TOP \(number) \(lines)")
    }

    /// RETR (RFC 1939 section 5): the whole message, dot-unstuffed, with CRLF line ends (a
    /// message whose last line had no line end gets one, as on the wire).
    public func retrieve(_ number: Int) async throws -> [UInt8] {
        try Self.checkMessageNumber(number)
        return try await positiveBody("RETR \(number)")
    }

    /// DELE (RFC 1939 section 5): marks the message; it goes only when `quit()` succeeds.
    public func delete(_ number: Int) async throws {
        try Self.checkMessageNumber(number)
        _ = try await positive("DELE \(number)")
    }

    /// RSET (RFC 1939 section 5): unmarks every message marked as deleted.
    public func reset() async throws {
        _ = try await positive("RSET")
    }

    /// NOOP (RFC 1939 section 5).
    public func noop() async throws {
        _ = try await positive("NOOP")
    }

    /// QUIT (RFC 1939 section 6): waits for the answer, which tells whether the messages marked
    /// as deleted are gone (`+OK`) or not all (`-ERR` → `.serverError`), then closes. The
    /// client is closed afterwards either way.
    public func quit() async throws {
        let reply = try await exchange("QUIT", endsSession: true)
        if case .error(let text) = reply.status { throw POP3ClientError.serverError(command: "QUIT", text: text) }
    }

    /// Closes the connection without QUIT: the server stays out of the UPDATE state, so nothing
    /// marked as deleted is deleted (RFC 1939 section 6). A command in flight fails with
    /// `.closed`. Calling it again does nothing.
    public func close() async {
        isOpen.withLockedValue { $0 = false }
        requests.finish()
        try? await channel.close()
    }

    // MARK: - Plumbing

    /// The text of a positive single-line answer; `-ERR` is `.serverError`.
    private func positive(_ line: String) async throws -> String {
        switch try await exchange(line).status {
        case .ok(let text): return text
        case .error(let text): throw POP3ClientError.serverError(command: line, text: text)
        }
    }

    /// The body of a positive multi-line answer; `-ERR` is `.serverError`.
    private func positiveBody(_ line: String) async throws -> [UInt8] {
        let reply = try await exchange(line, multiline: true)
        switch reply.status {
        case .ok: return reply.body ?? []
        case .error(let text): throw POP3ClientError.serverError(command: line, text: text)
        }
    }

    /// The parsed form of a positive STAT, LIST or UIDL answer; `-ERR` is `.serverError`.
    private func positiveListing(_ line: String, _ format: Format) async throws -> Listing {
        let reply = try await exchange(line, multiline: format != .stat, format: format)
        switch reply.status {
        case .ok: return reply.listing
        case .error(let text): throw POP3ClientError.serverError(command: line, text: text)
        }
    }

    /// Cannot happen: the serving task parses what `Format` asks for.
    private static let internalMismatch = POP3ClientError.protocolViolation("internal error: listing of the wrong kind")

    /// Queues one command and waits for its reply.
    private func exchange(_ line: String?, multiline: Bool = false, format: Format = .free,
                          endsSession: Bool = false) async throws -> Reply {
        guard isOpen.withLockedValue({ $0 }) else { throw POP3ClientError.closed }
        let result = await withCheckedContinuation { (answer: CheckedContinuation<Result<Reply, POP3ClientError>, Never>) in
            let request = Request(line: line, multiline: multiline, format: format, endsSession: endsSession, answer: answer)
            switch requests.yield(request) {
            case .enqueued: break
            case .dropped, .terminated: answer.resume(returning: .failure(.closed))
            @unknown default: answer.resume(returning: .failure(.closed))
            }
        }
        return try result.get()
    }

    /// RFC 1939 section 3: arguments are printable text on one line; CR, LF or NUL in one
    /// would end the command early and smuggle in another. RFC 2449 section 4: the command
    /// line is at most 255 octets with its CRLF.
    private static func checkArgument(_ value: String, _ name: String, allowSpace: Bool) throws {
        guard !value.isEmpty else { throw POP3ClientError.invalidArgument("the \(name) is empty") }
        guard !value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) else {
            throw POP3ClientError.invalidArgument("the \(name) contains CR, LF or NUL")
        }
        guard allowSpace || !value.utf8.contains(UInt8(ascii: " ")) else {
            throw POP3ClientError.invalidArgument("the \(name) contains a space")
        }
        guard value.utf8.count + "USER \r\n".utf8.count <= maximumCommandLength else {
            throw POP3ClientError.invalidArgument("the \(name) is too long")
        }
    }

    private static func checkMessageNumber(_ number: Int) throws {
        guard number >= 1 else { throw POP3ClientError.invalidArgument("message numbers start at 1") }
    }

    /// The loop that owns the connection: takes one request at a time, sends it, reads the whole
    /// reply. Ends at the first failure of the connection, at QUIT, or when the client closes;
    /// whoever is still queued then gets `.closed`.
    private static func serve(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, requests: AsyncStream<Request>,
                              continuation: AsyncStream<Request>.Continuation, watchdog: ReplyWatchdog,
                              maximumMessageSize: Int, isOpen: NIOLockedValueBox<Bool>) async {
        var pending = requests.makeAsyncIterator()
        try? await channel.executeThenClose { inbound, outbound in
            var connection = Connection(inbound: inbound.makeAsyncIterator(), outbound: outbound,
                                        reader: POP3ResponseReader(maximumMultilineSize: maximumMessageSize),
                                        watchdog: watchdog)
            while let request = await pending.next() {
                guard isOpen.withLockedValue({ $0 }) else {
                    request.answer.resume(returning: .failure(.closed))
                    return
                }
                let result = await connection.perform(request)
                var ends = request.endsSession
                if case .failure(let error) = result, error.endsConnection { ends = true }
                // Closed before the caller hears back, so its next call already sees it.
                if ends { isOpen.withLockedValue { $0 = false } }
                request.answer.resume(returning: result)
                if ends { return }
            }
        }
        isOpen.withLockedValue { $0 = false }
        continuation.finish()
        while let request = await pending.next() { request.answer.resume(returning: .failure(.closed)) }
    }
}

/// The reading and writing side of one connection, used only by the serving task.
private struct Connection {
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var reader: POP3ResponseReader
    let watchdog: ReplyWatchdog

    mutating func perform(_ request: POP3Client.Request) async -> Result<POP3Client.Reply, POP3ClientError> {
        watchdog.arm()
        defer { watchdog.disarm() }
        do {
            if let line = request.line {
                do {
                    try await outbound.write(ByteBuffer(string: line + "\r\n"))
                } catch {
                    throw lost()
                }
            }
            let status = try await readStatusLine()
            var body: [UInt8]? = nil
            if case .ok = status, request.multiline { body = try await readMultilineBody() }
            // One command in flight, one response: anything more is not an answer to anything,
            // and reading it as the next reply would put the client out of step.
            guard reader.bufferedByteCount == 0 else {
                throw POP3ClientError.protocolViolation("the server sent more than one response")
            }
            var reply = POP3Client.Reply(status: status, body: body)
            if case .ok(let text) = status {
                switch request.format {
                case .free: break
                case .stat:
                    let stat = try POP3Listing.parseStat(text)
                    reply.listing = .stat(count: stat.count, size: stat.size)
                case .list: reply.listing = .list(try POP3Listing.parseList(body ?? []))
                case .uidl: reply.listing = .uidl(try POP3Listing.parseUIDL(body ?? []))
                }
            }
            return .success(reply)
        } catch let error as POP3ClientError {
            return .failure(error)
        } catch {
            return .failure(lost())
        }
    }

    private mutating func readStatusLine() async throws(POP3ClientError) -> POP3StatusLine {
        while true {
            if let status = try reader.nextStatusLine() { return status }
            try await receive()
        }
    }

    private mutating func readMultilineBody() async throws(POP3ClientError) -> [UInt8] {
        while true {
            if let body = try reader.nextMultilineBody() { return body }
            try await receive()
        }
    }

    private mutating func receive() async throws(POP3ClientError) {
        let chunk: ByteBuffer?
        do {
            chunk = try await inbound.next()
        } catch {
            throw lost()
        }
        guard let chunk else { throw lost() }
        watchdog.activity()
        reader.append(chunk)
    }

    /// Why the stream ended: our timeout, or the other side (or `close()`).
    private func lost() -> POP3ClientError {
        watchdog.hasFired ? .timedOut : .closed
    }
}

/// The per-reply timeout: armed while a reply is awaited, it closes the connection when no byte
/// arrives for `timeout`. One check is scheduled per period, not one per chunk: the check looks
/// at the last activity and schedules itself again when there was some.
private final class ReplyWatchdog: Sendable {
    private struct State {
        var armed = false
        var lastActivity = NIODeadline.now()
        var checkScheduled = false
        var fired = false
    }

    private let state = NIOLockedValueBox(State())
    private let channel: any Channel
    private let timeout: TimeAmount

    init(channel: any Channel, timeout: TimeAmount) {
        self.channel = channel
        self.timeout = timeout
    }

    var hasFired: Bool { state.withLockedValue { $0.fired } }

    func arm() {
        let now = NIODeadline.now()
        let schedule = state.withLockedValue { state -> Bool in
            state.armed = true
            state.lastActivity = now
            defer { state.checkScheduled = true }
            return !state.checkScheduled
        }
        if schedule { scheduleCheck(at: now + timeout) }
    }

    func activity() {
        let now = NIODeadline.now()
        state.withLockedValue { $0.lastActivity = now }
    }

    func disarm() {
        state.withLockedValue { $0.armed = false }
    }

    private func scheduleCheck(at deadline: NIODeadline) {
        channel.eventLoop.scheduleTask(deadline: deadline) { self.check() }
    }

    private func check() {
        enum Verdict { case stop, fire, again(NIODeadline) }
        let now = NIODeadline.now()
        let verdict = state.withLockedValue { state -> Verdict in
            guard state.armed, !state.fired else {
                state.checkScheduled = false
                return .stop
            }
            let due = state.lastActivity + timeout
            if due <= now {
                state.fired = true
                state.checkScheduled = false
                return .fire
            }
            return .again(due)
        }
        switch verdict {
        case .stop: break
        case .fire: channel.close(promise: nil)
        case .again(let due): scheduleCheck(at: due)
        }
    }
}
