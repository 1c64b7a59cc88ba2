import Foundation
import Logging
import NIOCore
import Testing
@testable import Store

/// Mailboxes: group-commit delivery (SMTP-7), quota (MBOX-2), uids (MBOX-3), events (MBOX-4),
/// deletion and account removal (ACCT-4).
@Suite struct MailStoreTests {
    static let password = "correct horse battery"
    static let bigQuota = 50_000_000

    static func isHex32(_ uid: String) -> Bool {
        uid.utf8.count == 32 && uid.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    // MARK: Deliver and read back

    @Test func deliveredMessageIsListedAndReadableByteExact() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            var bytes = Array("Subject: all bytes\r\n\r\n".utf8)
            bytes += (0...255).map { UInt8($0) } + Array("\r\n.\r\n..\r\n\r\n".utf8)
            try await store.deliver(buffer(bytes), to: [alice.target(quota: Self.bigQuota)])

            let list = try await store.messages(ofAccount: alice.id)
            #expect(list.count == 1)
            let message = try #require(list.first)
            #expect(message.size == bytes.count)
            #expect(Self.isHex32(message.uid))
            #expect(try await store.content(ofAccount: alice.id, uid: message.uid).bytes == bytes)
            #expect(try data.messageFiles() == [message.uid])
            #expect(try data.accounts().require("alice").usedBytes == bytes.count)
        }
    }

    @Test func onlyTheReadableBytesOfTheBufferAreStored() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            var message = buffer("SKIPPEDSubject: x\r\n\r\nbody\r\n")
            message.moveReaderIndex(forwardBy: 7)
            try await store.deliver(message, to: [alice.target(quota: Self.bigQuota)])
            let stored = try #require(try await store.messages(ofAccount: alice.id).first)
            #expect(stored.size == "Subject: x\r\n\r\nbody\r\n".utf8.count)
            #expect(try await store.content(ofAccount: alice.id, uid: stored.uid).bytes == Array("Subject: x\r\n\r\nbody\r\n".utf8))
        }
    }

    @Test func emptyMessageCanBeStored() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            try await store.deliver(buffer(""), to: [alice.target(quota: Self.bigQuota)])
            let stored = try #require(try await store.messages(ofAccount: alice.id).first)
            #expect(stored.size == 0)
            #expect(try await store.content(ofAccount: alice.id, uid: stored.uid).readableBytes == 0)
        }
    }

    @Test func largeMessageRoundTrips() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            var generator = SystemRandomNumberGenerator()
            let bytes = (0..<(3 * 1_048_576 + 17)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            try await store.deliver(buffer(bytes), to: [alice.target(quota: Self.bigQuota)])
            let stored = try #require(try await store.messages(ofAccount: alice.id).first)
            #expect(stored.size == bytes.count)
            #expect(try await store.content(ofAccount: alice.id, uid: stored.uid).bytes == bytes)
        }
    }

    @Test func messagesAreListedInDeliveryOrderWithUniqueUIDs() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            for i in 0..<5 {
                try await store.deliver(buffer("Subject: \(i)\r\n\r\n"), to: [alice.target(quota: Self.bigQuota)])
            }
            let list = try await store.messages(ofAccount: alice.id)
            #expect(list.count == 5)
            #expect(Set(list.map(\.uid)).count == 5)
            for (i, message) in list.enumerated() {
                #expect(try await store.content(ofAccount: alice.id, uid: message.uid).bytes == Array("Subject: \(i)\r\n\r\n".utf8))
            }
        }
    }

    @Test func oneDeliveryToSeveralMailboxesStoresOneCopyEach() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let bob = try accounts.create(name: "bob", password: Self.password)
            let text = "Subject: to both\r\n\r\nhello\r\n"
            try await store.deliver(buffer(text), to: [alice.target(quota: Self.bigQuota), bob.target(quota: Self.bigQuota)])
            let a = try await store.messages(ofAccount: alice.id)
            let b = try await store.messages(ofAccount: bob.id)
            #expect(a.count == 1 && b.count == 1)
            #expect(a.first?.uid != b.first?.uid)
            #expect(try data.messageFiles() == Set((a + b).map(\.uid)))
            #expect(try await store.content(ofAccount: bob.id, uid: b[0].uid).bytes == Array(text.utf8))
            #expect(try accounts.require("alice").usedBytes == text.utf8.count)
            #expect(try accounts.require("bob").usedBytes == text.utf8.count)
        }
    }

    @Test func deliveryToNoTargetStoresNothing() async throws {
        try await withMailStore { data, store in
            try await store.deliver(buffer("Subject: x\r\n\r\n"), to: [])
            #expect(try data.messageFiles().isEmpty)
        }
    }

    @Test func concurrentDeliveriesAreAllStoredByteExactAndAccounted() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let bob = try accounts.create(name: "bob", password: Self.password)
            let count = 50
            func text(_ i: Int) -> String {
                "Subject: message \(i)\r\n\r\n" + String(repeating: "line \(i)\r\n", count: i + 1)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<count {
                    group.addTask {
                        let targets = i % 5 == 0
                            ? [alice.target(quota: Self.bigQuota), bob.target(quota: Self.bigQuota)]
                            : [alice.target(quota: Self.bigQuota)]
                        try await store.deliver(buffer(text(i)), to: targets)
                    }
                }
                try await group.waitForAll()
            }
            let list = try await store.messages(ofAccount: alice.id)
            #expect(list.count == count)
            #expect(Set(list.map(\.uid)).count == count)
            #expect(list.allSatisfy { Self.isHex32($0.uid) })
            var contents = Set<String>()
            for message in list {
                let stored = try await store.content(ofAccount: alice.id, uid: message.uid)
                #expect(stored.readableBytes == message.size)
                contents.insert(String(buffer: stored))
            }
            #expect(contents == Set((0..<count).map(text)))
            let expectedAlice = (0..<count).map { text($0).utf8.count }.reduce(0, +)
            #expect(try accounts.require("alice").usedBytes == expectedAlice)

            let bobList = try await store.messages(ofAccount: bob.id)
            #expect(bobList.count == count / 5)
            let expectedBob = stride(from: 0, to: count, by: 5).map { text($0).utf8.count }.reduce(0, +)
            #expect(try accounts.require("bob").usedBytes == expectedBob)
            #expect(try data.messageFiles().count == count + count / 5)
        }
    }

    // MARK: Quota (MBOX-2)

    @Test func deliveryThatWouldExceedTheQuotaIsRefusedAndLeavesNothing() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let first = String(repeating: "a", count: 60)
            try await store.deliver(buffer(first), to: [alice.target(quota: 100)])
            let filesBefore = try data.messageFiles()

            await #expect(throws: DeliveryFailure.mailboxFull(accountName: "alice")) {
                try await store.deliver(buffer(String(repeating: "b", count: 41)), to: [alice.target(quota: 100)])
            }
            #expect(try data.messageFiles() == filesBefore)
            #expect(try await store.messages(ofAccount: alice.id).map(\.size) == [60])
            #expect(try accounts.require("alice").usedBytes == 60)

            // Exactly filling the mailbox is allowed.
            try await store.deliver(buffer(String(repeating: "c", count: 40)), to: [alice.target(quota: 100)])
            #expect(try accounts.require("alice").usedBytes == 100)
            await #expect(throws: DeliveryFailure.mailboxFull(accountName: "alice")) {
                try await store.deliver(buffer("x"), to: [alice.target(quota: 100)])
            }
            #expect(try data.messageFiles().count == 2)
        }
    }

    /// Files written by the submitter (a worker thread) instead of the committer: stored the same,
    /// mixed in one batch with committer-written ones, and removed when the commit refuses them.
    @Test func filesWrittenByTheSubmitterAreCommittedOrRemoved() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let bob = try accounts.create(name: "bob", password: Self.password)
            func deliver(_ text: String, to targets: [MailboxTarget], here: Bool) async throws {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    store.deliver(buffer(text), to: targets, writingFilesHere: here) { continuation.resume(with: $0) }
                }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await deliver("message \(index)\r\n", to: [alice.target(quota: Self.bigQuota), bob.target(quota: Self.bigQuota)],
                                          here: index % 2 == 0)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await store.messages(ofAccount: alice.id).count == 20)
            #expect(try await store.messages(ofAccount: bob.id).count == 20)
            #expect(try data.messageFiles().count == 40)
            let contents = Set(try await store.messages(ofAccount: bob.id).asyncMapStore { String(buffer: try await store.content(ofAccount: bob.id, uid: $0.uid)) })
            #expect(contents == Set((0..<20).map { "message \($0)\r\n" }))

            let filesBefore = try data.messageFiles()
            await #expect(throws: DeliveryFailure.mailboxFull(accountName: "alice")) {
                try await deliver(String(repeating: "x", count: 200), to: [alice.target(quota: 100)], here: true)
            }
            #expect(try data.messageFiles() == filesBefore)
        }
    }

    @Test func messageLargerThanAnEmptyMailboxIsRefused() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            await #expect(throws: DeliveryFailure.mailboxFull(accountName: "alice")) {
                try await store.deliver(buffer(String(repeating: "z", count: 11)), to: [alice.target(quota: 10)])
            }
            #expect(try data.messageFiles().isEmpty)
            #expect(try await store.messages(ofAccount: alice.id).isEmpty)
        }
    }

    @Test func oneFullMailboxRefusesTheWholeDelivery() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let bob = try accounts.create(name: "bob", password: Self.password)
            await #expect(throws: DeliveryFailure.mailboxFull(accountName: "bob")) {
                try await store.deliver(buffer("0123456789"), to: [alice.target(quota: 1000), bob.target(quota: 5)])
            }
            #expect(try await store.messages(ofAccount: alice.id).isEmpty)
            #expect(try accounts.require("alice").usedBytes == 0)
            #expect(try data.messageFiles().isEmpty)
        }
    }

    @Test func concurrentDeliveriesNeverOverfillAMailbox() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<50 {
                    group.addTask {
                        do {
                            try await store.deliver(buffer(String(format: "%010d", i)), to: [alice.target(quota: 255)])
                            return true
                        } catch DeliveryFailure.mailboxFull(let name) {
                            #expect(name == "alice")
                            return false
                        }
                    }
                }
                var results: [Bool] = []
                for try await result in group { results.append(result) }
                return results
            }
            #expect(results.filter { $0 }.count == 25)
            #expect(try accounts.require("alice").usedBytes == 250)
            #expect(try await store.messages(ofAccount: alice.id).count == 25)
            #expect(try data.messageFiles().count == 25)
        }
    }

    @Test func deliveryToADeletedAccountIsRefused() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            try accounts.delete("alice")
            await #expect(throws: DeliveryFailure.mailboxGone(accountName: "alice")) {
                try await store.deliver(buffer("hello"), to: [alice.target(quota: Self.bigQuota)])
            }
            #expect(try data.messageFiles().isEmpty)
        }
    }

    // MARK: Reading and ownership

    @Test func contentOfAnotherAccountsMessageIsRefused() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let bob = try accounts.create(name: "bob", password: Self.password)
            try await store.deliver(buffer("secret"), to: [alice.target(quota: Self.bigQuota)])
            let uid = try #require(try await store.messages(ofAccount: alice.id).first?.uid)
            await #expect(throws: DeliveryFailure.self) { _ = try await store.content(ofAccount: bob.id, uid: uid) }
            await #expect(throws: DeliveryFailure.self) { _ = try await store.content(ofAccount: alice.id, uid: "0123456789abcdef0123456789abcdef") }
            await #expect(throws: DeliveryFailure.self) { _ = try await store.content(ofAccount: alice.id, uid: "../postern.sqlite") }
        }
    }

    // MARK: Delete

    @Test func deleteRemovesRowsFilesAndUsedBytes() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            for size in [10, 20, 30] {
                try await store.deliver(buffer(String(repeating: "m", count: size)), to: [alice.target(quota: Self.bigQuota)])
            }
            let list = try await store.messages(ofAccount: alice.id)
            #expect(try accounts.require("alice").usedBytes == 60)

            try await store.delete(ofAccount: alice.id, uids: [list[0].uid, list[2].uid])
            #expect(try await store.messages(ofAccount: alice.id) == [list[1]])
            #expect(try accounts.require("alice").usedBytes == 20)
            #expect(try data.messageFiles() == [list[1].uid])
            await #expect(throws: DeliveryFailure.self) { _ = try await store.content(ofAccount: alice.id, uid: list[0].uid) }
            #expect(try await store.content(ofAccount: alice.id, uid: list[1].uid).readableBytes == 20)

            // Deleting again, an unknown uid, or nothing changes nothing.
            try await store.delete(ofAccount: alice.id, uids: [list[0].uid, "ffffffffffffffffffffffffffffffff"])
            try await store.delete(ofAccount: alice.id, uids: [])
            #expect(try accounts.require("alice").usedBytes == 20)
            #expect(try await store.messages(ofAccount: alice.id) == [list[1]])
        }
    }

    @Test func deleteFreesQuotaForNewMail() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            try await store.deliver(buffer(String(repeating: "a", count: 80)), to: [alice.target(quota: 100)])
            await #expect(throws: DeliveryFailure.mailboxFull(accountName: "alice")) {
                try await store.deliver(buffer(String(repeating: "b", count: 80)), to: [alice.target(quota: 100)])
            }
            let uid = try #require(try await store.messages(ofAccount: alice.id).first?.uid)
            try await store.delete(ofAccount: alice.id, uids: [uid])
            try await store.deliver(buffer(String(repeating: "b", count: 80)), to: [alice.target(quota: 100)])
            #expect(try data.accounts().require("alice").usedBytes == 80)
        }
    }

    @Test func duplicateUIDsInOneDeleteCountOnce() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            try await store.deliver(buffer("12345"), to: [alice.target(quota: Self.bigQuota)])
            try await store.deliver(buffer("1234567"), to: [alice.target(quota: Self.bigQuota)])
            let first = try #require(try await store.messages(ofAccount: alice.id).first)
            try await store.delete(ofAccount: alice.id, uids: [first.uid, first.uid])
            #expect(try data.accounts().require("alice").usedBytes == 7)
        }
    }

    /// `delete(ofAccount:uids:)` must only remove that account's messages: a uid it does not own
    /// keeps its index row and must keep its file.
    @Test func deleteWithAUIDOfAnotherAccountLeavesThatMessageIntact() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let bob = try accounts.create(name: "bob", password: Self.password)
            try await store.deliver(buffer("bob's mail"), to: [bob.target(quota: Self.bigQuota)])
            let bobsUID = try #require(try await store.messages(ofAccount: bob.id).first?.uid)

            try await store.delete(ofAccount: alice.id, uids: [bobsUID])
            #expect(try await store.messages(ofAccount: bob.id).map(\.uid) == [bobsUID])
            #expect(try accounts.require("bob").usedBytes == 10)
            #expect(try data.messageFiles() == [bobsUID])
            let content = try await store.content(ofAccount: bob.id, uid: bobsUID)
            #expect(content.bytes == Array("bob's mail".utf8))
        }
    }

    /// The same missing check lets a uid name a path outside `messages/`.
    @Test func deleteWithAPathLikeUIDTouchesNothingOutsideTheMailbox() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            let database = data.folder.root.appendingPathComponent("postern.sqlite").path
            #expect(FileManager.default.fileExists(atPath: database))
            try await store.delete(ofAccount: alice.id, uids: ["../postern.sqlite"])
            #expect(FileManager.default.fileExists(atPath: database))
        }
    }

    // MARK: New-mail events (MBOX-4)

    @Test func deliveryRaisesOneEventPerMailbox() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let bob = try accounts.create(name: "bob", password: Self.password)
            let events = store.newMailEvents()
            var iterator = events.makeAsyncIterator()

            try await store.deliver(buffer("one"), to: [alice.target(quota: Self.bigQuota), bob.target(quota: Self.bigQuota)])
            let first = try #require(await iterator.next())
            let second = try #require(await iterator.next())
            let expected: Set<String> = ["\(alice.id) alice 1", "\(bob.id) bob 1"]
            #expect(Set([first, second].map { "\($0.accountID) \($0.accountName) \($0.count)" }) == expected)

            try await store.deliver(buffer("two"), to: [bob.target(quota: Self.bigQuota)])
            #expect(await iterator.next() == NewMailEvent(accountID: bob.id, accountName: "bob", count: 1))
        }
    }

    @Test func refusedDeliveryRaisesNoEvent() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            var iterator = store.newMailEvents().makeAsyncIterator()
            await #expect(throws: DeliveryFailure.self) {
                try await store.deliver(buffer("too big"), to: [alice.target(quota: 3)])
            }
            try await store.deliver(buffer("ok"), to: [alice.target(quota: 3)])
            // The first event seen is the one of the accepted delivery.
            #expect(await iterator.next() == NewMailEvent(accountID: alice.id, accountName: "alice", count: 1))
        }
    }

    @Test func everySubscriberGetsTheEventAndEventsOnlyFromSubscriptionOn() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            try await store.deliver(buffer("before"), to: [alice.target(quota: Self.bigQuota)])
            var one = store.newMailEvents().makeAsyncIterator()
            var two = store.newMailEvents().makeAsyncIterator()
            try await store.deliver(buffer("after"), to: [alice.target(quota: Self.bigQuota)])
            let expected = NewMailEvent(accountID: alice.id, accountName: "alice", count: 1)
            #expect(await one.next() == expected)
            #expect(await two.next() == expected)
        }
    }

    @Test func concurrentDeliveriesRaiseOneEventEach() async throws {
        try await withMailStore { data, store in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            var iterator = store.newMailEvents().makeAsyncIterator()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<20 {
                    group.addTask { try await store.deliver(buffer("m\(i)"), to: [alice.target(quota: Self.bigQuota)]) }
                }
                try await group.waitForAll()
            }
            var total = 0
            while total < 20, let event = await iterator.next() {
                #expect(event.accountID == alice.id)
                total += event.count
            }
            #expect(total == 20)
        }
    }

    // MARK: Crash leftovers and lifecycle

    @Test func orphanFilesAreRemovedOnOpenAndIndexedOnesKept() async throws {
        try await withDataFolder { data in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            let first = try MailStore(folder: data.folder, logger: Logger(label: "test"))
            try await first.deliver(buffer("kept"), to: [alice.target(quota: Self.bigQuota)])
            let uid = try #require(try await first.messages(ofAccount: alice.id).first?.uid)
            await first.close()

            let orphan = data.folder.messagesDirectory.appendingPathComponent("00000000000000000000000000000000")
            try Data("half-written".utf8).write(to: orphan)
            #expect(try data.messageFiles() == [uid, orphan.lastPathComponent])

            let second = try MailStore(folder: data.folder, logger: Logger(label: "test"))
            #expect(try data.messageFiles() == [uid])
            #expect(try await second.content(ofAccount: alice.id, uid: uid).bytes == Array("kept".utf8))
            await second.close()
        }
    }

    @Test func deliveryAfterCloseIsRefused() async throws {
        try await withDataFolder { data in
            let alice = try data.accounts().create(name: "alice", password: Self.password)
            let store = try MailStore(folder: data.folder, logger: Logger(label: "test"))
            await store.close()
            await #expect(throws: DeliveryFailure.self) {
                try await store.deliver(buffer("late"), to: [alice.target(quota: Self.bigQuota)])
            }
            #expect(try data.messageFiles().isEmpty)
        }
    }

    @Test func uidsAre32LowerCaseHexDigitsAndUnique() {
        var seen = Set<String>()
        for _ in 0..<10_000 {
            let uid = GroupCommitter.newUID()
            #expect(Self.isHex32(uid), "\(uid)")
            seen.insert(uid)
        }
        #expect(seen.count == 10_000)
    }

    // MARK: Account deletion with mail (ACCT-4)

    @Test func deletingAnAccountRemovesItsMessageFilesOnly() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts()
            let alice = try accounts.create(name: "alice", password: Self.password)
            let bob = try accounts.create(name: "bob", password: Self.password)
            for i in 0..<3 {
                try await store.deliver(buffer("for alice \(i)"), to: [alice.target(quota: Self.bigQuota)])
            }
            try await store.deliver(buffer("for both"), to: [alice.target(quota: Self.bigQuota), bob.target(quota: Self.bigQuota)])
            let bobs = try await store.messages(ofAccount: bob.id)
            #expect(try data.messageFiles().count == 5)

            #expect(try accounts.delete("alice") == 4)
            #expect(try await store.messages(ofAccount: alice.id).isEmpty)
            #expect(try data.messageFiles() == Set(bobs.map(\.uid)))
            #expect(try await store.content(ofAccount: bob.id, uid: bobs[0].uid).bytes == Array("for both".utf8))
            #expect(throws: AccountError.quarantined("alice", untilDay: AccountStore.today() + 180)) {
                try accounts.create(name: "alice", password: Self.password)
            }
        }
    }

    @Test func recreatedNameAfterZeroQuarantineStartsEmpty() async throws {
        try await withMailStore { data, store in
            let accounts = data.accounts(quarantineDays: 0)
            let old = try accounts.create(name: "alice", password: Self.password)
            try await store.deliver(buffer("old mail"), to: [old.target(quota: Self.bigQuota)])
            #expect(try accounts.delete("alice") == 1)
            let new = try accounts.create(name: "alice", password: Self.password)
            #expect(new.usedBytes == 0)
            #expect(try await store.messages(ofAccount: new.id).isEmpty)
            #expect(try data.messageFiles().isEmpty)
        }
    }
}

extension Sequence {
    func asyncMapStore<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
