import NIOCore

/// What a POP3 session needs from the rest of Postern. PosternApp implements it over the Store;
/// tests implement it in memory. Everything here may suspend: none of it runs on an event loop.
public protocol POP3Backend: Sendable {
    /// Verifies a login. Applies the per-account back-off shared with SMTP (SMTP-6, POP-4), so it
    /// may take seconds to answer.
    func authenticate(username: String, password: String) async -> POP3AuthOutcome
    /// Takes the exclusive lock of a maildrop; `false` when another session holds it (POP-2).
    func lockMaildrop(_ mailbox: String) async -> Bool
    func unlockMaildrop(_ mailbox: String) async
    /// The maildrop's messages, oldest first. `size` is the exact stored octet count (CRLF lines).
    func listMessages(in mailbox: String) async throws -> [POP3MessageInfo]
    /// The stored bytes of one message, exactly as stored (CRLF lines, not dot-stuffed).
    func messageBytes(in mailbox: String, uid: String) async throws -> ByteBuffer
    /// Deletes messages for good; called only in the UPDATE state after QUIT (RFC 1939 section 6).
    func deleteMessages(in mailbox: String, uids: [String]) async throws

    // The hot ones again for a caller on an event loop. The defaults run the async ones in a
    // task; PosternApp's backend answers with one hop to its worker threads instead.
    func authenticate(username: String, password: String, on loop: any EventLoop) -> EventLoopFuture<POP3AuthOutcome>
    func lockMaildrop(_ mailbox: String, on loop: any EventLoop) -> EventLoopFuture<Bool>
    func listMessages(in mailbox: String, on loop: any EventLoop) -> EventLoopFuture<[POP3MessageInfo]>
    func messageBytes(in mailbox: String, uid: String, on loop: any EventLoop) -> EventLoopFuture<ByteBuffer>
}

extension POP3Backend {
    public func authenticate(username: String, password: String, on loop: any EventLoop) -> EventLoopFuture<POP3AuthOutcome> {
        loop.makeFutureWithTask { await self.authenticate(username: username, password: password) }
    }

    public func lockMaildrop(_ mailbox: String, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        loop.makeFutureWithTask { await self.lockMaildrop(mailbox) }
    }

    public func listMessages(in mailbox: String, on loop: any EventLoop) -> EventLoopFuture<[POP3MessageInfo]> {
        loop.makeFutureWithTask { try await self.listMessages(in: mailbox) }
    }

    public func messageBytes(in mailbox: String, uid: String, on loop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        loop.makeFutureWithTask { try await self.messageBytes(in: mailbox, uid: uid) }
    }
}

public enum POP3AuthOutcome: Sendable, Equatable {
    /// Logged in; `mailbox` is the canonical maildrop name (the account's address).
    case success(mailbox: String)
    /// Wrong user or password (never says which).
    case failure
    /// The check could not be made now (store unavailable): `-ERR [SYS/TEMP]`.
    case temporaryFailure
}

public struct POP3MessageInfo: Sendable, Equatable {
    /// Stable unique id (MBOX-3), printable ASCII 0x21–0x7E, at most 70 characters (RFC 1939 UIDL).
    public var uid: String
    public var size: Int
    public init(uid: String, size: Int) { self.uid = uid; self.size = size }
}
