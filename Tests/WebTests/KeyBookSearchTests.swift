import Store
import Testing
@testable import Web

/// How a lookup's text is read (HKP's `search`, the search page's box).
@Suite struct KeyBookSearchTests {
    let domain = "mail.i2p"

    @Test func gpgFormsAreFingerprintsAndKeyIDs() {
        #expect(KeyBookPages.searches("0xC3A148C4499BB168A1188D5D712D9D68B63B80C6", domain: domain)
            == [.fingerprint("C3A148C4499BB168A1188D5D712D9D68B63B80C6")])
        #expect(KeyBookPages.searches("0x712d9d68b63b80c6", domain: domain) == [.keyID("712D9D68B63B80C6")])
        #expect(KeyBookPages.searches("0xB63B80C6", domain: domain) == [.keyID("B63B80C6")])
        // 0x with another length is nothing.
        #expect(KeyBookPages.searches("0xABC", domain: domain).isEmpty)
    }

    @Test func addressesAndNames() {
        #expect(KeyBookPages.searches("Alice@Mail.I2P", domain: domain) == [.account("alice")])
        #expect(KeyBookPages.searches("Alice <alice@mail.i2p>", domain: domain) == [.account("alice")])
        #expect(KeyBookPages.searches("alice", domain: domain) == [.account("alice")])
        #expect(KeyBookPages.searches("alice@example.com", domain: domain).isEmpty)
        #expect(KeyBookPages.searches("", domain: domain).isEmpty)
        #expect(KeyBookPages.searches("a b", domain: domain).isEmpty)
        #expect(KeyBookPages.searches(String(repeating: "a", count: 400), domain: domain).isEmpty)
    }

    @Test func bareHexIsAlsoAName() {
        // An account may be called cafe1234: without 0x both readings are tried.
        #expect(KeyBookPages.searches("cafe1234", domain: domain) == [.keyID("CAFE1234"), .account("cafe1234")])
        #expect(KeyBookPages.searches("cafe1234@mail.i2p", domain: domain) == [.account("cafe1234")])
    }
}
