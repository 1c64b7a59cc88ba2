import Delivery
import Foundation
import Gateway
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import POP3
import Privacy
import Scan
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
    /// Internet-bound mail waiting for release or retry (QUEUE-1).
    public let queue: OutboundQueue
    /// When Internet-bound mail is released (DELAY-1..4), from the configuration.
    public let schedule: DelaySchedule
    public let retry: RetrySchedule
    public let clock: any DeliveryClock
    /// Threads for the protocols' store work (index reads, sanitising, file reads): an event loop
    /// hands a command's whole effect to one of them and gets the answer back, one hop each way.
    public let workers: NIOThreadPool

    /// `routingCacheLifetime`: seconds an account read for routing is reused (RecentAccounts).
    public init(configuration: PosternConfiguration, logger: Logger, routingCacheLifetime: Double = 2,
                clock: any DeliveryClock = SystemClock()) throws {
        self.configuration = configuration
        folder = try DataFolder(path: configuration.dataDirectory)
        accounts = AccountStore(folder: folder,
                                policy: AccountNamePolicy(domain: configuration.domain, extraReserved: configuration.extraReservedNames),
                                quarantineDays: Int(configuration.nameQuarantine / 86400), recentLifetime: routingCacheLifetime)
        mail = try MailStore(folder: folder, logger: logger)
        threading = try ThreadingMap(folder: folder)
        queue = OutboundQueue(folder: folder)
        schedule = DelaySchedule(deferMin: Int64(configuration.deferMin), deferMax: Int64(configuration.deferMax),
                                 batchTimes: configuration.batchTimes, poolInterval: Int64(configuration.poolInterval),
                                 poolMin: configuration.poolMin, poolRate: configuration.poolRate)
        retry = RetrySchedule(first: Int64(configuration.retryFirst), maximum: Int64(configuration.retryMax),
                              giveUpAfter: Int64(configuration.giveUpAfter), delayNoticeAfter: Int64(configuration.delayNoticeAfter))
        self.clock = clock
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
    func internetQuota(of account: Account) -> Int { account.internetQuota ?? configuration.internetRecipientsPerDay }

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
    let stores: CoreStores
    let logger: Logger
    /// Called once Internet-bound mail is queued (wakes the queue runner).
    private let onQueued: @Sendable () -> Void
    /// The gateway's login on the link (the `[relay]` credentials, both ways); nil: no gateway.
    let gateway: PeerCredential?
    /// Only the gateway may log in (the I2P link's own destination): no account logins.
    let peerOnly: Bool
    /// clamd's verdict before anything is stored (SCAN-1); nil: no scanning configured.
    let scan: ScanPolicy?

    init(stores: CoreStores, logger: Logger, gateway: PeerCredential? = nil, peerOnly: Bool = false, scan: ScanPolicy? = nil,
         onQueued: @escaping @Sendable () -> Void = {}) {
        self.stores = stores
        self.logger = logger
        self.gateway = gateway
        self.peerOnly = peerOnly
        self.scan = scan
        self.onQueued = onQueued
    }

    /// SCAN-1 before `deliver`: clean (or unscannable under the accept policy) mail goes on to
    /// `deliver(unscanned)`; infected mail is refused in the dialogue, no bounce.
    func scanned(_ message: ByteBuffer, on loop: any EventLoop,
                 then deliver: @escaping @Sendable (_ unscanned: Bool) -> EventLoopFuture<DeliveryOutcome>) -> EventLoopFuture<DeliveryOutcome> {
        guard let scan else { return deliver(false) }
        return scan.decide(message, on: loop).flatMap { decision in
            switch decision {
            case .pass: return deliver(false)
            case .passUnscanned: return deliver(true)
            case .refuse(let code, let status, let text): return loop.makeSucceededFuture(.rejected(SMTPReply(code, status, text)))
            }
        }
    }

    /// The message with the mark of mail accepted unscanned on top (stored copies only: the
    /// Internet-bound preparation keeps none of it).
    static func markedUnscanned(_ message: ByteBuffer, if unscanned: Bool) -> ByteBuffer {
        guard unscanned else { return message }
        // Marked once (the gateway may have marked it already).
        if HeaderSection.parse(message.readableBytesView).fields.contains(where: { $0.name.lowercased() == "x-postern-scan" }) { return message }
        // Below a Return-Path, which stays first (RFC 5321 4.4).
        let bytes = message.readableBytesView
        var split = bytes.startIndex
        let header = HeaderSection.parse(bytes)
        if let first = header.fields.first, first.name.lowercased() == "return-path" {
            split = bytes.startIndex + first.raw.count + 2
        }
        var out = ByteBufferAllocator().buffer(capacity: message.readableBytes + 80)
        out.writeBytes(bytes[bytes.startIndex..<split])
        out.writeString(ScanDecision.unscannedField + "\r\n")
        out.writeBytes(bytes[split...])
        return out
    }

    /// With a gateway configured, each connection gets a `GatewayAwareConnection`, which takes
    /// the gateway's login and then handles its transactions (mail from the Internet, bounces).
    func connection(from remote: SocketAddress?) -> any SubmissionBackend {
        guard let gateway else { return self }
        return GatewayAwareConnection(service: self, gateway: gateway)
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

    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress]) async -> RecipientVerdict {
        guard let sender else { return Self.nullSender }
        return (try? await stores.workers.runIfActive {
            self.checkRecipientNow(recipient, sender: sender, declaredSize: declaredSize, earlier: earlier)
        }) ?? Self.localProblem
    }

    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress],
                        on loop: any EventLoop) -> EventLoopFuture<RecipientVerdict> {
        guard let sender else { return loop.makeSucceededFuture(Self.nullSender) }
        // An account read a moment ago answers on the loop itself: no thread switch at all.
        if recipient.domain == stores.configuration.domain, let account = stores.recentMailbox(for: recipient) {
            return loop.makeSucceededFuture(verdict(recipient, account: account, declaredSize: declaredSize))
        }
        return stores.workers.runIfActive(eventLoop: loop) {
            self.checkRecipientNow(recipient, sender: sender, declaredSize: declaredSize, earlier: earlier)
        }.recover { _ in Self.localProblem }
    }

    /// The submission role never lets `<>` through (SMTP-3); a backend says so too.
    private static let nullSender = RecipientVerdict.rejected(SMTPReply(553, "5.7.1", "Null sender not allowed on submission"))
    static let localProblem = RecipientVerdict.rejected(SMTPReply(451, "4.3.0", "Temporary local problem, try again later"))

    /// RCPT TO, on a worker thread.
    private func checkRecipientNow(_ recipient: EmailAddress, sender: EmailAddress, declaredSize: Int?, earlier: [EmailAddress]) -> RecipientVerdict {
        guard recipient.domain == stores.configuration.domain else {
            return internetVerdict(recipient, sender: sender, earlier: earlier)
        }
        do {
            return verdict(recipient, account: try stores.mailbox(for: recipient), declaredSize: declaredSize)
        } catch {
            logger.error("recipient lookup failed", metadata: ["error": "\(type(of: error))"])
            return Self.localProblem
        }
    }

    /// SMTP-4 for an address outside the mail domain: only through a configured gateway (never an
    /// open relay: the sender is always an authenticated account), and within the sender's
    /// Internet recipient quota (QUOTA-1), counting the transaction's earlier Internet recipients.
    private func internetVerdict(_ recipient: EmailAddress, sender: EmailAddress, earlier: [EmailAddress]) -> RecipientVerdict {
        if let refusal = Self.routeRefusal(recipient, configuration: stores.configuration) { return .rejected(refusal) }
        if earlier.contains(recipient) { return .accepted }  // a repeated RCPT counts once
        do {
            guard let account = try stores.mailbox(for: sender) else { return Self.localProblem }
            let quota = stores.internetQuota(of: account)
            let allowance = try stores.queue.allowance(accountID: account.id, quota: quota, now: stores.clock.now())
            let pending = earlier.filter { $0.domain != stores.configuration.domain }.count
            guard allowance.remaining > pending else {
                return .rejected(quotaRefusal(quota: quota, freesAt: allowance.freesAt, sender: sender))
            }
            return .accepted
        } catch {
            logger.error("internet quota lookup failed", metadata: ["error": "\(type(of: error))"])
            return Self.localProblem
        }
    }

    /// `450 4.7.1` for a used-up Internet recipient quota (QUOTA-1), at RCPT or in the commit:
    /// when it frees up, and how a hashcash stamp raises it (QUOTA-2).
    private func quotaRefusal(quota: Int, freesAt: Int64?, sender: EmailAddress) -> SMTPReply {
        let frees = freesAt.map { "; the next one frees up at \(RFC5322Date.format(secondsSince1970: $0, roundedToMinute: false))" } ?? ""
        return SMTPReply(450, "4.7.1", "Internet recipient quota used up: \(quota) per 24 hours\(frees). Each hashcash stamp adds "
                         + "\(stores.configuration.hashcashRecipients): send one to yourself in an X-Hashcash header first (postern hashcash mint \(sender))")
    }

    /// Why mail to `recipient` outside the mail domain cannot be sent at all, or nil.
    static func routeRefusal(_ recipient: EmailAddress, configuration: PosternConfiguration) -> SMTPReply? {
        guard configuration.hasGateway else {
            return SMTPReply(550, "5.7.1", "Relaying to <\(recipient)> denied: this server has no Internet gateway configured")
        }
        let domain = recipient.domain.lowercased()
        if domain == configuration.internetDomain {
            return SMTPReply(550, "5.7.1", "<\(recipient)> is the Internet name of a mailbox here: write to \(recipient.localPart)@\(configuration.domain)")
        }
        if domain.hasPrefix("[") {
            return SMTPReply(550, "5.1.2", "Address literals are not accepted: <\(recipient)>")
        }
        if domain.hasSuffix(".i2p") || !domain.contains(".") {
            return SMTPReply(550, "5.1.2", "No route to <\(recipient)>: only \(configuration.domain) and Internet domains are reachable")
        }
        return nil
    }

    func verdict(_ recipient: EmailAddress, account: Account?, declaredSize: Int?) -> RecipientVerdict {
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
        let decision = await scan?.decide(message) ?? .pass
        if case .refuse(let code, let status, let text) = decision { return .rejected(SMTPReply(code, status, text)) }
        let unscanned = decision == .passUnscanned
        return await withCheckedContinuation { continuation in
            deliverOnWorker(envelope, message: message, ids: nil, unscanned: unscanned) { continuation.resume(returning: $0) }
        }
    }

    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<DeliveryOutcome> {
        scanned(message, on: loop) { unscanned in self.deliverScanned(envelope, message: message, unscanned: unscanned, on: loop) }
    }

    private func deliverScanned(_ envelope: SubmissionEnvelope, message: ByteBuffer, unscanned: Bool,
                                on loop: any EventLoop) -> EventLoopFuture<DeliveryOutcome> {
        let promise = loop.makePromise(of: DeliveryOutcome.self)
        // A small message whose mailboxes were all read moments ago and that refers to no earlier
        // message needs no read at all: it is prepared here (tens of microseconds of CPU, no
        // system call that can block) and goes straight to the committer. Anything else, one hop,
        // taking along the ids already parsed.
        var ids: ClientHeader?
        let domain = stores.configuration.domain
        if message.readableBytes <= Self.preparedOnTheLoopUpTo {
            let parsed = SubmissionPreparation.clientHeader(of: message)
            ids = parsed
            if parsed.references.isEmpty, parsed.stamps.isEmpty, envelope.recipients.allSatisfy({ $0.domain == domain }),
               (try? deliverNow(envelope, message: message, ids: parsed, lookup: .recentOnly, unscanned: unscanned,
                                completion: { promise.succeed($0) })) != nil {
                return promise.futureResult
            }
        }
        deliverOnWorker(envelope, message: message, ids: ids, unscanned: unscanned) { promise.succeed($0) }
        return promise.futureResult
    }

    private static let preparedOnTheLoopUpTo = 32 * 1024
    static let notStored = DeliveryOutcome.rejected(SMTPReply(451, "4.3.0", "Temporary local problem: message not stored, try again later"))

    typealias ClientHeader = SubmissionPreparation.ClientHeader

    /// How `deliverNow` finds accounts: from the recent ones or the database (a worker thread),
    /// or from the recent ones only (an event loop), giving up with `NeedsRead` on a miss.
    private enum Lookup { case readIfNeeded, recentOnly }
    private struct NeedsRead: Error {}

    /// End of DATA on a worker thread (`ids`: the client's Message-IDs, if parsed already).
    private func deliverOnWorker(_ envelope: SubmissionEnvelope, message: ByteBuffer, ids: ClientHeader?, unscanned: Bool,
                                 completion: @escaping @Sendable (DeliveryOutcome) -> Void) {
        stores.workers.submit { state in
            guard case .active = state else { return completion(Self.notStored) }
            do {
                try self.deliverNow(envelope, message: message, ids: ids ?? SubmissionPreparation.clientHeader(of: message),
                                    lookup: .readIfNeeded, unscanned: unscanned, completion: completion)
            } catch {
                self.logger.error("delivery failed", metadata: ["error": "\(error)"])
                completion(Self.notStored)
            }
        }
    }

    /// Resolves the mailboxes, applies the submission policy and hands the result to the
    /// committer, which calls `completion` once it is durable (SMTP-7). With `.recentOnly` it
    /// throws `NeedsRead` before doing anything, if it would have to read.
    private func deliverNow(_ envelope: SubmissionEnvelope, message: ByteBuffer, ids: ClientHeader, lookup: Lookup,
                            unscanned: Bool, completion: @escaping @Sendable (DeliveryOutcome) -> Void) throws {
        let domain = stores.configuration.domain
        guard let sender = envelope.sender else { return completion(.rejected(SMTPReply(553, "5.7.1", "Null sender not allowed on submission"))) }
        let mailbox: (EmailAddress) throws -> Account? = { [stores] address in
            switch lookup {
            case .readIfNeeded: return try stores.mailbox(for: address)
            case .recentOnly:
                guard let account = stores.recentMailbox(for: address) else { throw NeedsRead() }
                return account
            }
        }
        do {
            let internet = envelope.recipients.filter { $0.domain != domain }
            let targets: [MailboxTarget]
            switch try Self.mailboxTargets(envelope.recipients.lazy.filter { $0.domain == domain }, stores: stores, lookup: mailbox) {
            case .success(let found): targets = found
            case .failure(let refusal): return completion(.rejected(refusal.reply))
            }
            // Threading across Postern's Message-ID replacement (PRIV-2): see ThreadingMap.
            let senderAccount = try mailbox(sender)
            var replacements: [String: String] = [:]
            if let senderAccount, !ids.references.isEmpty {
                if lookup == .recentOnly { throw NeedsRead() }
                replacements = try stores.threading.replacements(for: ids.references, accountID: senderAccount.id)
            }
            var random = SystemRandomNumberGenerator()
            let now = stores.clock.now()
            var credits: [HashcashCredit] = []
            var outbound: OutboundEntry?
            if !ids.stamps.isEmpty || !internet.isEmpty {
                // Stamps and queue entries belong to the sender's account: one deleted since the
                // login is a temporary local problem.
                guard let senderAccount else { return completion(Self.notStored) }
                // QUOTA-2: stamps are checked here, spent in the commit (once, ever).
                for text in ids.stamps {
                    do {
                        credits.append(try Self.credit(for: text, account: senderAccount, configuration: stores.configuration, now: now))
                    } catch {
                        return completion(.rejected(SMTPReply(550, "5.7.1", "X-Hashcash: \(error)")))
                    }
                }
                // QUEUE-1, DELAY-1: the Internet recipients are queued with their release time.
                if !internet.isEmpty {
                    if let refusal = internet.lazy.compactMap({ Self.routeRefusal($0, configuration: self.stores.configuration) }).first {
                        return completion(.rejected(refusal))
                    }
                    let release = stores.schedule.release(mode: senderAccount.delayMode, now: stores.clock.preciseNow(), random: &random)
                    var releaseAt: Int64?
                    if case .at(let time) = release { releaseAt = time }
                    outbound = OutboundEntry(accountID: senderAccount.id, recipients: internet.map(\.description), releaseAt: releaseAt,
                                             now: now, quota: stores.internetQuota(of: senderAccount))
                }
            }
            let messageID = MessageSanitiser.newMessageID(domain: domain, random: &random)
            var prepared = SubmissionPreparation.prepare(message, sender: sender, domain: domain, now: now,
                                                         messageID: messageID, referenceReplacements: replacements)
            prepared = Self.markedUnscanned(prepared, if: unscanned)
            let threadingRow = try senderAccount.flatMap { account in
                try ids.own.map { try stores.threading.row(original: $0, replacement: messageID, accountID: account.id) }
            }
            let logger = self.logger
            let mailboxes = targets.count
            // On a worker the files are written here, in parallel with other deliveries; on
            // the loop (small messages only) the committer writes them.
            let onQueued = outbound == nil ? nil : self.onQueued
            let quota = outbound?.quota ?? 0
            stores.mail.deliver(prepared, to: targets, threading: threadingRow, outbound: outbound, credits: credits,
                                writingFilesHere: lookup == .readIfNeeded) { result in
                switch result {
                case .success:
                    logger.debug("message stored", metadata: ["mailboxes": "\(mailboxes)", "queued": "\(internet.count)"])
                    onQueued?()
                    completion(.accepted)
                case .failure(DeliveryFailure.internetQuota(let freesAt)):
                    completion(.rejected(self.quotaRefusal(quota: quota, freesAt: freesAt, sender: sender)))
                case .failure(DeliveryFailure.stampSpent):
                    completion(.rejected(SMTPReply(550, "5.7.1", "X-Hashcash: this stamp was already used; mint a new one")))
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

extension SubmissionService {
    struct UnknownRecipient: Error {
        var reply: SMTPReply
    }

    /// The mailboxes `recipients` name, each once: two addresses may name one mailbox
    /// (postmaster@ and the operator). An unknown one refuses the message (550 5.1.1).
    static func mailboxTargets(_ recipients: some Sequence<EmailAddress>, stores: CoreStores,
                               lookup: (EmailAddress) throws -> Account?) throws -> Result<[MailboxTarget], UnknownRecipient> {
        var targets: [MailboxTarget] = []
        for recipient in recipients {
            guard let account = try lookup(recipient) else {
                return .failure(UnknownRecipient(reply: SMTPReply(550, "5.1.1", "No such user here: <\(recipient)>")))
            }
            if !targets.contains(where: { $0.accountID == account.id }) {
                targets.append(MailboxTarget(accountID: account.id, accountName: account.name, quotaBytes: stores.quota(of: account)))
            }
        }
        return .success(targets)
    }

    /// A stamp from an X-Hashcash header, checked (QUOTA-2): version 1, for the account's address
    /// (at the mail domain or the Internet domain), enough bits, not expired.
    static func credit(for text: String, account: Account, configuration: PosternConfiguration, now: Int64) throws -> HashcashCredit {
        let stamp = try HashcashStamp.parse(text)
        let internetForm = "\(account.name)@\(configuration.internetDomain)"
        let resource = stamp.resource.lowercased() == internetForm ? internetForm : "\(account.name)@\(configuration.domain)"
        try stamp.verify(resource: resource, requiredBits: configuration.hashcashBits, now: now)
        return HashcashCredit(accountID: account.id, spentKey: stamp.spentKey,
                              expires: (stamp.time ?? now) + HashcashStamp.validity, recipients: configuration.hashcashRecipients)
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
    /// What the submission path reads from the client's header before sanitising drops it.
    struct ClientHeader: Sendable {
        /// The client's own Message-ID and the ids it refers to (In-Reply-To, References).
        var own: String?
        var references: [String]
        /// X-Hashcash stamps (QUOTA-2); the field never leaves the server (PRIV-1 drops X-*).
        var stamps: [String]
    }

    static func clientHeader(of message: ByteBuffer) -> ClientHeader {
        let header = HeaderSection.parse(message.readableBytesView)
        let own = header.fields(named: "Message-ID").first.flatMap { MessageSanitiser.messageIDs(in: $0.value).first }
        let references = (header.fields(named: "In-Reply-To") + header.fields(named: "References"))
            .flatMap { MessageSanitiser.messageIDs(in: $0.value) }
        let stamps = header.fields(named: "X-Hashcash").map(\.value).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        return ClientHeader(own: own, references: Array(Set(references)), stamps: stamps)
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
