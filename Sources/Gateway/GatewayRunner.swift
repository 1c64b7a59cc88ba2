import Wire
import Foundation
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SMTP

/// Hands mail to the core over the link: bounces the gateway wrote.
public protocol CoreDelivery: Sendable {
    func deliver(from sender: String, to recipients: [String], message: ByteBuffer) async -> [GatewayOutcome]
}

/// The core, reached through the link (TCP here, I2P later: the connector decides), logged in
/// with the link's credentials.
public struct CoreLink: CoreDelivery {
    public var connector: any StreamConnector
    /// The EHLO name: the Internet domain.
    public var helo: String
    public var username: String
    public var password: String
    public var replyTimeout: TimeAmount

    public let group: any EventLoopGroup

    /// `replyTimeout` also bounds how long the link may sit idle while an Internet client takes
    /// its time; a link that died meanwhile is replaced and the transaction replayed.
    public init(connector: any StreamConnector, helo: String, username: String, password: String,
                replyTimeout: TimeAmount = .seconds(600), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.group = group
        self.connector = connector
        self.helo = helo
        self.username = username
        self.password = password
        self.replyTimeout = replyTimeout
    }

    public func deliver(from sender: String, to recipients: [String], message: ByteBuffer) async -> [GatewayOutcome] {
        let client = RelayClient(configuration: .init(connector: connector, helo: helo, username: username, password: password,
                                                      replyTimeout: replyTimeout), group: group)
        return await client.relay(from: sender, to: recipients, message: message).map(GatewayOutcome.init)
    }

    /// A session for the exchange's live recipient checks.
    public func openSession() async -> SMTPClientSession? {
        await SMTPClientSession.open(connector: connector, group: group, helo: helo, username: username, password: password,
                                     replyTimeout: replyTimeout)
    }
}

/// The gateway's queue runner (GW-1): relays queued mail to the Internet by MX and bounces to
/// the core, retries temporary failures on the core's schedule (QUEUE-2), turns permanent
/// failures and expiry into RFC 3464 reports for the sender, queued for the core before the
/// failed message is forgotten, and removes every message once it has left (GW-3).
public final class GatewayRunner: Sendable {
    public struct Settings: Sendable {
        public var internetDomain: String
        public var coreDomain: String
        public var retry: RetrySchedule
        /// Messages in flight at once.
        public var concurrency: Int

        public init(internetDomain: String, coreDomain: String, retry: RetrySchedule, concurrency: Int = 8) {
            self.internetDomain = internetDomain
            self.coreDomain = coreDomain
            self.retry = retry
            self.concurrency = concurrency
        }
    }

    private struct State {
        var entries: [String: GatewayQueueEntry] = [:]
        var inFlight: Set<String> = []
        var wakeUp: CheckedContinuation<Void, Never>?
        var woken = false
        var stopped = false
    }

    private let queue: GatewayQueue
    private let internet: any InternetDelivery
    private let core: any CoreDelivery
    private let settings: Settings
    private let now: @Sendable () -> Int64
    /// Where the queue's file work runs (reads, fsyncs): never on the cooperative pool, which the
    /// exchange's sessions need. Nil in tests: inline.
    private let workers: NIOThreadPool?
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    public init(queue: GatewayQueue, internet: any InternetDelivery, core: any CoreDelivery, settings: Settings,
                now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }, workers: NIOThreadPool? = nil,
                logger: Logger) throws {
        self.queue = queue
        self.internet = internet
        self.core = core
        self.settings = settings
        self.now = now
        self.workers = workers
        self.logger = logger
        let loaded = try queue.load()
        state.withLockedValue { state in
            for entry in loaded { state.entries[entry.id] = entry }
        }
        if !loaded.isEmpty { logger.info("queue loaded", metadata: ["messages": "\(loaded.count)"]) }
    }

    public var count: Int { state.withLockedValue { $0.entries.count } }

    /// Queues a message durably and wakes the runner. Blocking disk work: call it off the loop.
    public func enqueue(destination: GatewayQueueEntry.Destination, sender: String, recipients: [String], message: [UInt8]) throws {
        let entry = GatewayQueueEntry(id: GatewayQueue.newID(), destination: destination, sender: sender, recipients: recipients, now: now())
        try queue.add(entry, message: message)
        state.withLockedValue { $0.entries[entry.id] = entry }
        wake()
    }

    public func wake() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            state.woken = true
            defer { state.wakeUp = nil }
            return state.wakeUp
        }
        waiter?.resume()
    }

    public func stop() {
        state.withLockedValue { $0.stopped = true }
        wake()
    }

    /// Runs until `stop()`; the attempts in hand finish and are recorded first. Continuous: a
    /// free slot takes the next due message at once, so new mail never waits behind a batch of
    /// slow MXs, and a stopping runner starts nothing new.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            while true {
                let (due, wait) = state.withLockedValue { state -> ([GatewayQueueEntry], Int64?) in
                    state.woken = false
                    guard !state.stopped else { return ([], nil) }
                    let current = now()
                    let found = Self.takeDue(&state, now: current, limit: settings.concurrency - state.inFlight.count)
                    // Full: sleep until an attempt ends (it wakes us); else until the next due time.
                    let next = state.entries.values.filter { !state.inFlight.contains($0.id) }.map(\.nextAttempt).min()
                    let wait = state.inFlight.count >= settings.concurrency ? 3600 : next.map { max(0, $0 - current) } ?? 3600
                    return (found, wait)
                }
                guard let wait else { break }
                for entry in due {
                    group.addTask {
                        await self.attempt(entry)
                        self.wake()
                    }
                }
                // Returns early on wake(): new mail, an attempt that ended, stop().
                await sleep(seconds: max(wait, 1))
            }
        }
    }

    /// One pass over the due messages; returns the next due time, if any.
    @discardableResult
    public func runOnce() async -> Int64? {
        let current = now()
        let due = state.withLockedValue { state -> [GatewayQueueEntry] in
            state.woken = false
            return state.stopped ? [] : Self.takeDue(&state, now: current, limit: .max)
        }
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for entry in due {
                if running >= settings.concurrency {
                    await group.next()
                    running -= 1
                }
                // A stopping runner starts nothing new; what it skips stays due.
                if state.withLockedValue({ $0.stopped }) {
                    state.withLockedValue { _ = $0.inFlight.remove(entry.id) }
                    continue
                }
                group.addTask { await self.attempt(entry) }
                running += 1
            }
        }
        return state.withLockedValue { $0.entries.values.map(\.nextAttempt).min() }
    }

    /// The due entries not in flight, earliest first, at most `limit`, marked in flight.
    private static func takeDue(_ state: inout State, now: Int64, limit: Int) -> [GatewayQueueEntry] {
        guard limit > 0 else { return [] }
        let found = state.entries.values.filter { $0.nextAttempt <= now && !state.inFlight.contains($0.id) }
            .sorted { $0.nextAttempt < $1.nextAttempt }
            .prefix(limit)
        for entry in found { state.inFlight.insert(entry.id) }
        return Array(found)
    }

    /// Sleeps until `seconds` have passed or `wake()` is called.
    private func sleep(seconds: Int64) async {
        guard seconds > 0 else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(nanoseconds: UInt64(min(seconds, 86400)) * 1_000_000_000) }
            group.addTask { await self.woken() }
            await group.next()
            group.cancelAll()
            wake()  // releases `woken()` when the timer ended first
        }
    }

    private func woken() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLockedValue { state -> Bool in
                if state.woken || state.stopped { return true }
                state.wakeUp = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    private func io<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard let workers else { return try body() }
        return try await workers.runIfActive(body)
    }

    private func attempt(_ original: GatewayQueueEntry) async {
        let id = original.id
        defer { _ = state.withLockedValue { $0.inFlight.remove(id) } }
        let bytes: [UInt8]
        do { bytes = try await io { [queue] in try queue.message(of: original) } } catch GatewayQueue.Failure.io("open", ENOENT) {
            // Gone from the disk: the sender hears that it failed (with no header to return).
            logger.error("a queued message's file is missing; reported as failed")
            var entry = original
            let failed = entry.recipients.indices.filter { entry.recipients[$0].state == .pending }.map { index in
                entry.recipients[index].state = .failed
                return DeliveryStatusNotification.Recipient(address: entry.recipients[index].address, action: .failed,
                                                            status: "5.3.0", replyCode: nil)
            }
            let settled = entry
            _ = try? await io { self.record(settled, reports: (failed, []), message: [], now: self.now()) }
            return
        } catch {
            // Anything else (no descriptor left, an I/O error) is temporary: try again later.
            logger.error("a queued message cannot be read now; retrying", metadata: ["error": "\(error)"])
            var entry = original
            entry.nextAttempt = now() + settings.retry.first
            state.withLockedValue { $0.entries[id] = entry }
            return
        }
        var entry = original
        let message = ByteBuffer(bytes: bytes)
        let pending = entry.recipients.indices.filter { entry.recipients[$0].state == .pending }
        var outcomes: [Int: GatewayOutcome] = [:]
        switch entry.destination {
        case .internet:
            // One attempt per domain: each has its own MX.
            var byDomain: [String: [Int]] = [:]
            for index in pending {
                let domain = entry.recipients[index].address.split(separator: "@").last.map { $0.lowercased() } ?? ""
                byDomain[domain, default: []].append(index)
            }
            for (domain, indices) in byDomain.sorted(by: { $0.key < $1.key }) {
                let results = await internet.deliver(from: entry.sender, to: indices.map { entry.recipients[$0].address },
                                                     domain: domain, message: message)
                for (index, result) in zip(indices, results) { outcomes[index] = result }
            }
        case .core:
            let results = await core.deliver(from: entry.sender, to: pending.map { entry.recipients[$0].address }, message: message)
            for (index, result) in zip(pending, results) { outcomes[index] = result }
        }
        let current = now()
        entry.attempts += 1
        var failed: [DeliveryStatusNotification.Recipient] = []
        for (index, outcome) in outcomes {
            switch outcome {
            case .delivered:
                entry.recipients[index].state = .delivered
            case .permanent(let code, let status):
                entry.recipients[index].state = .failed
                entry.recipients[index].code = code
                entry.recipients[index].status = status
                failed.append(.init(address: entry.recipients[index].address, action: .failed, status: status, replyCode: code))
            case .temporary(let code, let status):
                entry.recipients[index].code = code
                entry.recipients[index].status = status
            }
        }
        var delayed: [DeliveryStatusNotification.Recipient] = []
        if !entry.isSettled {
            var random = SystemRandomNumberGenerator()
            if let next = settings.retry.nextAttempt(failures: entry.attempts, releasedAt: entry.queuedAt, now: current, random: &random) {
                entry.nextAttempt = next
                if !entry.delayNoticeSent && current - entry.queuedAt >= settings.retry.delayNoticeAfter {
                    entry.delayNoticeSent = true
                    delayed = entry.recipients.filter { $0.state == .pending }.map {
                        .init(address: $0.address, action: .delayed, status: $0.status ?? "4.0.0", replyCode: $0.code)
                    }
                }
            } else {
                // QUEUE-2: given up; 5.4.7, with the last reply's codes.
                for index in entry.recipients.indices where entry.recipients[index].state == .pending {
                    let last = entry.recipients[index]
                    entry.recipients[index].state = .failed
                    failed.append(.init(address: last.address, action: .failed, status: "5.4.7", replyCode: last.code,
                                        replyStatus: last.status))
                }
            }
        }
        let settled = entry
        let reports = (failed: failed, delayed: delayed)
        _ = try? await io { self.record(settled, reports: reports, message: bytes, now: current) }
    }

    /// Queues the reports, then saves or removes the entry. The report is queued before the
    /// message's state is: a crash in between repeats an attempt at worst, never loses a bounce.
    private func record(_ entry: GatewayQueueEntry, reports: (failed: [DeliveryStatusNotification.Recipient],
                                                              delayed: [DeliveryStatusNotification.Recipient]),
                        message bytes: [UInt8], now current: Int64) {
        let (failed, delayed) = reports
        var entry = entry
        if entry.destination == .internet {
            do {
                if !failed.isEmpty { try report(failed, for: entry, message: bytes, retryUntil: nil, now: current) }
                if !delayed.isEmpty {
                    try report(delayed, for: entry, message: bytes, retryUntil: entry.queuedAt + settings.retry.giveUpAfter, now: current)
                }
            } catch {
                // No bounce could be queued (a full disk?): the failed recipients stay pending,
                // so the message and its report are tried again rather than lost.
                logger.error("delivery status notification not queued; retrying", metadata: ["error": "\(error)"])
                for index in entry.recipients.indices where failed.contains(where: { $0.address == entry.recipients[index].address }) {
                    entry.recipients[index].state = .pending
                }
                entry.nextAttempt = current + settings.retry.first
            }
        } else if !failed.isEmpty {
            logger.warning("a report for the core could not be delivered; dropped", metadata: ["recipients": "\(failed.count)"])
        }
        do {
            if entry.isSettled {
                try queue.remove(entry)
                state.withLockedValue { _ = $0.entries.removeValue(forKey: entry.id) }
                logger.debug("message left the queue", metadata: ["recipients": "\(entry.recipients.count)"])
            } else {
                try queue.save(entry)
                state.withLockedValue { $0.entries[entry.id] = entry }
            }
        } catch {
            logger.error("queue state not saved", metadata: ["error": "\(error)"])
            state.withLockedValue { $0.entries[entry.id] = entry }
        }
    }

    /// An RFC 3464 report for the sender, addressed to the sender's mailbox at the core.
    private func report(_ recipients: [DeliveryStatusNotification.Recipient], for entry: GatewayQueueEntry, message: [UInt8],
                        retryUntil: Int64?, now: Int64) throws {
        guard !entry.sender.isEmpty else { return }  // never a report about a report (RFC 3464 2)
        let sender = Self.coreForm(entry.sender, internetDomain: settings.internetDomain, coreDomain: settings.coreDomain)
        let header = HeaderSection.parse(message)
        let dsn = DeliveryStatusNotification(domain: settings.internetDomain, sender: sender, recipients: recipients,
                                             originalHeader: Array(message.prefix(header.bodyOffset)), now: now, retryUntil: retryUntil)
        var random = SystemRandomNumberGenerator()
        try enqueue(destination: .core, sender: "", recipients: [sender], message: dsn.render(random: &random))
    }

    /// `user@internet-domain` → `user@core-domain`; other addresses unchanged.
    static func coreForm(_ address: String, internetDomain: String, coreDomain: String) -> String {
        guard let at = address.lastIndex(of: "@"), address[address.index(after: at)...].lowercased() == internetDomain else { return address }
        return address[..<at] + "@" + coreDomain
    }
}
