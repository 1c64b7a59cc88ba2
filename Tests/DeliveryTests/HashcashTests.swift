import TestSupport
import Testing
@testable import Delivery

/// QUOTA-2: hashcash version 1 stamps.
@Suite struct HashcashTests {
    // A stamp from the hashcash documentation (adam@cypherspace.org, 2006-04-08, 20 bits).
    static let published = "1:20:060408:adam@cypherspace.org::1QTjaYd7niiQA/sc:ePa"
    static let april2006: Int64 = 1_144_454_400  // 2006-04-08 00:00 UTC

    @Test func aPublishedStampVerifies() throws {
        let stamp = try HashcashStamp.parse(Self.published)
        #expect(stamp.bits == 20 && stamp.resource == "adam@cypherspace.org" && stamp.rand == "1QTjaYd7niiQA/sc")
        #expect(stamp.leadingZeroBits >= 20)
        #expect(stamp.time == Self.april2006)
        try stamp.verify(resource: "Adam@Cypherspace.org", requiredBits: 20, now: Self.april2006 + 3600)
        #expect(stamp.description == Self.published)
    }

    @Test func mintedStampsVerifyAndAreDistinct() throws {
        var random = SplitMix64(seed: 11)
        let now = midnight + 3600
        let first = HashcashStamp.mint(resource: "alice@mail.i2p", bits: 14, now: now, random: &random)
        let second = HashcashStamp.mint(resource: "alice@mail.i2p", bits: 14, now: now, random: &random)
        for stamp in [first, second] {
            let parsed = try HashcashStamp.parse(stamp.description)
            #expect(parsed == stamp)
            #expect(parsed.date == "261129")
            try parsed.verify(resource: "alice@mail.i2p", requiredBits: 14, now: now)
        }
        #expect(first.spentKey != second.spentKey)
    }

    @Test func problemsAreNamed() throws {
        let now = Self.april2006
        func problem(_ text: String, resource: String = "adam@cypherspace.org", bits: Int = 20, at time: Int64 = now) -> HashcashStamp.Problem? {
            do {
                try HashcashStamp.parse(text).verify(resource: resource, requiredBits: bits, now: time)
                return nil
            } catch {
                return error
            }
        }
        #expect(problem(Self.published) == nil)
        #expect(problem("0:20:060408:adam@cypherspace.org::1QTjaYd7niiQA/sc:ePa") == .wrongVersion)
        #expect(problem("1:20:060408:adam@cypherspace.org:1QTjaYd7niiQA/sc:ePa").map { "\($0)" }?.contains("7 fields") == true)
        #expect(problem("1:x:060408:adam@cypherspace.org::1QTjaYd7niiQA/sc:ePa").map { "\($0)" }?.contains("bits field") == true)
        #expect(problem("1:20:0604:adam@cypherspace.org::1QTjaYd7niiQA/sc:ePa").map { "\($0)" }?.contains("date field") == true)
        #expect(problem("1:20:061308:adam@cypherspace.org::1QTjaYd7niiQA/sc:ePa").map { "\($0)" }?.contains("not a valid date") == true)
        #expect(problem("1:20:060408:adam@cypherspace.org::1QTjaYd7niiQA/sc:e$a").map { "\($0)" }?.contains("counter") == true)
        #expect(problem("") == .malformed("empty"))
        #expect(problem(String(repeating: "1", count: 600)) == .malformed("longer than 512 characters"))
        #expect(problem(Self.published, bits: 22) == .tooFewBits(claimed: 20, required: 22))
        #expect(problem("1:20:060408:adam@cypherspace.org::1QTjaYd7niiQA/sc:ePb") == .notWorked(required: 20))
        #expect(problem(Self.published, resource: "alice@mail.i2p") == .wrongResource("adam@cypherspace.org"))
        #expect(problem(Self.published, at: now + 29 * 86400) == .expired)
        #expect(problem(Self.published, at: now - 3 * 86400) == .future)
    }

    @Test func theStampIsHashedAsWritten() throws {
        // "020" for "20": the text hashes differently, so the work does not carry over.
        let padded = try HashcashStamp.parse("1:020:060408:adam@cypherspace.org::1QTjaYd7niiQA/sc:ePa")
        #expect(padded.description == "1:020:060408:adam@cypherspace.org::1QTjaYd7niiQA/sc:ePa")
        #expect(throws: HashcashStamp.Problem.notWorked(required: 20)) {
            try padded.verify(resource: "adam@cypherspace.org", requiredBits: 20, now: Self.april2006)
        }
        #expect(throws: HashcashStamp.Problem.self) { try HashcashStamp.parse("1:+20:060408:adam@cypherspace.org::1QTjaYd7niiQA/sc:ePa") }
        #expect(try HashcashStamp.parse("  \(Self.published) ").spentKey == HashcashStamp.parse(Self.published).spentKey)
    }

    @Test func clientTextInProblemsIsQuotedSafely() {
        #expect(HashcashStamp.quoted("a\u{1}b\u{7f}c") == "a?b?c")
        #expect(HashcashStamp.quoted(String(repeating: "x", count: 100)).count == 41)
        do {
            _ = try HashcashStamp.parse("1:20:\u{1}\u{2}" + String(repeating: "9", count: 300) + ":r::a:b")
            Issue.record("must not parse")
        } catch {
            #expect("\(error)".count < 120 && !"\(error)".unicodeScalars.contains { $0.value < 0x20 })
        }
    }
}
