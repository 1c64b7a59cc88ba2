import NIOCore
import Testing
@testable import Notify

private func t(_ seconds: Double) -> NIODeadline { .uptimeNanoseconds(1_000_000_000_000 + UInt64(seconds * 1e9)) }

private func verifiedNotifier(_ configuration: Notifier.Configuration = .init()) -> Notifier {
    var notifier = Notifier(configuration: configuration)
    notifier.seedVerified(["alice": "Alice", "bob": "bob"])
    return notifier
}

@Suite struct NotifierVerificationTests {
    @Test func codesAreBase32OfTheConfiguredLength() {
        var notifier = Notifier()
        var random = SplitMix(seed: 1)
        let code = notifier.code(for: "alice", nick: "Alice", now: t(0), using: &random)
        #expect(code.utf8.count == 8)
        #expect(code.utf8.allSatisfy { Notifier.codeAlphabet.contains($0) })
        #expect(Notifier(configuration: .init(codeLength: 12)).configuration.codeLength == 12)
    }

    @Test func aCodeFromTheRightNickVerifiesOnce() {
        var notifier = Notifier()
        let code = notifier.code(for: "alice", nick: "Alice", now: t(0))
        #expect(notifier.verified(account: "alice") == nil)
        #expect(notifier.received(privmsgFrom: "Alice", text: code, now: t(10)) == Verification(account: "alice", nick: "Alice"))
        #expect(notifier.verified(account: "alice") == "Alice")
        // One-time: the same code again is nothing.
        #expect(notifier.received(privmsgFrom: "Alice", text: code, now: t(11)) == nil)
        #expect(notifier.pendingCodeCount == 0)
    }

    @Test func aCodeFromAnotherNickIsRefusedAndStaysForItsOwner() {
        var notifier = Notifier()
        let code = notifier.code(for: "alice", nick: "alice", now: t(0))
        #expect(notifier.received(privmsgFrom: "mallory", text: code, now: t(1)) == nil)
        #expect(notifier.received(privmsgFrom: "alice_", text: code, now: t(1)) == nil)
        #expect(notifier.verified(account: "alice") == nil)
        #expect(notifier.received(privmsgFrom: "alice", text: code, now: t(2))?.account == "alice")
    }

    @Test func nicksCompareWithRFC2812CaseMappingAndCodesIgnoreCaseAndSpaces() {
        var notifier = Notifier()
        let code = notifier.code(for: "alice", nick: "[Alice]~", now: t(0))
        #expect(notifier.received(privmsgFrom: "{alice}^", text: "  " + code.lowercased() + " ", now: t(1))
                == Verification(account: "alice", nick: "{alice}^"))
    }

    @Test func codesExpire() {
        var notifier = Notifier(configuration: .init(codeLifetime: .hours(24)))
        let code = notifier.code(for: "alice", nick: "alice", now: t(0))
        #expect(notifier.received(privmsgFrom: "alice", text: code, now: t(24 * 3600)) == nil)
        #expect(notifier.pendingCodeCount == 0)
    }

    @Test func aNewCodeReplacesTheAccountsEarlierOne() {
        var notifier = Notifier()
        let first = notifier.code(for: "alice", nick: "alice", now: t(0))
        let second = notifier.code(for: "alice", nick: "alice2", now: t(1))
        #expect(notifier.received(privmsgFrom: "alice", text: first, now: t(2)) == nil)
        #expect(notifier.received(privmsgFrom: "alice2", text: second, now: t(2))?.nick == "alice2")
    }

    @Test func pendingCodesAreBounded() {
        var notifier = Notifier(configuration: .init(maxPendingCodes: 3))
        var random = SplitMix(seed: 3)
        let codes = (0..<5).map { notifier.code(for: "acct\($0)", nick: "n\($0)", now: t(Double($0)), using: &random) }
        #expect(notifier.pendingCodeCount == 3)
        #expect(notifier.received(privmsgFrom: "n0", text: codes[0], now: t(10)) == nil)  // the oldest went
        #expect(notifier.received(privmsgFrom: "n4", text: codes[4], now: t(10)) != nil)
    }

    @Test func ordinaryChatterIsIgnored() {
        var notifier = Notifier()
        _ = notifier.code(for: "alice", nick: "alice", now: t(0))
        for text in ["hello", "", "ABCDEFGH", "!help", String(repeating: "x", count: 400)] {
            #expect(notifier.received(privmsgFrom: "alice", text: text, now: t(1)) == nil)
        }
        #expect(notifier.pendingCodeCount == 1)
    }

    @Test func removingAnAccountStopsEverything() {
        var notifier = verifiedNotifier(.init(gather: .seconds(0)))
        notifier.removeVerified(account: "alice")
        #expect(notifier.verified(account: "alice") == nil)
        #expect(notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(0)) == [])
    }
}

@Suite struct NotifierCoalescingTests {
    @Test func exactTexts() {
        #expect(Notifier.noticeText(count: 1, address: "alice@mail.i2p") == "1 new message for alice@mail.i2p")
        #expect(Notifier.noticeText(count: 3, address: "alice@mail.i2p") == "3 new messages for alice@mail.i2p")
    }

    @Test func threeMailsInARowGiveExactlyOneNotice() {
        var notifier = verifiedNotifier(.init(interval: .minutes(5), gather: .seconds(30)))
        var notices: [Notice] = []
        notices += notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(0))
        notices += notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(5))
        notices += notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(10))
        notices += notifier.tick(now: t(29))
        #expect(notices.isEmpty)
        #expect(notifier.nextDeadline == t(30))
        notices += notifier.tick(now: t(30))
        notices += notifier.tick(now: t(400))
        #expect(notices == [Notice(nick: "Alice", text: "3 new messages for alice@mail.i2p")])
    }

    @Test func atMostOneNoticePerIntervalCountingEverythingInBetween() {
        var notifier = verifiedNotifier(.init(interval: .minutes(5), gather: .seconds(30)))
        _ = notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(0))
        #expect(notifier.tick(now: t(30)) == [Notice(nick: "Alice", text: "1 new message for alice@mail.i2p")])
        // Mail 1 minute later waits for the interval since the last notice (t 30 + 300).
        _ = notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 2, now: t(60))
        _ = notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(200))
        #expect(notifier.tick(now: t(329)) == [])
        #expect(notifier.tick(now: t(330)) == [Notice(nick: "Alice", text: "3 new messages for alice@mail.i2p")])
        // After a quiet interval, the gathering window applies again.
        _ = notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(1000))
        #expect(notifier.tick(now: t(1029)) == [])
        #expect(notifier.tick(now: t(1030)).count == 1)
    }

    @Test func withoutGatheringTheFirstMailIsNoticedAtOnce() {
        var notifier = verifiedNotifier(.init(interval: .minutes(5), gather: .zero))
        #expect(notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(0))
                == [Notice(nick: "Alice", text: "1 new message for alice@mail.i2p")])
        #expect(notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(1)) == [])
        #expect(notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(2)) == [])
        #expect(notifier.tick(now: t(300)) == [Notice(nick: "Alice", text: "2 new messages for alice@mail.i2p")])
    }

    @Test func accountsAreIndependentAndUnverifiedOnesIgnored() {
        var notifier = verifiedNotifier(.init(gather: .seconds(10)))
        _ = notifier.mailArrived(account: "alice", address: "alice@mail.i2p", count: 1, now: t(0))
        _ = notifier.mailArrived(account: "bob", address: "bob@mail.i2p", count: 4, now: t(5))
        _ = notifier.mailArrived(account: "carol", address: "carol@mail.i2p", count: 1, now: t(5))
        #expect(notifier.tick(now: t(10)) == [Notice(nick: "Alice", text: "1 new message for alice@mail.i2p")])
        #expect(notifier.tick(now: t(15)) == [Notice(nick: "bob", text: "4 new messages for bob@mail.i2p")])
        #expect(notifier.tick(now: t(1000)) == [])
        #expect(notifier.trackedAccountCount == 0)  // quiet accounts are forgotten
    }

    @Test func aNickVerifiedMeanwhileGetsTheNotice() {
        var notifier = Notifier(configuration: .init(gather: .seconds(10)))
        #expect(notifier.mailArrived(account: "dave", address: "dave@mail.i2p", count: 1, now: t(0)) == [])
        let code = notifier.code(for: "dave", nick: "dave", now: t(1))
        _ = notifier.received(privmsgFrom: "Dave", text: code, now: t(2))
        _ = notifier.mailArrived(account: "dave", address: "dave@mail.i2p", count: 1, now: t(3))
        #expect(notifier.tick(now: t(13)) == [Notice(nick: "Dave", text: "1 new message for dave@mail.i2p")])
    }

    @Test func backoffDoublesWithJitterAndCaps() {
        var backoff = ReconnectBackoff(minimum: .seconds(1), maximum: .minutes(5))
        var random = SplitMix(seed: 9)
        var delays: [Int64] = []
        for _ in 0..<12 { delays.append(backoff.nextDelay(using: &random).nanoseconds) }
        #expect(delays[0] >= 750_000_000 && delays[0] <= 1_000_000_000)
        #expect(delays[3] >= 6_000_000_000 && delays[3] <= 8_000_000_000)
        #expect(delays.allSatisfy { $0 <= 300_000_000_000 })
        #expect(delays[11] >= 225_000_000_000)
        backoff.reset()
        #expect(backoff.nextDelay(using: &random).nanoseconds <= 1_000_000_000)
    }
}
