import MailCore
import NIOCore

/// What an SMTP submission session needs from the rest of Postern. PosternApp implements it over
/// the Store; tests implement it in memory. Nothing here runs on an event loop.
public protocol SubmissionBackend: Sendable {
    /// The backend for one connection from `remote`. An exchange (GW-2) answers with one that
    /// remembers the client's address for its checks and holds the link to the core for the
    /// session's transactions; the default is this backend itself.
    func connection(from remote: SocketAddress?) -> any SubmissionBackend
    /// The connection ended (the exchange closes its link to the core).
    func connectionClosed()
    /// Verifies a login (SMTP-6: the per-account back-off may make this take seconds).
    func authenticate(username: String, password: String) async -> SMTPAuthOutcome
    /// Decides whether `recipient` may receive mail from `sender` (SMTP-4). `declaredSize` is the
    /// MAIL FROM SIZE parameter, if any, for the quota check (MBOX-2); `earlier` the recipients
    /// the transaction accepted before this one (for the Internet recipient quota, QUOTA-1).
    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress]) async -> RecipientVerdict
    /// The exchange role's check of a transaction's sender (nil: `<>`) and the client's EHLO name.
    func checkSender(_ sender: EmailAddress?, helo: String) async -> RecipientVerdict
    /// Makes the message durable for every recipient. Returns only once it is on disk (SMTP-7).
    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome

    // The same three for a caller on an event loop. The defaults run the async ones in a task;
    // a backend that can answer with a single hop to its own threads (PosternApp's) implements
    // these, which saves the task's and the store's thread switches on every command.
    func authenticate(username: String, password: String, on loop: any EventLoop) -> EventLoopFuture<SMTPAuthOutcome>
    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress],
                        on loop: any EventLoop) -> EventLoopFuture<RecipientVerdict>
    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<DeliveryOutcome>
}

extension SubmissionBackend {
    public func connection(from remote: SocketAddress?) -> any SubmissionBackend { self }
    public func connectionClosed() {}
    public func checkSender(_ sender: EmailAddress?, helo: String) async -> RecipientVerdict { .accepted }

    public func checkSender(_ sender: EmailAddress?, helo: String, on loop: any EventLoop) -> EventLoopFuture<RecipientVerdict> {
        loop.makeFutureWithTask { await self.checkSender(sender, helo: helo) }
    }

    public func authenticate(username: String, password: String, on loop: any EventLoop) -> EventLoopFuture<SMTPAuthOutcome> {
        loop.makeFutureWithTask { await self.authenticate(username: username, password: password) }
    }

    public func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress],
                               on loop: any EventLoop) -> EventLoopFuture<RecipientVerdict> {
        loop.makeFutureWithTask { await self.checkRecipient(recipient, sender: sender, declaredSize: declaredSize, earlier: earlier) }
    }

    /// The first recipient of a transaction.
    public func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?) async -> RecipientVerdict {
        await checkRecipient(recipient, sender: sender, declaredSize: declaredSize, earlier: [])
    }

    public func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, on loop: any EventLoop) -> EventLoopFuture<RecipientVerdict> {
        checkRecipient(recipient, sender: sender, declaredSize: declaredSize, earlier: [], on: loop)
    }

    public func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<DeliveryOutcome> {
        loop.makeFutureWithTask { await self.deliver(envelope, message: message) }
    }
}

public enum SMTPAuthOutcome: Sendable, Equatable {
    /// Logged in as this account; MAIL FROM and header From must be this address (SMTP-3).
    case success(EmailAddress)
    /// Logged in as the trusted peer (the gateway at the core, the core at the gateway): the
    /// session takes the relay role from here on.
    case peer
    case failure
    case temporaryFailure
}

public enum RecipientVerdict: Sendable, Equatable {
    case accepted
    case rejected(SMTPReply)
}

public enum DeliveryOutcome: Sendable, Equatable {
    case accepted
    case rejected(SMTPReply)
}

/// The envelope of one submitted message (RFC 5321 2.3.1).
public struct SubmissionEnvelope: Sendable, Equatable {
    /// nil: the null reverse-path `<>` (relay and exchange roles only).
    public var sender: EmailAddress?
    public var recipients: [EmailAddress]
    public var bodyType: BodyType
    public var smtpUTF8: Bool
    /// The message came over TLS (STARTTLS, RFC 3207).
    public var overTLS: Bool

    public init(sender: EmailAddress?, recipients: [EmailAddress], bodyType: BodyType = .sevenBit, smtpUTF8: Bool = false,
                overTLS: Bool = false) {
        self.sender = sender
        self.recipients = recipients
        self.bodyType = bodyType
        self.smtpUTF8 = smtpUTF8
        self.overTLS = overTLS
    }
}
