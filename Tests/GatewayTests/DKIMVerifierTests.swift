import MailCore
import NIOConcurrencyHelpers
import Testing
@testable import Gateway

/// The verifier's defences: what an Internet sender puts in d= and s= never reaches a lookup or
/// the Authentication-Results the gateway writes under its own name.
@Suite struct DKIMVerifierDefenceTests {
    final class Keys: DKIMKeyLookup {
        let records: [String: String]
        let asked = NIOLockedValueBox<[String]>([])
        init(_ records: [String: String]) { self.records = records }
        func txt(_ name: String) async throws -> [String]? {
            asked.withLockedValue { $0.append(name) }
            return records[name].map { [$0] }
        }
    }

    static let message = Array("From: a@example.org\r\nTo: b@i2pmail.org\r\nSubject: s\r\n\r\nbody\r\n".utf8)

    @Test func aSignatureMadeHereVerifies() async throws {
        let key = DKIM.Key.generateEd25519()
        let signed = try DKIM.sign(Self.message, domain: "example.org", selector: "s1", key: key, time: 1_800_000_000)
        let keys = Keys(["s1._domainkey.example.org": key.dnsRecord])
        let results = await DKIM.verify(signed, keys: keys, now: 1_800_000_100)
        #expect(results.map(\.authenticationResult) == ["dkim=pass header.d=example.org header.s=s1"])
    }

    @Test func hostileDomainsAndSelectorsAreRefusedBeforeAnyLookup() async {
        for (d, s) in [("attacker.net", "x header.d=paypal.com"), ("evil.example dkim=pass", "s1"), ("a..b", "s1"),
                       ("example.org", "(comment)"), ("-bad.example", "s1"), ("", "s1")] {
            let field = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=\(d); s=\(s); h=from; bh=AAAA; b=AAAA\r\n"
            let keys = Keys([:])
            let results = await DKIM.verify(Array(field.utf8) + Self.message, keys: keys, now: 0)
            #expect(results.count == 1 && results[0].verdict == .permerror, "d=\(d) s=\(s)")
            #expect(results[0].domain == nil && results[0].selector == nil)
            #expect(!results[0].authenticationResult.contains("paypal") && !results[0].authenticationResult.contains("dkim=pass"))
            #expect(keys.asked.withLockedValue { $0 }.isEmpty)
        }
    }

    @Test func anUnsignedMessageIsNone() async {
        #expect(await DKIM.verify(Self.message, keys: Keys([:]), now: 0).map(\.authenticationResult) == ["dkim=none"])
    }
}
