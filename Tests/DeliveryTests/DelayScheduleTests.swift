import Privacy
import MailCore
import TestSupport
import Foundation
import Store
import Testing
@testable import Delivery

/// DELAY-1..4 and QUEUE-2: the distributions and boundaries of release and retry times.
@Suite struct DelayScheduleTests {
    let schedule = DelaySchedule()

    @Test func noneReleasesAtOnce() {
        var random = SplitMix64(seed: 1)
        #expect(schedule.release(mode: .none, now: Double(midnight) + 17.6, random: &random) == .at(midnight + 17))
    }

    @Test func deferIsUniformWithinItsBounds() {
        var random = SplitMix64(seed: 42)
        var delays: [Double] = []
        for index in 0..<20_000 {
            // Submissions at every fraction of a second.
            let now = Double(midnight + 5000) + Double(index % 1000) / 1000
            guard case .at(let time) = schedule.release(mode: .defer, now: now, random: &random) else { Issue.record("not timed"); return }
            delays.append(Double(time) - now)
        }
        #expect(delays.min()! >= 2000 && delays.max()! < 4000)
        // The whole window is used: both ends are reached within 1 %.
        #expect(delays.min()! < 2020 && delays.max()! > 3980)
        let mean = delays.reduce(0, +) / Double(delays.count)
        #expect(abs(mean - 3000) < 15)
        // Ten equal buckets each hold a tenth (chi-square with 9 degrees of freedom, p = 0.001: 27.9).
        var buckets = [Int](repeating: 0, count: 10)
        for delay in delays { buckets[min(9, Int(delay - 2000) / 200)] += 1 }
        let expected = Double(delays.count) / 10
        let chiSquare = buckets.reduce(0.0) { $0 + pow(Double($1) - expected, 2) / expected }
        #expect(chiSquare < 27.9, "buckets \(buckets)")
        let sorted = delays.sorted()
        print("defer 2000-4000 s, \(delays.count) draws: min \(sorted.first!) s, median \(sorted[sorted.count / 2]) s, "
              + "max \(sorted.last!) s, mean \(mean) s, chi-square (10 buckets) \(chiSquare)")
    }

    @Test func batchReleasesExactlyAtTheNextBoundary() {
        var random = SplitMix64(seed: 3)
        let noon = midnight + 12 * 3600
        let cases: [(Int64, Int64)] = [
            (midnight, noon),                        // exactly at 00:00: the next batch
            (midnight + 1, noon),
            (noon - 1, noon),
            (noon, midnight + 86400),                // exactly at 12:00: the next one
            (midnight + 86400 - 1, midnight + 86400),
        ]
        for (now, expected) in cases {
            #expect(schedule.release(mode: .batch, now: Double(now) + 0.5, random: &random) == .at(expected), "at \(now - midnight)")
        }
        // Every time of a day goes to one of the two boundaries, never later than 12 h.
        for offset in stride(from: Int64(0), to: 86400, by: 37) {
            let release = schedule.nextBatch(after: midnight + offset)
            #expect(release > midnight + offset && release - (midnight + offset) <= 12 * 3600)
            #expect((release - midnight) % (12 * 3600) == 0)
        }
    }

    @Test func batchTimesAreConfigurable() {
        let custom = DelaySchedule(batchTimes: [6 * 60 + 30, 18 * 60])
        #expect(custom.nextBatch(after: midnight) == midnight + 6 * 3600 + 1800)
        #expect(custom.nextBatch(after: midnight + 7 * 3600) == midnight + 18 * 3600)
        #expect(custom.nextBatch(after: midnight + 19 * 3600) == midnight + 86400 + 6 * 3600 + 1800)
    }

    @Test func poolNeverSendsBelowItsMinimum() {
        let pool = DelaySchedule(poolMin: 5, poolRate: 0.6)
        #expect((0...5).map(pool.poolRoundCount) == [0, 0, 0, 0, 0, 0])
        #expect(pool.poolRoundCount(held: 6) == 1)     // 60 % of 6 is 3, but only 1 may go
        #expect(pool.poolRoundCount(held: 10) == 5)
        #expect(pool.poolRoundCount(held: 100) == 60)
        for held in 0...500 {
            let sent = pool.poolRoundCount(held: held)
            #expect(sent >= 0 && (held <= 5 ? sent == 0 : (sent >= 1 && held - sent >= 5)))
        }
    }

    @Test func poolRoundsPickUniformlyAtRandom() {
        let pool = DelaySchedule(poolMin: 5, poolRate: 0.5)
        var random = SplitMix64(seed: 9)
        var picks = [Int](repeating: 0, count: 20)
        for _ in 0..<5000 {
            let chosen = pool.poolRound(Array(0..<20), random: &random)
            #expect(chosen.count == 10 && Set(chosen).count == 10)
            for index in chosen { picks[index] += 1 }
        }
        // Each message is picked about half the time: which ones leave says nothing of arrival order.
        #expect(picks.allSatisfy { abs($0 - 2500) < 200 }, "\(picks)")
    }

    @Test func retriesBackOffExponentiallyWithJitter() {
        let retry = RetrySchedule(first: 300, maximum: 14400, giveUpAfter: 5 * 86400)
        var random = SplitMix64(seed: 5)
        for failures in 1...12 {
            let base = min(14400, 300 << Int64(failures - 1))
            var seen: Set<Int64> = []
            for _ in 0..<200 {
                let wait = retry.wait(afterFailures: failures, random: &random)
                #expect(wait >= base && wait <= base + base / 4, "failures \(failures): \(wait)")
                seen.insert(wait)
            }
            #expect(seen.count > 20, "jitter spreads retries")
        }
    }

    @Test func retriesStopAfterTheDeadlineWithOneLastTryAtIt() {
        let retry = RetrySchedule(first: 300, maximum: 14400, giveUpAfter: 86400)
        var random = SplitMix64(seed: 6)
        let released = midnight
        #expect(retry.nextAttempt(failures: 1, releasedAt: released, now: released, random: &random).map { $0 - released }.map { (300...375).contains($0) } == true)
        #expect(retry.nextAttempt(failures: 9, releasedAt: released, now: released + 86000, random: &random) == released + 86400)
        #expect(retry.nextAttempt(failures: 10, releasedAt: released, now: released + 86400, random: &random) == nil)
    }
}
