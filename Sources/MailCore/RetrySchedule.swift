/// Retries of a relay that failed temporarily (QUEUE-2): exponential back-off with jitter.
public struct RetrySchedule: Sendable, Equatable {
    /// The first retry waits this long (seconds), each next one twice as long, up to `maximum`.
    public var first: Int64
    public var maximum: Int64
    /// After this long since release, a message still not relayed fails for good (a DSN).
    public var giveUpAfter: Int64
    /// After this long since release, the sender is told once that the mail is delayed.
    public var delayNoticeAfter: Int64

    public init(first: Int64 = 300, maximum: Int64 = 14400, giveUpAfter: Int64 = 5 * 86400, delayNoticeAfter: Int64 = 4 * 3600) {
        self.first = first
        self.maximum = max(first, maximum)
        self.giveUpAfter = giveUpAfter
        self.delayNoticeAfter = delayNoticeAfter
    }

    /// The wait before the next try after `failures` failed tries (1 after the first failure):
    /// `first · 2^(failures−1)`, capped at `maximum`, then stretched by a random 0–25 % so that
    /// mail deferred together does not retry together. Never shorter than the schedule.
    public func wait<R: RandomNumberGenerator>(afterFailures failures: Int, random: inout R) -> Int64 {
        let exponent = min(max(failures - 1, 0), 40)
        let base = min(maximum, first.multipliedReportingOverflow(by: Int64(1) << exponent).overflow ? maximum : first << exponent)
        return base + Int64.random(in: 0...(base / 4), using: &random)
    }

    /// The next try, or nil when the message has been trying for longer than `giveUpAfter`.
    public func nextAttempt<R: RandomNumberGenerator>(failures: Int, releasedAt: Int64, now: Int64, random: inout R) -> Int64? {
        let next = now + wait(afterFailures: failures, random: &random)
        if next - releasedAt > giveUpAfter {
            // One last try exactly at the deadline, unless it has passed.
            let deadline = releasedAt + giveUpAfter
            return deadline > now ? deadline : nil
        }
        return next
    }
}
