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

    /// Read this *before* reading an account from the database, and pass it to `remember`.
    public var currentGeneration: UInt64 { generation() }

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
    /// read from the database under `generation` (`currentGeneration` taken before the read).
    public func remember(_ account: Account, as key: String, readUnder generation: UInt64) {
        let time = now()
        entries.withLockedValue { entries in
            if entries.count >= capacity { entries = entries.filter { time - $0.value.fetchedAt < lifetime } }
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = Entry(account: account, fetchedAt: time, generation: generation)
        }
    }

    /// Forgets the account under every key it was remembered as (after a change or a deletion).
    public func forget(accountID: Int64) {
        entries.withLockedValue { entries in entries = entries.filter { $0.value.account.id != accountID } }
    }
}
