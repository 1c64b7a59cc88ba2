import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A message in a mailbox (MBOX-3): its never-reused id and its stored size.
public struct StoredMessage: Sendable, Equatable {
    public var uid: String
    public var size: Int
}

/// Raised on the new-mail event stream (MBOX-4) once a delivery is durable.
public struct NewMailEvent: Sendable, Equatable {
    public var accountID: Int64
    public var accountName: String
    public var count: Int
}

public enum DeliveryFailure: Error, Equatable, Sendable {
    /// The mailbox of this account has no room for the message (MBOX-2).
    case mailboxFull(accountName: String)
    /// The account was deleted after the recipient was accepted.
    case mailboxGone(accountName: String)
    /// The disk or database failed; nothing was stored.
    case storage(String)
    /// The sender's Internet recipient quota (QUOTA-1) is used up; the oldest counted send
    /// leaves the 24-hour window at `freesAt` (nil: the quota is 0).
    case internetQuota(freesAt: Int64?)
    /// A hashcash stamp of this message was spent before (QUOTA-2).
    case stampSpent
}

/// The Internet recipients of a message, for the outbound queue (QUEUE-1), stored in the same
/// transaction as its local copies.
public struct OutboundEntry: Sendable, Equatable {
    public var accountID: Int64
    public var recipients: [String]
    /// When the queue runner may relay it; nil: held in the pool mix (DELAY-4).
    public var releaseAt: Int64?
    /// The submission time: the quota's 24-hour window is counted back from it.
    public var now: Int64
    /// Internet recipients this account may send to in 24 hours (QUOTA-1).
    public var quota: Int

    public init(accountID: Int64, recipients: [String], releaseAt: Int64?, now: Int64, quota: Int) {
        self.accountID = accountID
        self.recipients = recipients
        self.releaseAt = releaseAt
        self.now = now
        self.quota = quota
    }
}

/// A verified hashcash stamp carried by a message (QUOTA-2): spent in the message's transaction,
/// adding `recipients` to the sender's Internet credit, refused if spent before.
public struct HashcashCredit: Sendable, Equatable {
    public var accountID: Int64
    public var spentKey: String
    public var expires: Int64
    public var recipients: Int

    public init(accountID: Int64, spentKey: String, expires: Int64, recipients: Int) {
        self.accountID = accountID
        self.spentKey = spentKey
        self.expires = expires
        self.recipients = recipients
    }
}

/// One recipient mailbox for a delivery: the account and its effective quota.
public struct MailboxTarget: Sendable, Equatable {
    public var accountID: Int64
    public var accountName: String
    public var quotaBytes: Int

    public init(accountID: Int64, accountName: String, quotaBytes: Int) {
        self.accountID = accountID
        self.accountName = accountName
        self.quotaBytes = quotaBytes
    }
}

/// Mailboxes: message files plus their index rows, written with group commit.
///
/// `deliver` returns only when the message files and their index rows are on disk (SMTP-7).
/// Concurrent deliveries are gathered by one committer thread into batches that share one journal
/// commit for the files, one directory fsync and one SQLite WAL commit, so durability costs little
/// throughput. A crash at any point leaves either nothing (the client got no 250 and still holds
/// the message) or a complete delivery; files without an index row are removed at start.
public final class MailStore: Sendable {
    public let folder: DataFolder
    private let logger: Logger
    private let committer: GroupCommitter
    private let readPool: NIOThreadPool
    private let subscribers = NIOLockedValueBox<[UUID: AsyncStream<NewMailEvent>.Continuation]>([:])

    public init(folder: DataFolder, logger: Logger) throws {
        self.folder = folder
        self.logger = logger
        self.committer = GroupCommitter(folder: folder, logger: logger)
        self.readPool = NIOThreadPool(numberOfThreads: 2)
        readPool.start()
        try removeOrphans()
        committer.start()
    }

    /// Stops the committer once every delivery already handed to it is durable (OPS-4).
    public func close() async {
        await committer.stop()
        try? await readPool.shutdownGracefully()
    }

    /// Stores `message` in each target mailbox, and `threading` (if any) in the same transaction.
    /// Throws `DeliveryFailure`.
    public func deliver(_ message: ByteBuffer, to targets: [MailboxTarget], threading: ThreadingRow? = nil,
                        outbound: OutboundEntry? = nil, credits: [HashcashCredit] = []) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            deliver(message, to: targets, threading: threading, outbound: outbound, credits: credits) { continuation.resume(with: $0) }
        }
    }

    /// The same without a suspension: `completion` runs on the committer thread once the
    /// delivery is durable or has failed. The SMTP path uses this to go from its worker thread to
    /// the committer and back to the event loop with no hop in between.
    ///
    /// `writingFilesHere`: the caller is a worker thread (never an event loop) and writes the
    /// message files (and the queued copy) itself before queueing, so the committer's single
    /// thread only syncs and commits. Worth it for large messages, whose copy into the page cache
    /// would otherwise serialise every delivery behind it.
    ///
    /// `outbound`: the message's Internet recipients, queued in the same transaction (QUEUE-1),
    /// their quota checked inside it (QUOTA-1); `credits`: hashcash stamps it spends (QUOTA-2).
    public func deliver(_ message: ByteBuffer, to targets: [MailboxTarget], threading: ThreadingRow? = nil,
                        outbound: OutboundEntry? = nil, credits: [HashcashCredit] = [],
                        writingFilesHere: Bool = false,
                        completion: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        var files: [GroupCommitter.MessageFile]?
        if writingFilesHere {
            switch GroupCommitter.writeFiles(message, for: targets, queueCopy: outbound != nil, in: folder) {
            case .success(let written): files = written
            case .failure(let failure): return completion(.failure(failure))
            }
        }
        committer.submit(message: message, targets: targets, threading: threading, outbound: outbound, credits: credits,
                         files: files) { [self] result in
            switch result {
            case .success(let events):
                publish(events)
                completion(.success(()))
            case .failure(let failure):
                completion(.failure(failure))
            }
        }
    }

    public func messages(ofAccount accountID: Int64) async throws -> [StoredMessage] {
        try await readPool.runIfActive { try self.messagesNow(ofAccount: accountID) }
    }

    /// The mailbox listing, read on the calling thread (a worker thread, never an event loop).
    public func messagesNow(ofAccount accountID: Int64) throws -> [StoredMessage] {
        try folder.database.read { db in
            try Row.fetchAll(db.cachedStatement(sql: "SELECT uid, size FROM message WHERE account_id = ? ORDER BY id"),
                             arguments: [accountID])
                .map { StoredMessage(uid: $0[0], size: $0[1]) }
        }
    }

    /// The stored bytes of one message of this account (read on a thread pool, never on an event loop).
    public func content(ofAccount accountID: Int64, uid: String) async throws -> ByteBuffer {
        try await readPool.runIfActive { try self.contentNow(ofAccount: accountID, uid: uid) }
    }

    /// The same, read on the calling thread (a worker thread, never an event loop). The index is
    /// asked first: only a message this account owns is read, whatever uid the caller names.
    public func contentNow(ofAccount accountID: Int64, uid: String) throws -> ByteBuffer {
        let owned = try folder.database.read { db in
            try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM message WHERE account_id = ? AND uid = ?"),
                              arguments: [accountID, uid]) ?? false
        }
        guard owned else { throw DeliveryFailure.storage("no such message") }
        return try Self.readFile(folder.messagesDirectory.appendingPathComponent(uid).path)
    }

    /// The bytes of a message whose uid the caller took from the owner's own listing (the POP3
    /// maildrop it holds locked), read on the calling thread with no index query. Only uids of
    /// the form `newUID` makes are opened, so no path can be named.
    public func contentNow(listedUID uid: String) throws -> ByteBuffer {
        guard GroupCommitter.isWellFormedUID(uid) else { throw DeliveryFailure.storage("no such message") }
        return try Self.readFile(folder.messagesDirectory.appendingPathComponent(uid).path)
    }

    /// Removes messages for good: index rows first (one transaction), then the files.
    public func delete(ofAccount accountID: Int64, uids: [String]) async throws {
        guard !uids.isEmpty else { return }
        // Only uids this account owns are removed; the file names come from the index, never from
        // the caller, so no path can be named from outside.
        let removed: [String] = try await folder.database.write { db in
            var removed: [String] = []
            for uid in uids {
                guard let row = try Row.fetchOne(db, sql: "SELECT uid, size FROM message WHERE account_id = ? AND uid = ?",
                                                 arguments: [accountID, uid]) else { continue }
                let owned: String = row["uid"]
                let size: Int = row["size"]
                try db.execute(sql: "DELETE FROM message WHERE account_id = ? AND uid = ?", arguments: [accountID, owned])
                try db.execute(sql: "UPDATE account SET used_bytes = max(0, used_bytes - ?) WHERE id = ?", arguments: [size, accountID])
                removed.append(owned)
            }
            return removed
        }
        let directory = folder.messagesDirectory
        try await readPool.runIfActive {
            for uid in removed where GroupCommitter.isWellFormedUID(uid) {
                unlink(directory.appendingPathComponent(uid).path)
            }
        }
    }

    /// New-mail events (MBOX-4) from now on.
    public func newMailEvents() -> AsyncStream<NewMailEvent> {
        let (stream, continuation) = AsyncStream<NewMailEvent>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let id = UUID()
        subscribers.withLockedValue { $0[id] = continuation }
        continuation.onTermination = { [subscribers] _ in
            _ = subscribers.withLockedValue { $0.removeValue(forKey: id) }
        }
        return stream
    }

    private func publish(_ events: [NewMailEvent]) {
        let continuations = subscribers.withLockedValue { Array($0.values) }
        for event in events {
            for continuation in continuations { continuation.yield(event) }
        }
    }

    /// Message files with no index row are leftovers of a crash before their commit: the client
    /// never got a 250 for them. Remove them.
    private func removeOrphans() throws {
        var removed = 0
        for (table, directory) in [("message", folder.messagesDirectory), ("outbound", folder.queueDirectory)] {
            let known = Set(try folder.database.read { db in try String.fetchAll(db, sql: "SELECT uid FROM \(table)") })
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for name in names where !known.contains(name) && GroupCommitter.isWellFormedUID(name) {
                unlink(directory.appendingPathComponent(name).path)
                removed += 1
            }
        }
        if removed > 0 { logger.info("removed unacknowledged message files left by a crash", metadata: ["count": "\(removed)"]) }
    }

    static func readFile(_ path: String) throws -> ByteBuffer {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DeliveryFailure.storage("cannot open message file (errno \(errno))") }
        defer { _ = Glibc.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw DeliveryFailure.storage("cannot stat message file") }
        let size = Int(info.st_size)
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        var remaining = size
        while remaining > 0 {
            let count = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: remaining) { pointer in
                let n = read(fd, pointer.baseAddress, min(pointer.count, remaining))
                return n > 0 ? n : 0
            }
            if count == 0 { break }
            remaining -= count
        }
        guard remaining == 0 else { throw DeliveryFailure.storage("short read of message file") }
        return buffer
    }
}

/// The single writer: gathers concurrent deliveries and commits them in batches (SMTP-7).
final class GroupCommitter: Sendable {
    struct Job {
        var message: ByteBuffer
        var targets: [MailboxTarget]
        var threading: ThreadingRow?
        var outbound: OutboundEntry?
        var credits: [HashcashCredit]
        /// Files the submitter wrote already (open, not yet synced); nil: the committer writes them.
        var files: [MessageFile]?
        var completion: @Sendable (Result<[NewMailEvent], DeliveryFailure>) -> Void
    }

    /// One written, not yet synced file: a message in `messages/` for a mailbox, or (no target)
    /// the queued copy of an Internet-bound message in `queue/`.
    struct MessageFile: Sendable {
        var uid: String
        var fd: Int32
        var target: MailboxTarget?
        var path: String
    }

    /// Writes one file per target, and the queued copy when `queueCopy` (`O_EXCL`, 0600, no
    /// fsync). On failure nothing is left behind.
    static func writeFiles(_ message: ByteBuffer, for targets: [MailboxTarget], queueCopy: Bool,
                           in folder: DataFolder) -> Result<[MessageFile], DeliveryFailure> {
        var files: [MessageFile] = []
        let places = targets.map { ($0 as MailboxTarget?, folder.messagesDirectory.path) } + (queueCopy ? [(nil, folder.queueDirectory.path)] : [])
        for (target, directory) in places {
            let uid = newUID()
            let path = "\(directory)/\(uid)"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                let failure = DeliveryFailure.storage("cannot create message file (errno \(errno))")
                discard(files)
                return .failure(failure)
            }
            files.append(MessageFile(uid: uid, fd: fd, target: target, path: path))
            guard writeAll(fd, message) else {
                let failure = DeliveryFailure.storage("cannot write message file (errno \(errno))")
                discard(files)
                return .failure(failure)
            }
        }
        return .success(files)
    }

    static func discard(_ files: [MessageFile]) {
        for file in files {
            close(file.fd)
            unlink(file.path)
        }
    }

    private struct Queue {
        var jobs: [Job] = []
        var stopped = false
        var finished = false
        var onFinish: [CheckedContinuation<Void, Never>] = []
    }

    private let folder: DataFolder
    private let logger: Logger
    private let queue = NIOLockedValueBox(Queue())
    private let wakeUp = ConditionLock(value: 0)
    private let syncer = ParallelSync()

    init(folder: DataFolder, logger: Logger) {
        self.folder = folder
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in
            Thread.current.name = "pn-committer"  // shows in top -H, perf, /proc
            self.run()
        }
        thread.start()
    }

    /// Returns when the committer thread has drained its queue and ended.
    func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let alreadyFinished = queue.withLockedValue { queue -> Bool in
                queue.stopped = true
                if queue.finished { return true }
                queue.onFinish.append(continuation)
                return false
            }
            if alreadyFinished { continuation.resume() }
            wakeUp.lock()
            wakeUp.unlock(withValue: 1)
        }
    }

    /// Queues a delivery; `completion` runs on the committer thread once it is durable or failed.
    func submit(message: ByteBuffer, targets: [MailboxTarget], threading: ThreadingRow?,
                outbound: OutboundEntry? = nil, credits: [HashcashCredit] = [], files: [MessageFile]? = nil,
                completion: @escaping @Sendable (Result<[NewMailEvent], DeliveryFailure>) -> Void) {
        let accepted = queue.withLockedValue { queue -> Bool in
            guard !queue.stopped else { return false }
            queue.jobs.append(Job(message: message, targets: targets, threading: threading, outbound: outbound, credits: credits,
                                  files: files, completion: completion))
            return true
        }
        guard accepted else {
            if let files { Self.discard(files) }
            completion(.failure(.storage("store is shutting down")))
            return
        }
        wakeUp.lock()
        wakeUp.unlock(withValue: 1)
    }

    private func run() {
        while true {
            wakeUp.lock(whenValue: 1)
            let (jobs, stopped) = queue.withLockedValue { queue -> ([Job], Bool) in
                let jobs = queue.jobs
                queue.jobs.removeAll(keepingCapacity: true)
                return (jobs, queue.stopped)
            }
            wakeUp.unlock(withValue: 0)
            if !jobs.isEmpty { commit(jobs) }
            if stopped && jobs.isEmpty {
                let waiting = queue.withLockedValue { queue -> [CheckedContinuation<Void, Never>] in
                    queue.finished = true
                    defer { queue.onFinish.removeAll() }
                    return queue.onFinish
                }
                syncer.stop()
                for continuation in waiting { continuation.resume() }
                return
            }
        }
    }

    private func commit(_ jobs: [Job]) {
        let directory = folder.messagesDirectory.path
        var written: [[MessageFile]] = Array(repeating: [], count: jobs.count)
        var failures: [Int: DeliveryFailure] = [:]

        // 1. Write every file of the batch not written by its submitter — one per mailbox, and
        // the queued copy of a message with Internet recipients; no fsync yet.
        for (index, job) in jobs.enumerated() {
            switch job.files.map({ Result<[MessageFile], DeliveryFailure>.success($0) })
                ?? Self.writeFiles(job.message, for: job.targets, queueCopy: job.outbound != nil, in: folder) {
            case .success(let files):
                written[index] = files
            case .failure(let failure):
                failures[index] = failure
            }
        }
        // 2. fsync every file and the directories (their new entries) at once: see ParallelSync.
        let descriptors = written.flatMap { $0.map(\.fd) }
        var directoryFDs = [open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)]
        if written.contains(where: { $0.contains { $0.target == nil } }) {
            directoryFDs.append(open(folder.queueDirectory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        }
        let synced = directoryFDs.allSatisfy { $0 >= 0 } && syncer.syncAll(descriptors + directoryFDs)
        for fd in descriptors { close(fd) }
        for fd in directoryFDs where fd >= 0 { close(fd) }
        if !synced {
            for index in jobs.indices where failures[index] == nil { failures[index] = .storage("fsync failed") }
        }
        // 3. One transaction for every index row of the batch; quota checked inside it (MBOX-2).
        var events: [[NewMailEvent]] = Array(repeating: [], count: jobs.count)
        do {
            try folder.database.write { db in
                for index in jobs.indices where failures[index] == nil {
                    let savepoint = "job"
                    try db.cachedStatement(sql: "SAVEPOINT \(savepoint)").execute()
                    var refusal: DeliveryFailure?
                    let size = jobs[index].message.readableBytes
                    for item in written[index] {
                        guard let target = item.target else { continue }  // the queued copy: below
                        // Cached (prepared once) statements: the hot path compiles no SQL.
                        let used = try Int.fetchOne(db.cachedStatement(sql: "SELECT used_bytes FROM account WHERE id = ?"),
                                                    arguments: [target.accountID])
                        guard let used else { refusal = .mailboxGone(accountName: target.accountName); break }
                        if used + size > target.quotaBytes { refusal = .mailboxFull(accountName: target.accountName); break }
                        try db.cachedStatement(sql: "INSERT INTO message (account_id, uid, size) VALUES (?, ?, ?)")
                            .execute(arguments: [target.accountID, item.uid, size])
                        try db.cachedStatement(sql: "UPDATE account SET used_bytes = used_bytes + ? WHERE id = ?")
                            .execute(arguments: [size, target.accountID])
                    }
                    if refusal == nil {
                        refusal = try Self.spend(jobs[index].credits, in: db)
                    }
                    if refusal == nil, let outbound = jobs[index].outbound,
                       let file = written[index].first(where: { $0.target == nil }) {
                        refusal = try Self.enqueue(outbound, uid: file.uid, size: size, in: db)
                    }
                    if let refusal {
                        try db.execute(sql: "ROLLBACK TO \(savepoint)")
                        try db.execute(sql: "RELEASE \(savepoint)")
                        failures[index] = refusal
                    } else {
                        try jobs[index].threading?.insert(db)
                        try db.cachedStatement(sql: "RELEASE \(savepoint)").execute()
                        var counts: [Int64: (String, Int)] = [:]
                        for target in written[index].compactMap(\.target) { counts[target.accountID, default: (target.accountName, 0)].1 += 1 }
                        events[index] = counts.map { NewMailEvent(accountID: $0.key, accountName: $0.value.0, count: $0.value.1) }
                    }
                }
            }
        } catch {
            logger.error("mailbox index commit failed", metadata: ["error": "\(error)"])
            for index in jobs.indices where failures[index] == nil { failures[index] = .storage("index commit failed") }
        }
        // 4. Answer: only now is a 250 allowed. Failed jobs leave no file behind.
        for (index, job) in jobs.enumerated() {
            if let failure = failures[index] {
                for item in written[index] { unlink(item.path) }
                job.completion(.failure(failure))
            } else {
                job.completion(.success(events[index]))
            }
        }
    }

    /// Spends hashcash stamps: each adds to its account's Internet credit, once (QUOTA-2).
    static func spend(_ credits: [HashcashCredit], in db: Database) throws -> DeliveryFailure? {
        for credit in credits {
            let spent = try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM hashcash_spent WHERE key = ?"),
                                          arguments: [credit.spentKey]) ?? false
            if spent { return .stampSpent }
            try db.cachedStatement(sql: "INSERT INTO hashcash_spent (key, expires) VALUES (?, ?)")
                .execute(arguments: [credit.spentKey, credit.expires])
            try db.cachedStatement(sql: "UPDATE account SET internet_credit = internet_credit + ? WHERE id = ?")
                .execute(arguments: [credit.recipients, credit.accountID])
        }
        return nil
    }

    /// Queues the Internet recipients of a message, each counted against the 24-hour quota or,
    /// past it, paid from the hashcash credit (QUOTA-1/2). Refuses the whole message when neither
    /// covers them: concurrent sessions may each have passed the RCPT check.
    static func enqueue(_ entry: OutboundEntry, uid: String, size: Int, in db: Database) throws -> DeliveryFailure? {
        var allowance = try InternetAllowance.read(accountID: entry.accountID, quota: entry.quota, now: entry.now, in: db)
        var counted = 0
        for _ in entry.recipients {
            switch allowance.take() {
            case .counted: counted += 1
            case .paid: break
            case .none: return .internetQuota(freesAt: allowance.freesAt)
            }
        }
        for _ in 0..<counted {
            try db.cachedStatement(sql: "INSERT INTO internet_send (account_id, at) VALUES (?, ?)").execute(arguments: [entry.accountID, entry.now])
        }
        try db.cachedStatement(sql: "UPDATE account SET internet_credit = ? WHERE id = ?").execute(arguments: [allowance.credit, entry.accountID])
        try db.cachedStatement(sql: "INSERT INTO outbound (account_id, uid, size, release_at) VALUES (?, ?, ?, ?)")
            .execute(arguments: [entry.accountID, uid, size, entry.releaseAt])
        let outboundID = db.lastInsertedRowID
        for recipient in entry.recipients {
            try db.cachedStatement(sql: "INSERT INTO outbound_recipient (outbound_id, address, next_attempt) VALUES (?, ?, ?)")
                .execute(arguments: [outboundID, recipient, entry.releaseAt])
        }
        return nil
    }

    /// 128 random bits in hex: unique, never reused, reveals no time or order (MBOX-3).
    static func newUID() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        let hex = String(high, radix: 16) + ":" + String(low, radix: 16)
        // Pad each half to 16 digits so every uid has the same length.
        let parts = hex.split(separator: ":")
        return parts.map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined()
    }

    /// 32 lower-case hex digits: what `newUID` makes, and the only names unlinked in `messages/`.
    static func isWellFormedUID(_ uid: String) -> Bool {
        uid.utf8.count == 32 && uid.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    static func writeAll(_ fd: Int32, _ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { pointer in
            var offset = 0
            while offset < pointer.count {
                let n = write(fd, pointer.baseAddress! + offset, pointer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }
}
