import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
@testable import Store

/// SMTP-6 / POP-4: exponential per-account back-off, as a pure value.
@Suite struct LoginBackoffTests {
    @Test func penaltyDoublesUpToTheMaximum() {
        let backoff = LoginBackoff(base: 1, maximum: 15)
        #expect((0...7).map { backoff.penalty(failures: $0) } == [0, 1, 2, 4, 8, 15, 15, 15])
        #expect(backoff.penalty(failures: -3) == 0)
        #expect(backoff.penalty(failures: 1_000_000) == 15)
        #expect(LoginBackoff(base: 0.5, maximum: 100).penalty(failures: 4) == 4)
    }

    @Test func noRecordMeansNoWait() {
        var backoff = LoginBackoff()
        #expect(backoff.admit("alice", now: 1000) == 0)
        #expect(backoff.admit("alice", now: 1000) == 0)
        #expect(backoff.failures(of: "alice") == 0)
    }

    @Test func afterAFailureAttemptsAreAdmittedOneAtATime() {
        var backoff = LoginBackoff(base: 1, maximum: 15, maximumWait: 60)
        backoff.recordFailure("alice", now: 100)
        #expect(backoff.failures(of: "alice") == 1)
        // Parallel attempts at the same instant are spaced by the penalty, not let through together.
        #expect(backoff.admit("alice", now: 100) == 1)
        #expect(backoff.admit("alice", now: 100) == 2)
        #expect(backoff.admit("alice", now: 100) == 3)
        // Later, once the reserved slots are past, the wait is the remainder.
        #expect(backoff.admit("alice", now: 103.5) == 0.5)
    }

    @Test func consecutiveFailuresGrowTheWait() {
        var backoff = LoginBackoff(base: 1, maximum: 15, maximumWait: 60)
        backoff.recordFailure("alice", now: 0)
        backoff.recordFailure("alice", now: 0)
        backoff.recordFailure("alice", now: 0)
        #expect(backoff.failures(of: "alice") == 3)
        #expect(backoff.admit("alice", now: 0) == 4)      // 2^(3-1)
        #expect(backoff.admit("alice", now: 0) == 8)      // next slot 4 s later
        #expect(backoff.admit("alice", now: 100) == 0)    // long after: no wait, but still spaced
        #expect(backoff.admit("alice", now: 100) == 4)
    }

    @Test func waitLongerThanMaximumWaitIsRefusedWithoutReservingASlot() {
        var backoff = LoginBackoff(base: 10, maximum: 100, maximumWait: 30)
        backoff.recordFailure("alice", now: 0)
        #expect(backoff.admit("alice", now: 0) == 10)
        #expect(backoff.admit("alice", now: 0) == 20)
        #expect(backoff.admit("alice", now: 0) == 30)
        #expect(backoff.admit("alice", now: 0) == nil)
        #expect(backoff.admit("alice", now: 0) == nil)
        // The refused attempts took no slot: ten seconds later the next wait is 30 again.
        #expect(backoff.admit("alice", now: 10) == 30)
    }

    @Test func successClearsTheRecord() {
        var backoff = LoginBackoff(base: 1, maximum: 15)
        for _ in 0..<5 { backoff.recordFailure("alice", now: 0) }
        #expect(backoff.failures(of: "alice") == 5)
        backoff.recordSuccess("alice")
        #expect(backoff.failures(of: "alice") == 0)
        #expect(backoff.admit("alice", now: 0) == 0)
        backoff.recordFailure("alice", now: 0)
        #expect(backoff.admit("alice", now: 0) == 1)  // starts again from the base
    }

    @Test func accountsAreIndependent() {
        var backoff = LoginBackoff(base: 1, maximum: 15)
        for _ in 0..<4 { backoff.recordFailure("alice", now: 0) }
        #expect(backoff.admit("bob", now: 0) == 0)
        #expect(backoff.failures(of: "bob") == 0)
        backoff.recordSuccess("bob")
        #expect(backoff.failures(of: "alice") == 4)
        #expect(backoff.admit("alice", now: 0) == 8)
    }

    @Test func failureNeverMovesTheNextSlotEarlier() {
        var backoff = LoginBackoff(base: 1, maximum: 15, maximumWait: 60)
        backoff.recordFailure("alice", now: 0)
        #expect(backoff.admit("alice", now: 0) == 1)  // slot at 1, next at 2
        #expect(backoff.admit("alice", now: 0) == 2)  // slot at 2, next at 3
        backoff.recordFailure("alice", now: 0)         // penalty 2: now + 2 = 2 < 3, keep 3
        #expect(backoff.admit("alice", now: 0) == 3)
    }

    @Test func defaults() {
        let backoff = LoginBackoff()
        #expect(backoff.base == 1)
        #expect(backoff.maximum == 15)
        #expect(backoff.maximumWait == 60)
    }
}

/// Login checks over the account store, with the shared back-off and the verified-password cache.
@Suite struct AuthenticatorTests {
    static let password = "correct horse battery"
    /// No waiting between attempts, so failures do not slow the tests down.
    static let noBackoff = LoginBackoff(base: 0, maximum: 0, maximumWait: 60)

    func withAuthenticator(backoff: LoginBackoff = noBackoff, cacheLifetime: Double = 600, recentLifetime: Double = 2,
                           _ body: (AccountStore, Authenticator) async throws -> Void) async throws {
        try await withDataFolder { data in
            let accounts = data.accounts(recentLifetime: recentLifetime)
            let authenticator = Authenticator(accounts: accounts, backoff: backoff, cacheLifetime: cacheLifetime,
                                              logger: Logger(label: "test"))
            do {
                try await body(accounts, authenticator)
                await authenticator.shutdown()
            } catch {
                await authenticator.shutdown()
                throw error
            }
        }
    }

    static func isSuccess(_ result: LoginResult, name: String) -> Bool {
        if case .success(let account) = result { return account.name == name }
        return false
    }

    @Test func rightPasswordSucceedsInAnySpellingOfTheName() async throws {
        try await withAuthenticator { accounts, authenticator in
            let alice = try accounts.create(name: "alice", password: Self.password)
            #expect(await authenticator.verify(username: "alice", password: Self.password) == .success(alice))
            #expect(await authenticator.verify(username: "ALICE", password: Self.password) == .success(alice))
            #expect(await authenticator.verify(username: "Alice@Mail.I2P", password: Self.password) == .success(alice))
        }
    }

    @Test func wrongPasswordFails() async throws {
        try await withAuthenticator { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(await authenticator.verify(username: "alice", password: "wrong password") == .failure)
            #expect(await authenticator.verify(username: "alice", password: "") == .failure)
            #expect(await authenticator.verify(username: "alice", password: Self.password.uppercased()) == .failure)
            #expect(await authenticator.verify(username: "alice@other.i2p", password: Self.password) == .failure)
        }
    }

    @Test func unknownOrInvalidUserFails() async throws {
        try await withAuthenticator { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(await authenticator.verify(username: "bob", password: Self.password) == .failure)
            #expect(await authenticator.verify(username: "", password: Self.password) == .failure)
            #expect(await authenticator.verify(username: "not a name!", password: Self.password) == .failure)
            #expect(await authenticator.verify(username: "postmaster", password: Self.password) == .failure)
        }
    }

    @Test func passwordChangeTakesEffectAtOnceDespiteTheCache() async throws {
        try await withAuthenticator { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(Self.isSuccess(await authenticator.verify(username: "alice", password: Self.password), name: "alice"))
            #expect(Self.isSuccess(await authenticator.verify(username: "alice", password: Self.password), name: "alice"))

            try accounts.setPassword("alice", password: "the new password")
            #expect(await authenticator.verify(username: "alice", password: Self.password) == .failure)
            let result = await authenticator.verify(username: "alice", password: "the new password")
            #expect(Self.isSuccess(result, name: "alice"))
            // The returned account carries the new hash.
            if case .success(let account) = result {
                #expect(PasswordHash(encoded: account.passwordHash)?.verify(password: "the new password") == true)
            }
        }
    }

    @Test func deletedAccountCannotLogInEvenWhenCached() async throws {
        try await withAuthenticator { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(Self.isSuccess(await authenticator.verify(username: "alice", password: Self.password), name: "alice"))
            try accounts.delete("alice")
            #expect(await authenticator.verify(username: "alice", password: Self.password) == .failure)
        }
    }

    /// A verified password is remembered: the second login needs no scrypt. Shutting the hashing
    /// pool down makes every uncached check fail, which tells the two paths apart.
    @Test func verifiedPasswordIsCached() async throws {
        try await withAuthenticator { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            _ = try accounts.create(name: "bob", password: Self.password)
            #expect(Self.isSuccess(await authenticator.verify(username: "alice", password: Self.password), name: "alice"))
            await authenticator.shutdown()
            #expect(Self.isSuccess(await authenticator.verify(username: "alice", password: Self.password), name: "alice"))
            #expect(Self.isSuccess(await authenticator.verify(username: "ALICE@mail.i2p", password: Self.password), name: "alice"))
            // Not cached: another account, another password.
            #expect(await authenticator.verify(username: "bob", password: Self.password) == .failure)
            #expect(await authenticator.verify(username: "alice", password: "wrong password") == .failure)
            // Bound to the stored hash: after a change the cached entry no longer matches.
            try accounts.setPassword("alice", password: Self.password)
            #expect(await authenticator.verify(username: "alice", password: Self.password) == .failure)
        }
    }

    /// The event-loop path: a repeated login of a recently read account is answered from memory
    /// (the pool being shut down proves no hop happened); a change made through this store makes
    /// the next login go the long way.
    @Test func repeatedLoginOfARecentAccountNeedsNoHop() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        try await withAuthenticator(recentLifetime: 600) { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(Self.isSuccess(try await authenticator.verify(username: "alice", password: Self.password, on: loop).get(), name: "alice"))
            #expect(accounts.recent.lookup("alice")?.name == "alice")
            await authenticator.shutdown()
            #expect(Self.isSuccess(try await authenticator.verify(username: "Alice", password: Self.password, on: loop).get(), name: "alice"))
            // a wrong password is never answered from memory
            #expect(try await authenticator.verify(username: "alice", password: "wrong password", on: loop).get() == .temporaryFailure)
            // a change in this process forgets the account: the long way, which is shut down here
            try accounts.setPassword("alice", password: "a new long password")
            #expect(try await authenticator.verify(username: "alice", password: "a new long password", on: loop).get() == .temporaryFailure)
            #expect(try await authenticator.verify(username: "alice", password: Self.password, on: loop).get() == .temporaryFailure)
        }
    }

    @Test func loopPathChecksPasswordsLikeTheAsyncOne() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        try await withAuthenticator { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(try await authenticator.verify(username: "alice", password: "wrong password", on: loop).get() == .failure)
            #expect(try await authenticator.verify(username: "nobody", password: Self.password, on: loop).get() == .failure)
            #expect(Self.isSuccess(try await authenticator.verify(username: "alice@mail.i2p", password: Self.password, on: loop).get(), name: "alice"))
        }
    }

    @Test func cacheEntriesExpire() async throws {
        try await withAuthenticator(cacheLifetime: -1) { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(Self.isSuccess(await authenticator.verify(username: "alice", password: Self.password), name: "alice"))
            await authenticator.shutdown()
            #expect(await authenticator.verify(username: "alice", password: Self.password) == .failure)
        }
    }

    @Test func failuresBackOffPerAccount() async throws {
        // One failure makes the next attempt wait 1000 s, more than the 1 s allowed: "try later".
        let backoff = LoginBackoff(base: 1000, maximum: 1000, maximumWait: 1)
        try await withAuthenticator(backoff: backoff) { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            _ = try accounts.create(name: "bob", password: Self.password)
            #expect(await authenticator.verify(username: "alice", password: "wrong password") == .failure)
            #expect(await authenticator.verify(username: "alice", password: Self.password) == .temporaryFailure)
            #expect(await authenticator.verify(username: "ALICE@mail.i2p", password: Self.password) == .temporaryFailure)
            // Another account is not affected.
            #expect(Self.isSuccess(await authenticator.verify(username: "bob", password: Self.password), name: "bob"))
        }
    }

    @Test func unknownNamesBackOffToo() async throws {
        let backoff = LoginBackoff(base: 1000, maximum: 1000, maximumWait: 1)
        try await withAuthenticator(backoff: backoff) { _, authenticator in
            #expect(await authenticator.verify(username: "ghost", password: Self.password) == .failure)
            #expect(await authenticator.verify(username: "ghost", password: Self.password) == .temporaryFailure)
            #expect(await authenticator.verify(username: "not valid!", password: Self.password) == .failure)
            #expect(await authenticator.verify(username: "NOT VALID!", password: Self.password) == .temporaryFailure)
        }
    }

    @Test func successResetsTheBackoff() async throws {
        // One failure costs a 20 ms slot, two in a row 40 ms, more than the 30 ms allowed. A success
        // in between clears the record, so the failure after it counts as the first again.
        let backoff = LoginBackoff(base: 0.02, maximum: 10, maximumWait: 0.03)
        try await withAuthenticator(backoff: backoff) { accounts, authenticator in
            _ = try accounts.create(name: "alice", password: Self.password)
            #expect(await authenticator.verify(username: "alice", password: "wrong password") == .failure)
            #expect(Self.isSuccess(await authenticator.verify(username: "alice", password: Self.password), name: "alice"))
            #expect(await authenticator.verify(username: "alice", password: "wrong password") == .failure)
            #expect(Self.isSuccess(await authenticator.verify(username: "alice", password: Self.password), name: "alice"))
            // Without a success in between, two failures put the next attempt beyond the limit.
            #expect(await authenticator.verify(username: "alice", password: "wrong password") == .failure)
            #expect(await authenticator.verify(username: "alice", password: "wrong password") == .failure)
            #expect(await authenticator.verify(username: "alice", password: Self.password) == .temporaryFailure)
        }
    }

    @Test func concurrentLoginsAllSucceed() async throws {
        try await withAuthenticator { accounts, authenticator in
            let names = (0..<8).map { "user\($0)" }
            for name in names { _ = try accounts.create(name: name, password: "\(name) password") }
            let results = await withTaskGroup(of: Bool.self) { group in
                for name in names {
                    group.addTask { Self.isSuccess(await authenticator.verify(username: name, password: "\(name) password"), name: name) }
                    group.addTask { await authenticator.verify(username: name, password: "wrong password") == .failure }
                }
                var all: [Bool] = []
                for await result in group { all.append(result) }
                return all
            }
            #expect(results.count == 16)
            #expect(results.allSatisfy { $0 })
        }
    }
}
