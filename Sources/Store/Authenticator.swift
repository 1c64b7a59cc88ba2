import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

public enum LoginResult: Sendable, Equatable {
    case success(Account)
    case failure
    /// The check could not be made (database error, or the account's back-off queue is too long).
    case temporaryFailure
}

/// Exponential login back-off per account, across connections and protocols (SMTP-6, POP-4).
///
/// Every I2P client arrives from 127.0.0.1, so limits are per account, never per address. After
/// n consecutive failures, attempts on that account are admitted one at a time, `base · 2^(n-1)`
/// apart (capped at `maximum`), whichever connection they come from: parallel guessing gains
/// nothing. A success clears the record. Pure value, so the schedule can be tested directly.
public struct LoginBackoff: Sendable {
    public var base: Double
    public var maximum: Double
    /// An attempt that would wait longer than this is answered "try later" at once.
    public var maximumWait: Double
    private var records: [String: (failures: Int, nextSlot: Double)] = [:]

    public init(base: Double = 1, maximum: Double = 15, maximumWait: Double = 60) {
        self.base = base
        self.maximum = maximum
        self.maximumWait = maximumWait
    }

    /// Reserves the next attempt slot for `name`; returns how long to wait before checking, or nil
    /// when the wait would exceed `maximumWait`.
    public mutating func admit(_ name: String, now: Double) -> Double? {
        guard let record = records[name], record.failures > 0 else { return 0 }
        let slot = max(now, record.nextSlot)
        guard slot - now <= maximumWait else { return nil }
        records[name]!.nextSlot = slot + penalty(failures: record.failures)
        return slot - now
    }

    public mutating func recordFailure(_ name: String, now: Double) {
        var record = records[name] ?? (0, now)
        record.failures += 1
        record.nextSlot = max(record.nextSlot, now + penalty(failures: record.failures))
        records[name] = record
        if records.count > 100_000 { records = records.filter { $0.value.nextSlot > now } }
    }

    public mutating func recordSuccess(_ name: String) {
        records.removeValue(forKey: name)
    }

    public func penalty(failures: Int) -> Double {
        guard failures > 0 else { return 0 }
        return min(maximum, base * pow(2, Double(min(failures - 1, 30))))
    }

    public func failures(of name: String) -> Int { records[name]?.failures ?? 0 }
}

/// Checks logins for SMTP, POP3 and (later) the web, with the shared back-off.
///
/// A verified password is remembered for a while as a keyed hash (key made at start, held in
/// memory only), so a client that logs in for every message does not pay a full scrypt each time.
/// The cache entry is bound to the stored hash, so a password change invalidates it at once.
public final class Authenticator: Sendable {
    private let accounts: AccountStore
    private let logger: Logger
    private let pool: NIOThreadPool
    private let backoff: NIOLockedValueBox<LoginBackoff>
    private let cache = NIOLockedValueBox<[SHA256Digest: Double]>([:])
    private let cacheKey = SymmetricKey(size: .bits256)
    private let cacheLifetime: Double
    private let dummyHash: PasswordHash

    public init(accounts: AccountStore, backoff: LoginBackoff = LoginBackoff(), cacheLifetime: Double = 600, logger: Logger) {
        self.accounts = accounts
        self.logger = logger
        self.backoff = NIOLockedValueBox(backoff)
        self.cacheLifetime = cacheLifetime
        self.pool = NIOThreadPool(numberOfThreads: max(1, System.coreCount))
        pool.start()
        // Unknown names cost the same scrypt as known ones: timing reveals no account list.
        self.dummyHash = (try? PasswordHash.make(password: "unknown-account-dummy", parameters: accounts.hashParameters))
            ?? PasswordHash(parameters: accounts.hashParameters, salt: Array(repeating: 0, count: 16), hash: Array(repeating: 0, count: 32))
    }

    public func shutdown() async {
        try? await pool.shutdownGracefully()
    }

    public func verify(username: String, password: String) async -> LoginResult {
        let key = Self.backoffKey(username, policy: accounts.policy)
        guard let wait = backoff.withLockedValue({ $0.admit(key, now: Date().timeIntervalSince1970) }) else { return .temporaryFailure }
        if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait * 1_000_000_000)) }
        let account: Account?
        do {
            account = try await accounts.find(username)
        } catch {
            logger.error("account lookup failed", metadata: ["error": "\(type(of: error))"])
            return .temporaryFailure
        }
        let attempt = Attempt(key: key, account: account, password: password, cacheKey: cacheKey)
        if isCached(attempt) { return conclude(attempt, valid: true) }
        let hash = attempt.storedHash ?? dummyHash
        let matches = (try? await pool.runIfActive { hash.verify(password: password) }) ?? false
        return conclude(attempt, valid: matches && attempt.storedHash != nil)
    }

    /// The same for a caller on an event loop: the whole check (account read, then the cached
    /// fingerprint or scrypt) in one hop to the checking threads and back; no task.
    public func verify(username: String, password: String, on loop: any EventLoop) -> EventLoopFuture<LoginResult> {
        let key = Self.backoffKey(username, policy: accounts.policy)
        guard let wait = backoff.withLockedValue({ $0.admit(key, now: Date().timeIntervalSince1970) }) else {
            return loop.makeSucceededFuture(.temporaryFailure)
        }
        let check = { [self] in
            pool.runIfActive(eventLoop: loop) { self.checkNow(key: key, username: username, password: password) }
                .recover { _ in .temporaryFailure }
        }
        guard wait > 0 else {
            // A client that logs in for every message: the account was read moments ago (see
            // RecentAccounts) and this very password verified against its stored hash, so the
            // answer needs no thread switch and no read. Anything else goes the long way.
            if let account = accounts.recent.lookup(key), account.name == key {
                let attempt = Attempt(key: key, account: account, password: password, cacheKey: cacheKey)
                if isCached(attempt) { return loop.makeSucceededFuture(conclude(attempt, valid: true)) }
            }
            return check()
        }
        return loop.scheduleTask(in: .nanoseconds(Int64(wait * 1_000_000_000))) {}.futureResult.flatMap(check)
    }

    private static func backoffKey(_ username: String, policy: AccountNamePolicy) -> String {
        (try? policy.normalise(username)) ?? "invalid:" + username.lowercased().prefix(64)
    }

    /// One login attempt with the account as read; `fingerprint` binds the cache entry to the
    /// name, the stored hash and the password.
    private struct Attempt {
        var key: String
        var account: Account?
        var storedHash: PasswordHash?
        var fingerprint: SHA256Digest

        init(key: String, account: Account?, password: String, cacheKey: SymmetricKey) {
            self.key = key
            self.account = account
            storedHash = account.flatMap { PasswordHash(encoded: $0.passwordHash) }
            let code = HMAC<SHA256>.authenticationCode(
                for: Array("\(key)\u{0}\(account?.passwordHash ?? "")\u{0}\(password)".utf8), using: cacheKey)
            fingerprint = SHA256.hash(data: Data(code))
        }
    }

    /// The check on a worker thread: account read, then the cached fingerprint or scrypt.
    private func checkNow(key: String, username: String, password: String) -> LoginResult {
        let account: Account?
        do {
            // Always from the database here; remembered, because the delivery that follows looks
            // the sender up again (threading map).
            account = try accounts.recent.reread(key) { try accounts.find(username) }
        } catch {
            logger.error("account lookup failed", metadata: ["error": "\(type(of: error))"])
            return .temporaryFailure
        }
        let attempt = Attempt(key: key, account: account, password: password, cacheKey: cacheKey)
        if isCached(attempt) { return conclude(attempt, valid: true) }
        let valid = (attempt.storedHash ?? dummyHash).verify(password: password) && attempt.storedHash != nil
        return conclude(attempt, valid: valid)
    }

    private func isCached(_ attempt: Attempt) -> Bool {
        guard attempt.account != nil, let until = cache.withLockedValue({ $0[attempt.fingerprint] }) else { return false }
        return until > Date().timeIntervalSince1970
    }

    private func conclude(_ attempt: Attempt, valid: Bool) -> LoginResult {
        let now = Date().timeIntervalSince1970
        if valid, let account = attempt.account {
            backoff.withLockedValue { $0.recordSuccess(attempt.key) }
            cache.withLockedValue { cache in
                if cache.count > 10_000 { cache = cache.filter { $0.value > now } }
                cache[attempt.fingerprint] = now + cacheLifetime
            }
            return .success(account)
        }
        backoff.withLockedValue { $0.recordFailure(attempt.key, now: now) }
        return .failure
    }
}
