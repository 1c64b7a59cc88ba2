import Foundation
import Logging
import MailCore
import NIOCore
import NIOPosix
import SMTP
import Store
import Testing
@testable import PosternApp

/// The submission backend over real stores: recipients (SMTP-4), quota (MBOX-2), postmaster@ and
/// abuse@ (ACCT-2), and what gets stored.
@Suite struct SubmissionServiceTests {
    static let password = "correct horse battery"
    static let fast = PasswordHash.Parameters(log2N: 10, r: 8, p: 1)

    struct Fixture {
        let stores: CoreStores
        let service: SubmissionService
        /// Account administration on the same folder with fast hashing.
        let accounts: AccountStore
    }

    static func withService(quota: Int = 50_000_000, operatorAccount: String? = nil, routingCacheLifetime: Double = 2,
                            configure: (inout PosternConfiguration) -> Void = { _ in },
                            _ body: (Fixture) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("postern-app-tests-\(UUID().uuidString)", isDirectory: true).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var configuration = PosternConfiguration()
        configuration.dataDirectory = path
        configuration.mailboxQuota = quota
        configuration.operatorAccount = operatorAccount
        configure(&configuration)
        let logger = Logger(label: "test")
        let stores = try CoreStores(configuration: configuration, logger: logger, routingCacheLifetime: routingCacheLifetime)
        let fixture = Fixture(stores: stores, service: SubmissionService(stores: stores, logger: logger),
                              accounts: AccountStore(folder: stores.folder, policy: AccountNamePolicy(domain: "mail.i2p"),
                                                     hashParameters: fast))
        do {
            try await body(fixture)
            await stores.close()
        } catch {
            await stores.close()
            throw error
        }
    }

    static func address(_ text: String) -> EmailAddress { EmailAddress(text)! }
    static let alice = address("alice@mail.i2p")

    static func code(_ verdict: RecipientVerdict) -> String {
        switch verdict {
        case .accepted: return "accepted"
        case .rejected(let reply): return "\(reply.code) \(reply.enhanced ?? "")"
        }
    }

    static func code(_ outcome: DeliveryOutcome) -> String {
        switch outcome {
        case .accepted: return "accepted"
        case .rejected(let reply): return "\(reply.code) \(reply.enhanced ?? "")"
        }
    }

    @Test func recipientsAreCheckedAgainstAccounts() async throws {
        try await Self.withService { f in
            _ = try f.accounts.create(name: "alice", password: Self.password)
            _ = try f.accounts.create(name: "bob", password: Self.password)
            #expect(Self.code(await f.service.checkRecipient(Self.address("bob@mail.i2p"), sender: Self.alice, declaredSize: nil)) == "accepted")
            #expect(Self.code(await f.service.checkRecipient(Self.address("BOB@Mail.I2P"), sender: Self.alice, declaredSize: 10)) == "accepted")
            #expect(Self.code(await f.service.checkRecipient(Self.address("carol@mail.i2p"), sender: Self.alice, declaredSize: nil)) == "550 5.1.1")
        }
    }

    @Test func internetRecipientsAreRefusedWithoutAGateway() async throws {
        try await Self.withService { f in
            _ = try f.accounts.create(name: "alice", password: Self.password)
            let verdict = await f.service.checkRecipient(Self.address("someone@example.com"), sender: Self.alice, declaredSize: nil)
            #expect(Self.code(verdict) == "550 5.7.1")
            // Not even when the local part names an account.
            #expect(Self.code(await f.service.checkRecipient(Self.address("alice@i2pmail.org"), sender: Self.alice, declaredSize: nil)) == "550 5.7.1")
        }
    }

    @Test(arguments: ["postmaster@mail.i2p", "abuse@mail.i2p", "PostMaster@mail.i2p"])
    func postmasterAndAbuseReachTheOperator(recipient: String) async throws {
        try await Self.withService { f in
            #expect(Self.code(await f.service.checkRecipient(Self.address(recipient), sender: Self.alice, declaredSize: nil)) == "550 5.1.1")
            let oldest = try f.accounts.create(name: "zoe", password: Self.password)
            _ = try f.accounts.create(name: "adam", password: Self.password)
            #expect(Self.code(await f.service.checkRecipient(Self.address(recipient), sender: Self.alice, declaredSize: nil)) == "accepted")
            let mailbox = try f.stores.mailbox(for: Self.address(recipient))
            #expect(mailbox?.id == oldest.id)
        }
    }

    @Test func configuredOperatorReceivesPostmasterMail() async throws {
        try await Self.withService(operatorAccount: "adam") { f in
            _ = try f.accounts.create(name: "zoe", password: Self.password)
            let adam = try f.accounts.create(name: "adam", password: Self.password)
            #expect(try f.stores.mailbox(for: Self.address("postmaster@mail.i2p"))?.id == adam.id)
            #expect(try f.stores.mailbox(for: Self.address("abuse@mail.i2p"))?.id == adam.id)
        }
    }

    @Test func quotaIsCheckedAtRCPTWithTheDeclaredSize() async throws {
        try await Self.withService(quota: 1000) { f in
            _ = try f.accounts.create(name: "bob", password: Self.password)
            _ = try f.accounts.create(name: "carol", password: Self.password, quotaBytes: 100)
            let bob = Self.address("bob@mail.i2p")
            let carol = Self.address("carol@mail.i2p")
            #expect(Self.code(await f.service.checkRecipient(bob, sender: Self.alice, declaredSize: 1000)) == "accepted")
            #expect(Self.code(await f.service.checkRecipient(bob, sender: Self.alice, declaredSize: 1001)) == "452 4.2.2")
            #expect(Self.code(await f.service.checkRecipient(carol, sender: Self.alice, declaredSize: 100)) == "accepted")
            #expect(Self.code(await f.service.checkRecipient(carol, sender: Self.alice, declaredSize: 101)) == "452 4.2.2")
            #expect(Self.code(await f.service.checkRecipient(carol, sender: Self.alice, declaredSize: nil)) == "accepted")
            // A change made in this process is seen at once (the routing cache forgets the account).
            _ = try f.stores.accounts.apply(settings: [("quota", "default")], to: "carol")
            #expect(Self.code(await f.service.checkRecipient(carol, sender: Self.alice, declaredSize: 1000)) == "accepted")
        }
    }

    @Test func deliveredMessageIsStoredPreparedWithTheBodyIntact() async throws {
        try await Self.withService { f in
            _ = try f.accounts.create(name: "alice", password: Self.password)
            let bob = try f.accounts.create(name: "bob", password: Self.password)
            let message = "Return-Path: <forged@evil.example>\r\nFrom: Alice <alice@mail.i2p>\r\nTo: bob@mail.i2p\r\nSubject: hi\r\n\r\nHello Bob.\r\n.\r\n"
            let outcome = await f.service.deliver(SubmissionEnvelope(sender: Self.alice, recipients: [Self.address("bob@mail.i2p")]),
                                                  message: ByteBuffer(string: message))
            #expect(outcome == .accepted)
            let stored = try await f.stores.mail.messages(ofAccount: bob.id)
            #expect(stored.count == 1)
            let bytes = try await f.stores.mail.content(ofAccount: bob.id, uid: try #require(stored.first).uid)
            let text = String(buffer: bytes)
            #expect(text.hasPrefix("Return-Path: <alice@mail.i2p>\r\n"))
            #expect(!text.contains("evil.example"))
            #expect(text.contains("\r\nSubject: hi\r\n"))
            #expect(text.hasSuffix("\r\n\r\nHello Bob.\r\n.\r\n"))
            #expect(try f.accounts.require("bob").usedBytes == bytes.readableBytes)
        }
    }

    @Test func postmasterAndTheOperatorsOwnAddressGetOneCopy() async throws {
        try await Self.withService { f in
            let op = try f.accounts.create(name: "op", password: Self.password)
            let envelope = SubmissionEnvelope(sender: Self.alice, recipients: [
                Self.address("postmaster@mail.i2p"), Self.address("abuse@mail.i2p"), Self.address("op@mail.i2p"),
            ])
            #expect(await f.service.deliver(envelope, message: ByteBuffer(string: "Subject: x\r\n\r\nhi\r\n")) == .accepted)
            #expect(try await f.stores.mail.messages(ofAccount: op.id).count == 1)
        }
    }

    @Test func deliveryToAFullMailboxIsRefusedWith552() async throws {
        try await Self.withService { f in
            let carol = try f.accounts.create(name: "carol", password: Self.password, quotaBytes: 200)
            let envelope = SubmissionEnvelope(sender: Self.alice, recipients: [Self.address("carol@mail.i2p")])
            let big = "Subject: big\r\n\r\n" + String(repeating: "x", count: 300) + "\r\n"
            #expect(Self.code(await f.service.deliver(envelope, message: ByteBuffer(string: big))) == "552 5.2.2")
            #expect(try await f.stores.mail.messages(ofAccount: carol.id).isEmpty)
            #expect(try f.accounts.require("carol").usedBytes == 0)
        }
    }

    @Test func deliveryToAnAccountDeletedSinceRCPTIsRefused() async throws {
        try await Self.withService { f in
            _ = try f.accounts.create(name: "dave", password: Self.password)
            let envelope = SubmissionEnvelope(sender: Self.alice, recipients: [Self.address("dave@mail.i2p")])
            try f.accounts.delete("dave")
            #expect(Self.code(await f.service.deliver(envelope, message: ByteBuffer(string: "Subject: x\r\n\r\nhi\r\n"))) == "550 5.1.1")
        }
    }

    @Test func authenticationNamesTheAccountAddress() async throws {
        try await Self.withService { f in
            _ = try f.accounts.create(name: "alice", password: Self.password)
            #expect(await f.service.authenticate(username: "ALICE", password: Self.password) == .success(Self.alice))
            #expect(await f.service.authenticate(username: "alice", password: "wrong password!") == .failure)
        }
    }

    // MARK: the event-loop paths the SMTP server uses (one hop to the workers, or none)

    static var loop: any EventLoop { MultiThreadedEventLoopGroup.singleton.any() }

    @Test func loopPathsAnswerLikeTheAsyncOnes() async throws {
        try await Self.withService { f in
            _ = try f.accounts.create(name: "alice", password: Self.password)
            _ = try f.accounts.create(name: "bob", password: Self.password)
            let bob = Self.address("bob@mail.i2p")
            #expect(try await f.service.authenticate(username: "Alice", password: Self.password, on: Self.loop).get() == .success(Self.alice))
            #expect(try await f.service.authenticate(username: "alice", password: "wrong password!", on: Self.loop).get() == .failure)
            #expect(Self.code(try await f.service.checkRecipient(bob, sender: Self.alice, declaredSize: nil, on: Self.loop).get()) == "accepted")
            #expect(Self.code(try await f.service.checkRecipient(Self.address("nobody@mail.i2p"), sender: Self.alice, declaredSize: nil, on: Self.loop).get()) == "550 5.1.1")
            #expect(Self.code(try await f.service.checkRecipient(Self.address("x@example.com"), sender: Self.alice, declaredSize: nil, on: Self.loop).get()) == "550 5.7.1")
            let envelope = SubmissionEnvelope(sender: Self.alice, recipients: [bob])
            let message = ByteBuffer(string: "From: alice@mail.i2p\r\nSubject: loop\r\n\r\nvia the loop path\r\n")
            #expect(Self.code(try await f.service.deliver(envelope, message: message, on: Self.loop).get()) == "accepted")
            let stored = try await f.stores.mail.messages(ofAccount: try f.accounts.require("bob").id)
            #expect(stored.count == 1)
        }
    }

    /// The loop path (recent accounts, no references) records the threading row; the reply,
    /// which refers to the first message, takes the worker path and is rewritten to Postern's id.
    @Test func threadingWorksAcrossTheLoopAndWorkerPaths() async throws {
        try await Self.withService { f in
            _ = try f.accounts.create(name: "alice", password: Self.password)
            let bob = try f.accounts.create(name: "bob", password: Self.password)
            let bobAddress = Self.address("bob@mail.i2p")
            // fill the recent accounts as a session does: AUTH, then RCPT
            _ = try await f.service.authenticate(username: "alice", password: Self.password, on: Self.loop).get()
            _ = try await f.service.checkRecipient(bobAddress, sender: Self.alice, declaredSize: nil, on: Self.loop).get()
            let envelope = SubmissionEnvelope(sender: Self.alice, recipients: [bobAddress])
            let first = "From: alice@mail.i2p\r\nMessage-ID: <first@laptop.lan>\r\nSubject: a\r\n\r\none\r\n"
            #expect(try await f.service.deliver(envelope, message: ByteBuffer(string: first), on: Self.loop).get() == .accepted)
            let reply = "From: alice@mail.i2p\r\nIn-Reply-To: <first@laptop.lan>\r\nSubject: b\r\n\r\ntwo\r\n"
            #expect(try await f.service.deliver(envelope, message: ByteBuffer(string: reply), on: Self.loop).get() == .accepted)

            let stored = try await f.stores.mail.messages(ofAccount: bob.id)
            #expect(stored.count == 2)
            let texts = try await stored.asyncMap { String(buffer: try await f.stores.mail.content(ofAccount: bob.id, uid: $0.uid)) }
            func header(_ name: String, _ text: String) -> String? {
                text.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                    .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
            }
            let firstStored = try #require(texts.first { $0.hasSuffix("\r\n\r\none\r\n") })
            let replyStored = try #require(texts.first { $0.hasSuffix("\r\n\r\ntwo\r\n") })
            let firstID = try #require(header("Message-ID", firstStored))
            #expect(firstID.hasSuffix("@mail.i2p>"))
            #expect(header("In-Reply-To", replyStored) == firstID)
            #expect(!texts.contains { $0.contains("laptop.lan") })
        }
    }

    /// RCPT TO remembers the account; another process (the CLI) deleting it is seen at once
    /// through the shared account generation, and a delivery already past RCPT is refused by the
    /// committer, inside the delivery's transaction.
    @Test func accountDeletedByAnotherProcessAfterRCPTIsRefusedAtDelivery() async throws {
        try await Self.withService(routingCacheLifetime: 600) { f in
            _ = try f.accounts.create(name: "erin", password: Self.password)
            let erin = Self.address("erin@mail.i2p")
            #expect(Self.code(try await f.service.checkRecipient(erin, sender: Self.alice, declaredSize: nil, on: Self.loop).get()) == "accepted")
            #expect(f.stores.recentMailbox(for: erin)?.name == "erin")
            try f.accounts.delete("erin")  // f.accounts is a second store on the folder, as the CLI
            // the shared account generation moved: the routing cache no longer answers for erin
            #expect(f.stores.recentMailbox(for: erin) == nil)
            #expect(Self.code(try await f.service.checkRecipient(erin, sender: Self.alice, declaredSize: nil, on: Self.loop).get()) == "550 5.1.1")
            // and a transaction that passed RCPT before the deletion is refused inside the commit
            let envelope = SubmissionEnvelope(sender: Self.alice, recipients: [erin])
            let outcome = try await f.service.deliver(envelope, message: ByteBuffer(string: "Subject: x\r\n\r\nhi\r\n"), on: Self.loop).get()
            #expect(Self.code(outcome) == "550 5.1.1")
            #expect(try f.stores.folder.messageFileCount() == 0)
        }
    }

    @Test func changesMadeInThisProcessAreSeenAtOnceByRouting() async throws {
        try await Self.withService(quota: 1000) { f in
            _ = try f.stores.accounts.create(name: "fred", password: Self.password)
            let fred = Self.address("fred@mail.i2p")
            #expect(Self.code(try await f.service.checkRecipient(fred, sender: Self.alice, declaredSize: 500, on: Self.loop).get()) == "accepted")
            _ = try f.stores.accounts.apply(settings: [("quota", "100")], to: "fred")
            #expect(Self.code(try await f.service.checkRecipient(fred, sender: Self.alice, declaredSize: 500, on: Self.loop).get()) == "452 4.2.2")
            try f.stores.accounts.delete("fred")
            #expect(Self.code(try await f.service.checkRecipient(fred, sender: Self.alice, declaredSize: nil, on: Self.loop).get()) == "550 5.1.1")
        }
    }
}

extension DataFolder {
    func messageFileCount() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: messagesDirectory.path).count
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
