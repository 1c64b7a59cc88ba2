import Foundation
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
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

    public init(configuration: PosternConfiguration, logger: Logger) throws {
        self.configuration = configuration
        folder = try DataFolder(path: configuration.dataDirectory)
        accounts = AccountStore(folder: folder,
                                policy: AccountNamePolicy(domain: configuration.domain, extraReserved: configuration.extraReservedNames),
                                quarantineDays: Int(configuration.nameQuarantine / 86400))
        mail = try MailStore(folder: folder, logger: logger)
        threading = try ThreadingMap(folder: folder)
        authenticator = Authenticator(accounts: accounts,
                                      backoff: LoginBackoff(base: configuration.authPenaltyBase, maximum: configuration.authPenaltyMax),
                                      logger: logger)
    }

    public func close() async {
        await mail.close()
        await authenticator.shutdown()
    }

    func quota(of account: Account) -> Int { account.quotaBytes ?? configuration.mailboxQuota }

    /// The mailbox a local address delivers to: its account, or the operator's for postmaster@
    /// and abuse@ (ACCT-2). nil when there is none.
    func mailbox(for address: EmailAddress) async throws -> Account? {
        let local = address.localPart.lowercased()
        if local == "postmaster" || local == "abuse" {
            return try await accounts.operatorAccount(configured: configuration.operatorAccount)
        }
        return try await accounts.find(local)
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
        switch await stores.authenticator.verify(username: username, password: password) {
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
        // SMTP-4: only local recipients until an Internet gateway exists; never an open relay.
        guard recipient.domain == stores.configuration.domain else {
            return .rejected(SMTPReply(550, "5.7.1", "Relaying to <\(recipient)> denied: this server has no Internet gateway configured"))
        }
        do {
            guard let account = try await stores.mailbox(for: recipient) else {
                return .rejected(SMTPReply(550, "5.1.1", "No such user here: <\(recipient)>"))
            }
            // MBOX-2: refuse at RCPT when the mailbox is already full or the announced size does not fit.
            if account.usedBytes + (declaredSize ?? 1) > stores.quota(of: account) {
                return .rejected(SMTPReply(452, "4.2.2", "Mailbox full: <\(recipient)> is over its quota"))
            }
            return .accepted
        } catch {
            logger.error("recipient lookup failed", metadata: ["error": "\(type(of: error))"])
            return .rejected(SMTPReply(451, "4.3.0", "Temporary local problem, try again later"))
        }
    }

    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome {
        do {
            var targets: [MailboxTarget] = []
            for recipient in envelope.recipients {
                guard let account = try await stores.mailbox(for: recipient) else {
                    return .rejected(SMTPReply(550, "5.1.1", "No such user here: <\(recipient)>"))
                }
                // Two addresses may name one mailbox (postmaster@ and the operator): deliver once.
                if !targets.contains(where: { $0.accountID == account.id }) {
                    targets.append(MailboxTarget(accountID: account.id, accountName: account.name, quotaBytes: stores.quota(of: account)))
                }
            }
            // Threading across Postern's Message-ID replacement (PRIV-2): see ThreadingMap.
            let ids = SubmissionPreparation.messageIDs(of: message)
            let senderAccount = try await stores.accounts.find(envelope.sender.localPart)
            var replacements: [String: String] = [:]
            if let senderAccount {
                replacements = try await stores.threading.replacements(for: ids.references, accountID: senderAccount.id)
            }
            var random = SystemRandomNumberGenerator()
            let messageID = MessageSanitiser.newMessageID(domain: stores.configuration.domain, random: &random)
            let prepared = SubmissionPreparation.prepare(message, sender: envelope.sender, domain: stores.configuration.domain,
                                                         now: Int64(Date().timeIntervalSince1970),
                                                         messageID: messageID, referenceReplacements: replacements)
            let threadingRow = try senderAccount.flatMap { account in
                try ids.own.map { try stores.threading.row(original: $0, replacement: messageID, accountID: account.id) }
            }
            try await stores.mail.deliver(prepared, to: targets, threading: threadingRow)
            logger.debug("message stored", metadata: ["recipients": "\(targets.count)"])
            return .accepted
        } catch DeliveryFailure.mailboxFull(let name) {
            return .rejected(SMTPReply(552, "5.2.2", "Mailbox full: <\(name)@\(stores.configuration.domain)> has no room for this message"))
        } catch {
            logger.error("delivery failed", metadata: ["error": "\(error)"])
            return .rejected(SMTPReply(451, "4.3.0", "Temporary local problem: message not stored, try again later"))
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
    private let locks = NIOLockedValueBox<Set<String>>([])

    init(stores: CoreStores, logger: Logger) {
        self.stores = stores
        self.logger = logger
    }

    func authenticate(username: String, password: String) async -> POP3AuthOutcome {
        switch await stores.authenticator.verify(username: username, password: password) {
        case .success(let account): return .success(mailbox: account.name)
        case .failure:
            logger.info("pop3 authentication failed")
            return .failure
        case .temporaryFailure: return .temporaryFailure
        }
    }

    func lockMaildrop(_ mailbox: String) async -> Bool {
        locks.withLockedValue { $0.insert(mailbox).inserted }
    }

    func unlockMaildrop(_ mailbox: String) async {
        _ = locks.withLockedValue { $0.remove(mailbox) }
    }

    private func accountID(_ mailbox: String) async throws -> Int64 {
        guard let account = try await stores.accounts.find(mailbox) else { throw DeliveryFailure.storage("account gone") }
        return account.id
    }

    func listMessages(in mailbox: String) async throws -> [POP3MessageInfo] {
        try await stores.mail.messages(ofAccount: try await accountID(mailbox)).map { POP3MessageInfo(uid: $0.uid, size: $0.size) }
    }

    func messageBytes(in mailbox: String, uid: String) async throws -> ByteBuffer {
        try await stores.mail.content(ofAccount: try await accountID(mailbox), uid: uid)
    }

    func deleteMessages(in mailbox: String, uids: [String]) async throws {
        try await stores.mail.delete(ofAccount: try await accountID(mailbox), uids: uids)
    }
}
