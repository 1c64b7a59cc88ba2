import Foundation
import GRDB

/// The data folder (OPS-1): `postern.sqlite` (WAL) for accounts and the mailbox index, and
/// `messages/` with one file per stored message. Nothing here holds a subject, a body, an IP
/// address or a HELO name (PRIV-6): the index keeps ids and sizes only.
public final class DataFolder: Sendable {
    public let root: URL
    public let messagesDirectory: URL
    /// Internet-bound messages waiting in the outbound queue (QUEUE-1): one file per message.
    public let queueDirectory: URL
    public let database: DatabasePool

    public init(path: String) throws {
        root = URL(fileURLWithPath: path, isDirectory: true)
        messagesDirectory = root.appendingPathComponent("messages", isDirectory: true)
        queueDirectory = root.appendingPathComponent("queue", isDirectory: true)
        for directory in [messagesDirectory, queueDirectory] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
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
        migrator.registerMigration("v3-outbound") { db in
            // The outbound queue (QUEUE-1, DELAY-3): a message file in queue/ and one row per
            // Internet recipient. release_at NULL: held in the pool mix (DELAY-4). Statuses are
            // codes only (`4.4.1`), never a relay's text.
            // internet_send: one row per Internet recipient that counted against the quota in
            // the last 24 hours (QUOTA-1), purged once older; internet_credit: recipients earned
            // with hashcash stamps (QUOTA-2); hashcash_spent: SHA-1 of each spent stamp, kept
            // until the stamp would have expired anyway, linked to no account.
            try db.execute(sql: """
                CREATE TABLE outbound (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    uid TEXT NOT NULL UNIQUE,
                    size INTEGER NOT NULL,
                    release_at INTEGER
                );
                CREATE INDEX outbound_pool ON outbound(release_at);
                CREATE TABLE outbound_recipient (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    outbound_id INTEGER NOT NULL REFERENCES outbound(id) ON DELETE CASCADE,
                    address TEXT NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt INTEGER,
                    last_code INTEGER,
                    last_status TEXT,
                    notified INTEGER NOT NULL DEFAULT 0
                );
                CREATE INDEX outbound_recipient_due ON outbound_recipient(next_attempt);
                CREATE INDEX outbound_recipient_message ON outbound_recipient(outbound_id);
                CREATE TABLE internet_send (
                    account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
                    at INTEGER NOT NULL
                );
                CREATE INDEX internet_send_by_account ON internet_send(account_id, at);
                CREATE TABLE hashcash_spent (
                    key TEXT PRIMARY KEY,
                    expires INTEGER NOT NULL
                );
                ALTER TABLE account ADD COLUMN internet_credit INTEGER NOT NULL DEFAULT 0;
                """)
        }
        migrator.registerMigration("v4-irc") { db in
            // IRC-2: a nick gets notices only once its owner sent the bot the one-time code from
            // it. The code waits here (the account page and the CLI make it; the bot checks it).
            try db.execute(sql: """
                ALTER TABLE account ADD COLUMN irc_verified INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE account ADD COLUMN irc_code TEXT;
                ALTER TABLE account ADD COLUMN irc_code_expires INTEGER;
                CREATE INDEX account_irc_code ON account(irc_code) WHERE irc_code IS NOT NULL;
                """)
        }
        migrator.registerMigration("v5-keys") { db in
            // KEYS-1: one published OpenPGP key per account, as the key book serves it (already
            // filtered to the account's own user ID); it goes with the account (ACCT-4).
            try db.execute(sql: """
                CREATE TABLE openpgp_key (
                    account_id INTEGER PRIMARY KEY REFERENCES account(id) ON DELETE CASCADE,
                    fingerprint TEXT NOT NULL,
                    key_ids TEXT NOT NULL,
                    algorithm INTEGER NOT NULL,
                    bits INTEGER,
                    created INTEGER NOT NULL,
                    expires INTEGER,
                    user_id TEXT NOT NULL,
                    key BLOB NOT NULL
                );
                CREATE INDEX openpgp_key_fingerprint ON openpgp_key(fingerprint);
                """)
        }
        return migrator
    }
}
