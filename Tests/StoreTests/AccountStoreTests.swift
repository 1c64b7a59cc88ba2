import Foundation
import Testing
@testable import Store

/// ACCT-1..5 on a real data folder.
@Suite struct AccountStoreTests {
    static let password = "correct horse battery"

    // MARK: Create and find

    @Test func createStoresLowerCaseNameDefaultsAndAHash() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            let account = try accounts.create(name: "Alice", password: Self.password)
            #expect(account.name == "alice")
            #expect(account.quotaBytes == nil)
            #expect(account.usedBytes == 0)
            #expect(account.delayMode == .defer)
            #expect(account.ircNick == nil)
            #expect(account.keyListing == false)
            #expect(account.htmlSanitise == true)
            #expect(account.internetQuota == nil)
            #expect(!account.passwordHash.contains(Self.password))
            let hash = try #require(PasswordHash(encoded: account.passwordHash))
            #expect(hash.parameters == fastHash)
            #expect(hash.verify(password: Self.password))
            #expect(!hash.verify(password: "wrong password"))
        }
    }

    @Test func createWithQuota() async throws {
        try await withDataFolder { data in
            let account = try data.accounts().create(name: "bob", password: Self.password, quotaBytes: 1234)
            #expect(account.quotaBytes == 1234)
            #expect(try data.accounts().require("bob").quotaBytes == 1234)
        }
    }

    @Test func findIsCaseInsensitiveAndAcceptsTheFullAddress() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            let created = try accounts.create(name: "alice", password: Self.password)
            #expect(try await accounts.find("alice") == created)
            #expect(try await accounts.find("ALICE") == created)
            #expect(try await accounts.find("Alice@Mail.I2P") == created)
            #expect(try await accounts.find("alice@mail.i2p") == created)
            #expect(try await accounts.find("alice@other.i2p") == nil)
            #expect(try await accounts.find("nobody") == nil)
            #expect(try await accounts.find("!") == nil)
            #expect(try await accounts.find("") == nil)
        }
    }

    @Test func duplicateNameInAnyCaseIsRefused() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(throws: AccountError.exists("alice")) { try accounts.create(name: "ALICE@mail.i2p", password: Self.password) }
            #expect(try accounts.all().count == 1)
        }
    }

    @Test func invalidAndReservedNamesAreRefused() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts(extraReserved: ["staff"])
            let before = try accounts.all()
            #expect(before.isEmpty)
            #expect(throws: AccountError.reserved("postmaster")) { try accounts.create(name: "postmaster", password: Self.password) }
            #expect(throws: AccountError.reserved("staff")) { try accounts.create(name: "Staff", password: Self.password) }
            #expect(throws: AccountError.invalidName("2 to 32 characters")) { try accounts.create(name: "x", password: Self.password) }
            #expect(try accounts.all().isEmpty)
        }
    }

    @Test func passwordOfTenCharactersIsTheMinimum() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            #expect(throws: AccountError.passwordTooShort) { try accounts.create(name: "alice", password: "123456789") }
            #expect(throws: AccountError.passwordTooShort) { try accounts.create(name: "alice", password: "") }
            #expect(try await accounts.find("alice") == nil)
            _ = try accounts.create(name: "alice", password: "1234567890")
            #expect(try await accounts.find("alice") != nil)
        }
    }

    @Test func allIsSortedByName() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            for name in ["carol", "alice", "bob"] { _ = try accounts.create(name: name, password: Self.password) }
            #expect(try accounts.all().map(\.name) == ["alice", "bob", "carol"])
        }
    }

    @Test func requireThrowsNotFound() async throws {
        try await withDataFolder { data in
            #expect(throws: AccountError.notFound("ghost")) { try data.accounts().require("Ghost") }
        }
    }

    @Test func operatorAccountIsTheConfiguredOneOrTheOldest() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            #expect(try accounts.operatorAccount(configured: nil) == nil)
            let first = try accounts.create(name: "zed", password: Self.password)
            let second = try accounts.create(name: "amy", password: Self.password)
            #expect(try accounts.operatorAccount(configured: nil) == first)
            #expect(try accounts.operatorAccount(configured: "AMY") == second)
            #expect(try accounts.operatorAccount(configured: "nobody") == nil)
        }
    }

    @Test func accountsSurviveReopeningTheFolder() async throws {
        try await withDataFolder { data in
            let created = try data.accounts().create(name: "alice", password: Self.password)
            let reopened = try DataFolder(path: data.path)
            let accounts = AccountStore(folder: reopened, policy: AccountNamePolicy(domain: "mail.i2p"), hashParameters: fastHash)
            #expect(try await accounts.find("alice") == created)
        }
    }

    // MARK: Password change

    @Test func setPasswordReplacesTheHash() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            let before = try accounts.create(name: "alice", password: Self.password)
            try accounts.setPassword("ALICE", password: "a new password")
            let after = try accounts.require("alice")
            #expect(after.passwordHash != before.passwordHash)
            let hash = try #require(PasswordHash(encoded: after.passwordHash))
            #expect(hash.verify(password: "a new password"))
            #expect(!hash.verify(password: Self.password))
        }
    }

    @Test func setPasswordRefusesShortPasswordsAndUnknownAccounts() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            let before = try accounts.create(name: "alice", password: Self.password)
            #expect(throws: AccountError.passwordTooShort) { try accounts.setPassword("alice", password: "short") }
            #expect(try accounts.require("alice").passwordHash == before.passwordHash)
            #expect(throws: AccountError.notFound("ghost")) { try accounts.setPassword("ghost", password: "long enough pw") }
        }
    }

    // MARK: Settings (ACCT-5)

    @Test func applyStoresEverySetting() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            _ = try accounts.create(name: "alice", password: Self.password)
            let updated = try accounts.apply(settings: [
                ("quota", "1GiB"), ("delay", "pool"), ("irc_nick", "Alice_[1]"),
                ("key_listing", "on"), ("html_sanitise", "off"), ("internet_quota", "7"),
            ], to: "alice")
            #expect(updated.quotaBytes == 1_073_741_824)
            #expect(updated.delayMode == .pool)
            #expect(updated.ircNick == "Alice_[1]")
            #expect(updated.keyListing == true)
            #expect(updated.htmlSanitise == false)
            #expect(updated.internetQuota == 7)
            #expect(try accounts.require("alice") == updated)

            let reset = try accounts.apply(settings: [("quota", "default"), ("internet_quota", "default"), ("irc_nick", "")], to: "alice")
            #expect(reset.quotaBytes == nil)
            #expect(reset.internetQuota == nil)
            #expect(reset.ircNick == nil)
            #expect(reset.delayMode == .pool)
        }
    }

    @Test(arguments: DelayMode.allCases)
    func everyDelayModeIsAccepted(mode: DelayMode) async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(try accounts.apply(settings: [("delay", mode.rawValue)], to: "alice").delayMode == mode)
        }
    }

    @Test(arguments: [("on", true), ("yes", true), ("true", true), ("off", false), ("no", false), ("false", false)])
    func flagSpellings(value: String, flag: Bool) async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            _ = try accounts.create(name: "alice", password: Self.password)
            let updated = try accounts.apply(settings: [("key_listing", value), ("html_sanitise", value)], to: "alice")
            #expect(updated.keyListing == flag)
            #expect(updated.htmlSanitise == flag)
        }
    }

    @Test(arguments: ["a", "Nick", "[bot]", "a-1", "x\\y", "`^{|}_", String(repeating: "n", count: 30)])
    func validIRCNicks(nick: String) async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(try accounts.apply(settings: [("irc_nick", nick)], to: "alice").ircNick == nick)
        }
    }

    @Test(arguments: [
        ("quota", "0"), ("quota", "lots"), ("quota", "-5MB"), ("quota", "1.5GB"), ("quota", "99999999999GiB"),
        ("delay", "later"), ("delay", "NONE"), ("delay", ""),
        ("irc_nick", "1abc"), ("irc_nick", "-abc"), ("irc_nick", "has space"), ("irc_nick", "nïck"),
        ("irc_nick", String(repeating: "n", count: 31)), ("irc_nick", "a.b"),
        ("key_listing", "maybe"), ("key_listing", ""), ("html_sanitise", "1"),
        ("internet_quota", "-1"), ("internet_quota", "100001"), ("internet_quota", "many"), ("internet_quota", ""),
        ("colour", "blue"), ("QUOTA", "1GB"),
    ])
    func invalidSettingsAreRefused(key: String, value: String) async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            let before = try accounts.create(name: "alice", password: Self.password)
            #expect {
                _ = try accounts.apply(settings: [(key, value)], to: "alice")
            } throws: { error in
                guard case AccountError.invalidSetting(let message) = error else { return false }
                return !message.isEmpty
            }
            #expect(try accounts.require("alice") == before)
        }
    }

    @Test func internetQuotaBounds() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(try accounts.apply(settings: [("internet_quota", "0")], to: "alice").internetQuota == 0)
            #expect(try accounts.apply(settings: [("internet_quota", "100000")], to: "alice").internetQuota == 100_000)
        }
    }

    @Test func oneInvalidSettingWritesNothing() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            let before = try accounts.create(name: "alice", password: Self.password)
            #expect(throws: AccountError.self) {
                try accounts.apply(settings: [("quota", "10MB"), ("delay", "none"), ("key_listing", "sometimes")], to: "alice")
            }
            #expect(try accounts.require("alice") == before)
        }
    }

    @Test func settingsOfUnknownAccount() async throws {
        try await withDataFolder { data in
            #expect(throws: AccountError.notFound("ghost")) { try data.accounts().apply(settings: [("delay", "none")], to: "ghost") }
        }
    }

    // MARK: Delete and quarantine (ACCT-4)

    @Test func deleteRemovesTheAccountAndQuarantinesTheName() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            _ = try accounts.create(name: "alice", password: Self.password)
            _ = try accounts.create(name: "bob", password: Self.password)
            #expect(try accounts.delete("ALICE") == 0)
            #expect(try await accounts.find("alice") == nil)
            #expect(try accounts.all().map(\.name) == ["bob"])

            let until = AccountStore.today() + 180
            #expect(throws: AccountError.quarantined("alice", untilDay: until)) {
                try accounts.create(name: "alice", password: Self.password)
            }
            #expect(throws: AccountError.quarantined("alice", untilDay: until)) {
                try accounts.create(name: "Alice@mail.i2p", password: "another password")
            }
            #expect(try await accounts.find("alice") == nil)
        }
    }

    @Test func quarantineErrorNamesTheDay() {
        // Day 20000 since 1970-01-01 is 2024-10-04.
        let error = AccountError.quarantined("alice", untilDay: 20_000)
        #expect(error.description.contains("alice"))
        #expect(error.description.contains("2024-10-04"))
    }

    @Test func quarantineOfZeroDaysAllowsTheNameAgainAtOnce() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts(quarantineDays: 0)
            let old = try accounts.create(name: "alice", password: Self.password)
            try accounts.delete("alice")
            let new = try accounts.create(name: "alice", password: "a different password")
            #expect(new.id != old.id)
            #expect(new.usedBytes == 0)
            #expect(PasswordHash(encoded: new.passwordHash)?.verify(password: "a different password") == true)
            // The quarantine row was consumed: deleting and re-creating again works the same way.
            try accounts.delete("alice")
            _ = try accounts.create(name: "alice", password: Self.password)
        }
    }

    @Test func quarantineIsStoredWithTheDataNotTheCurrentSetting() async throws {
        try await withDataFolder { data in
            _ = try data.accounts(quarantineDays: 30).create(name: "alice", password: Self.password)
            try data.accounts(quarantineDays: 30).delete("alice")
            // A store configured without quarantine still honours the stored period.
            #expect(throws: AccountError.quarantined("alice", untilDay: AccountStore.today() + 30)) {
                try data.accounts(quarantineDays: 0).create(name: "alice", password: Self.password)
            }
            // Other names are unaffected.
            _ = try data.accounts(quarantineDays: 0).create(name: "alicia", password: Self.password)
        }
    }

    @Test func expiredQuarantineAllowsTheName() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts(quarantineDays: -1)  // the period ended yesterday
            _ = try accounts.create(name: "alice", password: Self.password)
            try accounts.delete("alice")
            _ = try accounts.create(name: "alice", password: Self.password)
        }
    }

    @Test func deleteOfUnknownAccount() async throws {
        try await withDataFolder { data in
            #expect(throws: AccountError.notFound("ghost")) { try data.accounts().delete("ghost") }
        }
    }

    @Test func errorDescriptionsAreReadable() {
        #expect(AccountError.passwordTooShort.description.contains("10"))
        #expect(AccountError.exists("alice").description.contains("alice"))
        #expect(AccountError.notFound("ghost").description.contains("ghost"))
        #expect(AccountError.reserved("root").description.contains("root"))
        #expect(AccountError.invalidName("2 to 32 characters").description.contains("2 to 32 characters"))
    }
}
