import NIOCore
import Testing
@testable import Notify

/// Transcripts of the session with a fixed clock: `t(s)` is s seconds after an arbitrary origin.
private func t(_ seconds: Double) -> NIODeadline { .uptimeNanoseconds(1_000_000_000_000 + UInt64(seconds * 1e9)) }

private func lines(_ actions: [IRCClientSession.Action]) -> [String] {
    actions.compactMap { action in
        if case .send(let message) = action { return message.serialised().map { String(decoding: $0.dropLast(2), as: UTF8.self) } }
        return nil
    }
}

private func line(_ text: String) -> IRCMessage { IRCMessage.parse(text)! }

private func registered(_ configuration: IRCClientConfiguration = .init(nick: "postman")) -> IRCClientSession {
    var session = IRCClientSession(configuration: configuration)
    _ = session.handle(.connected(now: t(0)))
    _ = session.handle(.received(line(":srv 001 \(configuration.nick) :Welcome"), now: t(0)))
    return session
}

@Suite struct IRCClientSessionTests {
    @Test func registersWithNickAndUser() {
        var session = IRCClientSession(configuration: .init(nick: "postman"))
        let actions = session.handle(.connected(now: t(0)))
        #expect(lines(actions) == ["NICK postman", "USER postman 0 * :Postern new-mail notices"])
        #expect(actions.last == .schedule(at: t(60)))  // registration timeout
        #expect(session.phase == .registering)
        let welcome = session.handle(.received(line(":srv 001 postman :Welcome"), now: t(1)))
        #expect(welcome.contains(.registered(nick: "postman")))
        #expect(session.phase == .registered)
        #expect(welcome.last == .schedule(at: t(121)))  // liveness
    }

    @Test func sendsPassFirstWhenConfigured() {
        var session = IRCClientSession(configuration: .init(nick: "postman", username: "pm", serverPassword: "s3cret"))
        #expect(lines(session.handle(.connected(now: t(0)))) == ["PASS s3cret", "NICK postman", "USER pm 0 * :Postern new-mail notices"])
    }

    @Test func triesOtherNicksOnCollisionThenGivesUp() {
        var session = IRCClientSession(configuration: .init(nick: "postman", maxNickAttempts: 4))
        _ = session.handle(.connected(now: t(0)))
        #expect(lines(session.handle(.received(line(":srv 433 * postman :in use"), now: t(1)))) == ["NICK postman_"])
        #expect(lines(session.handle(.received(line(":srv 436 * postman_ :collision"), now: t(1)))) == ["NICK postman2"])
        #expect(lines(session.handle(.received(line(":srv 432 * postman2 :erroneous"), now: t(1)))) == ["NICK postman3"])
        #expect(session.handle(.received(line(":srv 433 * postman3 :in use"), now: t(1))) == [.close(.nickUnavailable)])
        #expect(session.phase == .closing)
    }

    @Test func alternativeNicksKeepTheWantedLength() {
        let session = IRCClientSession(configuration: .init(nick: "postmaster"))  // 10 characters
        #expect(session.alternativeNick(attempt: 1) == "postmaste_")
        #expect(session.alternativeNick(attempt: 12) == "postmast12")
        let short = IRCClientSession(configuration: .init(nick: "pm"))
        #expect(short.alternativeNick(attempt: 2) == "pm2")
    }

    @Test func takesTheNickFromWelcomeAndRegainsTheWantedOne() {
        var session = IRCClientSession(configuration: .init(nick: "postman", nickServPassword: "pw", pingAfterSilence: .seconds(10_000), nickRegainInterval: .seconds(300)))
        _ = session.handle(.connected(now: t(0)))
        _ = session.handle(.received(line(":srv 433 * postman :in use"), now: t(1)))
        let welcome = session.handle(.received(line(":srv 001 postman_ :Welcome"), now: t(2)))
        #expect(welcome.contains(.registered(nick: "postman_")))
        #expect(lines(welcome) == ["PRIVMSG NickServ :IDENTIFY pw"])
        #expect(session.currentNick == "postman_")
        #expect(lines(session.handle(.tick(now: t(301)))) == [])
        let regain = session.handle(.tick(now: t(302)))
        #expect(lines(regain) == ["NICK postman"])
        // Still taken: nothing happens until the next try.
        #expect(lines(session.handle(.received(line(":srv 433 postman_ postman :in use"), now: t(303)))) == [])
        #expect(session.phase == .registered)
        // Freed later: the server confirms the change and the bot identifies again.
        _ = session.handle(.tick(now: t(603)))
        let changed = session.handle(.received(line(":postman_!pm@h NICK :postman"), now: t(604)))
        #expect(session.currentNick == "postman")
        #expect(lines(changed) == ["PRIVMSG NickServ :IDENTIFY pw"])
    }

    @Test func identifiesToNickServAfterWelcome() {
        var session = IRCClientSession(configuration: .init(nick: "postman", nickServPassword: "hunter2", nickServName: "NickServ"))
        _ = session.handle(.connected(now: t(0)))
        #expect(lines(session.handle(.received(line(":srv 001 postman :hi"), now: t(1)))) == ["PRIVMSG NickServ :IDENTIFY hunter2"])
    }

    @Test func answersPingWithTheSameTokenEvenBeforeRegistration() {
        var session = IRCClientSession(configuration: .init(nick: "postman"))
        _ = session.handle(.connected(now: t(0)))
        #expect(lines(session.handle(.received(line("PING :12345"), now: t(1)))) == ["PONG 12345"])
        var registered = registered()
        #expect(lines(registered.handle(.received(line(":srv PING :irc.kit.test"), now: t(1)))) == ["PONG irc.kit.test"])
        #expect(lines(registered.handle(.received(line("PING :two words"), now: t(1)))) == ["PONG :two words"])
    }

    @Test func pongBypassesFloodControl() {
        var session = registered(.init(nick: "postman", floodBurst: 2, floodInterval: .seconds(2)))
        for i in 0..<5 { _ = session.handle(.sendPrivateMessage(to: "alice", text: "n\(i)", now: t(0))) }
        #expect(session.queuedCount > 0)
        #expect(lines(session.handle(.received(line("PING :x"), now: t(0)))) == ["PONG x"])
    }

    @Test func pingsAfterSilenceAndClosesWithoutReply() {
        var session = registered(.init(nick: "postman", pingAfterSilence: .seconds(120), pingTimeout: .seconds(60)))
        #expect(lines(session.handle(.tick(now: t(119)))) == [])
        let ping = session.handle(.tick(now: t(120)))
        #expect(lines(ping) == ["PING postern-1"])
        #expect(ping.last == .schedule(at: t(180)))
        #expect(session.handle(.tick(now: t(180))) == [.close(.pingTimeout)])
    }

    @Test func anyLineCountsAsLife() {
        var session = registered(.init(nick: "postman", pingAfterSilence: .seconds(120), pingTimeout: .seconds(60)))
        _ = session.handle(.tick(now: t(120)))
        _ = session.handle(.receivedUnreadable(now: t(150)))
        #expect(session.handle(.tick(now: t(180))).contains(.close(.pingTimeout)) == false)
        #expect(session.nextDeadline == t(270))
    }

    @Test func closesWhenRegistrationDoesNotComplete() {
        var session = IRCClientSession(configuration: .init(nick: "postman", registrationTimeout: .seconds(30)))
        _ = session.handle(.connected(now: t(0)))
        _ = session.handle(.received(line(":srv NOTICE * :Looking up your hostname"), now: t(10)))
        #expect(session.handle(.tick(now: t(30))) == [.close(.registrationTimeout)])
    }

    @Test func closesOnError() {
        var session = registered()
        #expect(session.handle(.received(line("ERROR :Closing Link: flooding"), now: t(3))) == [.close(.serverError)])
        #expect(session.phase == .closing)
        #expect(session.handle(.received(line("PING :x"), now: t(4))) == [])
    }

    @Test func tokenBucketSendsABurstThenOneLinePerInterval() {
        var session = registered(.init(nick: "postman", floodBurst: 4, floodInterval: .seconds(2)))
        // Registration used 2 tokens at t(0); they come back at one per 2 s.
        var sent: [String] = []
        for i in 1...8 { sent += lines(session.handle(.sendPrivateMessage(to: "alice", text: "m\(i)", now: t(4)))) }
        #expect(sent == ["PRIVMSG alice m1", "PRIVMSG alice m2", "PRIVMSG alice m3", "PRIVMSG alice m4"])
        #expect(session.queuedCount == 4)
        #expect(session.nextDeadline == t(6))
        #expect(lines(session.handle(.tick(now: t(5.9)))) == [])
        #expect(lines(session.handle(.tick(now: t(6)))) == ["PRIVMSG alice m5"])
        #expect(lines(session.handle(.tick(now: t(10)))) == ["PRIVMSG alice m6", "PRIVMSG alice m7"])
        #expect(lines(session.handle(.tick(now: t(12)))) == ["PRIVMSG alice m8"])
        #expect(session.queuedCount == 0)
    }

    @Test func boundedQueueDropsOldestNotices() {
        var session = registered(.init(nick: "postman", floodBurst: 1, floodInterval: .seconds(2), queueLimit: 3))
        _ = session.handle(.tick(now: t(2)))
        var sent: [String] = []
        for i in 1...10 { sent += lines(session.handle(.sendPrivateMessage(to: "alice", text: "m\(i)", now: t(2)))) }
        #expect(sent == ["PRIVMSG alice m1"])
        #expect(session.queuedCount == 3)
        #expect(session.droppedCount == 6)
        #expect(session.takeQueuedMessages().map(\.text) == ["m8", "m9", "m10"])
    }

    @Test func queuesUntilRegisteredAndCarriesNoticesOverReconnects() {
        var session = IRCClientSession(configuration: .init(nick: "postman"))
        #expect(session.handle(.sendPrivateMessage(to: "alice", text: "1 new message for alice@mail.i2p", now: t(0))) == [])
        _ = session.handle(.connected(now: t(0)))
        let welcome = session.handle(.received(line(":srv 001 postman :hi"), now: t(0)))
        #expect(lines(welcome) == ["PRIVMSG alice :1 new message for alice@mail.i2p"])
        _ = session.handle(.disconnected)
        _ = session.handle(.sendPrivateMessage(to: "bob", text: "2 new messages for bob@mail.i2p", now: t(5)))
        _ = session.handle(.connected(now: t(10)))
        #expect(lines(session.handle(.received(line(":srv 001 postman :hi"), now: t(10)))) == ["PRIVMSG bob :2 new messages for bob@mail.i2p"])
    }

    @Test func refusesChannelsListsAndControlCharacters() {
        var session = registered()
        #expect(session.handle(.sendPrivateMessage(to: "#postern", text: "x", now: t(9))) == [])
        #expect(session.handle(.sendPrivateMessage(to: "a,b", text: "x", now: t(9))) == [])
        #expect(session.handle(.sendPrivateMessage(to: "a b", text: "x", now: t(9))) == [])
        #expect(lines(session.handle(.sendPrivateMessage(to: "alice", text: "\u{1}ACTION hi\u{1}\r\nQUIT", now: t(9)))) == ["PRIVMSG alice :ACTION hiQUIT"])
    }

    @Test func reportsOnlyPrivateMessagesToTheBotItself() {
        var session = registered()
        let from = session.handle(.received(line(":Alice!a@h PRIVMSG POSTMAN :ABCD2345"), now: t(1)))
        #expect(from.contains(.privateMessage(from: "Alice", text: "ABCD2345")))
        #expect(!session.handle(.received(line(":alice!a@h PRIVMSG #chan :ABCD2345"), now: t(1))).contains { if case .privateMessage = $0 { true } else { false } })
        #expect(!session.handle(.received(line(":alice!a@h NOTICE postman :ABCD2345"), now: t(1))).contains { if case .privateMessage = $0 { true } else { false } })
        #expect(!session.handle(.received(line(":alice!a@h PRIVMSG postman :\u{1}VERSION\u{1}"), now: t(1))).contains { if case .privateMessage = $0 { true } else { false } })
        #expect(!session.handle(.received(line(":irc.server PRIVMSG postman :hi"), now: t(1))).contains { if case .privateMessage = $0 { true } else { false } })
        // Nothing is ever sent back by the session itself: no echo, no CTCP reply, no JOIN.
        #expect(lines(session.handle(.received(line(":alice!a@h INVITE postman #chan"), now: t(1)))) == [])
    }

    @Test func quitsCleanly() {
        var session = registered()
        let actions = session.handle(.quit(reason: "bye", now: t(5)))
        #expect(lines(actions) == ["QUIT bye"])
        #expect(actions.last == .close(.quit))
    }

    @Test func survivesAHostileTranscript() {
        var session = registered(.init(nick: "postman", floodBurst: 4, floodInterval: .seconds(2), queueLimit: 10))
        var random = SplitMix(seed: 42)
        var pongs = 0
        for i in 0..<2_000 {
            let kind = random.next() % 4
            let now = t(Double(i) / 100)
            let actions: [IRCClientSession.Action]
            switch kind {
            case 0: actions = session.handle(.received(line("PING :p\(i)"), now: now))
            case 1: actions = session.handle(.receivedUnreadable(now: now))
            case 2: actions = session.handle(.received(line(":x!y@z PRIVMSG postman :junk \(i)"), now: now))
            default: actions = session.handle(.sendPrivateMessage(to: "alice", text: "n \(i)", now: now))
            }
            pongs += lines(actions).filter { $0.hasPrefix("PONG") }.count
            #expect(session.queuedCount <= 10)
        }
        #expect(pongs > 300)
        #expect(session.phase == .registered)
    }
}
