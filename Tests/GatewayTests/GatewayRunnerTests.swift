import Foundation
import Logging
import MailCore
import NIOCore
import Testing
@testable import Gateway

/// A clock the test moves by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Int64

    init(_ start: Int64) { current = start }

    var now: Int64 { lock.withLock { current } }
    func set(_ time: Int64) { lock.withLock { current = time } }
}

/// One call to a fake delivery.
struct DeliveryCall: Sendable, Equatable {
    var sender: String
    var recipients: [String]
    var domain: String?
    var message: String
}

/// The Internet, answering per recipient with what `outcome` says (delivered by default).
final class FakeInternet: InternetDelivery, @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [DeliveryCall] = []
    private var outcome: @Sendable (String) -> GatewayOutcome

    init(_ outcome: @escaping @Sendable (String) -> GatewayOutcome = { _ in .delivered }) { self.outcome = outcome }

    func respond(with outcome: @escaping @Sendable (String) -> GatewayOutcome) { lock.withLock { self.outcome = outcome } }
    var calls: [DeliveryCall] { lock.withLock { recorded } }

    func deliver(from sender: String, to recipients: [String], domain: String, message: ByteBuffer) async -> [GatewayOutcome] {
        lock.withLock {
            recorded.append(DeliveryCall(sender: sender, recipients: recipients, domain: domain, message: String(buffer: message)))
            return recipients.map(outcome)
        }
    }
}

/// The core behind the link, answering every recipient with `outcome`.
final class FakeCore: CoreDelivery, @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [DeliveryCall] = []
    private var outcome: GatewayOutcome

    init(_ outcome: GatewayOutcome = .delivered) { self.outcome = outcome }

    func respond(with outcome: GatewayOutcome) { lock.withLock { self.outcome = outcome } }
    var calls: [DeliveryCall] { lock.withLock { recorded } }

    func deliver(from sender: String, to recipients: [String], message: ByteBuffer) async -> [GatewayOutcome] {
        lock.withLock {
            recorded.append(DeliveryCall(sender: sender, recipients: recipients, domain: nil, message: String(buffer: message)))
            return recipients.map { _ in outcome }
        }
    }
}

/// A runner over a temporary queue folder with fakes on both sides and a manual clock.
struct RunnerFixture {
    let folder = TemporaryFolder()
    let clock: ManualClock
    let internet: FakeInternet
    let core: FakeCore
    let retry: RetrySchedule
    var runner: GatewayRunner

    static let message = Array("""
        From: Alice <alice@i2pmail.org>\r
        To: Bob <bob@example.com>\r
        Subject: the plan\r
        \r
        the body stays private\r

        """.utf8)

    init(start: Int64 = 1_000_000, internet: FakeInternet = FakeInternet(), core: FakeCore = FakeCore(),
         retry: RetrySchedule = RetrySchedule(first: 100, maximum: 1000, giveUpAfter: 100_000, delayNoticeAfter: 50_000)) throws {
        clock = ManualClock(start)
        self.internet = internet
        self.core = core
        self.retry = retry
        runner = try Self.makeRunner(folder: folder, clock: clock, internet: internet, core: core, retry: retry)
    }

    static func makeRunner(folder: TemporaryFolder, clock: ManualClock, internet: FakeInternet, core: FakeCore,
                           retry: RetrySchedule) throws -> GatewayRunner {
        try GatewayRunner(queue: GatewayQueue(directory: folder.path), internet: internet, core: core,
                          settings: .init(internetDomain: "i2pmail.org", coreDomain: "mail.i2p", retry: retry),
                          now: { [clock] in clock.now }, logger: Logger(label: "test"))
    }

    /// A second runner over the same folder, as after a restart.
    mutating func restart() throws {
        runner = try Self.makeRunner(folder: folder, clock: clock, internet: internet, core: core, retry: retry)
    }

    func enqueue(sender: String = "alice@i2pmail.org", to recipients: [String] = ["bob@example.com"]) throws {
        try runner.enqueue(destination: .internet, sender: sender, recipients: recipients, message: Self.message)
    }

    /// The entries on disk, read by a fresh queue (which is what a restart would see).
    func onDisk() throws -> [GatewayQueueEntry] {
        try GatewayQueue(directory: folder.path).load()
    }
}

@Suite struct GatewayRunnerTests {
    @Test func deliveredMessageLeavesNothingBehind() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.folder.cleanUp() }
        try fixture.enqueue()
        #expect(fixture.runner.count == 1)
        #expect(fixture.folder.listing.count == 2)

        let next = await fixture.runner.runOnce()
        #expect(next == nil)
        #expect(fixture.internet.calls == [DeliveryCall(sender: "alice@i2pmail.org", recipients: ["bob@example.com"],
                                                        domain: "example.com", message: String(decoding: RunnerFixture.message, as: UTF8.self))])
        #expect(fixture.runner.count == 0)
        #expect(fixture.folder.listing.isEmpty)
        #expect(fixture.core.calls.isEmpty)
        // Nothing is tried twice.
        await fixture.runner.runOnce()
        #expect(fixture.internet.calls.count == 1)
    }

    @Test func permanentFailureBouncesToTheSenderAtTheCore() async throws {
        let fixture = try RunnerFixture(internet: FakeInternet { _ in .permanent(code: 550, status: "5.1.1") })
        defer { fixture.folder.cleanUp() }
        try fixture.enqueue()
        await fixture.runner.runOnce()

        // The original is gone; only the report is queued, for the core, from the null sender.
        let queued = try fixture.onDisk()
        #expect(queued.count == 1)
        #expect(queued.first?.destination == .core)
        #expect(queued.first?.sender == "")
        #expect(queued.first?.recipients.map(\.address) == ["alice@mail.i2p"])
        #expect(fixture.runner.count == 1)
        #expect(fixture.core.calls.isEmpty)

        await fixture.runner.runOnce()
        let calls = fixture.core.calls
        #expect(calls.count == 1)
        #expect(calls.first?.sender == "")
        #expect(calls.first?.recipients == ["alice@mail.i2p"])
        let report = calls.first?.message ?? ""
        #expect(report.contains("To: <alice@mail.i2p>\r\n"))
        #expect(report.contains("Content-Type: multipart/report; report-type=delivery-status;"))
        #expect(report.contains("Final-Recipient: rfc822; bob@example.com\r\n"))
        #expect(report.contains("Action: failed\r\n"))
        #expect(report.contains("Status: 5.1.1\r\n"))
        // The remote reply appears as its codes only: the line ends right after them.
        #expect(report.contains("Diagnostic-Code: smtp; 550 5.1.1\r\n"))
        #expect(report.contains("Subject: the plan\r\n"))         // the original header is returned
        #expect(!report.contains("the body stays private"))      // but not the body
        #expect(!report.contains("To: <alice@i2pmail.org>"))
        // Delivered to the core: nothing left.
        #expect(fixture.runner.count == 0)
        #expect(fixture.folder.listing.isEmpty)
        #expect(fixture.internet.calls.count == 1)
    }

    @Test func temporaryFailureIsRetriedOnTheSchedule() async throws {
        let fixture = try RunnerFixture(internet: FakeInternet { _ in .temporary(code: 451, status: "4.3.0") })
        defer { fixture.folder.cleanUp() }
        let start = fixture.clock.now
        try fixture.enqueue()
        let next = await fixture.runner.runOnce()

        let entry = try #require(try fixture.onDisk().first)
        #expect(entry.attempts == 1)
        #expect(entry.recipients.first?.state == .pending)
        #expect(entry.recipients.first?.code == 451)
        #expect(entry.recipients.first?.status == "4.3.0")
        // first = 100 s, plus up to 25 % jitter.
        #expect((start + 100)...(start + 125) ~= entry.nextAttempt)
        #expect(next == entry.nextAttempt)
        #expect(fixture.core.calls.isEmpty)  // no report for a temporary failure

        // Not due yet: nothing happens.
        fixture.clock.set(entry.nextAttempt - 1)
        await fixture.runner.runOnce()
        #expect(fixture.internet.calls.count == 1)

        // Second failure: twice the wait, counted.
        fixture.clock.set(entry.nextAttempt)
        let secondNext = await fixture.runner.runOnce()
        #expect(fixture.internet.calls.count == 2)
        let second = try #require(try fixture.onDisk().first)
        #expect(second.attempts == 2)
        #expect((entry.nextAttempt + 200)...(entry.nextAttempt + 250) ~= second.nextAttempt)
        #expect(secondNext == second.nextAttempt)

        // Then it goes through.
        fixture.internet.respond { _ in .delivered }
        fixture.clock.set(second.nextAttempt + 5)
        await fixture.runner.runOnce()
        #expect(fixture.internet.calls.count == 3)
        #expect(fixture.runner.count == 0)
        #expect(fixture.folder.listing.isEmpty)
        #expect(fixture.core.calls.isEmpty)
    }

    @Test func oneAttemptPerDomainAndOnlyPendingRecipientsAgain() async throws {
        let fixture = try RunnerFixture(internet: FakeInternet { address in
            address.hasSuffix("@example.org") ? .temporary(code: 421, status: "4.4.2") : .delivered
        })
        defer { fixture.folder.cleanUp() }
        try fixture.enqueue(to: ["bob@example.com", "carol@example.org", "dave@EXAMPLE.COM"])
        await fixture.runner.runOnce()

        let calls = fixture.internet.calls
        #expect(calls.count == 2)
        #expect(calls.map(\.domain) == ["example.com", "example.org"])
        #expect(calls.first?.recipients == ["bob@example.com", "dave@EXAMPLE.COM"])
        #expect(calls.last?.recipients == ["carol@example.org"])
        #expect(calls.allSatisfy { $0.sender == "alice@i2pmail.org" })

        let entry = try #require(try fixture.onDisk().first)
        #expect(entry.recipients.map(\.state) == [.delivered, .pending, .delivered])

        fixture.internet.respond { _ in .delivered }
        fixture.clock.set(entry.nextAttempt)
        await fixture.runner.runOnce()
        #expect(fixture.internet.calls.count == 3)
        #expect(fixture.internet.calls.last?.recipients == ["carol@example.org"])
        #expect(fixture.internet.calls.last?.domain == "example.org")
        #expect(fixture.runner.count == 0)
        #expect(fixture.folder.listing.isEmpty)
    }

    @Test func partialPermanentFailureReportsOnlyTheFailedRecipient() async throws {
        let fixture = try RunnerFixture(internet: FakeInternet { address in
            address.hasPrefix("nobody@") ? .permanent(code: 550, status: "5.1.1") : .delivered
        })
        defer { fixture.folder.cleanUp() }
        try fixture.enqueue(to: ["bob@example.com", "nobody@example.com"])
        await fixture.runner.runOnce()
        await fixture.runner.runOnce()
        let report = try #require(fixture.core.calls.first?.message)
        #expect(report.contains("Final-Recipient: rfc822; nobody@example.com\r\n"))
        #expect(!report.contains("Final-Recipient: rfc822; bob@example.com"))
        #expect(fixture.core.calls.count == 1)
        #expect(fixture.folder.listing.isEmpty)
    }

    @Test func expiryFailsWithStatus547AfterALastTryAtTheDeadline() async throws {
        let retry = RetrySchedule(first: 100, maximum: 1000, giveUpAfter: 300, delayNoticeAfter: 100_000)
        let fixture = try RunnerFixture(internet: FakeInternet { _ in .temporary(code: 451, status: "4.3.0") }, retry: retry)
        defer { fixture.folder.cleanUp() }
        let start = fixture.clock.now
        try fixture.enqueue()
        await fixture.runner.runOnce()                       // attempt 1 at +0: retry at +100..125

        fixture.clock.set(start + 200)
        let deadline = await fixture.runner.runOnce()        // attempt 2: the next wait passes the deadline
        #expect(deadline == start + 300)
        #expect(fixture.core.calls.isEmpty)
        #expect(try fixture.onDisk().count == 1)

        fixture.clock.set(start + 300)
        await fixture.runner.runOnce()                       // attempt 3 at the deadline: given up
        #expect(fixture.internet.calls.count == 3)
        let queued = try fixture.onDisk()
        #expect(queued.map(\.destination) == [.core])

        await fixture.runner.runOnce()
        let report = try #require(fixture.core.calls.first?.message)
        #expect(fixture.core.calls.first?.recipients == ["alice@mail.i2p"])
        #expect(report.contains("Status: 5.4.7\r\n"))
        #expect(report.contains("Action: failed\r\n"))
        // The last reply's codes, not the expiry's.
        #expect(report.contains("Diagnostic-Code: smtp; 451 4.3.0\r\n"))
        #expect(!report.contains("Action: delayed"))
        #expect(fixture.runner.count == 0)
        #expect(fixture.folder.listing.isEmpty)
    }

    @Test func delayNoticeIsSentOnce() async throws {
        let retry = RetrySchedule(first: 100, maximum: 1000, giveUpAfter: 100_000, delayNoticeAfter: 150)
        let fixture = try RunnerFixture(internet: FakeInternet { _ in .temporary(code: 450, status: "4.2.1") }, retry: retry)
        defer { fixture.folder.cleanUp() }
        let start = fixture.clock.now
        try fixture.enqueue()
        await fixture.runner.runOnce()                       // +0: too early for a notice
        #expect(fixture.runner.count == 1)

        fixture.clock.set(start + 200)
        await fixture.runner.runOnce()                       // +200: the notice is queued
        #expect(fixture.runner.count == 2)
        let original = try #require(try fixture.onDisk().first { $0.destination == .internet })
        #expect(original.delayNoticeSent)
        #expect(original.recipients.first?.state == .pending)

        await fixture.runner.runOnce()                       // the notice goes to the core
        #expect(fixture.core.calls.count == 1)
        let notice = try #require(fixture.core.calls.first)
        #expect(notice.sender == "")
        #expect(notice.recipients == ["alice@mail.i2p"])
        #expect(notice.message.contains("Action: delayed\r\n"))
        #expect(notice.message.contains("Status: 4.2.1\r\n"))
        #expect(notice.message.contains("Will-Retry-Until: "))
        #expect(notice.message.contains("Subject: Delayed Mail (still being retried)\r\n"))
        #expect(fixture.runner.count == 1)

        // Later failures send no second notice.
        for offset in [2_000, 4_000, 6_000] as [Int64] {
            fixture.clock.set(start + offset)
            await fixture.runner.runOnce()
            await fixture.runner.runOnce()
        }
        #expect(fixture.internet.calls.count == 5)
        #expect(fixture.core.calls.count == 1)
        #expect(fixture.runner.count == 1)
    }

    @Test func nullSenderFailureMakesNoReport() async throws {
        let fixture = try RunnerFixture(internet: FakeInternet { _ in .permanent(code: 550, status: "5.1.1") })
        defer { fixture.folder.cleanUp() }
        try fixture.enqueue(sender: "")
        await fixture.runner.runOnce()
        await fixture.runner.runOnce()
        #expect(fixture.internet.calls.map(\.sender) == [""])
        #expect(fixture.runner.count == 0)
        #expect(fixture.folder.listing.isEmpty)
        #expect(fixture.core.calls.isEmpty)
    }

    @Test func foreignSenderIsReportedToAsIs() async throws {
        // Only the Internet domain is rewritten to the core's; another address stays what it is.
        let fixture = try RunnerFixture(internet: FakeInternet { _ in .permanent(code: 554, status: "5.7.1") })
        defer { fixture.folder.cleanUp() }
        try fixture.enqueue(sender: "Carol@I2PMAIL.ORG")
        await fixture.runner.runOnce()
        await fixture.runner.runOnce()
        #expect(fixture.core.calls.first?.recipients == ["Carol@mail.i2p"])
    }

    @Test func undeliverableReportIsDroppedAfterExpiryWithoutAnotherReport() async throws {
        let retry = RetrySchedule(first: 100, maximum: 1000, giveUpAfter: 300, delayNoticeAfter: 150)
        let core = FakeCore(.temporary(code: 451, status: "4.3.0"))
        let fixture = try RunnerFixture(internet: FakeInternet { _ in .permanent(code: 550, status: "5.1.1") }, core: core, retry: retry)
        defer { fixture.folder.cleanUp() }
        let start = fixture.clock.now
        try fixture.enqueue()
        await fixture.runner.runOnce()                        // bounce queued for the core
        #expect(try fixture.onDisk().map(\.destination) == [.core])

        await fixture.runner.runOnce()                        // the core is down
        #expect(core.calls.count == 1)
        #expect(try fixture.onDisk().first?.attempts == 1)

        for offset in [200, 300] as [Int64] {                 // past the delay notice, up to the deadline
            fixture.clock.set(start + offset)
            await fixture.runner.runOnce()
        }
        #expect(core.calls.count == 3)
        // Given up: dropped, and no report about the report (nor a delay notice for it).
        #expect(fixture.runner.count == 0)
        #expect(fixture.folder.listing.isEmpty)
        await fixture.runner.runOnce()
        #expect(core.calls.count == 3)
        #expect(core.calls.allSatisfy { $0.sender == "" && $0.recipients == ["alice@mail.i2p"] })
        #expect(fixture.internet.calls.count == 1)
    }

    @Test func reportRefusedByTheCoreIsDropped() async throws {
        let core = FakeCore(.permanent(code: 550, status: "5.1.1"))
        let fixture = try RunnerFixture(internet: FakeInternet { _ in .permanent(code: 550, status: "5.1.1") }, core: core)
        defer { fixture.folder.cleanUp() }
        try fixture.enqueue()
        await fixture.runner.runOnce()
        await fixture.runner.runOnce()
        #expect(core.calls.count == 1)
        #expect(fixture.runner.count == 0)
        #expect(fixture.folder.listing.isEmpty)
        await fixture.runner.runOnce()
        #expect(core.calls.count == 1)
    }

    @Test func stateSurvivesARestartAndTheRetryResumes() async throws {
        var fixture = try RunnerFixture(internet: FakeInternet { _ in .temporary(code: 451, status: "4.3.0") })
        defer { fixture.folder.cleanUp() }
        try fixture.enqueue(to: ["bob@example.com", "carol@example.org"])
        await fixture.runner.runOnce()
        let before = try #require(try fixture.onDisk().first)
        #expect(before.attempts == 1)

        try fixture.restart()
        #expect(fixture.runner.count == 1)
        // Not yet due after the restart either.
        await fixture.runner.runOnce()
        #expect(fixture.internet.calls.count == 2)  // the first attempt's two domains

        fixture.clock.set(before.nextAttempt)
        await fixture.runner.runOnce()
        #expect(fixture.internet.calls.count == 4)
        let after = try #require(try fixture.onDisk().first)
        #expect(after.id == before.id)
        #expect(after.attempts == 2)                 // counted on from the saved state
        #expect(after.queuedAt == before.queuedAt)

        try fixture.restart()
        fixture.internet.respond { _ in .delivered }
        fixture.clock.set(after.nextAttempt)
        await fixture.runner.runOnce()
        #expect(fixture.internet.calls.count == 6)
        #expect(fixture.runner.count == 0)
        #expect(fixture.folder.listing.isEmpty)
    }

    @Test func coreFormRewritesOnlyTheInternetDomain() {
        #expect(GatewayRunner.coreForm("alice@i2pmail.org", internetDomain: "i2pmail.org", coreDomain: "mail.i2p") == "alice@mail.i2p")
        #expect(GatewayRunner.coreForm("alice@I2PMail.org", internetDomain: "i2pmail.org", coreDomain: "mail.i2p") == "alice@mail.i2p")
        #expect(GatewayRunner.coreForm("alice@sub.i2pmail.org", internetDomain: "i2pmail.org", coreDomain: "mail.i2p") == "alice@sub.i2pmail.org")
        #expect(GatewayRunner.coreForm("alice@example.com", internetDomain: "i2pmail.org", coreDomain: "mail.i2p") == "alice@example.com")
        #expect(GatewayRunner.coreForm("\"a@b\"@i2pmail.org", internetDomain: "i2pmail.org", coreDomain: "mail.i2p") == "\"a@b\"@mail.i2p")
    }
}

/// `run()` is continuous: a message queued while a slow MX holds an attempt leaves at once, and a
/// stopping runner finishes what it holds and starts nothing new.
@Suite struct GatewayRunnerSchedulingTests {
    /// An Internet where one domain hangs until released.
    final class SlowInternet: InternetDelivery, @unchecked Sendable {
        private let lock = NSLock()
        private var release: CheckedContinuation<Void, Never>?
        private var released = false
        private(set) var domains: [String] = []

        func deliver(from sender: String, to recipients: [String], domain: String, message: ByteBuffer) async -> [GatewayOutcome] {
            lock.withLock { domains.append(domain) }
            if domain == "slow.test" {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = lock.withLock { () -> Bool in
                        if released { return true }
                        release = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            }
            return recipients.map { _ in .delivered }
        }

        func letGo() {
            let waiting = lock.withLock { () -> CheckedContinuation<Void, Never>? in
                released = true
                defer { release = nil }
                return release
            }
            waiting?.resume()
        }

        var seen: [String] { lock.withLock { domains } }
    }

    @Test func newMailLeavesWhileASlowMXHoldsAnAttemptAndStopFinishesWhatIsInHand() async throws {
        let folder = TemporaryFolder()
        let internet = SlowInternet()
        let runner = try GatewayRunner(queue: GatewayQueue(directory: folder.path), internet: internet, core: FakeCore(),
                                       settings: .init(internetDomain: "i2pmail.org", coreDomain: "mail.i2p", retry: RetrySchedule()),
                                       logger: Logger(label: "test"))
        try runner.enqueue(destination: .internet, sender: "a@i2pmail.org", recipients: ["x@slow.test"], message: RunnerFixture.message)
        let running = Task { await runner.run() }
        try await waitUntil { internet.seen == ["slow.test"] }
        try runner.enqueue(destination: .internet, sender: "a@i2pmail.org", recipients: ["y@fast.test"], message: RunnerFixture.message)
        // The fast one is delivered and gone while the slow one still hangs.
        try await waitUntil { internet.seen == ["slow.test", "fast.test"] && runner.count == 1 }
        runner.stop()
        try runner.enqueue(destination: .internet, sender: "a@i2pmail.org", recipients: ["z@late.test"], message: RunnerFixture.message)
        internet.letGo()
        await running.value
        // The slow one was finished and recorded; nothing was started after stop().
        #expect(internet.seen == ["slow.test", "fast.test"])
        #expect(runner.count == 1)  // only the late one waits, on disk
        #expect(try GatewayQueue(directory: folder.path).load().map { $0.recipients.map(\.address) } == [["z@late.test"]])
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<250 {
            if condition() { return }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        Issue.record("condition never became true")
    }
}
