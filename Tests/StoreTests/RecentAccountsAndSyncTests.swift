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

    /// A change to any account moves the shared generation: every key is read again, the
    /// changed account's aliases (postmaster → the operator) included.
    @Test func aChangedAccountIsReadAgainUnderEveryKey() throws {
        let generation = NIOLockedValueBox<UInt64>(0)
        let recent = RecentAccounts(lifetime: 60, now: { 0 }, generation: { generation.withLockedValue { $0 } })
        let adam = try Self.account(7, "adam")
        let bob = try Self.account(8, "bob")
        var reads = 0
        for (key, account) in [("adam", adam), ("postmaster", adam), ("bob", bob)] {
            #expect(recent.lookup(key) { reads += 1; return account } == account)
            #expect(recent.lookup(key) { reads += 1; return account } == account)
        }
        #expect(reads == 3)  // once per key
        generation.withLockedValue { $0 += 1 }  // adam changed (in this process or another)
        #expect(recent.lookup("adam") == nil)
        #expect(recent.lookup("postmaster") == nil)
        #expect(recent.lookup("bob") == nil)
        #expect(recent.lookup("bob") { reads += 1; return bob } == bob)
        #expect(reads == 4)
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
        _ = recent.reread("alice") { alice }
        #expect(recent.lookup("alice") == alice)
        generation.withLockedValue { $0 += 1 }  // an account changed somewhere
        #expect(recent.lookup("alice") == nil)
        // a change that lands while the row is being read: the row is not used afterwards
        let read = recent.reread("alice") {
            generation.withLockedValue { $0 += 1 }
            return alice
        }
        #expect(read == alice)
        #expect(recent.lookup("alice") == nil)
        // an account that does not exist is not remembered
        #expect(recent.reread("nobody") { nil } == nil)
        #expect(recent.lookup("nobody") == nil)
    }

    /// Two stores on one data folder stand for the server and `postern account …`: a change in
    /// either is seen by the other's cache at once, through the shared generation file.
    @Test func aChangeInAnotherProcessIsSeenAtOnce() async throws {
        try await withDataFolder { data in
            let server = data.accounts(recentLifetime: 600)
            let cli = data.accounts()
            let dave = try cli.create(name: "dave", password: "correct horse battery")
            _ = server.recent.reread("dave") { dave }
            #expect(server.recent.lookup("dave") == dave)
            try cli.setPassword("dave", password: "another long password")
            #expect(server.recent.lookup("dave") == nil)
            _ = try server.recent.reread("dave") { try server.require("dave") }
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
            _ = accounts.recent.reread("carol") { carol }
            _ = try accounts.apply(settings: [("quota", "1MB")], to: "carol")
            #expect(accounts.recent.lookup("carol") == nil)
            _ = accounts.recent.reread("carol") { carol }
            try accounts.setPassword("carol", password: "another long password")
            #expect(accounts.recent.lookup("carol") == nil)
            _ = accounts.recent.reread("carol") { carol }
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

    /// `stop` returns only once the helpers have left (a hang fails the run); a batch after it
    /// is still synced, by the caller alone, and a failure in it still counts.
    @Test func stopEndsTheHelpersAndBatchesStillComplete() throws {
        try withDataFolderSync { data in
            let syncer = ParallelSync(helpers: 4)
            syncer.stop()
            let fds = Self.files(5, in: data)
            defer { fds.forEach { _ = close($0) } }
            #expect(syncer.syncAll(fds))
            #expect(!syncer.syncAll(fds + [-1]))
        }
    }
}
