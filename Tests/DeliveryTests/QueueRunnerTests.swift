import Privacy
import TestSupport
import Foundation
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SMTP
import Store
import Testing
@testable import Delivery

final class ManualClock: DeliveryClock {
    let time: NIOLockedValueBox<Int64>
    init(_ start: Int64) { time = NIOLockedValueBox(start) }
    func now() -> Int64 { time.withLockedValue { $0 } }
    func advance(_ seconds: Int64) { time.withLockedValue { $0 += seconds } }
}

/// A next hop that answers from a script and records what it was given.
final class FakeRelay: MessageRelay {
    struct Call: Sendable { var sender: String; var recipients: [String]; var message: String }
    let calls = NIOLockedValueBox<[Call]>([])
    let answer: NIOLockedValueBox<@Sendable (String) -> RelayClient.Outcome>

    init(_ answer: @escaping @Sendable (String) -> RelayClient.Outcome = { _ in .delivered }) {
        self.answer = NIOLockedValueBox(answer)
    }

    func relay(from sender: String, to recipients: [String], message: ByteBuffer) async -> [RelayClient.Outcome] {
        calls.withLockedValue { $0.append(Call(sender: sender, recipients: recipients, message: String(buffer: message))) }
        let answer = self.answer.withLockedValue { $0 }
        return recipients.map(answer)
    }
}

/// The queue runner over a real data folder (QUEUE-1..2, DELAY-1..4, QUOTA-1..2): what leaves,
/// when, in what form; retries, DSNs, the pool, and what the commit refuses.
@Suite(.serialized) struct QueueRunnerTests {
    struct Fixture {
        let path: String
        let folder: DataFolder
        let mail: MailStore
        let queue: OutboundQueue
        let alice: Account
        let clock: ManualClock
        let relay: FakeRelay
        let runner: QueueRunner
        let workers: NIOThreadPool

        func submit(_ text: String, to recipients: [String], releaseAt: Int64?, quota: Int = 20, credits: [HashcashCredit] = [],
                    local: [MailboxTarget] = []) async throws {
            try await mail.deliver(ByteBuffer(string: text), to: local,
                                   outbound: OutboundEntry(accountID: alice.id, recipients: recipients, releaseAt: releaseAt,
                                                           now: clock.now(), quota: quota), credits: credits)
        }

        /// The sender's mailbox: the DSNs.
        func mailbox() throws -> [String] {
            try mail.messagesNow(ofAccount: alice.id).map { String(buffer: try mail.contentNow(ofAccount: alice.id, uid: $0.uid)) }
        }

        func queueFiles() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: folder.queueDirectory.path) }
    }

    static let retry = RetrySchedule(first: 300, maximum: 3600, giveUpAfter: 86400, delayNoticeAfter: 4 * 3600)

    static func withRunner(schedule: DelaySchedule = DelaySchedule(), _ body: (Fixture) async throws -> Void) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("postern-queue-tests-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let folder = try DataFolder(path: path)
        let accounts = AccountStore(folder: folder, policy: AccountNamePolicy(domain: "mail.i2p"),
                                    hashParameters: PasswordHash.Parameters(log2N: 10, r: 8, p: 1))
        let alice = try accounts.create(name: "alice", password: "correct horse battery")
        let mail = try MailStore(folder: folder, logger: Logger(label: "test"))
        let workers = NIOThreadPool(numberOfThreads: 2)
        workers.start()
        let clock = ManualClock(midnight + 1000)
        let relay = FakeRelay()
        let queue = OutboundQueue(folder: folder)
        let runner = QueueRunner(queue: queue, mail: mail, relay: relay,
                                 settings: .init(domain: "mail.i2p", internetDomain: "i2pmail.org", schedule: schedule, retry: retry),
                                 clock: clock, random: SharedRandom(SplitMix64(seed: 7)), workers: workers, logger: Logger(label: "test"))
        let fixture = Fixture(path: path, folder: folder, mail: mail, queue: queue, alice: alice, clock: clock, relay: relay,
                              runner: runner, workers: workers)
        do {
            try await body(fixture)
        } catch {
            await mail.close()
            try await workers.shutdownGracefully()
            throw error
        }
        await mail.close()
        try await workers.shutdownGracefully()
    }

    static let message = """
        Return-Path: <alice@mail.i2p>\r
        Date: Sun, 29 Nov 2026 00:16:00 +0000\r
        From: Alice <alice@mail.i2p>\r
        To: bob@example.com, carol@mail.i2p\r
        Subject: hello\r
        Message-ID: <abcdefghijklmnopqrstuvwxyz@mail.i2p>\r
        In-Reply-To: <earlier0000000000000000000@mail.i2p>\r
        References: <first@elsewhere.example>\r
         <earlier0000000000000000000@mail.i2p>\r
        \r
        .body line\r

        """

    @Test func nothingLeavesBeforeItsReleaseThenItLeavesSanitisedForTheInternet() async throws {
        try await Self.withRunner { f in
            let release = f.clock.now() + 2500
            try await f.submit(Self.message, to: ["bob@example.com"], releaseAt: release)
            #expect(try f.queueFiles().count == 1)
            _ = await f.runner.runOnce()
            #expect(f.relay.calls.withLockedValue { $0 }.isEmpty)
            f.clock.advance(2499)
            #expect(await f.runner.runOnce() == release)  // the next thing due
            #expect(f.relay.calls.withLockedValue { $0 }.isEmpty)
            f.clock.advance(61)  // leaves a minute after its release time
            _ = await f.runner.runOnce()
            let calls = f.relay.calls.withLockedValue { $0 }
            #expect(calls.count == 1)
            let call = try #require(calls.first)
            #expect(call.sender == "alice@i2pmail.org" && call.recipients == ["bob@example.com"])
            // PRIV-4 at release: Date is the release time (UTC, to the minute), From and To at the
            // Internet domain, the same Message-ID token at the Internet domain, no Return-Path.
            #expect(call.message.contains("Date: \(RFC5322Date.format(secondsSince1970: f.clock.now()))\r\n"))
            #expect(!call.message.contains("Date: Sun, 29 Nov 2026 00:16:00"))
            #expect(call.message.contains("From: Alice <alice@i2pmail.org>\r\n"))
            #expect(call.message.contains("To: bob@example.com, carol@i2pmail.org\r\n"))
            #expect(call.message.contains("Message-ID: <abcdefghijklmnopqrstuvwxyz@i2pmail.org>\r\n"))
            // Postern's own earlier ids move too; anybody else's stay.
            #expect(call.message.contains("In-Reply-To: <earlier0000000000000000000@i2pmail.org>\r\n"))
            #expect(call.message.contains("References: <first@elsewhere.example>\r\n <earlier0000000000000000000@i2pmail.org>\r\n"))
            #expect(!call.message.contains("Return-Path") && !call.message.contains("mail.i2p"))
            #expect(call.message.hasSuffix("\r\n\r\n.body line\r\n"))
            // Done: the row and the file are gone, nothing was bounced.
            #expect(try f.queue.all().isEmpty && f.queueFiles().isEmpty && f.mailbox().isEmpty)
        }
    }

    @Test func temporaryFailuresBackOffThenDelayNoticeThenExpiryBounce() async throws {
        try await Self.withRunner { f in
            f.relay.answer.withLockedValue { $0 = { _ in .temporary(code: 451, status: "4.3.0") } }
            let released = f.clock.now()
            try await f.submit(Self.message, to: ["bob@example.com"], releaseAt: released)
            var waits: [Int64] = []
            var notices = 0
            while let entry = try f.queue.all().first?.recipients.first {
                let before = f.clock.now()
                _ = await f.runner.runOnce()
                guard let after = try f.queue.all().first?.recipients.first else { break }
                #expect(after.attempts == entry.attempts + 1)
                let wait = after.nextAttempt! - before
                waits.append(wait)
                notices = try f.mailbox().filter { $0.contains("Action: delayed") }.count
                #expect(notices == (before - released >= 4 * 3600 ? 1 : 0), "one notice, after 4 hours")
                f.clock.time.withLockedValue { $0 = after.nextAttempt! }
            }
            // 300, 600, 1200, 2400 then the 3600 cap, each stretched by at most a quarter.
            for (index, wait) in waits.dropLast().enumerated() {
                let base = min(3600, 300 << Int64(index))
                #expect(wait >= base && wait <= base + base / 4, "retry \(index + 1) after \(wait) s")
            }
            #expect(f.clock.now() - released <= 86400)
            let reports = try f.mailbox()
            #expect(reports.count == 2)
            let bounce = try #require(reports.first { $0.contains("Action: failed") })
            #expect(bounce.contains("Content-Type: multipart/report; report-type=delivery-status;"))
            #expect(bounce.contains("Final-Recipient: rfc822; bob@example.com\r\nAction: failed\r\nStatus: 5.4.7\r\n"))
            #expect(bounce.contains("Diagnostic-Code: smtp; 451 4.3.0"))  // the last real reply
            #expect(bounce.contains("Content-Type: text/rfc822-headers\r\n\r\nReturn-Path: <alice@mail.i2p>\r\nDate:"))
            #expect(!bounce.contains(".body line"), "the DSN returns the header only")
            #expect(bounce.contains("From: Mail Delivery System <MAILER-DAEMON@mail.i2p>") && bounce.contains("Auto-Submitted: auto-replied"))
            #expect(try f.queue.all().isEmpty && f.queueFiles().isEmpty)
            print("retry schedule (s): \(waits)")
        }
    }

    @Test func aPermanentFailureBouncesAtOnceAndOthersStillGo() async throws {
        try await Self.withRunner { f in
            f.relay.answer.withLockedValue { $0 = { $0 == "gone@example.com" ? .permanent(code: 550, status: "5.1.1") : .delivered } }
            try await f.submit(Self.message, to: ["bob@example.com", "gone@example.com"], releaseAt: f.clock.now())
            _ = await f.runner.runOnce()
            let reports = try f.mailbox()
            #expect(reports.count == 1)
            let bounce = reports[0]
            #expect(bounce.contains("Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1\r\n"))
            #expect(bounce.contains("<gone@example.com>: the recipient's mailbox does not exist"))
            #expect(!bounce.contains("bob@example.com\r\nAction"))
            #expect(!bounce.contains("127.0.0.1") && !bounce.contains("Received:"))
            #expect(try f.queue.all().isEmpty)
        }
    }

    @Test func poolRoundsKeepTheMinimumAndReleaseInRandomOrder() async throws {
        try await Self.withRunner(schedule: DelaySchedule(poolInterval: 600, poolMin: 5, poolRate: 0.6)) { f in
            for index in 0..<8 {
                try await f.submit(Self.message, to: ["r\(index)@example.com"], releaseAt: nil)
            }
            _ = await f.runner.runOnce()  // starts the interval
            #expect(f.relay.calls.withLockedValue { $0 }.isEmpty)
            f.clock.advance(600)
            _ = await f.runner.runOnce()
            #expect(f.relay.calls.withLockedValue { $0.count } == 3)  // 8 held, 5 must stay
            #expect(try f.queue.pooled().count == 5)
            for _ in 0..<5 {
                f.clock.advance(600)
                _ = await f.runner.runOnce()
            }
            #expect(try f.relay.calls.withLockedValue { $0.count } == 3 && f.queue.pooled().count == 5)
            // Two more arrive: 7 held, 2 go.
            try await f.submit(Self.message, to: ["r8@example.com"], releaseAt: nil)
            try await f.submit(Self.message, to: ["r9@example.com"], releaseAt: nil)
            f.clock.advance(600)
            _ = await f.runner.runOnce()
            #expect(try f.relay.calls.withLockedValue { $0.count } == 5 && f.queue.pooled().count == 5)
        }
    }

    @Test func aBatchLeavesTogetherInShuffledOrder() async throws {
        try await Self.withRunner { f in
            let boundary = DelaySchedule().nextBatch(after: f.clock.now())
            let names = (0..<12).map { "b\($0)@example.com" }
            for name in names { try await f.submit(Self.message, to: [name], releaseAt: boundary) }
            f.clock.time.withLockedValue { $0 = boundary }
            _ = await f.runner.runOnce()
            let order = f.relay.calls.withLockedValue { $0.flatMap(\.recipients) }
            #expect(Set(order) == Set(names) && order.count == 12)
            #expect(order != names, "submission order must not survive the batch")
        }
    }

    @Test func theQuotaIsCheckedInTheCommitAndStampsAreSpentOnce() async throws {
        try await Self.withRunner { f in
            let carol = MailboxTarget(accountID: f.alice.id, accountName: "alice", quotaBytes: 1_000_000)
            // 3 Internet recipients with a quota of 2: the whole message is refused, nothing stored.
            await #expect(throws: DeliveryFailure.internetQuota(freesAt: nil)) {
                try await f.submit(Self.message, to: ["a@example.com", "b@example.com", "c@example.com"], releaseAt: f.clock.now(),
                                   quota: 2, local: [carol])
            }
            #expect(try f.queueFiles().isEmpty && f.mailbox().isEmpty && f.queue.all().isEmpty)
            try await f.submit(Self.message, to: ["a@example.com", "b@example.com"], releaseAt: f.clock.now(), quota: 2)
            var allowance = try f.queue.allowance(accountID: f.alice.id, quota: 2, now: f.clock.now())
            #expect(allowance.remaining == 0 && allowance.freesAt == f.clock.now() + 86400)
            // A stamp adds 5; spending it twice is refused, and the refused message leaves nothing.
            let stamp = HashcashCredit(accountID: f.alice.id, spentKey: "k1", expires: f.clock.now() + 1000, recipients: 5)
            try await f.submit(Self.message, to: ["c@example.com"], releaseAt: f.clock.now(), quota: 2, credits: [stamp])
            allowance = try f.queue.allowance(accountID: f.alice.id, quota: 2, now: f.clock.now())
            #expect(allowance.remaining == 4 && allowance.used == 2 && allowance.credit == 4)
            await #expect(throws: DeliveryFailure.stampSpent) {
                try await f.submit(Self.message, to: [], releaseAt: f.clock.now(), credits: [stamp], local: [carol])
            }
            #expect(try f.mailbox().isEmpty && f.queue.all().count == 2)
            // A day later the counted sends have left the window and are purged.
            try f.queue.purge(now: f.clock.now() + 86400)
            allowance = try f.queue.allowance(accountID: f.alice.id, quota: 2, now: f.clock.now() + 86400)
            #expect(allowance.used == 0 && allowance.remaining == 6)
        }
    }

    @Test func theQueueSurvivesReopening() async throws {
        try await Self.withRunner { f in
            let release = f.clock.now() + 3000
            try await f.submit(Self.message, to: ["bob@example.com"], releaseAt: release)
            let reopened = try DataFolder(path: f.path)
            let again = OutboundQueue(folder: reopened)
            let queued = try again.all()
            #expect(queued.count == 1 && queued[0].releaseAt == release && queued[0].recipients.map(\.address) == ["bob@example.com"])
            #expect(String(buffer: try again.content(of: queued[0])) == Self.message)
        }
    }

    @Test func anUnreadableQueueFileIsRetriedThenBouncedNotSpunOn() async throws {
        try await Self.withRunner { f in
            try await f.submit(Self.message, to: ["bob@example.com"], releaseAt: f.clock.now())
            for name in try f.queueFiles() { try FileManager.default.removeItem(atPath: f.folder.queueDirectory.appendingPathComponent(name).path) }
            let next = await f.runner.runOnce()
            #expect(f.relay.calls.withLockedValue { $0 }.isEmpty)
            let entry = try #require(try f.queue.all().first?.recipients.first)
            #expect(entry.attempts == 1 && entry.lastStatus == "4.3.0")
            #expect(next.map { $0 > f.clock.now() } == true, "the next round is in the future")
            f.clock.advance(86400 + 1)
            _ = await f.runner.runOnce()
            #expect(try f.queue.all().isEmpty)
            let reports = try f.mailbox()
            #expect(reports.count == 1 && reports[0].contains("Status: 5.4.7"))
        }
    }

    @Test func runSleepsUntilWokenAndStopsWhenAsked() async throws {
        try await Self.withRunner { f in
            let runner = f.runner
            let loop = Task { await runner.run() }
            try await Task.sleep(nanoseconds: 150_000_000)  // idle: asleep for up to a second
            try await f.submit(Self.message, to: ["bob@example.com"], releaseAt: f.clock.now())
            let woken = ContinuousClock.now
            runner.wake()
            while f.relay.calls.withLockedValue({ $0.isEmpty }) && ContinuousClock.now - woken < .seconds(3) {
                try await Task.sleep(nanoseconds: 5_000_000)
            }
            #expect(ContinuousClock.now - woken < .milliseconds(500), "wake() must end the sleep")
            // A storm of wake-ups from many tasks at once: no lost or doubled resumption.
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { for _ in 0..<2000 { runner.wake() } } }
            }
            try await f.submit(Self.message, to: ["carol@example.com"], releaseAt: f.clock.now())
            let submitted = ContinuousClock.now
            while f.relay.calls.withLockedValue({ $0.count }) < 2 && ContinuousClock.now - submitted < .seconds(3) {
                try await Task.sleep(nanoseconds: 5_000_000)
            }
            #expect(f.relay.calls.withLockedValue { $0.count } == 2)
            let stopping = ContinuousClock.now
            runner.stop()
            await loop.value
            #expect(ContinuousClock.now - stopping < .milliseconds(500))
        }
    }

    @Test func moreDueThanOneBatchAreTakenInTurns() async throws {
        try await Self.withRunner { f in
            let count = OutboundQueue.dueBatch + 30
            for index in 0..<count {
                try await f.submit(Self.message, to: ["b\(index)@example.com"], releaseAt: f.clock.now(), quota: count)
            }
            // One round takes one batch and says to come back at once; the next takes the rest.
            #expect(await f.runner.runOnce() == f.clock.now())
            #expect(f.relay.calls.withLockedValue { $0.count } == OutboundQueue.dueBatch)
            #expect(await f.runner.runOnce() != nil)  // the pool round is still scheduled
            #expect(f.relay.calls.withLockedValue { $0.count } == count)
            #expect(try f.queue.all().isEmpty)
        }
    }
}
