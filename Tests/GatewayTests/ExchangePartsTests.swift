import Foundation
import MailCore
import SMTP
import Testing
@testable import Gateway

@Suite struct BlocklistTests {
    @Test func reversedIPv4() {
        #expect(Blocklist.reversedName([1, 2, 3, 4]) == "4.3.2.1")
        #expect(Blocklist.reversedName([192, 0, 2, 99]) == "99.2.0.192")
        #expect(Blocklist.reversedName([127, 0, 0, 2]) == "2.0.0.127")
    }

    @Test func reversedIPv6IsNibbles() throws {
        // RFC 5782 2.4: 32 nibbles, least significant first.
        let short = try #require(SPF.parseIP("2001:db8::1"))
        let expected = (["1"] + Array(repeating: "0", count: 23) + ["8", "b", "d", "0", "1", "0", "0", "2"]).joined(separator: ".")
        #expect(Blocklist.reversedName(short) == expected)
        #expect(expected.split(separator: ".").count == 32)
        // The example of RFC 5782 2.4.
        let example = try #require(SPF.parseIP("2001:db8:1:2:3:4:567:89ab"))
        #expect(Blocklist.reversedName(example) == "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2")
    }

    @Test func otherLengthsHaveNoName() {
        #expect(Blocklist.reversedName([]) == nil)
        #expect(Blocklist.reversedName([1, 2, 3]) == nil)
        #expect(Blocklist.reversedName([UInt8](repeating: 1, count: 5)) == nil)
        #expect(Blocklist.reversedName([UInt8](repeating: 1, count: 15)) == nil)
    }

    @Test func listedOnlyByAnAnswerIn127Slash8() async {
        let client: [UInt8] = [192, 0, 2, 99]
        var zone = Zone()
        zone.addresses["99.2.0.192.first.example"] = ["10.0.0.2"]     // an answer, but not a listing
        zone.addresses["99.2.0.192.second.example"] = ["127.0.0.2"]
        zone.addresses["99.2.0.192.third.example"] = ["127.0.0.4"]
        let listed = await Blocklist.firstListing(of: client, in: ["first.example", "second.example", "third.example"], resolver: zone)
        #expect(listed == "second.example")
        // The first listing ends the search.
        #expect(await zone.log.all == ["A 99.2.0.192.first.example", "A 99.2.0.192.second.example"])
    }

    @Test func notListedWhenNoZoneAnswers127() async {
        var zone = Zone()
        zone.addresses["4.3.2.1.bl.example"] = ["128.0.0.2", "126.255.255.255"]
        #expect(await Blocklist.firstListing(of: [1, 2, 3, 4], in: ["bl.example", "other.example"], resolver: zone) == nil)
        #expect(await zone.log.all == ["A 4.3.2.1.bl.example", "A 4.3.2.1.other.example"])
    }

    @Test func failingListCountsAsNotListed() async {
        var zone = Zone()
        zone.addresses["4.3.2.1.down.example"] = ["127.0.0.2"]
        zone.failing = ["4.3.2.1.down.example"]
        #expect(await Blocklist.firstListing(of: [1, 2, 3, 4], in: ["down.example"], resolver: zone) == nil)
        // The next list is still asked.
        zone.addresses["4.3.2.1.up.example"] = ["127.0.0.10"]
        #expect(await Blocklist.firstListing(of: [1, 2, 3, 4], in: ["down.example", "up.example"], resolver: zone) == "up.example")
    }

    /// RFC 5782 lists answer 127.0.0.2 and up; 127.255.255.x is a list's error code (a public
    /// resolver, over quota): not a listing. The next list is still asked.
    @Test func errorCodesOfAListAreNotListings() async {
        let client: [UInt8] = [192, 0, 2, 9]
        var zone = Zone()
        zone.addresses["9.2.0.192.broken.example"] = ["127.255.255.254"]
        zone.addresses["9.2.0.192.odd.example"] = ["127.0.0.1"]
        zone.addresses["9.2.0.192.good.example"] = ["127.0.0.4"]
        #expect(await Blocklist.firstListing(of: client, in: ["broken.example", "odd.example"], resolver: zone) == nil)
        #expect(await Blocklist.firstListing(of: client, in: ["broken.example", "good.example"], resolver: zone) == "good.example")
    }

    @Test func noZonesNoQuery() async {
        let zone = Zone()
        #expect(await Blocklist.firstListing(of: [1, 2, 3, 4], in: [], resolver: zone) == nil)
        #expect(await zone.log.all.isEmpty)
    }

    @Test func ipv6ClientIsLookedUpByNibbles() async throws {
        let client = try #require(SPF.parseIP("2001:db8::1"))
        let name = try #require(Blocklist.reversedName(client)) + ".bl.example"
        var zone = Zone()
        zone.addresses[name] = ["127.0.0.2"]
        #expect(await Blocklist.firstListing(of: client, in: ["bl.example"], resolver: zone) == "bl.example")
        #expect(await zone.log.all == ["A \(name)"])
    }

    /// A listener on `::` sees IPv4 clients as IPv4-mapped IPv6 addresses (::ffff:a.b.c.d). SPF
    /// treats those as IPv4 (`SPF.normalized`); a blocklist must too, or every IPv4 client of a
    /// dual-stack MX is looked up by nibbles, which no IPv4 list ever answers.
    @Test func ipv4MappedClientIsLookedUpAsIPv4() async throws {
        let client = try #require(SPF.parseIP("::ffff:1.2.3.4"))
        var zone = Zone()
        zone.addresses["4.3.2.1.bl.example"] = ["127.0.0.2"]
        let listed = await Blocklist.firstListing(of: client, in: ["bl.example"], resolver: zone)
        #expect(listed == "bl.example")
    }
}

@Suite struct ExchangeAnswerTests {
    private let recipient = EmailAddress(localPart: "x", domain: "i2pmail.org")

    /// A reply of the core, read as the link reads it.
    private func coreReply(_ lines: String...) throws -> SMTPReplyReader.Reply {
        var reader = SMTPReplyReader()
        var reply: SMTPReplyReader.Reply?
        for line in lines { reply = try reader.feed(line) }
        return try #require(reply)
    }

    @Test func unknownUserInTheGatewaysWords() throws {
        let answer = ExchangeSession.answer(for: try coreReply("550 5.1.1 No such user here: <bob@mail.i2p>"), recipient: recipient)
        #expect(answer == SMTPReply(550, "5.1.1", "No such user here: <x@i2pmail.org>"))
        #expect(!answer.description.contains("mail.i2p"))
        #expect(!answer.description.contains("bob"))
    }

    @Test func mailboxFull() throws {
        let answer = ExchangeSession.answer(for: try coreReply("452 4.2.2 Mailbox of bob@mail.i2p is full"), recipient: recipient)
        #expect(answer == SMTPReply(452, "4.2.2", "Mailbox full: <x@i2pmail.org>"))
        // The permanent variant keeps its code too.
        let permanent = ExchangeSession.answer(for: try coreReply("552 5.2.2 over quota at core.mail.i2p"), recipient: recipient)
        #expect(permanent == SMTPReply(552, "5.2.2", "Mailbox full: <x@i2pmail.org>"))
    }

    @Test func otherTemporaryRepliesGetTheTemporaryText() throws {
        for line in ["451 4.3.0 core.mail.i2p: database busy", "450 4.7.1 mail.i2p greylisted", "421 4.4.2 mail.i2p closing"] {
            let reply = try coreReply(line)
            let answer = ExchangeSession.answer(for: reply, recipient: recipient)
            // 421 means "closing" and the client's session goes on: it hears 451 (RFC 5321 4.2.3).
            #expect(answer.code == (reply.code == 421 ? 451 : reply.code))
            #expect(answer.enhanced == reply.enhanced)
            #expect(answer.lines == ["Temporary problem, try again later"])
            #expect(!answer.description.contains("mail.i2p"))
        }
        // Without an enhanced status the class's generic one is used.
        let bare = ExchangeSession.answer(for: try coreReply("451 mail.i2p: try later"), recipient: recipient)
        #expect(bare == SMTPReply(451, "4.0.0", "Temporary problem, try again later"))
    }

    @Test func otherPermanentRepliesAreRefusals() throws {
        let policy = ExchangeSession.answer(for: try coreReply("554 5.7.1 rejected by mail.i2p policy"), recipient: recipient)
        #expect(policy == SMTPReply(554, "5.7.1", "Refused: <x@i2pmail.org>"))
        let noRecipient = ExchangeSession.answer(for: try coreReply("554 5.6.0 mail.i2p says no"), recipient: nil)
        #expect(noRecipient == SMTPReply(554, "5.6.0", "Refused"))
        let tooLarge = ExchangeSession.answer(for: try coreReply("552 5.3.4 too big for core.mail.i2p"), recipient: nil)
        #expect(tooLarge == SMTPReply(552, "5.3.4", "Message too large for the mailbox"))
        let bare = ExchangeSession.answer(for: try coreReply("550 mailbox unavailable at mail.i2p"), recipient: recipient)
        #expect(bare == SMTPReply(550, "5.0.0", "Refused: <x@i2pmail.org>"))
    }

    @Test func multiLineReplyBecomesOneLineOfOurOwn() throws {
        let reply = try coreReply("550-5.1.1 The mailbox bob@mail.i2p", "550-5.1.1 does not exist at", "550 5.1.1 core.mail.i2p")
        #expect(reply.lines.count == 3)
        let answer = ExchangeSession.answer(for: reply, recipient: recipient)
        #expect(answer.lines == ["No such user here: <x@i2pmail.org>"])
        #expect(!answer.lines.joined().contains("mail.i2p"))
    }
}

/// A clock for the rate limiter, moved by hand.
final class SecondsClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Double
    init(_ start: Double) { current = start }
    var now: Double { lock.withLock { current } }
    func set(_ time: Double) { lock.withLock { current = time } }
}

@Suite struct ConnectionRateLimiterTests {
    @Test func limitPerWindowPerAddress() {
        let clock = SecondsClock(1000)
        let limiter = ConnectionRateLimiter(limit: 3, window: 60, now: { [clock] in clock.now })
        for offset in 0..<3 {
            clock.set(1000 + Double(offset))
            #expect(limiter.admit("192.0.2.1"), "connection \(offset + 1)")
        }
        clock.set(1003)
        #expect(!limiter.admit("192.0.2.1"))
        // Another address has its own count.
        #expect(limiter.admit("192.0.2.2"))
        #expect(limiter.admit("2001:db8::1"))
        // Still within the window of the first connection.
        clock.set(1059.5)
        #expect(!limiter.admit("192.0.2.1"))
        // The first connection has left the window: one more is allowed, then not.
        clock.set(1060.5)
        #expect(limiter.admit("192.0.2.1"))
        #expect(!limiter.admit("192.0.2.1"))
        // All three old ones gone.
        clock.set(1200)
        #expect(limiter.admit("192.0.2.1"))
        #expect(limiter.admit("192.0.2.1"))
        #expect(limiter.admit("192.0.2.1"))
        #expect(!limiter.admit("192.0.2.1"))
    }

    /// IPv6 clients are counted by /64 (one host picks from a whole /64); IPv4-mapped ones as IPv4.
    @Test func ipv6IsCountedBySlash64() {
        let limiter = ConnectionRateLimiter(limit: 2, window: 60, now: { 1000 })
        #expect(limiter.admit("2001:db8:1:2::1") && limiter.admit("2001:db8:1:2::ffff"))
        #expect(!limiter.admit("2001:db8:1:2:abcd::9"))   // same /64
        #expect(limiter.admit("2001:db8:1:3::1"))          // the next /64
        #expect(limiter.admit("::ffff:192.0.2.7") && limiter.admit("192.0.2.7"))
        #expect(!limiter.admit("192.0.2.7"))               // the mapped form counted with it
        #expect(ConnectionRateLimiter.key("2001:db8:1:2:abcd::9") == "2001:db8:1:2::/64")
    }

    @Test func refusedConnectionsDoNotProlongTheBlock() {
        let clock = SecondsClock(0)
        let limiter = ConnectionRateLimiter(limit: 1, window: 10, now: { [clock] in clock.now })
        #expect(limiter.admit("198.51.100.7"))
        for second in 1..<10 {
            clock.set(Double(second))
            #expect(!limiter.admit("198.51.100.7"))
        }
        clock.set(10.5)
        #expect(limiter.admit("198.51.100.7"))
    }
}

@Suite struct PeerCredentialTests {
    private let credential = PeerCredential(username: "gateway", password: "peer-secret")

    @Test func rightPairMatches() {
        #expect(credential.matches(username: "gateway", password: "peer-secret"))
    }

    @Test func anythingElseDoesNot() {
        #expect(!credential.matches(username: "gateway", password: "peer-secreT"))
        #expect(!credential.matches(username: "gateway", password: "peer-secret "))
        #expect(!credential.matches(username: "gateway", password: ""))
        #expect(!credential.matches(username: "Gateway", password: "peer-secret"))
        #expect(!credential.matches(username: "alice", password: "peer-secret"))
        #expect(!credential.matches(username: "", password: "peer-secret"))
        #expect(!credential.matches(username: "", password: ""))
        // The pair is one secret: the parts cannot be moved across the separator.
        #expect(!credential.matches(username: "gatewaypeer-secret", password: ""))
        #expect(!credential.matches(username: "peer-secret", password: "gateway"))
    }
}
