import NIOConcurrencyHelpers

/// Account rows read in the last few seconds: RCPT TO, the delivery that follows it and the
/// next login ask for the same few accounts again and again.
///
/// Routing uses it (is there a mailbox, which id, its quota, about how full it is), and so does a
/// repeated login: one whose account is here and whose password was verified against that
/// account's stored hash moments ago (the Authenticator's cache) is answered from memory. So a
/// password changed or an account deleted by the CLI, another process, counts for new logins
/// within `lifetime` (2 s); changes made through this process's `AccountStore` count at once
/// (it forgets the account). Sessions already logged in are not ended by either, as in any mail
/// server. A stale entry cannot misroute mail: the committer checks, inside the delivery's own
/// transaction, that the account still exists and that the message fits (MBOX-2); so an account
/// deleted a second ago is refused there (550) instead of at RCPT, and the RCPT quota check may
/// use a fill level `lifetime` old. Only accounts that exist are remembered: a new account is
/// found at once. Nothing is written to disk.
public final class RecentAccounts: Sendable {
    private struct Entry {
        var account: Account
        var fetchedAt: Double
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    private let lifetime: Double
    private let capacity: Int
    private let now: @Sendable () -> Double

    /// `now` is the clock in seconds (injected so tests can move it).
    public init(lifetime: Double = 2, capacity: Int = 10_000, now: @escaping @Sendable () -> Double) {
        self.lifetime = lifetime
        self.capacity = capacity
        self.now = now
    }

    /// The account `key` named when it was read, if that was less than `lifetime` ago.
    public func lookup(_ key: String) -> Account? {
        let time = now()
        return entries.withLockedValue { entries in
            guard let entry = entries[key] else { return nil }
            guard time - entry.fetchedAt < lifetime, time >= entry.fetchedAt else {
                entries[key] = nil
                return nil
            }
            return entry.account
        }
    }

    /// Remembers `account` as what `key` names (its own name, or an alias such as postmaster).
    public func remember(_ account: Account, as key: String) {
        let time = now()
        entries.withLockedValue { entries in
            if entries.count >= capacity { entries = entries.filter { time - $0.value.fetchedAt < lifetime } }
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = Entry(account: account, fetchedAt: time)
        }
    }

    /// Forgets the account under every key it was remembered as (after a change or a deletion).
    public func forget(accountID: Int64) {
        entries.withLockedValue { entries in entries = entries.filter { $0.value.account.id != accountID } }
    }
}
