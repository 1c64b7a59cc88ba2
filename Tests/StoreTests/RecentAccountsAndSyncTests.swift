import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import Store

/// The routing cache: what it remembers, for how long, and what makes it forget.
@Suite struct RecentAccountsTests {
    final class Clock: Sendable {
        let time = NIOLockedValueBox<Double>(1000)
        func advance(_ seconds: Double) { time.withLockedValue { $0 += seconds } }
    }

    static func account(_ id: Int64, _ name: String) throws -> Account {
        try withDataFolderSync { data in
            let accounts = data.accounts()
            var account = try accounts.create(name: name, password: "correct horse battery")
            account.id = id
            return account
        }
    }

    @Test func remembersForItsLifetimeOnly() throws {
        let clock = Clock()
        let recent = RecentAccounts(lifetime: 2, now: { clock.time.withLockedValue { $0 } })
        let alice = try Self.account(1, "alice")
        #expect(recent.lookup("alice") == nil)
        recent.remember(alice, as: "alice", readUnder: 0)
        #expect(recent.lookup("alice") == alice)
        clock.advance(1.9)
        #expect(recent.lookup("alice") == alice)
        clock.advance(0.2)
        #expect(recent.lookup("alice") == nil)
    }

    @Test func aClockThatGoesBackExpiresTheEntry() throws {
        let clock = Clock()
        let recent = RecentAccounts(lifetime: 2, now: { clock.time.withLockedValue { $0 } })
        recent.remember(try Self.account(1, "alice"), as: "alice", readUnder: 0)
        clock.advance(-5)
        #expect(recent.lookup("alice") == nil)
    }

    @Test func forgettingAnAccountForgetsEveryKeyItWasRememberedAs() throws {
        let recent = RecentAccounts(lifetime: 60, now: { 0 })
        let adam = try Self.account(7, "adam")
        let bob = try Self.account(8, "bob")
        recent.remember(adam, as: "adam", readUnder: 0)
        recent.remember(adam, as: "postmaster", readUnder: 0)
        recent.remember(bob, as: "bob", readUnder: 0)
        recent.forget(accountID: 7)
        #expect(recent.lookup("adam") == nil)
        #expect(recent.lookup("postmaster") == nil)
        #expect(recent.lookup("bob") == bob)
    }

    @Test func staysWithinItsCapacity() throws {
        let recent = RecentAccounts(lifetime: 60, capacity: 3, now: { 0 })
        let alice = try Self.account(1, "alice")
        for key in ["a", "b", "c", "d", "e"] { recent.remember(alice, as: key, readUnder: 0) }
        let remembered = ["a", "b", "c", "d", "e"].filter { recent.lookup($0) != nil }
        #expect(remembered.count <= 3)
        #expect(remembered.contains("e"))
    }

    @Test func anEntryReadUnderAnOlderGenerationIsNotUsed() throws {
        let generation = NIOLockedValueBox<UInt64>(5)
        let recent = RecentAccounts(lifetime: 60, now: { 0 }, generation: { generation.withLockedValue { $0 } })
        let alice = try Self.account(1, "alice")
        recent.remember(alice, as: "alice", readUnder: recent.currentGeneration)
        #expect(recent.lookup("alice") == alice)
        generation.withLockedValue { $0 += 1 }  // an account changed somewhere
        #expect(recent.lookup("alice") == nil)
        // read before the change, remembered after it: never used
        recent.remember(alice, as: "alice", readUnder: 5)
        #expect(recent.lookup("alice") == nil)
    }

    /// Two stores on one data folder stand for the server and `postern account …`: a change in
    /// either is seen by the other's cache at once, through the shared generation file.
    @Test func aChangeInAnotherProcessIsSeenAtOnce() async throws {
        try await withDataFolder { data in
            let server = data.accounts(recentLifetime: 600)
            let cli = data.accounts()
            let dave = try cli.create(name: "dave", password: "correct horse battery")
            server.recent.remember(dave, as: "dave", readUnder: server.recent.currentGeneration)
            #expect(server.recent.lookup("dave") == dave)
            try cli.setPassword("dave", password: "another long password")
            #expect(server.recent.lookup("dave") == nil)
            server.recent.remember(try server.require("dave"), as: "dave", readUnder: server.recent.currentGeneration)
            #expect(server.recent.lookup("dave") != nil)
            try cli.delete("dave")
            #expect(server.recent.lookup("dave") == nil)
            let mode = try FileManager.default.attributesOfItem(atPath: data.path + "/accounts.generation")[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test func accountStoreChangesForgetTheAccount() async throws {
        try await withDataFolder { data in
            let accounts = data.accounts()
            let carol = try accounts.create(name: "carol", password: "correct horse battery")
            accounts.recent.remember(carol, as: "carol", readUnder: accounts.recent.currentGeneration)
            _ = try accounts.apply(settings: [("quota", "1MB")], to: "carol")
            #expect(accounts.recent.lookup("carol") == nil)
            accounts.recent.remember(carol, as: "carol", readUnder: accounts.recent.currentGeneration)
            try accounts.setPassword("carol", password: "another long password")
            #expect(accounts.recent.lookup("carol") == nil)
            accounts.recent.remember(carol, as: "carol", readUnder: accounts.recent.currentGeneration)
            try accounts.delete("carol")
            #expect(accounts.recent.lookup("carol") == nil)
        }
    }
}

func withDataFolderSync<T>(_ body: (TestDataFolder) throws -> T) throws -> T {
    let data = try TestDataFolder()
    defer { data.remove() }
    return try body(data)
}

/// Parallel fsync: every descriptor synced, failures reported, reusable batch after batch.
@Suite struct ParallelSyncTests {
    static func files(_ count: Int, in data: TestDataFolder) -> [Int32] {
        (0..<count).map { index in
            let fd = open("\(data.path)/sync-\(index)", O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            _ = "message \(index)\r\n".withCString { write(fd, $0, strlen($0)) }
            return fd
        }
    }

    @Test func syncsBatchesOfEverySize() throws {
        try withDataFolderSync { data in
            let syncer = ParallelSync(helpers: 3)
            defer { syncer.stop() }
            let fds = Self.files(20, in: data)
            defer { fds.forEach { _ = close($0) } }
            for size in [0, 1, 2, 3, 4, 7, 20, 5, 1, 20] {
                #expect(syncer.syncAll(Array(fds.prefix(size))))
            }
        }
    }

    @Test func aFailedFsyncFailsTheBatch() throws {
        try withDataFolderSync { data in
            let syncer = ParallelSync(helpers: 3)
            defer { syncer.stop() }
            let fds = Self.files(6, in: data)
            defer { fds.forEach { _ = close($0) } }
            // -1 is never a descriptor: fsync fails with EBADF, wherever it lands in the batch.
            #expect(!syncer.syncAll(fds + [-1]))
            #expect(!syncer.syncAll([-1] + fds))
            #expect(!syncer.syncAll([-1]))
            // and the next batch is judged on its own
            #expect(syncer.syncAll(fds))
        }
    }

    @Test func stopEndsTheHelpers() {
        let syncer = ParallelSync(helpers: 4)
        syncer.stop()  // returns only once all four have left; a hang fails the run
        #expect(syncer.syncAll([]))
    }
}
