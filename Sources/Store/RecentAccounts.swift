import NIOConcurrencyHelpers

/// Account rows read in the last few seconds: RCPT TO, the delivery that follows it and the
/// next login ask for the same few accounts again and again.
///
/// Routing uses it (is there a mailbox, which id, its quota, about how full it is), and so does a
/// repeated login: one whose account is here and whose password was verified against that
/// account's stored hash moments ago (the Authenticator's cache) is answered from memory.
///
/// Every account change, in this process or in `postern account …` (another process), bumps the
/// shared `AccountGeneration`; an entry is valid only while the generation it was read under is
/// still current, so a changed password or a deleted account counts at once everywhere. What
/// may be up to `lifetime` old is only the fill level used by the RCPT quota check, which
/// deliveries change without bumping; the committer checks the quota (MBOX-2) and the account's
/// existence again inside the delivery's own transaction. Only accounts that exist are
/// remembered: a new account is found at once. Nothing is written to disk.
public final class RecentAccounts: Sendable {
    private struct Entry {
        var account: Account
        var fetchedAt: Double
        var generation: UInt64
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    private let lifetime: Double
    private let capacity: Int
    private let now: @Sendable () -> Double
    private let generation: @Sendable () -> UInt64

    /// `now` is the clock in seconds, `generation` the shared account generation (both injected so
    /// tests can move them).
    public init(lifetime: Double = 2, capacity: Int = 10_000, now: @escaping @Sendable () -> Double,
                generation: @escaping @Sendable () -> UInt64 = { 0 }) {
        self.lifetime = lifetime
        self.capacity = capacity
        self.now = now
        self.generation = generation
    }

    /// The account `key` names: remembered, or else read by `read` and remembered.
    public func lookup(_ key: String, orRead read: () throws -> Account?) rethrows -> Account? {
        if let account = lookup(key) { return account }
        return try reread(key, with: read)
    }

    /// Reads the account `key` names with `read` (a database read) and remembers it. The
    /// generation is taken before the read, so a change that lands during it is never missed.
    public func reread(_ key: String, with read: () throws -> Account?) rethrows -> Account? {
        let generation = generation()
        guard let account = try read() else { return nil }
        remember(account, as: key, readUnder: generation)
        return account
    }

    /// The account `key` named when it was read, if that was less than `lifetime` ago.
    public func lookup(_ key: String) -> Account? {
        let time = now()
        let current = generation()
        return entries.withLockedValue { entries in
            guard let entry = entries[key] else { return nil }
            guard entry.generation == current, time - entry.fetchedAt < lifetime, time >= entry.fetchedAt else {
                entries[key] = nil
                return nil
            }
            return entry.account
        }
    }

    /// Remembers `account` as what `key` names (its own name, or an alias such as postmaster),
    /// read from the database under `generation` (the counter's value before the read).
    func remember(_ account: Account, as key: String, readUnder generation: UInt64) {
        let time = now()
        entries.withLockedValue { entries in
            if entries.count >= capacity { entries = entries.filter { time - $0.value.fetchedAt < lifetime } }
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = Entry(account: account, fetchedAt: time, generation: generation)
        }
    }
}
