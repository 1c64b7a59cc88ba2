import Crypto
import Foundation
import GRDB

/// Remembers, per account, which Message-ID Postern gave a message whose client had written
/// another one, so that the account's later replies to its own mail (and patch series) still
/// thread: In-Reply-To and References are rewritten on submission (PRIV-2 keeps threading).
///
/// A seized disk must not link an account to the Message-IDs its mail carried in public. So a
/// row is keyed by a tag, and its replacement is sealed (AES-GCM) under a key, both derived by
/// HMAC from a server key and the *original* Message-ID — which only the sender's client knows.
/// Without it, a row is noise. Rows expire after `lifetimeDays`.
public final class ThreadingMap: Sendable {
    private let folder: DataFolder
    private let serverKey: SymmetricKey
    public let lifetimeDays: Int

    public init(folder: DataFolder, lifetimeDays: Int = 90) throws {
        self.folder = folder
        self.lifetimeDays = lifetimeDays
        let path = folder.root.appendingPathComponent("threading.key").path
        if let data = FileManager.default.contents(atPath: path), data.count == 32 {
            serverKey = SymmetricKey(data: data)
        } else {
            let key = SymmetricKey(size: .bits256)
            let bytes = key.withUnsafeBytes { Data($0) }
            guard FileManager.default.createFile(atPath: path, contents: bytes, attributes: [.posixPermissions: 0o600]) else {
                throw DeliveryFailure.storage("cannot write \(path)")
            }
            serverKey = key
        }
    }

    private func derive(_ label: String, accountID: Int64, original: String) -> SymmetricKey {
        SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array("\(label)\u{0}\(accountID)\u{0}\(original)".utf8), using: serverKey))
    }

    private func tag(accountID: Int64, original: String) -> Data {
        derive("tag", accountID: accountID, original: original).withUnsafeBytes { Data($0) }
    }

    /// The replacements known for these original Message-IDs of this account.
    /// Read on the calling thread (a worker thread, never an event loop).
    public func replacements(for originals: [String], accountID: Int64) throws -> [String: String] {
        guard !originals.isEmpty else { return [:] }
        let tags = originals.prefix(100).map { ($0, tag(accountID: accountID, original: $0)) }
        let sealed = try folder.database.read { db in try Self.fetchSealed(tags, db) }
        return unseal(sealed, accountID: accountID)
    }

    private static func fetchSealed(_ tags: [(String, Data)], _ db: Database) throws -> [(String, Data)] {
        try tags.compactMap { original, tag in
            try Data.fetchOne(db.cachedStatement(sql: "SELECT sealed FROM threading WHERE tag = ?"), arguments: [tag])
                .map { (original, $0) }
        }
    }

    private func unseal(_ sealed: [(String, Data)], accountID: Int64) -> [String: String] {
        var result: [String: String] = [:]
        for (original, box) in sealed {
            guard let sealedBox = try? AES.GCM.SealedBox(combined: box),
                  let plain = try? AES.GCM.open(sealedBox, using: derive("key", accountID: accountID, original: original))
            else { continue }
            result[original] = String(decoding: plain, as: UTF8.self)
        }
        return result
    }

    /// The row that records `original → replacement`. It is written by `MailStore.deliver` in
    /// the same transaction as the message it belongs to: no extra commit per message.
    public func row(original: String, replacement: String, accountID: Int64) throws -> ThreadingRow {
        let sealed = try AES.GCM.seal(Array(replacement.utf8), using: derive("key", accountID: accountID, original: original)).combined!
        let today = Int(Date().timeIntervalSince1970 / 86400)
        return ThreadingRow(tag: tag(accountID: accountID, original: original), sealed: sealed, expiresDay: today + lifetimeDays)
    }

    /// Writes a row on its own (tests, tools); deliveries pass theirs to `MailStore.deliver`.
    public func record(original: String, replacement: String, accountID: Int64) async throws {
        let row = try row(original: original, replacement: replacement, accountID: accountID)
        try await folder.database.write { db in try row.insert(db) }
    }

    /// Removes expired rows; run at start and then daily.
    public func removeExpired() async throws {
        let today = Int(Date().timeIntervalSince1970 / 86400)
        try await folder.database.write { db in
            try db.execute(sql: "DELETE FROM threading WHERE expires_day < ?", arguments: [today])
        }
    }
}

/// One sealed threading row, ready to be written (see `ThreadingMap`).
public struct ThreadingRow: Sendable, Equatable {
    public var tag: Data
    public var sealed: Data
    public var expiresDay: Int

    func insert(_ db: Database) throws {
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO threading (tag, sealed, expires_day) VALUES (?, ?, ?)")
            .execute(arguments: [tag, sealed, expiresDay])
    }
}
