import Foundation
import GRDB

/// One account's published OpenPGP key (KEYS-1), as stored: the filtered transferable public
/// key and what lookups search by. What a key *is* is the KeyDirectory module's business; this
/// keeps bytes and search columns.
public struct StoredKey: Sendable, Equatable {
    public var accountName: String
    /// Upper-case hex.
    public var fingerprint: String
    /// The key ids (16 upper-case hex digits) of the primary key and its subkeys.
    public var keyIDs: [String]
    public var algorithm: Int
    public var bits: Int?
    public var created: Int64
    public var expires: Int64?
    public var userID: String
    public var key: [UInt8]

    public init(accountName: String, fingerprint: String, keyIDs: [String], algorithm: Int, bits: Int?, created: Int64,
                expires: Int64?, userID: String, key: [UInt8]) {
        self.accountName = accountName
        self.fingerprint = fingerprint
        self.keyIDs = keyIDs
        self.algorithm = algorithm
        self.bits = bits
        self.created = created
        self.expires = expires
        self.userID = userID
        self.key = key
    }

    init(row: Row) {
        accountName = row["name"]
        fingerprint = row["fingerprint"]
        keyIDs = (row["key_ids"] as String).split(separator: " ").map(String.init)
        algorithm = row["algorithm"]
        bits = row["bits"]
        created = row["created"]
        expires = row["expires"]
        userID = row["user_id"]
        key = [UInt8](row["key"] as Data)
    }
}

/// The key book's storage (KEYS-1..3): publish, replace, remove, and the lookups, which see only
/// the keys of accounts that chose to be listed (ACCT-5 key_listing).
public final class KeyBook: Sendable {
    private let folder: DataFolder
    public let accounts: AccountStore

    public init(accounts: AccountStore) {
        self.accounts = accounts
        self.folder = accounts.folder
    }

    /// Publishes (or replaces) the account's key.
    public func publish(_ key: StoredKey) throws {
        let account = try accounts.require(key.accountName)
        try folder.database.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO openpgp_key (account_id, fingerprint, key_ids, algorithm, bits, created, expires, user_id, key)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [account.id, key.fingerprint, key.keyIDs.joined(separator: " "), key.algorithm, key.bits,
                                 key.created, key.expires, key.userID, Data(key.key)])
        }
    }

    /// Removes the account's key; false when there was none.
    @discardableResult
    public func remove(_ accountName: String) throws -> Bool {
        let account = try accounts.require(accountName)
        return try folder.database.write { db in
            try db.execute(sql: "DELETE FROM openpgp_key WHERE account_id = ?", arguments: [account.id])
            return db.changesCount > 0
        }
    }

    /// The account's key, listed or not (the account page and the CLI show it to its owner).
    public func key(of accountName: String) throws -> StoredKey? {
        guard let account = try accounts.find(accountName) else { return nil }
        return try folder.database.read { db in
            try Row.fetchOne(db, sql: "SELECT a.name, k.* FROM openpgp_key k JOIN account a ON a.id = k.account_id WHERE k.account_id = ?",
                             arguments: [account.id]).map(StoredKey.init(row:))
        }
    }

    /// Every key, listed or not (`postern keys list`).
    public func all() throws -> [(key: StoredKey, listed: Bool)] {
        try folder.database.read { db in
            try Row.fetchAll(db, sql: "SELECT a.name, a.key_listing, k.* FROM openpgp_key k JOIN account a ON a.id = k.account_id ORDER BY a.name")
                .map { (StoredKey(row: $0), $0["key_listing"] as Bool) }
        }
    }

    /// What a lookup may find: keys of listed accounts whose name, fingerprint or key id matches
    /// `search` (the account's local part, as it is the address at this domain; a fingerprint of
    /// 40 or 64 hex digits; a key id of 16 or 8 hex digits, with or without 0x).
    public func lookup(_ search: Search) throws -> [StoredKey] {
        try folder.database.read { db in
            let listed = "SELECT a.name, k.* FROM openpgp_key k JOIN account a ON a.id = k.account_id WHERE a.key_listing = 1"
            switch search {
            case .account(let name):
                return try Row.fetchAll(db, sql: listed + " AND a.name = ?", arguments: [name]).map(StoredKey.init(row:))
            case .fingerprint(let hex):
                return try Row.fetchAll(db, sql: listed + " AND k.fingerprint = ?", arguments: [hex]).map(StoredKey.init(row:))
            case .keyID(let hex):
                // A short key id (8 hex digits) is the end of a long one.
                return try Row.fetchAll(db, sql: listed + " AND (' ' || k.key_ids || ' ') LIKE ?", arguments: ["% %\(hex) %"])
                    .map(StoredKey.init(row:))
                    .filter { $0.keyIDs.contains { $0.hasSuffix(hex) } }
            }
        }
    }

    public enum Search: Sendable, Equatable {
        case account(String)
        case fingerprint(String)
        case keyID(String)
    }
}
