import Foundation
import GRDB
import MailCore

/// Per-account settings (ACCT-5). Later issues give them effect; the values are kept now.
public enum DelayMode: String, Sendable, CaseIterable {
    case none, `defer`, batch, pool
}

public struct Account: Sendable, Equatable {
    public var id: Int64
    /// The local part, lower case (ACCT-2).
    public var name: String
    public var passwordHash: String
    /// nil: the configured default (MBOX-2).
    public var quotaBytes: Int?
    public var usedBytes: Int
    public var delayMode: DelayMode
    public var ircNick: String?
    /// The nick's owner sent the bot its code (IRC-2): notices go to it.
    public var ircVerified: Bool
    /// The code to send from `ircNick`, while it is not verified and the code not expired.
    public var ircCode: String?
    public var keyListing: Bool
    public var htmlSanitise: Bool
    /// nil: the configured default (QUOTA-1).
    public var internetQuota: Int?
    /// Internet recipients paid for with hashcash stamps, not used yet (QUOTA-2).
    public var internetCredit: Int

    init(row: Row) {
        id = row["id"]
        name = row["name"]
        passwordHash = row["password_hash"]
        quotaBytes = row["quota_bytes"]
        usedBytes = row["used_bytes"]
        delayMode = DelayMode(rawValue: row["delay_mode"]) ?? .defer
        ircNick = row["irc_nick"]
        ircVerified = (row["irc_verified"] as Bool?) ?? false
        let expires: Int64? = row["irc_code_expires"]
        ircCode = (expires ?? 0) > Int64(Date().timeIntervalSince1970) ? row["irc_code"] : nil
        keyListing = row["key_listing"]
        htmlSanitise = row["html_sanitise"]
        internetQuota = row["internet_quota"]
        internetCredit = row["internet_credit"] ?? 0
    }
}

public enum AccountError: Error, Equatable, CustomStringConvertible {
    case invalidName(String)
    case reserved(String)
    case quarantined(String, untilDay: Int)
    case exists(String)
    case notFound(String)
    case passwordTooShort
    case invalidSetting(String)
    case stampSpent

    public var description: String {
        switch self {
        case .invalidName(let why): return "invalid account name: \(why)"
        case .reserved(let name): return "the name \(name) is reserved"
        case .quarantined(let name, let day):
            let date = Date(timeIntervalSince1970: Double(day) * 86400)
            return "the name \(name) belonged to a deleted account and stays reserved until \(ISO8601DateFormatter.dayOnly.string(from: date))"
        case .exists(let name): return "an account named \(name) already exists"
        case .notFound(let name): return "no account named \(name)"
        case .passwordTooShort: return "the password must be at least \(PasswordHash.minimumPasswordLength) characters long"
        case .invalidSetting(let why): return why
        case .stampSpent: return "this proof-of-work stamp was already used: make a new one"
        }
    }
}

extension ISO8601DateFormatter {
    nonisolated(unsafe) static let dayOnly: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return formatter
    }()
}

/// The rules for account names (ACCT-2), pure.
public struct AccountNamePolicy: Sendable {
    public static let builtinReserved: Set<String> = [
        "postmaster", "abuse", "root", "admin", "hostmaster", "webmaster", "mailer-daemon", "noreply",
    ]
    public var domain: String
    public var reserved: Set<String>

    public init(domain: String, extraReserved: [String] = []) {
        self.domain = domain.lowercased()
        self.reserved = Self.builtinReserved.union(extraReserved.map { $0.lowercased() })
    }

    /// Accepts `alice` or `alice@<domain>`; returns the lower-case local part.
    public func normalise(_ input: String) throws(AccountError) -> String {
        var name = input.lowercased()
        if let at = name.lastIndex(of: "@") {
            guard name[name.index(after: at)...] == domain else {
                throw .invalidName("addresses of this server end in @\(domain)")
            }
            name = String(name[..<at])
        }
        // Byte checks: this runs for every login and recipient, so no Character or Foundation work.
        let bytes = name.utf8
        guard (2...32).contains(bytes.count) else { throw .invalidName("2 to 32 characters") }
        func isAlphanumeric(_ byte: UInt8) -> Bool { (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) }
        guard bytes.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }) else {
            throw .invalidName("only a-z, 0-9, '.', '_' and '-' are allowed")
        }
        guard let first = bytes.first, isAlphanumeric(first) else {
            throw .invalidName("must start with a letter or a digit")
        }
        // The name is the local part of an address: an RFC 5321 dot-string (4.1.2).
        guard bytes.last != UInt8(ascii: "."), !zip(bytes, bytes.dropFirst()).contains(where: { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }) else {
            throw .invalidName("must not end with '.' or contain '..'")
        }
        return name
    }

    /// Like `normalise`, and refuses reserved names (for registration).
    public func validateNew(_ input: String) throws(AccountError) -> String {
        let name = try normalise(input)
        if reserved.contains(name) { throw .reserved(name) }
        return name
    }
}

/// Accounts in the database (ACCT-1..4).
public final class AccountStore: Sendable {
    public let folder: DataFolder
    public let policy: AccountNamePolicy
    /// Days a deleted name stays reserved (ACCT-4; default 180).
    public let quarantineDays: Int
    public let hashParameters: PasswordHash.Parameters
    /// Accounts read in the last seconds, for mail routing and repeated logins (see
    /// RecentAccounts); every change through any store, in any process, invalidates them.
    public let recent: RecentAccounts
    /// Bumped after every account change, seen by every process (see AccountGeneration).
    public let generation: AccountGeneration

    public init(folder: DataFolder, policy: AccountNamePolicy, quarantineDays: Int = 180,
                hashParameters: PasswordHash.Parameters = .standard, recentLifetime: Double = 2) {
        self.folder = folder
        self.policy = policy
        self.quarantineDays = quarantineDays
        self.hashParameters = hashParameters
        let generation = AccountGeneration(directory: folder.root)
        self.generation = generation
        self.recent = RecentAccounts(lifetime: recentLifetime, now: { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 },
                                     generation: { generation.current })
    }

    static func today() -> Int { Int(Date().timeIntervalSince1970 / 86400) }

    /// `spentStamp`: the sign-up's proof-of-work stamp (its SHA-1 key and when it may be
    /// forgotten), remembered in the same transaction as the account, in the table that also keeps
    /// quota stamps: a stamp buys one thing, once.
    public func create(name input: String, password: String, quotaBytes: Int? = nil,
                       spentStamp: (key: String, expires: Int64)? = nil) throws -> Account {
        let name = try policy.validateNew(input)
        guard password.count >= PasswordHash.minimumPasswordLength else { throw AccountError.passwordTooShort }
        let hash = try PasswordHash.make(password: password, parameters: hashParameters).encoded
        return try folder.database.write { db in
            if let until = try Int.fetchOne(db, sql: "SELECT until_day FROM quarantine WHERE name = ?", arguments: [name]) {
                if until > Self.today() { throw AccountError.quarantined(name, untilDay: until) }
                try db.execute(sql: "DELETE FROM quarantine WHERE name = ?", arguments: [name])
            }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM account WHERE name = ?", arguments: [name]) == true {
                throw AccountError.exists(name)
            }
            if let spentStamp {
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM hashcash_spent WHERE key = ?", arguments: [spentStamp.key]) == true {
                    throw AccountError.stampSpent
                }
                try db.execute(sql: "INSERT INTO hashcash_spent (key, expires) VALUES (?, ?)", arguments: [spentStamp.key, spentStamp.expires])
            }
            try db.execute(sql: "INSERT INTO account (name, password_hash, quota_bytes) VALUES (?, ?, ?)",
                           arguments: [name, hash, quotaBytes])
            return Account(row: try Row.fetchOne(db, sql: "SELECT * FROM account WHERE id = ?", arguments: [db.lastInsertedRowID])!)
        }
    }

    public func find(_ input: String) throws -> Account? {
        guard let name = try? policy.normalise(input) else { return nil }
        return try folder.database.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM account WHERE name = ?"), arguments: [name]).map(Account.init(row:))
        }
    }

    public func find(_ input: String) async throws -> Account? {
        guard let name = try? policy.normalise(input) else { return nil }
        return try await folder.database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM account WHERE name = ?", arguments: [name]).map(Account.init(row:))
        }
    }

    public func require(_ input: String) throws -> Account {
        guard let account = try find(input) else { throw AccountError.notFound(input.lowercased()) }
        return account
    }

    public func all() throws -> [Account] {
        try folder.database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM account ORDER BY name").map(Account.init(row:))
        }
    }

    /// The operator's account, which receives postmaster@ and abuse@ (ACCT-2): the configured
    /// one, or else the oldest account. Read on the calling thread (never an event loop).
    public func operatorAccount(configured: String?) throws -> Account? {
        if let configured { return try find(configured) }
        return try folder.database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM account ORDER BY id LIMIT 1").map(Account.init(row:))
        }
    }

    public func setPassword(_ input: String, password: String) throws {
        guard password.count >= PasswordHash.minimumPasswordLength else { throw AccountError.passwordTooShort }
        let account = try require(input)
        let hash = try PasswordHash.make(password: password, parameters: hashParameters).encoded
        try folder.database.write { db in
            try db.execute(sql: "UPDATE account SET password_hash = ? WHERE id = ?", arguments: [hash, account.id])
        }
        generation.bump()
    }

    /// Applies `key=value` settings (ACCT-5). Every key is validated before anything is written.
    public func apply(settings: [(String, String)], to input: String) throws -> Account {
        let account = try require(input)
        var assignments: [(String, (any DatabaseValueConvertible)?)] = []
        for (key, value) in settings {
            switch key {
            case "quota":
                if value == "default" { assignments.append(("quota_bytes", nil)); continue }
                guard let bytes = ByteSize.parse(value), bytes > 0 else {
                    throw AccountError.invalidSetting("quota: expected a size such as 50MB or 1GiB, or 'default'")
                }
                assignments.append(("quota_bytes", bytes))
            case "delay":
                guard let mode = DelayMode(rawValue: value) else {
                    throw AccountError.invalidSetting("delay: expected one of none, defer, batch, pool")
                }
                assignments.append(("delay_mode", mode.rawValue))
            case "irc_nick":
                // RFC 2812 2.3.1 nickname: letter or special first, then letters, digits, specials, '-'.
                let valid = value.isEmpty || (value.count <= 30 && value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "[]\\`_^{|}-".contains($0)) }
                    && !(value.first!.isNumber || value.first! == "-"))
                guard valid else { throw AccountError.invalidSetting("irc_nick: not a valid IRC nickname (RFC 2812 2.3.1)") }
                assignments.append(("irc_nick", value.isEmpty ? nil : value))
                // A new nick must be verified again, with a new code (IRC-2).
                if value != account.ircNick {
                    assignments.append(("irc_verified", false))
                    assignments.append(("irc_code", value.isEmpty ? nil : Self.ircCode()))
                    assignments.append(("irc_code_expires", value.isEmpty ? nil : Int64(Date().timeIntervalSince1970) + Self.ircCodeLifetime))
                }
            case "key_listing", "html_sanitise":
                guard let flag = ["on": true, "yes": true, "true": true, "off": false, "no": false, "false": false][value] else {
                    throw AccountError.invalidSetting("\(key): expected on or off")
                }
                assignments.append((key, flag))
            case "internet_quota":
                if value == "default" { assignments.append(("internet_quota", nil)); continue }
                guard let count = Int(value), count >= 0, count <= 100_000 else {
                    throw AccountError.invalidSetting("internet_quota: expected a number of recipients per 24 hours, or 'default'")
                }
                assignments.append(("internet_quota", count))
            default:
                throw AccountError.invalidSetting("unknown setting \(key): use quota, delay, irc_nick, key_listing, html_sanitise or internet_quota")
            }
        }
        defer { generation.bump() }
        return try folder.database.write { db in
            for (column, value) in assignments {
                try db.execute(sql: "UPDATE account SET \(column) = ? WHERE id = ?", arguments: [value, account.id])
            }
            return Account(row: try Row.fetchOne(db, sql: "SELECT * FROM account WHERE id = ?", arguments: [account.id])!)
        }
    }

    /// How long an IRC code stays valid.
    public static let ircCodeLifetime: Int64 = 7 * 86400

    /// 8 characters of base32 (RFC 4648 alphabet): easy to type into an IRC client.
    static func ircCode() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var random = SystemRandomNumberGenerator()
        return String((0..<8).map { _ in alphabet[Int(random.next(upperBound: UInt64(alphabet.count)))] })
    }

    /// The account and nick a pending, unexpired IRC code belongs to.
    public func pendingIRCCode(_ code: String) throws -> (account: String, nick: String)? {
        let now = Int64(Date().timeIntervalSince1970)
        return try folder.database.read { db in
            try Row.fetchOne(db, sql: "SELECT name, irc_nick FROM account WHERE irc_code = ? AND irc_code_expires > ? AND irc_nick IS NOT NULL",
                             arguments: [code.uppercased(), now]).map { ($0["name"], $0["irc_nick"]) }
        }
    }

    /// The code was sent from the nick: notices start; the code is spent.
    public func markIRCVerified(_ name: String, nick: String) throws {
        try folder.database.write { db in
            try db.execute(sql: "UPDATE account SET irc_verified = 1, irc_code = NULL, irc_code_expires = NULL WHERE name = ? AND irc_nick = ?",
                           arguments: [name, nick])
        }
        generation.bump()
    }

    /// Every verified nick, account → nick (loaded by the bot at start).
    public func verifiedIRCNicks() throws -> [String: String] {
        try folder.database.read { db in
            Dictionary(try Row.fetchAll(db, sql: "SELECT name, irc_nick FROM account WHERE irc_verified = 1 AND irc_nick IS NOT NULL")
                .map { ($0["name"] as String, $0["irc_nick"] as String) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// Deletes the account and every message of it, at once and for good (ACCT-4), and reserves the
    /// name for the quarantine period. Returns the number of messages removed.
    @discardableResult
    public func delete(_ input: String) throws -> Int {
        let account = try require(input)
        let uids: ([String], [String]) = try folder.database.write { db in
            let uids = try String.fetchAll(db, sql: "SELECT uid FROM message WHERE account_id = ?", arguments: [account.id])
            let queued = try String.fetchAll(db, sql: "SELECT uid FROM outbound WHERE account_id = ?", arguments: [account.id])
            try db.execute(sql: "DELETE FROM message WHERE account_id = ?", arguments: [account.id])
            try db.execute(sql: "DELETE FROM account WHERE id = ?", arguments: [account.id])
            try db.execute(sql: "INSERT OR REPLACE INTO quarantine (name, until_day) VALUES (?, ?)",
                           arguments: [account.name, Self.today() + quarantineDays])
            return (uids, queued)
        }
        generation.bump()
        for uid in uids.0 {
            unlink(folder.messagesDirectory.appendingPathComponent(uid).path)
        }
        // Its queued Internet mail goes too (the rows went with the account).
        for uid in uids.1 {
            unlink(folder.queueDirectory.appendingPathComponent(uid).path)
        }
        return uids.0.count
    }
}
