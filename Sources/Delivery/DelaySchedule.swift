import Store

/// When Internet-bound mail leaves the core (DELAY-1..4). Pure: the time and the random source
/// are arguments, so tests fix them and check the distributions.
public struct DelaySchedule: Sendable, Equatable {
    /// When a message is released: at a time, or when the pool mix picks it.
    public enum Release: Sendable, Equatable {
        case at(Int64)
        case pool
    }

    /// `defer`: uniform between these, seconds (postman: 2000–4000).
    public var deferMin: Int64
    public var deferMax: Int64
    /// `batch`: release times, minutes after 00:00 UTC (postman: 00:00 and 12:00).
    public var batchTimes: [Int]
    /// `pool`: every `poolInterval` seconds, when more than `poolMin` messages are held, a random
    /// `poolRate` share of them is sent, never bringing the pool below `poolMin`.
    public var poolInterval: Int64
    public var poolMin: Int
    public var poolRate: Double

    public init(deferMin: Int64 = 2000, deferMax: Int64 = 4000, batchTimes: [Int] = [0, 720],
                poolInterval: Int64 = 900, poolMin: Int = 5, poolRate: Double = 0.65) {
        precondition(deferMin <= deferMax && !batchTimes.isEmpty && poolMin >= 0 && poolRate > 0 && poolRate <= 1)
        self.deferMin = deferMin
        self.deferMax = deferMax
        self.batchTimes = batchTimes.sorted()
        self.poolInterval = poolInterval
        self.poolMin = poolMin
        self.poolRate = poolRate
    }

    /// The release of a message submitted at `now` (seconds since 1970, with its fraction) by an
    /// account in `mode`. Release times are whole seconds; a deferred message leaves between
    /// `deferMin` and `deferMax` seconds after `now` itself; a batch at the first boundary after
    /// the second the message arrived in.
    public func release<R: RandomNumberGenerator>(mode: DelayMode, now: Double, random: inout R) -> Release {
        let second = Int64(now.rounded(.down))
        switch mode {
        case .none: return .at(second)
        case .defer:
            // From the next whole second plus a whole number of seconds below the maximum: the
            // delay from `now` is uniform on [deferMin, deferMax) and never outside it.
            let upper = deferMax > deferMin ? deferMax - 1 : deferMin
            return .at(Int64(now.rounded(.up)) + Int64.random(in: deferMin...upper, using: &random))
        case .batch: return .at(nextBatch(after: second))
        case .pool: return .pool
        }
    }

    /// The first batch time strictly after `now`: mail submitted exactly at 12:00:00 waits for
    /// the next batch, so no message leaves in the same second it arrived.
    public func nextBatch(after now: Int64) -> Int64 {
        let day = now - ((now % 86400) + 86400) % 86400
        for offset in [0, 86400] as [Int64] {
            for minute in batchTimes {
                let time = day + offset + Int64(minute) * 60
                if time > now { return time }
            }
        }
        return day + 2 * 86400 + Int64(batchTimes[0]) * 60  // unreachable with a valid table
    }

    /// How many of `held` pooled messages one pool round sends: none unless more than `poolMin`
    /// are held; else `poolRate` of them (at least one), but never so many that fewer than
    /// `poolMin` remain. The pool keeps its minimum across restarts (it is on disk) and at
    /// shutdown: pooled mail leaves only by a pool round, an operator's `postern queue flush`,
    /// or the sender's account being deleted.
    public func poolRoundCount(held: Int) -> Int {
        guard held > poolMin else { return 0 }
        let share = max(1, Int((Double(held) * poolRate).rounded(.down)))
        return min(share, held - poolMin)
    }

    /// The members of `held` that one pool round sends, chosen uniformly at random.
    public func poolRound<T, R: RandomNumberGenerator>(_ held: [T], random: inout R) -> [T] {
        var shuffled = held
        shuffled.shuffle(using: &random)
        return Array(shuffled.prefix(poolRoundCount(held: held.count)))
    }
}
