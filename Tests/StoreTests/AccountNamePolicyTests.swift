import MailCore
import Testing
@testable import Store

/// ACCT-2: local part 2–32 characters of a-z0-9._-, starting with a letter or digit,
/// case-insensitive; reserved names refused at registration.
@Suite struct AccountNamePolicyTests {
    let policy = AccountNamePolicy(domain: "Mail.I2P", extraReserved: ["Staff", "support"])

    @Test(arguments: [
        ("al", "al"),
        ("alice", "alice"),
        ("ALICE", "alice"),
        ("Alice.Smith", "alice.smith"),
        ("a_b", "a_b"),
        ("a-b", "a-b"),
        ("9lives", "9lives"),
        ("00", "00"),
        ("alice@mail.i2p", "alice"),
        ("Alice@MAIL.I2P", "alice"),
        (String(repeating: "z", count: 32), String(repeating: "z", count: 32)),
    ])
    func acceptsAndLowerCases(input: String, name: String) throws {
        #expect(try policy.normalise(input) == name)
        #expect(try policy.validateNew(input) == name)
    }

    @Test(arguments: [
        "",
        "a",
        "A@mail.i2p",
        String(repeating: "z", count: 33),
        "-alice",
        ".alice",
        "_alice",
        "al ice",
        "al+ice",
        "alice!",
        "alicé",
        "ålice",
        "alice@other.i2p",
        "alice@mail.i2p.evil",
        "alice@",
        "@mail.i2p",
        "a@b@mail.i2p",
    ])
    func refusesInvalidNames(input: String) {
        #expect(throws: AccountError.self) { try policy.normalise(input) }
        #expect(throws: AccountError.self) { try policy.validateNew(input) }
        do {
            _ = try policy.normalise(input)
        } catch {
            guard case .invalidName = error else {
                Issue.record("expected invalidName, got \(error)")
                return
            }
        }
    }

    @Test func lengthLimitsCountCharacters() {
        #expect(throws: AccountError.invalidName("2 to 32 characters")) { try policy.normalise("a") }
        #expect(throws: AccountError.invalidName("2 to 32 characters")) { try policy.normalise(String(repeating: "a", count: 33)) }
        #expect(throws: AccountError.invalidName("must start with a letter or a digit")) { try policy.normalise("-abc") }
        #expect(throws: AccountError.invalidName("addresses of this server end in @mail.i2p")) { try policy.normalise("abc@x.i2p") }
    }

    @Test(arguments: ["postmaster", "abuse", "root", "admin", "hostmaster", "webmaster", "mailer-daemon", "noreply"])
    func builtinReservedNamesCannotBeRegistered(name: String) throws {
        #expect(throws: AccountError.reserved(name)) { try policy.validateNew(name) }
        #expect(throws: AccountError.reserved(name)) { try policy.validateNew(name.uppercased() + "@mail.i2p") }
        // A reserved name is still a well-formed name (lookups of postmaster@ work).
        #expect(try policy.normalise(name) == name)
    }

    @Test func configuredReservedNamesAreCaseInsensitive() {
        #expect(throws: AccountError.reserved("staff")) { try policy.validateNew("staff") }
        #expect(throws: AccountError.reserved("staff")) { try policy.validateNew("STAFF") }
        #expect(throws: AccountError.reserved("support")) { try policy.validateNew("Support@mail.i2p") }
        #expect(policy.reserved.isSuperset(of: AccountNamePolicy.builtinReserved))
        #expect(AccountNamePolicy(domain: "mail.i2p").reserved == AccountNamePolicy.builtinReserved)
    }

    @Test func domainIsStoredLowerCase() {
        #expect(policy.domain == "mail.i2p")
    }

    /// An account must be reachable by SMTP: its address has to be an RFC 5321 dot-string, so a
    /// name that ends in a dot or holds two dots in a row can never send (SMTP-3) or receive mail.
    @Test(arguments: ["ab.", "a..b", "ab..", "ab-."])
    func everyAcceptedNameIsAValidMailbox(name: String) {
        #expect(EmailAddress("\(name)@mail.i2p", allowUTF8: true) == nil)
        #expect(throws: AccountError.self) { try policy.validateNew(name) }
    }

    @Test(arguments: ["a.b", "a.b.c", "a-.b", "a_.b", "a1.2b"])
    func dottedNamesThatAreValidMailboxes(name: String) throws {
        #expect(try policy.validateNew(name) == name)
        #expect(EmailAddress("\(name)@mail.i2p") != nil)
    }
}
