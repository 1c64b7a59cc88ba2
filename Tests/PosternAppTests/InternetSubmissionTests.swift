import Delivery
import Foundation
import MailCore
import NIOCore
import SMTP
import Store
import Testing
@testable import PosternApp

/// SMTP-4 and QUOTA-1/2 on the submission path: Internet recipients with a gateway configured,
/// the quota at RCPT (counting the transaction's earlier recipients), the queue entry with its
/// release time from the account's delay mode, and X-Hashcash stamps.
@Suite struct InternetSubmissionTests {
    typealias S = SubmissionServiceTests

    static func withGateway(_ body: (SubmissionServiceTests.Fixture) async throws -> Void) async throws {
        try await S.withService(configure: { config in
            config.relay = HostPort(host: "127.0.0.1", port: 2525)
            config.internetRecipientsPerDay = 3
            config.hashcashBits = 10
            config.hashcashRecipients = 2
        }, body)
    }

    static func rcpt(_ f: S.Fixture, _ to: String, earlier: [String] = []) async -> String {
        S.code(await f.service.checkRecipient(S.address(to), sender: S.alice, declaredSize: nil, earlier: earlier.map(S.address)))
    }

    static func message(_ extra: String = "") -> ByteBuffer {
        ByteBuffer(string: "From: alice@mail.i2p\r\nTo: x@example.com\r\n\(extra)Subject: s\r\n\r\nbody\r\n")
    }

    @Test func routesThatNoGatewayCanServeAreRefused() async throws {
        try await Self.withGateway { f in
            _ = try f.accounts.create(name: "alice", password: S.password)
            #expect(await Self.rcpt(f, "bob@example.com") == "accepted")
            #expect(await Self.rcpt(f, "alice@i2pmail.org") == "550 5.7.1")   // our own users: write to @mail.i2p
            #expect(await Self.rcpt(f, "eve@other.i2p") == "550 5.1.2")      // other I2P mail systems
            #expect(await Self.rcpt(f, "eve@localhost") == "550 5.1.2")
        }
    }

    @Test func theQuotaCountsEarlierRecipientsAndSaysWhenItFreesUp() async throws {
        try await Self.withGateway { f in
            _ = try f.accounts.create(name: "alice", password: S.password)
            // Three allowed: the fourth Internet RCPT of one transaction gets 450 4.7.1.
            #expect(await Self.rcpt(f, "d@example.com", earlier: ["a@example.com", "b@example.com"]) == "accepted")
            #expect(await Self.rcpt(f, "d@example.com", earlier: ["a@example.com", "b@example.com", "c@example.com"]) == "450 4.7.1")
            // A repeated RCPT counts once.
            #expect(await Self.rcpt(f, "c@example.com", earlier: ["a@example.com", "b@example.com", "c@example.com"]) == "accepted")
            // Local recipients do not count.
            #expect(await Self.rcpt(f, "d@example.com", earlier: ["a@example.com", "b@example.com", "bob@mail.i2p"]) == "accepted")
            // Three sent: the quota is used up, and the refusal says when it frees up.
            let envelope = SubmissionEnvelope(sender: S.alice, recipients: ["a@example.com", "b@example.com", "c@example.com"].map(S.address))
            #expect(await f.service.deliver(envelope, message: Self.message()) == .accepted)
            let verdict = await f.service.checkRecipient(S.address("e@example.com"), sender: S.alice, declaredSize: nil)
            guard case .rejected(let reply) = verdict else { Issue.record("expected a refusal"); return }
            #expect(reply.code == 450 && reply.enhanced == "4.7.1")
            #expect(reply.lines[0].contains("3 per 24 hours; the next one frees up at "))
            #expect(reply.lines[0].contains("X-Hashcash"))
        }
    }

    @Test func theCommitRefusesWhatRCPTCouldNotSee() async throws {
        try await Self.withGateway { f in
            _ = try f.accounts.create(name: "alice", password: S.password)
            // Four Internet recipients that no RCPT check counted (as concurrent sessions might):
            // the commit refuses the whole message with the same 450 as RCPT.
            let envelope = SubmissionEnvelope(sender: S.alice, recipients: (1...4).map { S.address("r\($0)@example.com") })
            guard case .rejected(let reply) = await f.service.deliver(envelope, message: Self.message()) else {
                Issue.record("over-quota message accepted"); return
            }
            #expect(reply.code == 450 && reply.enhanced == "4.7.1" && reply.lines[0].contains("3 per 24 hours"))
            #expect(try f.stores.queue.all().isEmpty)
        }
    }

    @Test func queuedWithTheReleaseTimeOfTheAccountsDelayMode() async throws {
        try await Self.withGateway { f in
            _ = try f.accounts.create(name: "alice", password: S.password)
            let bob = try f.accounts.create(name: "bob", password: S.password)
            let envelope = SubmissionEnvelope(sender: S.alice, recipients: [S.address("x@example.com"), S.address("bob@mail.i2p")])
            let before = Int64(Date().timeIntervalSince1970)
            #expect(await f.service.deliver(envelope, message: Self.message()) == .accepted)
            let queued = try f.stores.queue.all()
            #expect(queued.count == 1 && queued[0].recipients.map(\.address) == ["x@example.com"])
            // The queued copy, written by the worker with the mailbox copies, is the prepared message.
            #expect(String(buffer: try f.stores.queue.content(of: queued[0])).contains("\r\nSubject: s\r\n"))
            let delay = try #require(queued[0].releaseAt) - before
            #expect(delay >= 2000 && delay <= 4001, "defer is the default: \(delay) s")
            #expect(try await f.stores.mail.messages(ofAccount: bob.id).count == 1)  // the local copy, at once
            _ = try f.accounts.apply(settings: [("delay", "pool")], to: "alice")  // seen at once (the shared generation)
            #expect(await f.service.deliver(SubmissionEnvelope(sender: S.alice, recipients: [S.address("y@example.com")]),
                                            message: Self.message()) == .accepted)
            #expect(try f.stores.queue.pooled().count == 1)
        }
    }

    @Test func hashcashStampsAddCreditOnceAndBadOnesAreRefusedWithAReason() async throws {
        try await Self.withGateway { f in
            _ = try f.accounts.create(name: "alice", password: S.password)
            var random = SystemRandomNumberGenerator()
            let now = Int64(Date().timeIntervalSince1970)
            let stamp = HashcashStamp.mint(resource: "alice@mail.i2p", bits: 10, now: now, random: &random)
            let toSelf = SubmissionEnvelope(sender: S.alice, recipients: [S.alice])
            #expect(await f.service.deliver(toSelf, message: Self.message("X-Hashcash: \(stamp)\r\n")) == .accepted)
            #expect(try await f.stores.accounts.find("alice")?.internetCredit == 2)
            // The header does not reach the mailbox (PRIV-1 drops X-*).
            let alice = try #require(try await f.stores.accounts.find("alice"))
            let stored = try await f.stores.mail.messages(ofAccount: alice.id)
            #expect(!String(buffer: try await f.stores.mail.content(ofAccount: alice.id, uid: stored[0].uid)).contains("Hashcash"))
            // Spent: the same stamp again is refused and nothing is stored.
            guard case .rejected(let again) = await f.service.deliver(toSelf, message: Self.message("X-Hashcash: \(stamp)\r\n")) else {
                Issue.record("a spent stamp must be refused"); return
            }
            #expect(again.code == 550 && again.lines[0].contains("already used"))
            #expect(try await f.stores.mail.messages(ofAccount: alice.id).count == 1)
            // Malformed, too weak, or for someone else: refused, saying why.
            let bob = HashcashStamp.mint(resource: "bob@mail.i2p", bits: 10, now: now, random: &random)
            let weak = HashcashStamp.mint(resource: "alice@mail.i2p", bits: 4, now: now, random: &random)
            for (text, why) in [("1:10:261129:alice", "7 fields"), ("\(bob)", "not for this account"), ("\(weak)", "bits")] {
                guard case .rejected(let reply) = await f.service.deliver(toSelf, message: Self.message("X-Hashcash: \(text)\r\n")) else {
                    Issue.record("\(text) must be refused"); continue
                }
                #expect(reply.code == 550 && reply.enhanced == "5.7.1" && reply.lines[0].contains(why), "\(reply.lines)")
            }
            // The stamp for the Internet form of the address counts too.
            let internetForm = HashcashStamp.mint(resource: "alice@i2pmail.org", bits: 10, now: now, random: &random)
            #expect(await f.service.deliver(toSelf, message: Self.message("X-Hashcash: \(internetForm)\r\n")) == .accepted)
            #expect(try await f.stores.accounts.find("alice")?.internetCredit == 4)
        }
    }
}
