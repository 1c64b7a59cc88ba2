import NIOCore
import Wire

/// The POP3 protocol as a plain value (RFC 1939, RFC 2449, RFC 5034): command lines in, actions out.
///
/// It touches no channel, clock or disk. The driver feeds it framed lines with `receive(_:)`,
/// performs the actions it returns in order, and feeds the result of each effect back through the
/// matching method (`authenticated`, `maildropOpened`, `fetched`, `deleted`, `unlocked`). An effect
/// action is always the last action of a batch, and while it is pending (`isAwaitingEffect`) the
/// driver feeds no command lines: commands are processed strictly in order, which is what makes
/// PIPELINING (RFC 2449 section 6.6) safe to announce.
///
/// The session owns the maildrop lock's life: it asks for `.unlock` exactly once for every lock it
/// was granted — after QUIT, after a failed listing, or when the connection ends
/// (`connectionClosed()`) — and a session that ends without QUIT never deletes (POP-2).
public struct POP3Session: Sendable {
    public enum FetchKind: Equatable, Sendable {
        case retr
        /// TOP: the header and at most `lines` lines of the body.
        case top(lines: Int)
    }

    public enum Action: Equatable, Sendable, CustomStringConvertible {
        /// Bytes to write, complete responses with their CRLF.
        case send(ByteBuffer)
        /// Effect: `POP3Backend.authenticate`, then `authenticated(_:)`.
        case authenticate(username: String, password: String)
        /// Effect: take the maildrop lock, then list it; then `maildropOpened(_:)`.
        case lockAndList(mailbox: String)
        /// Effect: `POP3Backend.messageBytes`, then `fetched(_:)`.
        case fetch(mailbox: String, uid: String, kind: FetchKind)
        /// Effect: `POP3Backend.deleteMessages`, then `deleted(succeeded:)`. Only ever in UPDATE.
        case delete(mailbox: String, uids: [String])
        /// Effect: `POP3Backend.unlockMaildrop`, then `unlocked()`.
        case unlock(mailbox: String)
        /// Close the connection once what was sent before has been written.
        case close

        /// Redacts credentials and names, so an action can be logged.
        public var description: String {
            switch self {
            case .send(let bytes): return "send(\(bytes.readableBytes) bytes)"
            case .authenticate: return "authenticate(<redacted>)"
            case .lockAndList: return "lockAndList"
            case .fetch(_, _, let kind): return "fetch(\(kind))"
            case .delete(_, let uids): return "delete(\(uids.count) messages)"
            case .unlock: return "unlock"
            case .close: return "close"
            }
        }
    }

    public enum MaildropOutcome: Equatable, Sendable {
        /// The lock is held and these are the maildrop's messages, oldest first.
        case opened([POP3MessageInfo])
        /// Another session holds the lock (POP-2).
        case inUse
        /// The lock was taken but the listing failed; the session asks for the lock to be released.
        case listFailed
    }

    public enum FetchOutcome: Equatable, Sendable {
        case message(ByteBuffer)
        case failed
    }

    public enum State: Equatable, Sendable {
        case authorization, transaction, update, closed
    }

    /// After this many failed logins the session answers and closes.
    public static let maxFailedLogins = 3
    /// RFC 1939 allows 40-character arguments; user names (addresses) and passwords are allowed
    /// to be longer, since a strong password must not be refused.
    public static let maxCredentialLength = 255

    private enum Phase: Equatable, Sendable {
        case authorization(pendingUser: String?)
        /// AUTH PLAIN sent `+ ` and waits for the client's response line (RFC 5034 section 4).
        case awaitingPlainResponse
        case transaction
        /// QUIT was received in TRANSACTION (RFC 1939 section 6).
        case update
        case closed
    }

    private enum Pending: Equatable, Sendable {
        case authenticating
        case openingMaildrop(mailbox: String)
        case fetching(size: Int, kind: FetchKind)
        case deleting(count: Int)
        case unlocking(then: AfterUnlock)
    }

    private enum AfterUnlock: Equatable, Sendable {
        case nothing
        /// Reply after the lock is gone, so a client that reconnects at once finds it free.
        case reply(ByteBuffer, thenClose: Bool)
    }

    private struct Maildrop: Sendable {
        let mailbox: String
        let messages: [POP3MessageInfo]
        private(set) var isDeleted: [Bool]
        private(set) var visibleCount: Int
        private(set) var visibleSize: Int

        init(mailbox: String, messages: [POP3MessageInfo]) {
            self.mailbox = mailbox
            self.messages = messages
            self.isDeleted = Array(repeating: false, count: messages.count)
            self.visibleCount = messages.count
            self.visibleSize = messages.reduce(0) { $0 + max(0, $1.size) }
        }

        mutating func markDeleted(_ index: Int) {
            guard !isDeleted[index] else { return }
            isDeleted[index] = true
            visibleCount -= 1
            visibleSize -= max(0, messages[index].size)
        }

        mutating func unmarkAll() {
            self = Maildrop(mailbox: mailbox, messages: messages)
        }

        var deletedUIDs: [String] {
            messages.indices.filter { isDeleted[$0] }.map { messages[$0].uid }
        }

        var summary: String {
            "\(visibleCount) message\(visibleCount == 1 ? "" : "s") (\(visibleSize) octets)"
        }
    }

    private var phase: Phase = .authorization(pendingUser: nil)
    private var pending: Pending?
    private var maildrop: Maildrop?
    /// The mailbox whose lock this session holds and has not yet asked to release.
    private var lockedMailbox: String?
    private var connectionLost = false
    private var shutdownRequested = false
    public private(set) var failedLogins = 0

    public init() {}

    /// True while an effect is pending: feed its result before any further command line.
    public var isAwaitingEffect: Bool { pending != nil }

    /// True once the session has ended (the driver stops feeding command lines).
    public var isClosed: Bool { phase == .closed }

    public var state: State {
        switch phase {
        case .authorization, .awaitingPlainResponse: return .authorization
        case .transaction: return .transaction
        case .update: return .update
        case .closed: return .closed
        }
    }

    // MARK: - Input

    /// The greeting. RFC 1939 section 4; no host name, time or APOP timestamp: nothing that
    /// identifies the server or its clock.
    public func start() -> [Action] {
        [.send(POP3Response.ok("Postern POP3 ready"))]
    }

    /// One frame from the CRLF framer.
    public mutating func receive(_ frame: LineFrame) -> [Action] {
        // Driver contract: no input while an effect is pending or after the end.
        guard pending == nil else { return [] }
        switch phase {
        case .closed, .update: return []
        case .authorization, .awaitingPlainResponse, .transaction: break
        }

        switch frame {
        case .tooLong:
            return [.send(cancelPlainExchange() + "line too long; a command line is at most 255 octets")]
        case .bareLineBreak:
            return [.send(cancelPlainExchange() + "line contains a bare CR or LF; end every line with CRLF")]
        case .line(let bytes):
            if phase == .awaitingPlainResponse {
                phase = .authorization(pendingUser: nil)
                return plainResponse(bytes)
            }
            switch POP3CommandLine.parse(bytes) {
            case .failure(.containsNUL):
                return [.send(POP3Response.error("command contains a NUL byte"))]
            case .failure(.notUTF8):
                return [.send(POP3Response.error("command is not valid UTF-8"))]
            case .success(let command):
                switch phase {
                case .authorization(let pendingUser):
                    return authorizationCommand(command, pendingUser: pendingUser)
                case .transaction:
                    return transactionCommand(command)
                case .awaitingPlainResponse, .update, .closed:
                    return []
                }
            }
        }
    }

    /// Ends a pending AUTH PLAIN exchange because of a framing error; the text then explains why.
    private mutating func cancelPlainExchange() -> ByteBuffer {
        if phase == .awaitingPlainResponse {
            phase = .authorization(pendingUser: nil)
            return ByteBuffer(string: "-ERR authentication cancelled: ")
        }
        return ByteBuffer(string: "-ERR ")
    }

    // MARK: - Effect results

    public mutating func authenticated(_ outcome: POP3AuthOutcome) -> [Action] {
        guard pending == .authenticating else { return [] }
        pending = nil
        if connectionLost { return releaseAfterConnectionLoss() }
        switch outcome {
        case .success(let mailbox):
            pending = .openingMaildrop(mailbox: mailbox)
            return [.lockAndList(mailbox: mailbox)]
        case .failure:
            return finishEffect(failedLogin())
        case .temporaryFailure:
            return finishEffect([.send(POP3Response.error(
                "cannot check credentials now; try again later", code: .systemTemporary))])
        }
    }

    public mutating func maildropOpened(_ outcome: MaildropOutcome) -> [Action] {
        guard case .openingMaildrop(let mailbox) = pending else { return [] }
        pending = nil
        switch outcome {
        case .opened(let messages):
            lockedMailbox = mailbox
            if connectionLost { return releaseAfterConnectionLoss() }
            maildrop = Maildrop(mailbox: mailbox, messages: messages)
            phase = .transaction
            return finishEffect([.send(POP3Response.ok("logged in, \(maildrop?.summary ?? "")"))])
        case .inUse:
            if connectionLost { return releaseAfterConnectionLoss() }
            return finishEffect([.send(POP3Response.error(
                "maildrop is in use by another session; try again later", code: .inUse))])
        case .listFailed:
            // RFC 1939 section 7 (PASS): a lock taken before a negative answer is released first.
            lockedMailbox = mailbox
            if connectionLost { return releaseAfterConnectionLoss() }
            return releaseLock(then: .reply(POP3Response.error(
                "maildrop cannot be read now; try again later", code: .systemTemporary), thenClose: false))
        }
    }

    public mutating func fetched(_ outcome: FetchOutcome) -> [Action] {
        guard case .fetching(let size, let kind) = pending else { return [] }
        pending = nil
        if connectionLost { return releaseAfterConnectionLoss() }
        switch outcome {
        case .message(let bytes):
            var response: ByteBuffer
            switch kind {
            case .retr:
                response = POP3Response.ok("\(size) octets")
                DotStuffing.writeMultiline(bytes, into: &response)
            case .top(let lines):
                response = POP3Response.ok("top of message follows")
                DotStuffing.writeMultiline(bytes, maxBodyLines: lines, into: &response)
            }
            return finishEffect([.send(response)])
        case .failed:
            return finishEffect([.send(POP3Response.error(
                "message cannot be read now; try again later", code: .systemTemporary))])
        }
    }

    public mutating func deleted(succeeded: Bool) -> [Action] {
        guard case .deleting(let count) = pending else { return [] }
        pending = nil
        if connectionLost { return releaseAfterConnectionLoss() }
        let reply = succeeded
            ? POP3Response.ok("Postern POP3 signing off (\(count) message\(count == 1 ? "" : "s") deleted)")
            // RFC 1939 section 6: a failure to remove is reported on QUIT.
            : POP3Response.error("some deleted messages not removed", code: .systemTemporary)
        return releaseLock(then: .reply(reply, thenClose: true))
    }

    public mutating func unlocked() -> [Action] {
        guard case .unlocking(let after) = pending else { return [] }
        pending = nil
        if connectionLost {
            phase = .closed
            return []
        }
        switch after {
        case .nothing:
            return finishEffect([])
        case .reply(let reply, let thenClose):
            if thenClose {
                phase = .closed
                return [.send(reply), .close]
            }
            phase = .authorization(pendingUser: nil)
            return finishEffect([.send(reply)])
        }
    }

    // MARK: - Events from the driver

    /// The connection is gone (dropped, closed by us, or the peer): no UPDATE, so nothing is
    /// deleted (RFC 1939 section 6, POP-2), but a held lock is released.
    public mutating func connectionClosed() -> [Action] {
        guard !connectionLost else { return [] }
        connectionLost = true
        // A pending effect finishes first; its result releases the lock.
        guard pending == nil else { return [] }
        return releaseAfterConnectionLoss()
    }

    /// The autologout timer expired while idle. RFC 1939 section 3: close without a response and
    /// without entering UPDATE. Returns nothing while an effect is pending: the session is busy.
    public mutating func autologoutExpired() -> [Action] {
        guard pending == nil, phase != .closed else { return [] }
        phase = .closed
        return [.close]
    }

    /// The server is stopping: an idle session is told so and closed at once; a busy one is
    /// closed when its effect has finished (or finishes on its own when it is in UPDATE).
    public mutating func serverShuttingDown() -> [Action] {
        shutdownRequested = true
        guard pending == nil, phase != .closed else { return [] }
        phase = .closed
        return [.send(Self.shutdownReply), .close]
    }

    private static let shutdownReply = POP3Response.error("server shutting down", code: .systemTemporary)

    // MARK: - AUTHORIZATION (RFC 1939 section 4)

    private static let transactionKeywords: Set<String> = [
        "STAT", "LIST", "RETR", "TOP", "UIDL", "DELE", "NOOP", "RSET",
    ]

    private mutating func authorizationCommand(_ command: POP3CommandLine, pendingUser: String?) -> [Action] {
        switch command.keyword {
        case "USER":
            guard let name = command.arguments.first else {
                return [.send(POP3Response.error("USER needs a user name"))]
            }
            guard command.arguments.count == 1 else {
                return [.send(POP3Response.error("USER takes one user name, without spaces"))]
            }
            if let problem = Self.userNameProblem(name) { return [.send(POP3Response.error(problem))] }
            phase = .authorization(pendingUser: String(name))
            return [.send(POP3Response.ok("send PASS"))]

        case "PASS":
            guard let user = pendingUser else {
                return [.send(POP3Response.error("send USER first"))]
            }
            // RFC 1939 section 7: the password is the rest of the line; it may hold spaces.
            let password = command.argumentText
            guard !password.isEmpty else {
                return [.send(POP3Response.error("PASS needs a password"))]
            }
            guard password.utf8.count <= Self.maxCredentialLength else {
                return [.send(POP3Response.error("password too long"))]
            }
            // RFC 1939 section 7: after PASS, good or bad, the client starts again with USER.
            phase = .authorization(pendingUser: nil)
            pending = .authenticating
            return [.authenticate(username: user, password: String(password))]

        case "AUTH":
            return auth(command)

        case "APOP":
            return [.send(Self.apopReply)]

        case "CAPA":
            return noArguments(command) ?? [.send(Self.capabilities)]

        case "QUIT":
            // RFC 1939 section 6: QUIT in AUTHORIZATION ends without UPDATE.
            if let error = noArguments(command) { return error }
            phase = .closed
            return [.send(POP3Response.ok("Postern POP3 signing off")), .close]

        case let keyword where Self.transactionKeywords.contains(keyword):
            return [.send(POP3Response.error("\(keyword) is only valid after login"))]

        default:
            return [.send(Self.unknownCommand(command.keyword))]
        }
    }

    private static let apopReply = POP3Response.error("APOP is not supported; use USER/PASS or AUTH PLAIN")

    /// RFC 2449 section 5. No IMPLEMENTATION (reveals nothing), no EXPIRE, no LOGIN-DELAY, no APOP.
    private static let capabilities = POP3Response.multiline("capability list follows", lines: [
        "USER", "SASL PLAIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "TOP", "UIDL",
    ])

    private static func userNameProblem(_ name: Substring) -> String? {
        if name.utf8.count > maxCredentialLength { return "user name too long" }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            return "user name contains control characters"
        }
        return nil
    }

    // RFC 5034: AUTH PLAIN, with or without an initial response.
    private mutating func auth(_ command: POP3CommandLine) -> [Action] {
        guard let mechanism = command.arguments.first else {
            // RFC 1734 style AUTH without arguments: some clients probe the mechanisms so.
            return [.send(POP3Response.multiline("SASL mechanisms follow", lines: ["PLAIN"]))]
        }
        guard mechanism.uppercased() == "PLAIN" else {
            return [.send(POP3Response.error("unsupported SASL mechanism; use AUTH PLAIN"))]
        }
        switch command.arguments.count {
        case 1:
            phase = .awaitingPlainResponse
            return [.send(POP3Response.emptyContinuation)]
        case 2:
            return plainCredentials(command.arguments[1])
        default:
            return [.send(POP3Response.error("too many arguments for AUTH"))]
        }
    }

    private mutating func plainResponse(_ line: ByteBuffer) -> [Action] {
        let text = String(decoding: line.readableBytesView, as: UTF8.self)
        // RFC 5034 section 4: "*" cancels the exchange.
        if text == "*" { return [.send(POP3Response.error("authentication cancelled"))] }
        return plainCredentials(text[...])
    }

    /// Decodes `authzid NUL authcid NUL passwd` (RFC 4616 section 2).
    private mutating func plainCredentials(_ encoded: Substring) -> [Action] {
        let decoded: [UInt8]
        if encoded == "=" {
            decoded = []  // RFC 5034 section 4: "=" is an empty initial response
        } else if let bytes = SASLBase64.decode(encoded.utf8) {
            decoded = bytes
        } else {
            return [.send(POP3Response.error("invalid base64 in AUTH PLAIN response"))]
        }
        guard !decoded.isEmpty else {
            return [.send(POP3Response.error("empty AUTH PLAIN response"))]
        }
        let parts = decoded.split(separator: 0, maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3,
              let authorizationID = Self.utf8String(parts[0]),
              let user = Self.utf8String(parts[1]),
              let password = Self.utf8String(parts[2]),
              !user.isEmpty, !password.isEmpty
        else {
            return [.send(POP3Response.error(
                "malformed AUTH PLAIN response; expected authzid NUL user NUL password"))]
        }
        if let problem = Self.userNameProblem(user[...]) { return [.send(POP3Response.error(problem))] }
        guard password.utf8.count <= Self.maxCredentialLength else {
            return [.send(POP3Response.error("password too long"))]
        }
        // RFC 4616 section 2: acting as another user is not offered; counts as a failed login.
        guard authorizationID.isEmpty || authorizationID == user else {
            return failedLogin(text: "authorization identity must be empty or the user name")
        }
        pending = .authenticating
        return [.authenticate(username: user, password: password)]
    }

    private static func utf8String(_ bytes: ArraySlice<UInt8>) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        return text.utf8.elementsEqual(bytes) ? text : nil
    }

    /// Counts a failed login; the last allowed one closes the session (POP-4 slows each one down
    /// in the backend already).
    private mutating func failedLogin(text: String = "invalid user name or password") -> [Action] {
        failedLogins += 1
        if failedLogins >= Self.maxFailedLogins {
            phase = .closed
            return [.send(POP3Response.error("\(text); too many failed logins, closing", code: .auth)), .close]
        }
        return [.send(POP3Response.error(text, code: .auth))]
    }

    // MARK: - TRANSACTION (RFC 1939 section 5)

    private mutating func transactionCommand(_ command: POP3CommandLine) -> [Action] {
        guard var drop = maildrop else { return [] }
        switch command.keyword {
        case "STAT":
            if let error = noArguments(command) { return error }
            return [.send(POP3Response.ok("\(drop.visibleCount) \(drop.visibleSize)"))]

        case "LIST":
            return listing(command, in: drop, header: drop.summary) { "\($0.size)" }

        case "UIDL":
            return listing(command, in: drop, header: "unique-id listing follows") { $0.uid }

        case "RETR":
            switch messageIndex(command, in: drop, expectedArguments: 1) {
            case .failure(let error): return [.send(error)]
            case .success(let index):
                let message = drop.messages[index]
                pending = .fetching(size: message.size, kind: .retr)
                return [.fetch(mailbox: drop.mailbox, uid: message.uid, kind: .retr)]
            }

        case "TOP":
            guard command.arguments.count >= 2 else {
                return [.send(POP3Response.error("TOP needs a message number and a line count"))]
            }
            switch messageIndex(command, in: drop, expectedArguments: 2) {
            case .failure(let error): return [.send(error)]
            case .success(let index):
                let countText = command.arguments[1]
                let lines: Int
                switch (countText.count <= POP3CommandLine.maxArgumentLength, POP3NumberArgument(countText)) {
                case (true, .number(let value)): lines = value
                case (true, .tooLarge): lines = Int.max
                case (false, _): return [.send(Self.argumentTooLong)]
                case (true, .invalid):
                    return [.send(POP3Response.error("line count must be a non-negative decimal number"))]
                }
                let message = drop.messages[index]
                pending = .fetching(size: message.size, kind: .top(lines: lines))
                return [.fetch(mailbox: drop.mailbox, uid: message.uid, kind: .top(lines: lines))]
            }

        case "DELE":
            switch messageIndex(command, in: drop, expectedArguments: 1) {
            case .failure(let error): return [.send(error)]
            case .success(let index):
                drop.markDeleted(index)
                maildrop = drop
                return [.send(POP3Response.ok("message \(index + 1) deleted"))]
            }

        case "NOOP":
            return noArguments(command) ?? [.send(POP3Response.ok(""))]

        case "RSET":
            if let error = noArguments(command) { return error }
            drop.unmarkAll()
            maildrop = drop
            return [.send(POP3Response.ok("maildrop has \(drop.summary)"))]

        case "QUIT":
            if let error = noArguments(command) { return error }
            // RFC 1939 section 6: only now are marked messages removed.
            phase = .update
            let uids = drop.deletedUIDs
            if uids.isEmpty {
                return releaseLock(then: .reply(
                    POP3Response.ok("Postern POP3 signing off (0 messages deleted)"), thenClose: true))
            }
            pending = .deleting(count: uids.count)
            return [.delete(mailbox: drop.mailbox, uids: uids)]

        case "CAPA":
            return noArguments(command) ?? [.send(Self.capabilities)]

        case "USER", "PASS", "AUTH":
            return [.send(POP3Response.error("already logged in"))]

        case "APOP":
            return [.send(Self.apopReply)]

        default:
            return [.send(Self.unknownCommand(command.keyword))]
        }
    }

    /// LIST and UIDL: with an argument a one-line answer, without one a multi-line listing of the
    /// messages not marked as deleted (RFC 1939 section 5 and 7).
    private func listing(
        _ command: POP3CommandLine, in drop: Maildrop, header: String, value: (POP3MessageInfo) -> String
    ) -> [Action] {
        if command.arguments.isEmpty {
            var lines: [String] = []
            lines.reserveCapacity(drop.visibleCount)
            for index in drop.messages.indices where !drop.isDeleted[index] {
                lines.append("\(index + 1) \(value(drop.messages[index]))")
            }
            return [.send(POP3Response.multiline(header, lines: lines))]
        }
        switch messageIndex(command, in: drop, expectedArguments: 1) {
        case .failure(let error): return [.send(error)]
        case .success(let index):
            return [.send(POP3Response.ok("\(index + 1) \(value(drop.messages[index]))"))]
        }
    }

    private enum MessageLookup {
        case success(Int)
        case failure(ByteBuffer)
    }

    private static let argumentTooLong = POP3Response.error("argument too long; at most 40 characters")

    /// Resolves the first argument to a message index; RFC 1939 section 5: numbers count from 1 and
    /// never refer to a message marked as deleted.
    private func messageIndex(
        _ command: POP3CommandLine, in drop: Maildrop, expectedArguments: Int
    ) -> MessageLookup {
        guard let text = command.arguments.first else {
            return .failure(POP3Response.error("\(command.keyword) needs a message number"))
        }
        guard command.arguments.count <= expectedArguments else {
            return .failure(POP3Response.error("too many arguments for \(command.keyword)"))
        }
        guard command.arguments.allSatisfy({ $0.count <= POP3CommandLine.maxArgumentLength }) else {
            return .failure(Self.argumentTooLong)
        }
        let count = drop.messages.count
        let noSuchMessage = POP3Response.error(
            "no such message, only \(count) message\(count == 1 ? "" : "s") in maildrop")
        switch POP3NumberArgument(text) {
        case .invalid:
            return .failure(POP3Response.error("message number must be a positive decimal number"))
        case .tooLarge:
            return .failure(noSuchMessage)
        case .number(let number):
            guard number >= 1, number <= count else { return .failure(noSuchMessage) }
            guard !drop.isDeleted[number - 1] else {
                return .failure(POP3Response.error("message \(number) already deleted"))
            }
            return .success(number - 1)
        }
    }

    // MARK: - Helpers

    private func noArguments(_ command: POP3CommandLine) -> [Action]? {
        command.arguments.isEmpty
            ? nil : [.send(POP3Response.error("\(command.keyword) takes no arguments"))]
    }

    private static func unknownCommand(_ keyword: String) -> ByteBuffer {
        // Echo the keyword only when it is short printable ASCII: it comes from the client.
        let printable = keyword.utf8.allSatisfy { (0x21...0x7E).contains($0) }
        if printable && !keyword.isEmpty && keyword.utf8.count <= 10 {
            return POP3Response.error("unknown command \(keyword)")
        }
        return POP3Response.error("unknown command")
    }

    private mutating func releaseLock(then after: AfterUnlock) -> [Action] {
        guard let mailbox = lockedMailbox else {
            // Nothing to release: act as if the release had finished.
            pending = .unlocking(then: after)
            return unlocked()
        }
        lockedMailbox = nil
        pending = .unlocking(then: after)
        return [.unlock(mailbox: mailbox)]
    }

    private mutating func releaseAfterConnectionLoss() -> [Action] {
        phase = .closed
        guard let mailbox = lockedMailbox else { return [] }
        lockedMailbox = nil
        pending = .unlocking(then: .nothing)
        return [.unlock(mailbox: mailbox)]
    }

    /// After an effect: a shutdown that arrived meanwhile ends the now idle session.
    private mutating func finishEffect(_ actions: [Action]) -> [Action] {
        guard shutdownRequested, pending == nil, phase != .closed else { return actions }
        if actions.contains(.close) { return actions }
        phase = .closed
        return actions + [.send(Self.shutdownReply), .close]
    }
}

extension ByteBuffer {
    fileprivate static func + (lhs: ByteBuffer, rhs: String) -> ByteBuffer {
        var buffer = lhs
        buffer.writeString(rhs)
        buffer.writeStaticString("\r\n")
        return buffer
    }
}
