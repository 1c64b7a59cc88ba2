import Foundation
import Testing
@testable import Web

/// A clock the test moves by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Double

    init(_ start: Double = 1_700_000_000) { value = start }

    var now: Double {
        lock.lock(); defer { lock.unlock() }
        return value
    }

    func advance(_ seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        value += seconds
    }

    var reading: @Sendable () -> Double { { self.now } }
}

@Suite("Web sessions")
struct SessionTests {
    func store(idle: Double = 100, lifetime: Double = 1000, capacity: Int = 10, clock: ManualClock) -> WebSessionStore<String> {
        WebSessionStore<String>(idleTimeout: idle, lifetime: lifetime, capacity: capacity, now: clock.reading)
    }

    @Test func createAndFind() {
        let clock = ManualClock()
        let sessions = store(clock: clock)
        let session = sessions.create("alice")
        #expect(session.created == clock.now)
        #expect(session.lastSeen == clock.now)
        #expect(session.notice == nil)
        #expect(sessions.find(session.id)?.payload == "alice")
        #expect(sessions.find(nil) == nil)
        #expect(sessions.find("") == nil)
        #expect(sessions.find("unknown") == nil)
        #expect(sessions.find(String(repeating: "a", count: 65)) == nil)
        #expect(sessions.count == 1)
    }

    @Test func idleExpiry() {
        let clock = ManualClock()
        let sessions = store(idle: 100, clock: clock)
        let session = sessions.create("a")
        clock.advance(99.9)
        #expect(sessions.find(session.id) != nil)
        // The find restarted the idle clock: 99.9 more seconds are still fine.
        clock.advance(99.9)
        #expect(sessions.find(session.id)?.lastSeen == clock.now)
        clock.advance(100)
        #expect(sessions.find(session.id) == nil)
        // An expired session is forgotten, not only hidden.
        #expect(sessions.count == 0)
        clock.advance(-150)
        #expect(sessions.find(session.id) == nil)
    }

    @Test func exactlyIdleTimeoutIsExpired() {
        let clock = ManualClock()
        let sessions = store(idle: 100, clock: clock)
        let session = sessions.create("a")
        clock.advance(100)
        #expect(sessions.find(session.id) == nil)
    }

    @Test func absoluteLifetime() {
        let clock = ManualClock()
        let sessions = store(idle: 100, lifetime: 250, clock: clock)
        let session = sessions.create("a")
        for _ in 0..<4 {
            clock.advance(60)
            #expect(sessions.find(session.id) != nil)
        }
        // 240 s: still alive though touched all the time; 250 s: gone.
        clock.advance(10)
        #expect(sessions.find(session.id) == nil)
    }

    @Test func capacityEvictsTheLeastRecentlySeen() {
        let clock = ManualClock()
        let sessions = store(idle: 1000, lifetime: 10_000, capacity: 3, clock: clock)
        let a = sessions.create("a")
        clock.advance(1)
        let b = sessions.create("b")
        clock.advance(1)
        let c = sessions.create("c")
        clock.advance(1)
        // a was created first but seen last: b is now the oldest by lastSeen.
        #expect(sessions.find(a.id) != nil)
        clock.advance(1)
        let d = sessions.create("d")
        #expect(sessions.count == 3)
        #expect(sessions.find(b.id) == nil)
        #expect(sessions.find(a.id) != nil)
        #expect(sessions.find(c.id) != nil)
        #expect(sessions.find(d.id) != nil)
    }

    @Test func capacityDropsExpiredSessionsFirst() {
        let clock = ManualClock()
        let sessions = store(idle: 100, lifetime: 10_000, capacity: 3, clock: clock)
        let old1 = sessions.create("old1")
        let old2 = sessions.create("old2")
        clock.advance(50)
        let fresh = sessions.create("fresh")
        clock.advance(60)
        // old1 and old2 are idle for 110 s (expired), fresh for 60 s.
        let new = sessions.create("new")
        #expect(sessions.count == 2)
        #expect(sessions.find(fresh.id)?.payload == "fresh")
        #expect(sessions.find(new.id)?.payload == "new")
        #expect(sessions.find(old1.id) == nil)
        #expect(sessions.find(old2.id) == nil)
    }

    @Test func capacityHoldsUnderManyCreates() {
        let clock = ManualClock()
        let sessions = store(idle: 1000, lifetime: 10_000, capacity: 5, clock: clock)
        var last: WebSession<String>?
        for index in 0..<50 {
            clock.advance(0.5)
            last = sessions.create("\(index)")
        }
        #expect(sessions.count == 5)
        #expect(sessions.find(last?.id)?.payload == "49")
    }

    @Test func updateRemoveAndRemoveAll() {
        let clock = ManualClock()
        let sessions = store(clock: clock)
        let a1 = sessions.create("alice")
        let a2 = sessions.create("alice")
        let b = sessions.create("bob")
        #expect(sessions.update(a1.id) { $0.payload = "alice!" }?.payload == "alice!")
        #expect(sessions.update("nope") { $0.payload = "x" } == nil)
        #expect(sessions.find(a1.id)?.payload == "alice!")

        sessions.removeAll { $0.payload.hasPrefix("alice") }
        #expect(sessions.find(a1.id) == nil)
        #expect(sessions.find(a2.id) == nil)
        #expect(sessions.find(b.id)?.payload == "bob")
        sessions.remove(b.id)
        #expect(sessions.find(b.id) == nil)
        #expect(sessions.count == 0)
        sessions.remove("never-existed")
    }

    @Test func noticeIsOneShot() {
        let clock = ManualClock()
        let sessions = store(clock: clock)
        let session = sessions.create("a")
        #expect(sessions.takeNotice(session.id) == nil)
        sessions.update(session.id) { $0.notice = "Password changed." }
        #expect(sessions.takeNotice(session.id) == "Password changed.")
        #expect(sessions.takeNotice(session.id) == nil)
        #expect(sessions.find(session.id)?.notice == nil)
        #expect(sessions.takeNotice("unknown") == nil)
    }

    @Test func idsAndTokensAreRandom256BitBase64URL() {
        let sessions = WebSessionStore<Int>(capacity: 5000)
        var seen = Set<String>()
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for index in 0..<1000 {
            let session = sessions.create(index)
            for token in [session.id, session.csrfToken] {
                #expect(token.count == 43)
                #expect(token.allSatisfy { alphabet.contains($0) })
                seen.insert(token)
            }
        }
        #expect(seen.count == 2000)
        #expect(sessions.count == 1000)
    }

    @Test func csrfCheck() {
        let session = WebSessionStore<String>().create("a")
        #expect(session.acceptsCSRF(session.csrfToken))
        #expect(!session.acceptsCSRF(nil))
        #expect(!session.acceptsCSRF(""))
        #expect(!session.acceptsCSRF(String(session.csrfToken.dropLast()) + (session.csrfToken.last == "A" ? "B" : "A")))
        #expect(!session.acceptsCSRF(String(session.csrfToken.dropLast())))
        #expect(!session.acceptsCSRF(session.csrfToken + "A"))
        #expect(!session.acceptsCSRF(session.id))
        #expect(!session.acceptsCSRF(session.csrfToken.uppercased() == session.csrfToken ? session.csrfToken.lowercased() : session.csrfToken.uppercased()))
    }

    @Test func constantTimeEqual() {
        #expect(ConstantTime.equal([], []))
        #expect(ConstantTime.equal([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equal([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equal([0, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equal([1, 2, 3], [1, 2]))
        #expect(!ConstantTime.equal([1, 2], [1, 2, 3]))
        #expect(!ConstantTime.equal([], [0]))
        #expect(!ConstantTime.equal([0x80], [0x00]))
        #expect(ConstantTime.equal(Array(repeating: 0xFF, count: 1000), Array(repeating: 0xFF, count: 1000)))
    }
}
