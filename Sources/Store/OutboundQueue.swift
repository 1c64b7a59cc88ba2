import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB
import NIOCore

/// What an account may still send to the Internet (QUOTA-1/2): `quota` recipients per rolling
/// 24 hours, counted from `internet_send`, and beyond that its hashcash credit.
public struct InternetAllowance: Sendable, Equatable {
    public var quota: Int
    /// Recipients counted in the last 24 hours.
    public var used: Int
    /// Recipients paid for with hashcash stamps and not used yet.
    public var credit: Int
    /// When the oldest counted recipient leaves the window (nil: none counted).
    public var freesAt: Int64?

    public init(quota: Int, used: Int, credit: Int, freesAt: Int64?) {
        self.quota = quota
        self.used = used
        self.credit = credit
        self.freesAt = freesAt
    }

    public static let window: Int64 = 86400

    public var remaining: Int { max(0, quota - used) + credit }

    public enum Take: Equatable { case counted, paid, none }

    /// Uses one recipient: from the 24-hour quota first, then from the credit.
    public mutating func take() -> Take {
        if used < quota { used += 1; return .counted }
        if credit > 0 { credit -= 1; return .paid }
        return .none
    }

    public static func read(accountID: Int64, quota: Int, now: Int64, in db: Database) throws -> InternetAllowance {
        let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT count(*), min(at) FROM internet_send WHERE account_id = ? AND at > ?"),
                                   arguments: [accountID, now - window])
        let credit = try Int.fetchOne(db.cachedStatement(sql: "SELECT internet_credit FROM account WHERE id = ?"), arguments: [accountID]) ?? 0
        let oldest: Int64? = row?[1]
        return InternetAllowance(quota: quota, used: row?[0] ?? 0, credit: credit, freesAt: oldest.map { $0 + window })
    }
}

/// One Internet recipient in the outbound queue, as the queue runner and `postern queue` see it.
public struct QueuedRecipient: Sendable, Equatable {
    public var id: Int64
    public var messageID: Int64
    public var address: String
    public var attempts: Int
    /// nil while the message is held (pool).
    public var nextAttempt: Int64?
    public var lastCode: Int?
    public var lastStatus: String?
    public var notified: Bool
}

/// One queued message with its recipients still to relay.
public struct QueuedMessage: Sendable, Equatable {
    public var id: Int64
    public var accountID: Int64
    public var accountName: String
    /// The file in queue/.
    public var uid: String
    public var size: Int
    /// nil: held in the pool.
    public var releaseAt: Int64?
    public var recipients: [QueuedRecipient]
}

/// The outbound queue on the data folder (QUEUE-1): reads for the runner and the operator, and
/// the runner's updates after each attempt. Messages enter it only through `MailStore.deliver`
/// (in the same transaction as their local copies). All calls block: worker threads only.
public final class OutboundQueue: Sendable {
    public let folder: DataFolder

    public init(folder: DataFolder) {
        self.folder = folder
    }

    /// What `group` reads: the message, then one recipient, per row.
    private static let columns = "o.id, o.account_id, a.name, o.uid, o.size, o.release_at, "
        + "r.id, r.address, r.attempts, r.next_attempt, r.last_code, r.last_status, r.notified"

    /// Recipients taken by one `due` call; the runner asks again at once when it got that many.
    public static let dueBatch = 200

    /// Messages with at least one recipient due at `now`, each with its due recipients only.
    public func due(now: Int64, limit: Int = OutboundQueue.dueBatch) throws -> [QueuedMessage] {
        try folder.database.read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT \(Self.columns)
                FROM outbound_recipient r JOIN outbound o ON o.id = r.outbound_id JOIN account a ON a.id = o.account_id
                WHERE r.next_attempt IS NOT NULL AND r.next_attempt <= ? ORDER BY r.next_attempt, random() LIMIT ?
                """, arguments: [now, limit])
            return Self.group(rows)
        }
    }

    /// Every queued message (`postern queue list`), or the ones given.
    public func all(ids: [Int64]? = nil) throws -> [QueuedMessage] {
        try folder.database.read { db in
            let filter = ids.map { "WHERE o.id IN (\($0.map(String.init).joined(separator: ",")))" } ?? ""
            let rows = try Row.fetchAll(db, sql: """
                SELECT \(Self.columns)
                FROM outbound o JOIN account a ON a.id = o.account_id JOIN outbound_recipient r ON r.outbound_id = o.id
                \(filter) ORDER BY o.id, r.id
                """)
            return Self.group(rows)
        }
    }

    private static func group(_ rows: [Row]) -> [QueuedMessage] {
        var messages: [QueuedMessage] = []
        var index: [Int64: Int] = [:]
        for row in rows {
            let id: Int64 = row[0]
            if index[id] == nil {
                index[id] = messages.count
                messages.append(QueuedMessage(id: id, accountID: row[1], accountName: row[2], uid: row[3], size: row[4],
                                              releaseAt: row[5], recipients: []))
            }
            messages[index[id]!].recipients.append(QueuedRecipient(
                id: row[6], messageID: id, address: row[7], attempts: row[8], nextAttempt: row[9],
                lastCode: row[10], lastStatus: row[11], notified: row[12]))
        }
        return messages
    }

    /// The earliest next attempt of any recipient (nil: nothing scheduled).
    public func nextDue() throws -> Int64? {
        try folder.database.read { db in
            try Int64.fetchOne(db, sql: "SELECT min(next_attempt) FROM outbound_recipient")
        }
    }

    /// Ids of the messages held in the pool mix.
    public func pooled() throws -> [Int64] {
        try folder.database.read { db in try Int64.fetchAll(db, sql: "SELECT id FROM outbound WHERE release_at IS NULL ORDER BY id") }
    }

    /// Releases held or waiting messages now: the pool round's picks, or the operator's flush
    /// (`ids` nil: every message). Returns the number of messages released.
    @discardableResult
    public func release(ids: [Int64]?, at now: Int64) throws -> Int {
        try folder.database.write { db in
            let filter = ids.map { "WHERE id IN (\($0.map(String.init).joined(separator: ",")))" } ?? ""
            let chosen = try Int64.fetchAll(db, sql: "SELECT id FROM outbound \(filter)")
            for id in chosen {
                try db.execute(sql: "UPDATE outbound SET release_at = min(coalesce(release_at, ?), ?) WHERE id = ?", arguments: [now, now, id])
                try db.execute(sql: "UPDATE outbound_recipient SET next_attempt = ? WHERE outbound_id = ?", arguments: [now, id])
            }
            return chosen.count
        }
    }

    /// The stored bytes of a queued message.
    public func content(of message: QueuedMessage) throws -> ByteBuffer {
        guard GroupCommitter.isWellFormedUID(message.uid) else { throw DeliveryFailure.storage("no such queue file") }
        return try MailStore.readFile(folder.queueDirectory.appendingPathComponent(message.uid).path)
    }

    /// What one attempt did to one recipient.
    public enum Result: Sendable, Equatable {
        /// Relayed, or failed for good (its DSN is delivered separately): the row goes.
        case done
        /// Try again at `next`; `notified`: the delay notice has been sent.
        case retry(next: Int64, code: Int?, status: String, notified: Bool)
    }

    /// Records the outcome of an attempt for each recipient, removes finished recipients, and
    /// the message and its file once none is left. One transaction: committed before return.
    public func record(_ results: [Int64: Result], of message: QueuedMessage) throws {
        let finished = try folder.database.write { db -> Bool in
            for (recipientID, result) in results {
                switch result {
                case .done:
                    try db.execute(sql: "DELETE FROM outbound_recipient WHERE id = ?", arguments: [recipientID])
                case .retry(let next, let code, let status, let notified):
                    try db.execute(sql: """
                        UPDATE outbound_recipient SET attempts = attempts + 1, next_attempt = ?, last_code = ?, last_status = ?,
                        notified = ? WHERE id = ?
                        """, arguments: [next, code, status, notified, recipientID])
                }
            }
            let left = try Int.fetchOne(db, sql: "SELECT count(*) FROM outbound_recipient WHERE outbound_id = ?", arguments: [message.id]) ?? 0
            if left == 0 { try db.execute(sql: "DELETE FROM outbound WHERE id = ?", arguments: [message.id]) }
            return left == 0
        }
        if finished { unlinkFile(message.uid) }
    }

    /// Removes messages from the queue for good (`postern queue delete`). Returns how many.
    @discardableResult
    public func delete(ids: [Int64]) throws -> Int {
        let uids = try folder.database.write { db -> [String] in
            let list = ids.map(String.init).joined(separator: ",")
            let uids = try String.fetchAll(db, sql: "SELECT uid FROM outbound WHERE id IN (\(list))")
            try db.execute(sql: "DELETE FROM outbound WHERE id IN (\(list))")
            return uids
        }
        uids.forEach(unlinkFile)
        return uids.count
    }

    /// Forgets quota rows older than the window and spent stamps past their expiry: the store
    /// keeps no record of sending times longer than the quota needs it (PRIV-6).
    public func purge(now: Int64) throws {
        try folder.database.write { db in
            try db.execute(sql: "DELETE FROM internet_send WHERE at <= ?", arguments: [now - InternetAllowance.window])
            // A stamp is valid up to and including its expiry second (HashcashStamp.verify).
            try db.execute(sql: "DELETE FROM hashcash_spent WHERE expires < ?", arguments: [now])
        }
    }

    /// The allowance of an account now (the RCPT check).
    public func allowance(accountID: Int64, quota: Int, now: Int64) throws -> InternetAllowance {
        try folder.database.read { db in try InternetAllowance.read(accountID: accountID, quota: quota, now: now, in: db) }
    }

    private func unlinkFile(_ uid: String) {
        guard GroupCommitter.isWellFormedUID(uid) else { return }
        unlink(folder.queueDirectory.appendingPathComponent(uid).path)
    }
}
