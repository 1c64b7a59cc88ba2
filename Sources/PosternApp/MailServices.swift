import Foundation
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import POP3
import Privacy
import SMTP
import Store

/// The stores a running core works on, opened once.
public final class CoreStores: Sendable {
    public let configuration: PosternConfiguration
    public let folder: DataFolder
    public let accounts: AccountStore
    public let mail: MailStore
    public let authenticator: Authenticator
    public let threading: ThreadingMap
    /// Threads for the protocols' store work (index reads, sanitising, file reads): an event loop
    /// hands a command's whole effect to one of them and gets the answer back, one hop each way.
    public let workers: NIOThreadPool

    /// `routingCacheLifetime`: seconds an account read for routing is reused (RecentAccounts).
    public init(configuration: PosternConfiguration, logger: Logger, routingCacheLifetime: Double = 2) throws {
        self.configuration = configuration
        folder = try DataFolder(path: configuration.dataDirectory)
        accounts = AccountStore(folder: folder,
                                policy: AccountNamePolicy(domain: configuration.domain, extraReserved: configuration.extraReservedNames),
                                quarantineDays: Int(configuration.nameQuarantine / 86400), recentLifetime: routingCacheLifetime)
        mail = try MailStore(folder: folder, logger: logger)
        threading = try ThreadingMap(folder: folder)
        authenticator = Authenticator(accounts: accounts,
                                      backoff: LoginBackoff(base: configuration.authPenaltyBase, maximum: configuration.authPenaltyMax),
                                      logger: logger)
        workers = NIOThreadPool(numberOfThreads: max(2, System.coreCount))
        workers.start()
    }

    public func close() async {
        await mail.close()
        await authenticator.shutdown()
        try? await workers.shutdownGracefully()
    }

    func quota(of account: Account) -> Int { account.quotaBytes ?? configuration.mailboxQuota }

    /// The mailbox a local address delivers to: its account, or the operator's for postmaster@
    /// and abuse@ (ACCT-2); nil when there is none. From the recent accounts if there, else read
    /// and remembered — on the calling thread (a worker, never an event loop).
    func mailbox(for address: EmailAddress) throws -> Account? {
        guard let key = routingKey(address) else { return nil }
        return try accounts.recent.lookup(key) {
            key == "postmaster" || key == "abuse"
                ? try accounts.operatorAccount(configured: configuration.operatorAccount)
                : try accounts.find(key)
        }
    }

    /// The mailbox of `address` if it was read in the last seconds; safe on an event loop.
    func recentMailbox(for address: EmailAddress) -> Account? {
        routingKey(address).flatMap(accounts.recent.lookup)
    }

    private func routingKey(_ address: EmailAddress) -> String? {
        try? accounts.policy.normalise(address.localPart)
    }
}

/// SMTP submission over the stores: the pipeline of docs/flow.md — check, prepare, store.
final class SubmissionService: SubmissionBackend {
    private let stores: CoreStores
    private let logger: Logger

    init(stores: CoreStores, logger: Logger) {
        self.stores = stores
        self.logger = logger
    }

    func authenticate(username: String, password: String) async -> SMTPAuthOutcome {
        outcome(of: await stores.authenticator.verify(username: username, password: password))
    }

    func authenticate(username: String, password: String, on loop: any EventLoop) -> EventLoopFuture<SMTPAuthOutcome> {
        stores.authenticator.verify(username: username, password: password, on: loop).map { self.outcome(of: $0) }
    }

    private func outcome(of result: LoginResult) -> SMTPAuthOutcome {
        switch result {
        case .success(let account):
            return .success(EmailAddress(localPart: account.name, domain: stores.configuration.domain))
        case .failure:
            logger.info("smtp authentication failed")
            return .failure
        case .temporaryFailure:
            return .temporaryFailure
        }
    }

    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress, declaredSize: Int?) async -> RecipientVerdict {
        (try? await stores.workers.runIfActive { self.checkRecipientNow(recipient, declaredSize: declaredSize) }) ?? Self.localProblem
    }

    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress, declaredSize: Int?, on loop: any EventLoop) -> EventLoopFuture<RecipientVerdict> {
        // An account read a moment ago answers on the loop itself: no thread switch at all.
        if recipient.domain == stores.configuration.domain, let account = stores.recentMailbox(for: recipient) {
            return loop.makeSucceededFuture(verdict(recipient, account: account, declaredSize: declaredSize))
        }
        return stores.workers.runIfActive(eventLoop: loop) { self.checkRecipientNow(recipient, declaredSize: declaredSize) }
            .recover { _ in Self.localProblem }
    }

    private static let localProblem = RecipientVerdict.rejected(SMTPReply(451, "4.3.0", "Temporary local problem, try again later"))

    /// RCPT TO, on a worker thread.
    private func checkRecipientNow(_ recipient: EmailAddress, declaredSize: Int?) -> RecipientVerdict {
        // SMTP-4: only local recipients until an Internet gateway exists; never an open relay.
        guard recipient.domain == stores.configuration.domain else {
            return .rejected(SMTPReply(550, "5.7.1", "Relaying to <\(recipient)> denied: this server has no Internet gateway configured"))
        }
        do {
            return verdict(recipient, account: try stores.mailbox(for: recipient), declaredSize: declaredSize)
        } catch {
            logger.error("recipient lookup failed", metadata: ["error": "\(type(of: error))"])
            return Self.localProblem
        }
    }

    private func verdict(_ recipient: EmailAddress, account: Account?, declaredSize: Int?) -> RecipientVerdict {
        guard let account else {
            return .rejected(SMTPReply(550, "5.1.1", "No such user here: <\(recipient)>"))
        }
        // MBOX-2: refuse at RCPT when the mailbox is already full or the announced size does not fit.
        if account.usedBytes + (declaredSize ?? 1) > stores.quota(of: account) {
            return .rejected(SMTPReply(452, "4.2.2", "Mailbox full: <\(recipient)> is over its quota"))
        }
        return .accepted
    }

    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome {
        await withCheckedContinuation { continuation in
            deliverOnWorker(envelope, message: message, ids: nil) { continuation.resume(returning: $0) }
        }
    }

    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<DeliveryOutcome> {
        let promise = loop.makePromise(of: DeliveryOutcome.self)
        // A small message whose mailboxes were all read moments ago and that refers to no earlier
        // message needs no read at all: it is prepared here (tens of microseconds of CPU, no
        // system call that can block) and goes straight to the committer. Anything else, one hop,
        // taking along the ids already parsed.
        var ids: MessageIDs?
        if message.readableBytes <= Self.preparedOnTheLoopUpTo {
            let parsed = SubmissionPreparation.messageIDs(of: message)
            ids = parsed
            if parsed.references.isEmpty,
               (try? deliverNow(envelope, message: message, ids: parsed, lookup: .recentOnly, completion: { promise.succeed($0) })) != nil {
                return promise.futureResult
            }
        }
        deliverOnWorker(envelope, message: message, ids: ids) { promise.succeed($0) }
        return promise.futureResult
    }

    private static let preparedOnTheLoopUpTo = 32 * 1024
    private static let notStored = DeliveryOutcome.rejected(SMTPReply(451, "4.3.0", "Temporary local problem: message not stored, try again later"))

    typealias MessageIDs = (own: String?, references: [String])

    /// How `deliverNow` finds accounts: from the recent ones or the database (a worker thread),
    /// or from the recent ones only (an event loop), giving up with `NeedsRead` on a miss.
    private enum Lookup { case readIfNeeded, recentOnly }
    private struct NeedsRead: Error {}

    /// End of DATA on a worker thread (`ids`: the client's Message-IDs, if parsed already).
    private func deliverOnWorker(_ envelope: SubmissionEnvelope, message: ByteBuffer, ids: MessageIDs?,
                                 completion: @escaping @Sendable (DeliveryOutcome) -> Void) {
        stores.workers.submit { state in
            guard case .active = state else { return completion(Self.notStored) }
            do {
                try self.deliverNow(envelope, message: message, ids: ids ?? SubmissionPreparation.messageIDs(of: message),
                                    lookup: .readIfNeeded, completion: completion)
            } catch {
                self.logger.error("delivery failed", metadata: ["error": "\(error)"])
                completion(Self.notStored)
            }
        }
    }

    /// Resolves the mailboxes, applies the submission policy and hands the result to the
    /// committer, which calls `completion` once it is durable (SMTP-7). With `.recentOnly` it
    /// throws `NeedsRead` before doing anything, if it would have to read.
    private func deliverNow(_ envelope: SubmissionEnvelope, message: ByteBuffer, ids: MessageIDs, lookup: Lookup,
                            completion: @escaping @Sendable (DeliveryOutcome) -> Void) throws {
        let domain = stores.configuration.domain
        let mailbox: (EmailAddress) throws -> Account? = { [stores] address in
            switch lookup {
            case .readIfNeeded: return try stores.mailbox(for: address)
            case .recentOnly:
                guard let account = stores.recentMailbox(for: address) else { throw NeedsRead() }
                return account
            }
        }
        do {
            var targets: [MailboxTarget] = []
            for recipient in envelope.recipients {
                guard let account = try mailbox(recipient) else {
                    return completion(.rejected(SMTPReply(550, "5.1.1", "No such user here: <\(recipient)>")))
                }
                // Two addresses may name one mailbox (postmaster@ and the operator): deliver once.
                if !targets.contains(where: { $0.accountID == account.id }) {
                    targets.append(MailboxTarget(accountID: account.id, accountName: account.name, quotaBytes: stores.quota(of: account)))
                }
            }
            // Threading across Postern's Message-ID replacement (PRIV-2): see ThreadingMap.
            let senderAccount = try mailbox(envelope.sender)
            var replacements: [String: String] = [:]
            if let senderAccount, !ids.references.isEmpty {
                if lookup == .recentOnly { throw NeedsRead() }
                replacements = try stores.threading.replacements(for: ids.references, accountID: senderAccount.id)
            }
            var random = SystemRandomNumberGenerator()
            let messageID = MessageSanitiser.newMessageID(domain: domain, random: &random)
            let prepared = SubmissionPreparation.prepare(message, sender: envelope.sender, domain: domain,
                                                         now: Int64(Date().timeIntervalSince1970),
                                                         messageID: messageID, referenceReplacements: replacements)
            let threadingRow = try senderAccount.flatMap { account in
                try ids.own.map { try stores.threading.row(original: $0, replacement: messageID, accountID: account.id) }
            }
            let logger = self.logger
            let mailboxes = targets.count
            // On a worker the files are written here, in parallel with other deliveries; on
            // the loop (small messages only) the committer writes them.
            stores.mail.deliver(prepared, to: targets, threading: threadingRow, writingFilesHere: lookup == .readIfNeeded) { result in
                switch result {
                case .success:
                    logger.debug("message stored", metadata: ["recipients": "\(mailboxes)"])
                    completion(.accepted)
                case .failure(DeliveryFailure.mailboxFull(let name)):
                    completion(.rejected(SMTPReply(552, "5.2.2", "Mailbox full: <\(name)@\(domain)> has no room for this message")))
                case .failure(DeliveryFailure.mailboxGone(let name)):
                    completion(.rejected(SMTPReply(550, "5.1.1", "No such user here: <\(name)@\(domain)>")))
                case .failure(let error):
                    logger.error("delivery failed", metadata: ["error": "\(error)"])
                    completion(Self.notStored)
                }
            }
        }
    }
}

/// What happens to a submitted message between the end of DATA and the store.
enum SubmissionPreparation {
    /// Applies the submission privacy policy (PRIV-1..3: allow-listed header in a fixed order,
    /// From from the account, fresh Message-ID, Date now in UTC to the minute, MIME part headers
    /// reduced, boundaries replaced) and sets Return-Path (RFC 5321 4.4: the server's own; any
    /// client copy was dropped with the rest of the header).
    static func prepare(_ message: ByteBuffer, sender: EmailAddress, domain: String, now: Int64,
                        messageID: String? = nil, referenceReplacements: [String: String] = [:]) -> ByteBuffer {
        var random = SystemRandomNumberGenerator()
        let sanitised = MessageSanitiser().sanitise(
            Array(message.readableBytesView),
            context: .init(sender: sender, messageIDDomain: domain, releaseTime: now,
                           messageID: messageID, referenceReplacements: referenceReplacements),
            random: &random)
        var out = ByteBufferAllocator().buffer(capacity: sanitised.count + 64)
        out.writeString("Return-Path: <\(sender)>\r\n")
        out.writeBytes(sanitised)
        return out
    }
}

extension SubmissionPreparation {
    /// The client's own Message-ID and the ids it refers to (In-Reply-To, References).
    static func messageIDs(of message: ByteBuffer) -> (own: String?, references: [String]) {
        let header = HeaderSection.parse(message.readableBytesView)
        let own = header.fields(named: "Message-ID").first.flatMap { MessageSanitiser.messageIDs(in: $0.value).first }
        let references = (header.fields(named: "In-Reply-To") + header.fields(named: "References"))
            .flatMap { MessageSanitiser.messageIDs(in: $0.value) }
        return (own, Array(Set(references)))
    }
}

/// POP3 over the stores, with the single-node exclusive maildrop lock (POP-2).
final class MaildropService: POP3Backend {
    private let stores: CoreStores
    private let logger: Logger
    /// The locked maildrops (POP-2) and, once listed, the uids of their listing: a RETR of a
    /// listed message then reads its file with no index query.
    private let open = NIOLockedValueBox<[String: Set<String>?]>([:])

    init(stores: CoreStores, logger: Logger) {
        self.stores = stores
        self.logger = logger
    }

    func authenticate(username: String, password: String) async -> POP3AuthOutcome {
        outcome(of: await stores.authenticator.verify(username: username, password: password))
    }

    func authenticate(username: String, password: String, on loop: any EventLoop) -> EventLoopFuture<POP3AuthOutcome> {
        stores.authenticator.verify(username: username, password: password, on: loop).map { self.outcome(of: $0) }
    }

    private func outcome(of result: LoginResult) -> POP3AuthOutcome {
        switch result {
        case .success(let account): return .success(mailbox: account.name)
        case .failure:
            logger.info("pop3 authentication failed")
            return .failure
        case .temporaryFailure: return .temporaryFailure
        }
    }

    func lockMaildrop(_ mailbox: String) async -> Bool {
        lock(mailbox)
    }

    func lockMaildrop(_ mailbox: String, on loop: any EventLoop) -> EventLoopFuture<Bool> {
        loop.makeSucceededFuture(lock(mailbox))
    }

    private func lock(_ mailbox: String) -> Bool {
        open.withLockedValue { open in
            guard open[mailbox] == nil else { return false }
            open[mailbox] = .some(nil)  // locked, not listed yet
            return true
        }
    }

    func unlockMaildrop(_ mailbox: String) async {
        _ = open.withLockedValue { $0.removeValue(forKey: mailbox) }
    }

    func listMessages(in mailbox: String) async throws -> [POP3MessageInfo] {
        try await stores.workers.runIfActive { try self.listNow(mailbox) }
    }

    func listMessages(in mailbox: String, on loop: any EventLoop) -> EventLoopFuture<[POP3MessageInfo]> {
        stores.workers.runIfActive(eventLoop: loop) { try self.listNow(mailbox) }
    }

    private func listNow(_ mailbox: String) throws -> [POP3MessageInfo] {
        let listing = try stores.mail.messagesNow(ofAccount: try accountIDNow(mailbox))
        open.withLockedValue { open in
            guard open[mailbox] != nil else { return }  // not locked (a caller without the lock)
            open[mailbox] = Set(listing.map(\.uid))
        }
        return listing.map { POP3MessageInfo(uid: $0.uid, size: $0.size) }
    }

    func messageBytes(in mailbox: String, uid: String) async throws -> ByteBuffer {
        try await stores.workers.runIfActive { try self.contentNow(mailbox, uid: uid) }
    }

    func messageBytes(in mailbox: String, uid: String, on loop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        stores.workers.runIfActive(eventLoop: loop) { try self.contentNow(mailbox, uid: uid) }
    }

    private func contentNow(_ mailbox: String, uid: String) throws -> ByteBuffer {
        let listed = open.withLockedValue { open in open[mailbox]??.contains(uid) ?? false }
        // A uid from this locked maildrop's own listing is this account's: read the file. Anything
        // else goes through the index, which reads only what the account owns.
        if listed { return try stores.mail.contentNow(listedUID: uid) }
        return try stores.mail.contentNow(ofAccount: try accountIDNow(mailbox), uid: uid)
    }

    func deleteMessages(in mailbox: String, uids: [String]) async throws {
        let accountID = try await stores.workers.runIfActive { try self.accountIDNow(mailbox) }
        try await stores.mail.delete(ofAccount: accountID, uids: uids)
    }

    private func accountIDNow(_ mailbox: String) throws -> Int64 {
        guard let account = try stores.accounts.find(mailbox) else { throw DeliveryFailure.storage("account gone") }
        return account.id
    }
}
