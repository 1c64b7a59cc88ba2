import Foundation
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Privacy
import SMTP
import Store

/// The time, for the queue runner and the submission path; tests fix it.
public protocol DeliveryClock: Sendable {
    /// Seconds since 1970.
    func now() -> Int64
    /// The same with its fraction: the runner wakes on the second a release falls due, not up
    /// to a second later.
    func preciseNow() -> Double
}

extension DeliveryClock {
    public func preciseNow() -> Double { Double(now()) }
}

public struct SystemClock: DeliveryClock {
    public init() {}
    public func now() -> Int64 { Int64(Date().timeIntervalSince1970) }
    public func preciseNow() -> Double { Date().timeIntervalSince1970 }
}

/// Carries one message to the next hop; `RelayClient` over SMTP, a fake in tests.
public protocol MessageRelay: Sendable {
    func relay(from sender: String, to recipients: [String], message: ByteBuffer) async -> [RelayClient.Outcome]
}

extension RelayClient: MessageRelay {}

/// A random source that can be shared across tasks (the system's by default; tests seed one).
public final class SharedRandom: RandomNumberGenerator, Sendable {
    private let source: NIOLockedValueBox<any RandomNumberGenerator & Sendable>

    public init(_ generator: any RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()) {
        source = NIOLockedValueBox(generator)
    }

    public func next() -> UInt64 {
        source.withLockedValue { $0.next() }
    }
}

/// Relays due Internet-bound mail to the next hop (QUEUE-1..2, DELAY-1..4): wakes at the next
/// due time (or when woken), runs the pool rounds, applies the Internet-bound policy at release
/// (PRIV-4: Date is the release time), records every outcome before the next message, retries
/// with back-off, and puts DSNs in the sender's mailbox.
public final class QueueRunner: Sendable {
    public struct Settings: Sendable {
        public var domain: String
        public var internetDomain: String
        public var schedule: DelaySchedule
        public var retry: RetrySchedule

        public init(domain: String, internetDomain: String, schedule: DelaySchedule, retry: RetrySchedule) {
            self.domain = domain
            self.internetDomain = internetDomain
            self.schedule = schedule
            self.retry = retry
        }
    }

    private let queue: OutboundQueue
    private let mail: MailStore
    private let relay: any MessageRelay
    private let settings: Settings
    private let clock: any DeliveryClock
    private let random: SharedRandom
    private let workers: NIOThreadPool
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        var nextPoolRound: Int64?
        var lastPurge: Int64 = 0
        /// The current sleep's continuation, and a number that tells one sleep from the next.
        var wake: CheckedContinuation<Void, Never>?
        var sleep: UInt64 = 0
        /// A wake-up that came while no sleep was waiting: the next sleep returns at once.
        var woken = false
        var stopping = false
        /// Messages whose outcome could not be recorded: left alone until then, in memory, so a
        /// failing disk does not make the runner send them again and again.
        var skipUntil: [Int64: Int64] = [:]
    }

    public init(queue: OutboundQueue, mail: MailStore, relay: any MessageRelay, settings: Settings,
                clock: any DeliveryClock = SystemClock(), random: SharedRandom = SharedRandom(),
                workers: NIOThreadPool, logger: Logger) {
        self.queue = queue
        self.mail = mail
        self.relay = relay
        self.settings = settings
        self.clock = clock
        self.random = random
        self.workers = workers
        self.logger = logger
    }

    /// Runs until `stop()`. Between rounds it sleeps until the next due time, at most a second
    /// (so an operator's `postern queue flush` from another process is seen soon).
    public func run() async {
        while !stopping {
            let next = await runOnce()
            if stopping { break }
            let wait = max(0, min(1.0, next.map { Double($0) - clock.preciseNow() } ?? 1.0))
            await sleep(seconds: wait)
        }
    }

    /// Ends `run()` after the message in hand: its relay dialogue is not cut (that could send it
    /// twice) and its outcome is recorded. Held and pooled mail stays queued on disk.
    public func stop() {
        state.withLockedValue { $0.stopping = true }
        wake()
    }

    private var stopping: Bool { state.withLockedValue { $0.stopping } }

    /// New mail was queued: look at the queue now rather than at the next tick.
    public func wake() {
        let waiting = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            guard let waiting = state.wake else { state.woken = true; return nil }
            state.wake = nil
            return waiting
        }
        waiting?.resume()
    }

    /// Sleeps for `seconds` or until `wake()`, whichever comes first. One continuation, resumed
    /// exactly once under the lock: by `wake()`, or by this sleep's own timer (which checks the
    /// sleep number, so a late timer never ends a later sleep).
    private func sleep(seconds: Double) async {
        guard seconds > 0 else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let number = state.withLockedValue { state -> UInt64? in
                if state.woken || state.stopping { state.woken = false; return nil }
                state.sleep &+= 1
                state.wake = continuation
                return state.sleep
            }
            guard let number else { return continuation.resume() }
            Task { [self] in
                try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                let waiting = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                    guard state.sleep == number, let waiting = state.wake else { return nil }
                    state.wake = nil
                    return waiting
                }
                waiting?.resume()
            }
        }
    }

    /// One round: the pool mix if its interval has passed, then every due message in random
    /// order. Returns the next time something is due (nil: nothing queued).
    @discardableResult
    public func runOnce() async -> Int64? {
        do {
            try await poolRoundIfDue()
            let now = clock.now()
            let skipped = state.withLockedValue { state -> Set<Int64> in
                state.skipUntil = state.skipUntil.filter { $0.value > now }
                return Set(state.skipUntil.keys)
            }
            let due = try await workers.runIfActive { [queue] in try queue.due(now: now) }
            // Mail released together (a batch, a pool round) leaves in random order (DELAY-1).
            var order = due.filter { !skipped.contains($0.id) }
            var generator = random
            order.shuffle(using: &generator)
            for message in order {
                if stopping { break }
                await attempt(message)
            }
            let after = clock.now()
            if after - state.withLockedValue({ $0.lastPurge }) >= 60 {
                state.withLockedValue { $0.lastPurge = after }
                try await workers.runIfActive { [queue] in try queue.purge(now: after) }
            }
            if due.count >= OutboundQueue.dueBatch && order.count > 0 { return after }  // more are waiting
            let next = try await workers.runIfActive { [queue] in try queue.nextDue() }
            let pool = state.withLockedValue { $0.nextPoolRound }
            guard let soonest = [next, pool].compactMap({ $0 }).min() else { return nil }
            // Due but set aside (see skipUntil): look again in a second, not in a busy loop.
            return soonest <= after && !skipped.isEmpty ? after + 1 : soonest
        } catch {
            logger.error("outbound queue round failed", metadata: ["error": "\(type(of: error))"])
            return clock.now() + 5
        }
    }

    private func poolRoundIfDue() async throws {
        let now = clock.now()
        let due = state.withLockedValue { state -> Bool in
            guard let next = state.nextPoolRound else {
                state.nextPoolRound = now + settings.schedule.poolInterval
                return false
            }
            guard now >= next else { return false }
            state.nextPoolRound = now + settings.schedule.poolInterval
            return true
        }
        guard due else { return }
        let held = try await workers.runIfActive { [queue] in try queue.pooled() }
        var generator = random
        let picked = settings.schedule.poolRound(held, random: &generator)
        logger.debug("pool round", metadata: ["held": "\(held.count)", "sent": "\(picked.count)"])
        if !picked.isEmpty {
            try await workers.runIfActive { [queue] in try queue.release(ids: picked, at: now) }
        }
    }

    /// Relays one message to its due recipients and records what happened.
    private func attempt(_ message: QueuedMessage) async {
        let now = clock.now()
        var generator = random
        let stored: ByteBuffer?
        let outcomes: [RelayClient.Outcome]
        do {
            // Read and sanitised on a worker thread: a message may be megabytes.
            let (bytes, outgoing) = try await workers.runIfActive { [queue, settings, random] in
                let bytes = try queue.content(of: message)
                var generator = random
                let prepared = InternetBoundPreparation.prepare(Array(bytes.readableBytesView), senderName: message.accountName,
                                                                domain: settings.domain, internetDomain: settings.internetDomain,
                                                                now: now, random: &generator)
                return (bytes, ByteBuffer(bytes: prepared))
            }
            stored = bytes
            outcomes = await relay.relay(from: "\(message.accountName)@\(settings.internetDomain)",
                                         to: message.recipients.map(\.address), message: outgoing)
        } catch {
            // An unreadable queue file is retried like a relay that failed, and bounced in the end.
            logger.error("queued message unreadable", metadata: ["error": "\(type(of: error))"])
            stored = nil
            outcomes = message.recipients.map { _ in .temporary(code: nil, status: "4.3.0") }
        }
        let after = clock.now()
        var results: [Int64: OutboundQueue.Result] = [:]
        var failed: [DeliveryStatusNotification.Recipient] = []
        var delayed: [DeliveryStatusNotification.Recipient] = []
        let releasedAt = message.releaseAt ?? now
        for (recipient, outcome) in zip(message.recipients, outcomes) {
            switch outcome {
            case .delivered:
                results[recipient.id] = .done
            case .permanent(let code, let status):
                results[recipient.id] = .done
                failed.append(.init(address: recipient.address, action: .failed, status: status, replyCode: code))
            case .temporary(let code, let status):
                if let next = settings.retry.nextAttempt(failures: recipient.attempts + 1, releasedAt: releasedAt, now: after, random: &generator) {
                    let notify = !recipient.notified && after - releasedAt >= settings.retry.delayNoticeAfter
                    if notify { delayed.append(.init(address: recipient.address, action: .delayed, status: status, replyCode: code)) }
                    results[recipient.id] = .retry(next: next, code: code, status: status, notified: recipient.notified || notify)
                } else {
                    // Expired: the report's status says so; its diagnostic keeps the last reply.
                    failed.append(.init(address: recipient.address, action: .failed, status: "5.4.7", replyCode: code,
                                        replyStatus: status))
                    results[recipient.id] = .done
                }
            }
        }
        let delivered = outcomes.filter { $0 == .delivered }.count
        logger.info("relay attempt", metadata: ["delivered": "\(delivered)", "failed": "\(failed.count)",
                                                "deferred": "\(outcomes.count - delivered - failed.count)"])
        // Reports first: a crash between the two sends one twice rather than never.
        let reports = [(failed, nil), (delayed, releasedAt + settings.retry.giveUpAfter)].filter { !$0.0.isEmpty }
        let header = reports.isEmpty ? [] : stored.map { Array($0.readableBytesView[..<(HeaderSection.parse($0.readableBytesView).bodyOffset)]) } ?? []
        for (recipients, retryUntil) in reports {
            let report = DeliveryStatusNotification(domain: settings.domain, sender: "\(message.accountName)@\(settings.domain)",
                                                    recipients: recipients, originalHeader: header, now: after, retryUntil: retryUntil)
            await deliverReport(report.render(random: &generator), to: message)
        }
        do {
            try await workers.runIfActive { [queue, results] in try queue.record(results, of: message) }
        } catch {
            // Not recorded: leave the message alone for the first retry interval rather than
            // relaying it again at once.
            logger.error("queue update failed", metadata: ["error": "\(type(of: error))"])
            state.withLockedValue { $0.skipUntil[message.id] = after + settings.retry.first }
        }
    }

    /// A DSN goes to the sender's mailbox even past its quota: it is small, bounded by what the
    /// account may queue, and the sender must learn that mail did not arrive.
    private func deliverReport(_ bytes: [UInt8], to message: QueuedMessage) async {
        let target = MailboxTarget(accountID: message.accountID, accountName: message.accountName, quotaBytes: Int.max / 2)
        do {
            try await mail.deliver(ByteBuffer(bytes: bytes), to: [target])
        } catch {
            logger.error("delivery status notification not stored", metadata: ["error": "\(type(of: error))"])
        }
    }
}
