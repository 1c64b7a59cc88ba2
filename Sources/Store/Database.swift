import Foundation
import GRDB

/// The data folder (OPS-1): `postern.sqlite` (WAL) for accounts and the mailbox index, and
/// `messages/` with one file per stored message. Nothing here holds a subject, a body, an IP
/// address or a HELO name (PRIV-6): the index keeps ids and sizes only.
public final class DataFolder: Sendable {
    public let root: URL
    public let messagesDirectory: URL
    public let database: DatabasePool

    public init(path: String) throws {
        root = URL(fileURLWithPath: path, isDirectory: true)
        messagesDirectory = root.appendingPathComponent("messages", isDirectory: true)
        try FileManager.default.createDirectory(at: messagesDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        chmod(root.path, 0o700)
        var configuration = Configuration()
        configuration.busyMode = .timeout(15)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            try db.execute(sql: "PRAGMA secure_delete = ON")  // ACCT-4: deleted rows are overwritten
        }
        database = try DatabasePool(path: root.appendingPathComponent("postern.sqlite").path, configuration: configuration)
        // WAL commits are durable only with synchronous = FULL (SMTP-7: the WAL is fsync'ed at
        // every commit). GRDB sets NORMAL on the writer when it turns WAL on, after
        // prepareDatabase has run, so FULL is set here, on the one writer connection.
        try database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        try Self.migrator.migrate(database)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE account (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    name TEXT NOT NULL UNIQUE,
                    password_hash TEXT NOT NULL,
                    quota_bytes INTEGER,
                    used_bytes INTEGER NOT NULL DEFAULT 0,
                    delay_mode TEXT NOT NULL DEFAULT 'defer',
                    irc_nick TEXT,
                    key_listing INTEGER NOT NULL DEFAULT 0,
                    html_sanitise INTEGER NOT NULL DEFAULT 1,
                    internet_quota INTEGER
                );
                CREATE TABLE quarantine (
                    name TEXT PRIMARY KEY,
                    until_day INTEGER NOT NULL
                );
                CREATE TABLE message (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    uid TEXT NOT NULL UNIQUE,
                    size INTEGER NOT NULL
                );
                CREATE INDEX message_by_account ON message(account_id, id);
                """)
        }
        migrator.registerMigration("v2-threading") { db in
            // No account column: the tag is derived from the account and the original id, and the
            // table must not tell which account sent how much.
            try db.execute(sql: """
                CREATE TABLE threading (
                    tag BLOB PRIMARY KEY,
                    sealed BLOB NOT NULL,
                    expires_day INTEGER NOT NULL
                );
                """)
        }
        return migrator
    }
}
