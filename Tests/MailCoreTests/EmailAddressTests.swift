import Testing
@testable import MailCore

/// RFC 5321 4.1.2 Mailbox parsing, the length limits of 4.5.3.1 and RFC 6531 UTF-8.
@Suite struct EmailAddressTests {
    // MARK: Accepted forms

    @Test(arguments: [
        ("alice@mail.i2p", "alice", "mail.i2p"),
        ("a@b", "a", "b"),
        ("first.last@example.com", "first.last", "example.com"),
        ("a+tag@example.com", "a+tag", "example.com"),
        ("!#$%&'*+-/=?^_`{|}~@example.com", "!#$%&'*+-/=?^_`{|}~", "example.com"),
        ("x@sub-domain.example.com", "x", "sub-domain.example.com"),
        ("x@123.example", "x", "123.example"),
        ("\"john doe\"@example.com", "\"john doe\"", "example.com"),
        ("\"\"@example.com", "\"\"", "example.com"),
        ("\"a@b\"@example.com", "\"a@b\"", "example.com"),
        ("\"a\\\"b\"@example.com", "\"a\\\"b\"", "example.com"),
        ("\"a\\\\b\"@example.com", "\"a\\\\b\"", "example.com"),
        ("\"a.(b),c;d:e<f>\"@example.com", "\"a.(b),c;d:e<f>\"", "example.com"),
        ("user@[192.0.2.1]", "user", "[192.0.2.1]"),
        ("user@[IPv6:2001:db8::1]", "user", "[ipv6:2001:db8::1]"),
    ])
    func accepts(text: String, local: String, domain: String) throws {
        let address = try #require(EmailAddress(text))
        #expect(address.localPart == local)
        #expect(address.domain == domain)
    }

    // MARK: Refused forms

    @Test(arguments: [
        "",
        "alice",
        "@example.com",
        "alice@",
        "alice@@example.com",
        "a@b@example.com",
        ".alice@example.com",
        "alice.@example.com",
        "al..ice@example.com",
        ".@example.com",
        "al ice@example.com",
        "al(ice@example.com",
        "al\"ice@example.com",
        "\"@example.com",
        "\"unterminated@example.com",
        "\"a\"b\"@example.com",
        "\"a\\\"@example.com",
        "\"tab\there\"@example.com",
        "\"nul\u{0}\"@example.com",
        "alice@example..com",
        "alice@.example.com",
        "alice@example.com.",
        "alice@-example.com",
        "alice@example-.com",
        "alice@exa_mple.com",
        "alice@exa mple.com",
        "alice@[]",
        "alice@[1.2.3.4",
        "alice@[1.2[3].4]",
        "alice@[a\\b]",
        "alice@[a b]",
        "<alice@example.com>",
    ])
    func refuses(text: String) {
        #expect(EmailAddress(text) == nil, "\(text) should be refused")
    }

    // MARK: Length limits (RFC 5321 4.5.3.1)

    @Test func localPartOf64OctetsIsAcceptedAnd65Refused() {
        let local64 = String(repeating: "a", count: 64)
        let local65 = String(repeating: "a", count: 65)
        #expect(EmailAddress("\(local64)@example.com")?.localPart == local64)
        #expect(EmailAddress("\(local65)@example.com") == nil)
    }

    @Test func quotedLocalPartCountsItsQuotesTowardsTheLimit() {
        let inner62 = String(repeating: "q", count: 62)
        let inner63 = String(repeating: "q", count: 63)
        #expect(EmailAddress("\"\(inner62)\"@example.com") != nil)   // 64 octets with quotes
        #expect(EmailAddress("\"\(inner63)\"@example.com") == nil)   // 65
    }

    @Test func localPartLimitIsInOctetsNotCharacters() {
        // "ö" is two octets in UTF-8: 32 of them are 64 octets, 33 are 66.
        let ok = String(repeating: "ö", count: 32)
        let tooLong = String(repeating: "ö", count: 33)
        #expect(EmailAddress("\(ok)@example.com", allowUTF8: true) != nil)
        #expect(EmailAddress("\(tooLong)@example.com", allowUTF8: true) == nil)
    }

    @Test func domainLabelOf63OctetsIsAcceptedAnd64Refused() {
        #expect(EmailAddress("a@\(String(repeating: "d", count: 63)).com") != nil)
        #expect(EmailAddress("a@\(String(repeating: "d", count: 64)).com") == nil)
    }

    /// A domain of exactly `length` octets: labels of 59 octets separated by dots.
    static func domain(ofLength length: Int) -> String {
        String((0..<length).map { ($0 + 1) % 60 == 0 ? "." : "d" })
    }

    @Test func addressOf254OctetsIsAccepted() throws {
        let domain = Self.domain(ofLength: 254 - 65)
        let text = String(repeating: "l", count: 64) + "@" + domain
        try #require(text.utf8.count == 254)
        #expect(EmailAddress(text) != nil)
    }

    /// RFC 5321 4.5.3.1.3: a path is at most 256 octets including the angle brackets, so the
    /// mailbox itself is at most 254. `EmailAddress` parses text without brackets.
    @Test(arguments: [255, 256])
    func addressLongerThan254OctetsIsRefused(length: Int) throws {
        let domain = Self.domain(ofLength: length - 65)
        let text = String(repeating: "l", count: 64) + "@" + domain
        try #require(text.utf8.count == length)
        try #require(!domain.hasSuffix(".") && !domain.contains(".."))
        #expect(EmailAddress(text) == nil)
    }

    @Test func addressOf257OctetsIsRefused() {
        let text = String(repeating: "l", count: 64) + "@" + Self.domain(ofLength: 257 - 65)
        #expect(text.utf8.count == 257)
        #expect(EmailAddress(text) == nil)
    }

    // MARK: UTF-8 (RFC 6531)

    @Test(arguments: ["jörg@example.com", "user@exämple.com", "\"jö rg\"@example.com", "用户@例子.广告"])
    func nonASCIIOnlyWithAllowUTF8(text: String) {
        #expect(EmailAddress(text) == nil)
        #expect(EmailAddress(text, allowUTF8: false) == nil)
        #expect(EmailAddress(text, allowUTF8: true) != nil)
    }

    // MARK: Case and canonical form

    @Test func domainIsLowerCasedLocalPartKept() throws {
        let address = try #require(EmailAddress("Alice.Smith@MAIL.I2P"))
        #expect(address.localPart == "Alice.Smith")
        #expect(address.domain == "mail.i2p")
        #expect(address.description == "Alice.Smith@mail.i2p")
        #expect(address.canonical == "alice.smith@mail.i2p")
    }

    @Test func memberwiseInitLowerCasesTheDomain() {
        let address = EmailAddress(localPart: "Bob", domain: "Example.ORG")
        #expect(address.domain == "example.org")
        #expect(address.description == "Bob@example.org")
        #expect(address == EmailAddress("Bob@example.org"))
        #expect(address != EmailAddress("bob@example.org"))  // equality is exact on the local part
    }

    @Test func canonicalFormsOfDifferentCaseAgree() throws {
        let a = try #require(EmailAddress("ALICE@Mail.I2P"))
        let b = try #require(EmailAddress("alice@mail.i2p"))
        #expect(a.canonical == b.canonical)
    }
}
